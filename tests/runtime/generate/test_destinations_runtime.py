"""At run time the user's base and key win, and a plan (hand-edited, past `validate`) cannot send a call elsewhere.

Two loopback servers: ``ours`` plays the server the user chose, ``theirs``
the host a hostile spec or plan names. Nothing may ever reach ``theirs``
unless the user allowed it (EXPC_ALLOWED_API_BASES / EXPC_ALLOWED_KEY_ENVS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import edited
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.compiler.plan import Plan
from expc.runtime.generate import calls
from expc.runtime.generate.calls import Target
from expc.runtime.generate.runner import GenerateOptions, GenerationInputError, GenerationResult, generate

MODEL = "openai/gpt-4o-mini"
USER_KEY = "sk-expc-users-own-key-0123456789"
OTHER_KEY = "sk-expc-other-secret-9876543210"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "EXPC_ALLOWED_API_BASES", "EXPC_ALLOWED_KEY_ENVS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPC_TEST_USER_KEY", USER_KEY)
    monkeypatch.setenv("EXPC_TEST_OTHER_SECRET", OTHER_KEY)


@pytest.fixture(scope="module")
def ours():
    with FakeLLM() as s:
        yield s


@pytest.fixture(scope="module")
def theirs():
    with FakeLLM() as s:
        yield s


def _plan(**prompt: Any) -> Plan:
    """A valid plan whose prompt `hello` is then edited by hand (as a hostile plan.json would be)."""
    return edited(plan_of(spec_text(model=MODEL)), lambda d: d["prompts"]["hello"].update(prompt))


def _generate(plan: Plan, tmp_path: Path, **opts: Any) -> GenerationResult:
    return generate(plan, units_of(1), tmp_path / "s.sqlite", GenerateOptions(backoff_base=0.01, **opts))


def _keys(server: FakeLLM, since: int) -> list[str]:
    return [h.get("authorization", "") for h in server.headers[since:]]


def test_a_plan_naming_a_host_is_refused_unless_the_user_allows_it(theirs: FakeLLM, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = theirs.calls
    plan = _plan(api_base=theirs.url, api_key_env="EXPC_TEST_OTHER_SECRET")
    with pytest.raises(GenerationInputError, match="api_base` is not on your allow-list") as info:
        _generate(plan, tmp_path)
    assert info.value.exit_code == 1 and theirs.calls == before
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", theirs.url)
    with pytest.raises(GenerationInputError, match="api_key_env` names a variable you have not allowed"):
        _generate(plan, tmp_path)
    assert theirs.calls == before
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "EXPC_TEST_OTHER_SECRET")
    _generate(plan, tmp_path)  # both allowed by the user: the call goes there, with that key
    assert theirs.calls == before + 1 and _keys(theirs, -1) == [f"Bearer {OTHER_KEY}"]


def test_the_users_api_base_and_key_variable_win_over_the_plan(ours: FakeLLM, theirs: FakeLLM, tmp_path: Path) -> None:
    before_ours, before_theirs = ours.calls, theirs.calls
    plan = _plan(api_base=theirs.url, api_key_env="EXPC_TEST_OTHER_SECRET")
    result = _generate(plan, tmp_path, api_base=ours.url, api_key_env="EXPC_TEST_USER_KEY")
    assert [i.status for i in result.items] == ["static", "ok"]
    assert theirs.calls == before_theirs and ours.calls == before_ours + 1
    assert _keys(ours, -1) == [f"Bearer {USER_KEY}"]


@pytest.mark.parametrize("param", ["base_url", "api_base", "api_key", "extra_headers", "headers", "custom_llm_provider",
                                   "litellm_params", "aws_region_name", "vertex_credentials", "azure_ad_token",
                                   "extra_body", "metadata", "mock_response", "stream", "n"])
def test_a_plan_whose_params_could_send_the_call_elsewhere_is_refused(ours: FakeLLM, theirs: FakeLLM,
                                                                      tmp_path: Path, param: str) -> None:
    before = ours.calls + theirs.calls
    plan = _plan(params={param: theirs.url})
    with pytest.raises(GenerationInputError, match=f"`params.{param}` is not allowed"):
        _generate(plan, tmp_path, api_base=ours.url)
    assert ours.calls + theirs.calls == before  # refused before any call


def test_a_model_id_holding_a_url_is_refused_unless_the_user_names_the_model(ours: FakeLLM, tmp_path: Path) -> None:
    plan = _plan(model="huggingface/https://attacker.example/v1")
    with pytest.raises(GenerationInputError, match="model id holds a URL"):
        _generate(plan, tmp_path, api_base=ours.url)
    result = _generate(plan, tmp_path, api_base=ours.url, model=MODEL)
    assert result.items[1].status == "ok"


def test_a_call_takes_only_safe_params_and_sets_base_and_key_after_them(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target(MODEL, "http://ours.example/v1", {"temperature": 0.2, "seed": 99, "stop": ["\n"]},
                    key_env="EXPC_TEST_USER_KEY")
    kwargs = calls._arguments(target, [{"role": "user", "content": "hi"}], 7, 30.0)
    assert kwargs["api_base"] == "http://ours.example/v1" and kwargs["api_key"] == USER_KEY
    assert kwargs["seed"] == 7 and kwargs["temperature"] == 0.2 and kwargs["max_retries"] == 0
    for bad in ("base_url", "api_key", "extra_body"):
        hostile = Target(MODEL, "http://ours.example/v1", {bad: "http://theirs.example"})
        with pytest.raises(calls._Fatal, match=bad):
            calls._arguments(hostile, [], 0, 30.0)
    offline = Target("offline/x", None, {"extra_body": {"expc_chars": [0, 10]}})  # expc's own hints, in process
    assert calls._arguments(offline, [], 0, 30.0)["extra_body"] == {"expc_chars": [0, 10]}
