"""The offline provider: deterministic, varied, marked, fitted to the length checks; reached through litellm."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate.offline import MARK, MAX_CHARS, offline_text
from expc.runtime.generate.runner import GenerateOptions, generate

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # before any import of litellm: no price-table download

MSGS = [{"role": "system", "content": "You write subject lines."},
        {"role": "user", "content": "Write one subject line for a reader who likes cooking and travel."}]


def test_deterministic_and_marked() -> None:
    assert offline_text(MSGS, 1) == offline_text(MSGS, 1)
    assert offline_text(MSGS, 1).startswith(MARK)


def test_varies_with_seed_and_prompt() -> None:
    by_seed = {offline_text(MSGS, s) for s in range(20)}
    assert len(by_seed) >= 10
    other = [MSGS[0], {"role": "user", "content": "Write one subject line for a reader who likes chess."}]
    assert "chess" in " ".join(offline_text(other, s) for s in range(5))


def test_fits_length_window() -> None:
    for seed in range(30):
        assert len(offline_text(MSGS, seed, (0, 70))) <= 70
        assert 150 <= len(offline_text(MSGS, seed, (150, 700))) <= 700


def test_through_litellm_acompletion() -> None:
    import litellm

    from expc.runtime.generate.offline import register

    register()
    register()  # idempotent
    assert sum(p["provider"] == "offline" for p in litellm.custom_provider_map) == 1
    reply = asyncio.run(litellm.acompletion(model="offline/copy", messages=MSGS, seed=3, max_retries=0))
    assert reply.choices[0].message.content == offline_text(MSGS, 3)
    assert reply.usage.completion_tokens > 0 and reply._hidden_params["response_cost"] == 0.0


def test_offline_flag_reroutes_a_real_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plan = plan_of(spec_text(model="openai/gpt-4o-mini", checks="{max_chars: 70}"))
    result = generate(plan, units_of(5), tmp_path / "s.sqlite", GenerateOptions(offline=True))
    made = [i for i in result.items if i.status == "ok"]
    assert len(made) == 5 and all(i.model == "offline/gpt-4o-mini" for i in made)
    assert all(i.content.startswith(MARK) and len(i.content) <= 70 for i in made)
    assert len({i.content for i in made}) == 5  # each unit's own prompt, its own text


def test_json_schema_prompts_get_json_offline(tmp_path: Path) -> None:
    checks = ("{json_schema: {type: object, required: [title, tags], properties: {title: {type: string, maxLength: 40},"
              " tags: {type: array, items: {type: string}}, score: {type: integer, minimum: 3}}}}")
    plan = plan_of(spec_text(checks=checks))
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    import json

    made = [i for i in result.items if i.variant == "treatment"]
    assert all(i.status == "ok" for i in made), [i.reason for i in made]
    value = json.loads(made[0].content)
    assert set(value) == {"title", "tags", "score"} and value["title"].startswith(MARK) and value["score"] == 3


def test_stored_content_is_judged_by_the_checks_as_they_are_now(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    first = generate(plan_of(spec_text()), units_of(3), store, GenerateOptions())
    assert {i.status for i in first.items if i.variant == "treatment"} == {"ok"} and first.calls == 3
    stricter = plan_of(spec_text(checks="{forbid: [offline], regenerate: 0, on_fail: error}"))
    again = generate(stricter, units_of(3), store, GenerateOptions())
    assert again.calls == 0  # the same requests: nothing is paid for again ...
    assert {i.status for i in again.items if i.variant == "treatment"} == {"failed"}  # ... but nothing stale passes
    assert len(again.rejected()) == 3


def test_a_schema_asking_for_too_much_gets_the_plain_text_without_building_it() -> None:
    import json

    from expc.runtime.generate.offline import offline_reply

    cube = {"type": "array", "minItems": 1000, "items": {"type": "array", "minItems": 1000,
                                                          "items": {"type": "array", "minItems": 1000}}}
    assert offline_reply("offline/x", MSGS, 1, {"expc_json_schema": cube}).content == offline_text(MSGS, 1)
    long = {"type": "object", "properties": {"a": {"type": "string", "minLength": MAX_CHARS + 1}}}
    assert offline_reply("offline/x", MSGS, 1, {"expc_json_schema": long}).content == offline_text(MSGS, 1)
    fits = {"type": "array", "minItems": 3, "items": {"type": "string", "minLength": 1000}}
    value = json.loads(offline_reply("offline/x", MSGS, 1, {"expc_json_schema": fits}).content)
    assert len(value) == 3 and all(len(v) == 1000 for v in value)


def test_a_min_chars_beyond_any_reply_is_not_followed() -> None:
    text = offline_text(MSGS, 1, (10**12, 0))
    assert MAX_CHARS <= len(text) < MAX_CHARS + 100
