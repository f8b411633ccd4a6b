"""Pricing once per run, and OpenAI-compatible calls sent by the openai client without litellm's per-call work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate import calls, pricing
from expc.runtime.generate.runner import GenerateOptions, generate
from expc.runtime.generate.store import Store

MODEL = "openai/gpt-4o-mini"


pytestmark = pytest.mark.usefixtures("no_openai_key")


def test_a_price_agrees_with_litellms_cost_per_token() -> None:
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    price = pricing.lookup(MODEL)
    prompt, completion = litellm.cost_per_token(model=MODEL, prompt_tokens=1234, completion_tokens=56)
    assert price.known and price.cost(1234, 56) == pytest.approx(prompt + completion)
    assert price.cost(1000, 0, cached_tokens=400) == pytest.approx(600 * price.input + 400 * price.cached_input)


def test_an_unknown_model_has_no_price_and_a_long_prompt_its_tier() -> None:
    assert not pricing.lookup("openai/bench").known and pricing.lookup("openai/bench").cost(10, 10) is None
    assert not pricing.lookup("anthropic/gpt-4o-mini").known  # the bare name is another provider's model
    tiered = pricing.Price("m", True, 1.0, 2.0, None, ((200_000, 3.0, 4.0),))
    assert tiered.cost(200_000, 1) == 200_002.0 and tiered.cost(200_001, 1) == 200_001 * 3.0 + 4.0


def test_each_model_is_priced_once_per_run_not_per_call(server: FakeLLM, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []
    real = pricing.lookup
    monkeypatch.setattr(pricing, "lookup", lambda model: looked_up.append(model) or real(model))
    result = generate(plan_of(spec_text(model=MODEL)), units_of(12), tmp_path / "s.sqlite",
                      GenerateOptions(api_base=server.url, backoff_base=0.01))
    assert result.calls == 12 and looked_up == [MODEL]
    ok = [i for i in result.items if i.status == "ok"]
    assert all(i.cost_known and i.cost > 0 for i in ok)
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 12


def test_openai_compatible_calls_skip_litellm_and_cost_what_litellm_would(server: FakeLLM, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("litellm.acompletion was called")

    assert calls.route(MODEL, {"temperature": 0.5}) == "openai"
    monkeypatch.setattr(litellm, "acompletion", refuse)
    direct = generate(plan_of(spec_text(model=MODEL)), units_of(3), tmp_path / "a.sqlite",
                      GenerateOptions(api_base=server.url, backoff_base=0.01))
    monkeypatch.undo()
    monkeypatch.setattr(calls, "DIRECT_OPENAI", False)
    assert calls.route(MODEL, {"temperature": 0.5}) == "litellm"
    through = generate(plan_of(spec_text(model=MODEL)), units_of(3), tmp_path / "b.sqlite",
                       GenerateOptions(api_base=server.url, backoff_base=0.01))
    assert direct.calls == through.calls == 3
    assert [(i.content, i.tokens) for i in direct.items] == [(i.content, i.tokens) for i in through.items]
    assert [i.cost for i in direct.items] == pytest.approx([i.cost for i in through.items])
    assert direct.spent > 0


def test_reasoning_models_and_foreign_parameters_go_through_litellm() -> None:
    assert calls.route("openai/o3-mini", {}) == "litellm"
    assert calls.route("openai/gpt-5-mini", {}) == "litellm"
    assert calls.route("openai/my-model", {"top_k": 5}) == "litellm"  # not an OpenAI parameter: litellm maps it
    assert calls.route("anthropic/claude-x", {}) == "litellm"
    assert calls.route("offline/x", {}) == "offline"
