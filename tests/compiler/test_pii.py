"""Personal data in a spec: `pii` attributes, `send_pii`, what each prompt reads (compiler/pii.py; E095, E096, W015)."""

from __future__ import annotations

from conftest import BASE

from expc.compiler.model import Prompt
from expc.compiler.pii import prompt_reads, template_reads
from expc.compiler.pipeline import CheckResult, check_bytes

PII = BASE.replace("  first_name: string\n", "  first_name: {type: string, pii: true}\n"
                   "  email: {type: string, pii: true}\n")
TEMPLATE = '      Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.\n'
assert TEMPLATE in PII


def spec(template: str, send_pii: str | None = None, system: str | None = None) -> str:
    """The base spec with personal attributes, prompt `subject` given this template (and system text, send_pii)."""
    extra = ""
    if system is not None:
        extra += f"    system: {system!r}\n"
    if send_pii is not None:
        extra += f"    send_pii: {send_pii}\n"
    return PII.replace(TEMPLATE, "".join(f"      {line}\n" for line in template.splitlines()) + extra)


def found(text: str) -> list[tuple[str, int, int, str]]:
    result: CheckResult = check_bytes(text.encode(), "s.yaml")
    return [(d.code, d.line, d.col, d.message) for d in result.diagnostics]


def codes(text: str) -> list[str]:
    return [c for c, *_ in found(text)]


def test_the_base_spec_with_personal_attributes_unread_is_silent():
    assert found(spec("Write a greeting for {{ user.country }}.")) == []


def test_reading_a_personal_attribute_without_send_pii_is_located_at_the_read():
    text = spec("Write a greeting\nfor {{ user.first_name }} in {{ user.country }}.")
    diagnostics = found(text)
    assert [d[0] for d in diagnostics] == ["E095"]
    _, line, col, message = diagnostics[0]
    assert text.splitlines()[line - 1][col - 1:].startswith("user.first_name")
    assert "`user.first_name`" in message and "send_pii" in message
    result = check_bytes(text.encode(), "s.yaml")
    assert "send_pii: [first_name]" in (result.diagnostics[0].hint or "")
    assert not result.ok()


def test_send_pii_allows_the_read():
    assert found(spec("Hello {{ user.first_name }} in {{ user.country }}.", "[first_name]")) == []


def test_item_access_and_filters_count_as_reads():
    assert codes(spec("Hello {{ user['email'] | lower }}.")) == ["E095"]
    assert codes(spec("{% set e = user.email %}{{ e }}")) == ["E095"]


def test_each_unlisted_attribute_is_reported_once():
    diagnostics = found(spec("{{ user.first_name }} {{ user.email }} {{ user.email }}", "[first_name]"))
    assert [(c, "user.email" in m) for c, _, _, m in diagnostics] == [("E095", True)]


def test_reading_user_whole_reads_every_personal_attribute():
    diagnostics = found(spec("{{ user | tojson }}", "[first_name]"))
    assert [c for c, *_ in diagnostics] == ["E095"]
    assert "`email`" in diagnostics[0][3] and "`first_name`" not in diagnostics[0][3]
    assert found(spec("{{ user | tojson }}", "[first_name, email]")) == []


def test_the_system_text_is_checked_too():
    diagnostics = found(spec("Write a greeting for {{ user.country }}.", system="Greet {{ user.email }}"))
    assert [c for c, *_ in diagnostics] == ["E095"]
    assert "system text" in diagnostics[0][3]


def test_send_pii_naming_an_undeclared_attribute_is_e034():
    diagnostics = found(spec("Hi {{ user.first_name }}", "[first_name, emial]"))
    assert [c for c, *_ in diagnostics] == ["E034"]
    assert "`emial`" in diagnostics[0][3]


def test_send_pii_naming_a_non_personal_or_unread_attribute_warns():
    diagnostics = found(spec("Hi {{ user.first_name }} in {{ user.country }}", "[first_name, country, email]"))
    assert [(c, "country" in m or "email" in m) for c, _, _, m in diagnostics] == [("W015", True), ("W015", True)]
    assert "not marked `pii: true`" in diagnostics[0][3]
    assert "do not read it" in diagnostics[1][3]
    result = check_bytes(spec("Hi {{ user.first_name }}", "[first_name, email]").encode(), "s.yaml")
    assert result.ok() and not result.ok(strict=True)


def test_a_personal_unit_or_segment_attribute_is_e096():
    unit = spec("Hi {{ user.country }}").replace("  user_id: string\n", "  user_id: {type: string, pii: true}\n")
    assert codes(unit) == ["E096"]
    segment = spec("Hi {{ user.country }}").replace("generate: {per: unit}",
                                                   "generate: {per: segment, segment_by: [country, email]}")
    assert codes(segment) == ["E096"]
    analysed = spec("Hi {{ user.country }}") + "analysis:\n  segments: [country, email]\n"
    diagnostics = found(analysed)
    assert [(c, line, col) for c, line, col, _ in diagnostics] == [("E096", len(analysed.splitlines()), 23)]
    assert "broken down by `email`" in diagnostics[0][3]


def test_prompt_reads_lists_what_the_templates_read_in_declaration_order():
    attributes = ["user_id", "country", "email", "first_name"]
    prompt = Prompt(model="offline/x", template="{{ user.first_name }} {{ segment.country }}",
                    system="{{ experiment.id }}")
    assert prompt_reads(prompt, attributes) == ["country", "first_name"]
    whole = Prompt(model="offline/x", template="{{ user }}", send_pii=["email"])
    assert prompt_reads(whole, attributes, pii=["email", "first_name"]) == ["user_id", "country", "email"]
    segment = Prompt(model="offline/x", template="{{ segment }}")
    assert prompt_reads(segment, attributes, segment_by=["country"]) == ["country"]
    assert template_reads("{{ user.x").fields == frozenset()  # a syntax error reads nothing
