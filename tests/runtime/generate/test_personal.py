"""Personal values in generation: what a template sees, what is recorded and keyed, the `no_pii` check."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import edited
from gen_helpers import plan_of, spec_text

from expc.compiler.model import Checks
from expc.runtime.generate.checks import check_text, pii_reasons
from expc.runtime.generate.jobs import JobError, pieces
from expc.runtime.generate.personal import keyed_digest, placeholder, redact
from expc.runtime.generate.runner import GenerateOptions, generate
from expc.runtime.generate.store import Record, Store, request_key
from expc.runtime.units import Units


def personal_spec(template: str = "Write a greeting for {{{{ user.first_name }}}} in {{{{ user.country }}}}.",
                  send_pii: str = "[first_name]") -> str:
    """The generation spec with `first_name` and `phone` personal, and a prompt that may send `send_pii`."""
    text = spec_text(extra=f"send_pii: {send_pii}")
    text = text.replace("  first_name: string\n", "  first_name: {type: string, pii: true}\n"
                        "  phone: {type: string, pii: true}\n")
    return text.replace("Write a greeting for {{ user.first_name }}.", template.replace("{{{{", "{{")
                        .replace("}}}}", "}}"))


def units() -> Units:
    return Units({"user_id": np.array(["u1", "u2", "u3"], dtype=object),
                  "first_name": np.array(["Zebediah", "Philippa", "Zebediah"], dtype=object),
                  "phone": np.array(["+44 20 7946 0958", "+1 202 555 0147", "+33 6 12 34 56 78"], dtype=object),
                  "country": np.array(["FR", "DE", "FR"], dtype=object)},
                 {"user_id": "string", "first_name": "string", "phone": "string", "country": "string"})


# ------------------------------------------------------------------ redaction


def test_redact_replaces_whole_values_in_any_case_longest_first() -> None:
    personal = (("first_name", "Ana"), ("email", "ana.lopez@example.org"), ("tags", ["Sevilla", "x"]))
    text = "Hi ANA (ana.lopez@example.org), banana fans in sevilla!"
    assert redact(text, personal) == "Hi [first_name] ([email]), banana fans in [tags]!"
    assert redact(None, personal) is None and redact("Ana", ()) == "Ana"
    assert redact("born 1987", (("year", 1987.0), ("flag", True))) == "born [year]"


def test_placeholders_keep_the_type_a_template_expects() -> None:
    assert placeholder("first_name", "string") == "[first_name]"
    assert placeholder("tags", "list[string]") == ["[tags]"]
    assert placeholder("age", "integer") == 0 and placeholder("vip", "boolean") is False


# ------------------------------------------------------------------ what templates see and what is recorded


def test_a_sent_value_is_rendered_and_recorded_as_a_placeholder() -> None:
    made = [p for p in pieces(plan_of(personal_spec()), units()) if p.prompt]
    assert dict(made[0].messages)["user"] == "Write a greeting for Zebediah in FR."
    assert dict(made[0].recorded or ())["user"] == "Write a greeting for [first_name] in FR."
    assert made[0].personal == (("first_name", "Zebediah"),)
    assert [p.key for p in made] == ["u1", "u2", "u3"]


def test_a_template_that_needs_the_real_value_is_recorded_without_it() -> None:
    derived = [p for p in pieces(plan_of(personal_spec("{{{{ user.first_name[3] | upper }}}}")), units()) if p.prompt]
    assert dict(derived[0].messages)["user"] == "E"
    assert dict(derived[0].recorded or ())["user"] == "R"  # of the placeholder "[first_name]"
    failing = personal_spec("{{{{ 100 // (user.first_name | length - 12) }}}}")  # 100 // 0 with the placeholder
    made = [p for p in pieces(plan_of(failing), units()) if p.prompt]
    assert dict(made[0].messages)["user"] == "-25"
    assert dict(made[0].recorded or ())["user"] == "[not recorded: the prompt sends personal data (first_name)]"


def test_a_personal_value_the_prompt_may_not_send_is_never_in_the_context() -> None:
    # plans edited by hand past the compiler (E095): a template cannot read what its prompt may not send
    plan = edited(plan_of(personal_spec("Hello {{{{ user | tojson }}}}", "[first_name, phone]")),
                  lambda d: d["prompts"]["hello"].update(send_pii=["first_name"]))
    text = dict(next(p for p in pieces(plan, units()) if p.prompt).messages)["user"]
    assert "Zebediah" in text and "phone" not in text and "+44" not in text
    hand_made = edited(plan_of(personal_spec()), lambda d: d["prompts"]["hello"].update(send_pii=[]))
    with pytest.raises(JobError, match="first_name"):
        pieces(hand_made, units())


def test_a_hand_made_plan_segmenting_by_a_personal_attribute_is_refused() -> None:
    plan = edited(plan_of(personal_spec()), lambda d: d["variants"][1].update(
        generate={"per": "segment", "segment_by": ["phone"]}))
    with pytest.raises(JobError, match="personal attribute"):
        pieces(plan, units())


# ------------------------------------------------------------------ keys


def test_keys_of_requests_with_personal_values_are_keyed_by_the_stores_secret(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Hi Zebediah"}]
    plain = request_key("offline/x", None, {}, messages, 0)
    canonical = json.dumps(["offline/x", "", {}, messages, 0], sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    assert plain == hashlib.sha256(canonical.encode()).hexdigest()
    with Store(tmp_path / "a.sqlite") as store:
        secret = store.secret()
        assert store.secret() == secret and len(secret) == 32
    with Store(tmp_path / "a.sqlite") as store:
        assert store.secret() == secret  # kept: the same request finds its stored reply in a later run
    with Store(tmp_path / "b.sqlite") as other:
        assert other.secret() != secret
    keyed = request_key("offline/x", None, {}, messages, 0, secret)
    assert keyed == keyed_digest(secret, canonical) != plain


def test_generation_keys_and_records_requests_without_the_values_and_reuses_them(tmp_path: Path) -> None:
    plan, store = plan_of(personal_spec()), tmp_path / "s.sqlite"
    first = generate(plan, units(), store, GenerateOptions())
    assert first.calls == 2  # two distinct names in FR, one in DE: u1 and u3 share a request
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT key, request FROM calls").fetchall()
    text = json.dumps(rows).lower()
    assert "zebediah" not in text and "philippa" not in text and "[first_name]" in text
    assert {r[0] for r in rows}.isdisjoint(
        request_key("offline/test", None, {"temperature": 0.5}, [{"role": "user", "content": c}], 0)
        for c in ("Write a greeting for Zebediah in FR.", "Write a greeting for Philippa in DE."))
    again = generate(plan, units(), store, GenerateOptions())
    assert again.calls == 0 and [i.content for i in again.items] == [i.content for i in first.items]
    assert [i.personal for i in again.items if i.variant == "treatment"][0] == (("first_name", "Zebediah"),)


# ------------------------------------------------------------------ no_pii


@pytest.mark.parametrize("text, reason", [
    ("Write to zeb.jones@example.co.uk today", "e-mail address"),
    ("Call +44 20 7946 0958", "phone number"),
    ("Call (555) 123-4567 now", "phone number"),
    ("Call 555.123.4567", "phone number"),
    ("Pay with 4111 1111 1111 1111", "card-like number"),
    ("Pay with 4111-1111-1111-1111.", "card-like number"),
    ("Pay with 378282246310005", "card-like number"),
])
def test_no_pii_rejects_contact_details_and_card_numbers(text: str, reason: str) -> None:
    reasons = pii_reasons(text)
    assert len(reasons) == 1 and reason in reasons[0]
    assert all(part not in reasons[0] for part in ("@", "4111", "555", "7946"))  # never quotes what it found
    assert check_text(text, Checks(no_pii=True)) == reasons
    assert check_text(text, Checks()) == []


@pytest.mark.parametrize("text", [
    "New in 2026: 30% off 3 pairs", "On 2026-10-01 12:00, doors open", "Version 5.6.2 is here",
    "Save 1.000.000 points", "Only $1,299.99", "4111 1111 1111 1112 is not a card", "mail us @acme", "a@b",
    "Hello Zebediah, see what is new",
])
def test_no_pii_lets_ordinary_copy_through(text: str) -> None:
    assert pii_reasons(text) == []


@pytest.mark.parametrize("on_fail, status", [("use_control", "use_control"), ("skip", "skipped"),
                                              ("error", "failed")])
def test_no_pii_failures_follow_on_fail(tmp_path: Path, on_fail: str, status: str) -> None:
    plan = plan_of(spec_text(checks=f"{{no_pii: true, on_fail: {on_fail}, regenerate: 0}}"))
    messages = [{"role": "user", "content": "Write a greeting for Name0."}]
    key = request_key("offline/test", None, {"temperature": 0.5}, messages, 0)
    with Store(tmp_path / "s.sqlite") as store:  # a stored reply that leaks a phone number
        store.put(Record(key, "offline/test", None, {}, "Hi! Call us on +44 20 7946 0958", None, 1, 1, 0.0, True,
                         0.0, 1, []))
    one = Units({"user_id": np.array(["u0"], dtype=object), "first_name": np.array(["Name0"], dtype=object)},
                {"user_id": "string", "first_name": "string"})
    item = generate(plan, one, tmp_path / "s.sqlite").items[1]
    assert (item.status, item.reason) == (status, "failed its checks after 1 attempt(s): contains a phone number "
                                                  "(no_pii)")
    assert item.content == {"use_control": "Hello!", "skipped": None, "failed": "Hi! Call us on +44 20 7946 0958"}[
        status]


def test_a_reason_that_quotes_the_copy_is_redacted(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"greeting": {"type": "string", "maxLength": 5}}}
    spec = personal_spec().replace("checks: {}", f"checks: {{json_schema: {json.dumps(schema)}, on_fail: skip, "
                                                 "regenerate: 0}")
    plan = plan_of(spec)
    messages = [{"role": "user", "content": "Write a greeting for Zebediah in FR."}]
    params = {"extra_body": {"expc_json_schema": schema}}
    with Store(tmp_path / "s.sqlite") as store:  # a stored reply the schema refuses, quoting the name
        key = request_key("offline/test", None, params, messages, 0, store.secret())
        store.put(Record(key, "offline/test", None, {}, '{"greeting": "Hello Zebediah"}', None, 1, 1, 0.0, True,
                         0.0, 1, []))
    item = generate(plan, units(), tmp_path / "s.sqlite").items[1]
    assert item.status == "skipped" and item.reason is not None
    assert "'Hello [first_name]' is too long" in item.reason and "Zebediah" not in item.reason
