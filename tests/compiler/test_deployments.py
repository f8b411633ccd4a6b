"""A prompt's deployments and fallbacks: in the plan, and refused where they choose a host or key, or do not fit."""

from __future__ import annotations

import pytest
from conftest import GREETING_TAIL, check_text, codes, located, plan_of_text

SPEC = """\
version: 1
experiment:
  id: routed
  unit: user_id
attributes:
  user_id: string
  first_name: string
prompts:
  hello:
    model: openai/gpt-4o-mini
    template: Write a greeting for {{{{ user.first_name }}}}.
    deployments:
{deployments}
{fallbacks}
"""
EAST = "      - {id: east, model: openai/gpt-4o-mini, rpm: 600, tpm: 100000}"
WEST = "      - {id: west, model: azure/gpt-4o-mini, rpm: 300}"


def spec(deployments: list[str], fallbacks: str = "") -> str:
    """The spec above (then GREETING_TAIL) with these deployment lines and a `fallbacks` line (YAML)."""
    fallback = f"    fallbacks: {fallbacks}" if fallbacks else ""
    return SPEC.format(deployments="\n".join(deployments), fallbacks=fallback) + GREETING_TAIL


@pytest.fixture(autouse=True)
def _no_allow_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPC_ALLOWED_API_BASES", raising=False)
    monkeypatch.delenv("EXPC_ALLOWED_KEY_ENVS", raising=False)


def test_deployments_and_fallbacks_reach_the_plan() -> None:
    plan = plan_of_text(spec([EAST, WEST], "[west]"))
    prompt = plan.prompts["hello"]
    assert [(d.id, d.model, d.rpm, d.tpm) for d in prompt.deployments] == [
        ("east", "openai/gpt-4o-mini", 600, 100000), ("west", "azure/gpt-4o-mini", 300, None)]
    assert prompt.fallbacks == ["west"]


def test_a_deployment_may_not_choose_a_host_or_a_key_the_user_has_not_allowed(monkeypatch) -> None:
    hostile = ("      - {id: evil, model: openai/gpt-4o-mini, api_base: 'https://evil.example/v1', "
               "api_key_env: AWS_SECRET}")
    result = check_text(spec([EAST, hostile]))
    assert codes(result).count("E080") == 2
    assert sorted(located(result, "E080")) == [(14, 57), (14, 97)]  # its api_base, its api_key_env
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", "https://evil.example/v1")
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "AWS_SECRET")
    assert "E080" not in codes(check_text(spec([EAST, hostile])))


def test_a_url_or_an_unknown_provider_in_a_deployments_model_is_refused() -> None:
    assert "E080" in codes(check_text(spec([EAST, "      - {id: u, model: 'http://evil.example/gpt'}"])))
    result = check_text(spec([EAST, "      - {id: u, model: madeupprovider/foo}"]))
    assert "E082" in codes(result) and located(result, "E082") == [(14, 24)]


def test_ids_repeat_and_fallbacks_that_do_not_fit_are_located() -> None:
    result = check_text(spec([EAST, EAST.replace("rpm: 600", "rpm: 5")]))
    assert codes(result) == ["E085"] and located(result, "E085") == [(14, 14)]
    result = check_text(spec([EAST, WEST], "[wets]"))
    assert codes(result) == ["E086"] and located(result, "E086") == [(15, 17)]
    assert codes(check_text(spec([EAST, WEST], "[east, west]"))) == ["E086"]
    no_deployments = spec([], "[east]").replace("    deployments:\n", "")
    assert codes(check_text(no_deployments)) == ["E086"]


def test_limits_are_positive_and_bounded() -> None:
    assert codes(check_text(spec([EAST.replace("rpm: 600", "rpm: 0")])))
    assert codes(check_text(spec([EAST.replace("rpm: 600", "rpm: 10000000000")])))


def test_a_plan_keeps_its_deployments_and_a_plan_without_any_is_written_as_before() -> None:
    from expc.compiler.diff import plan_changes, plan_digest
    from expc.compiler.plan import Plan

    routed = plan_of_text(spec([EAST, WEST], "[west]"))
    again = Plan.model_validate_json(routed.model_dump_json())
    assert again.prompts["hello"].deployments == routed.prompts["hello"].deployments
    assert again.prompts["hello"].fallbacks == ["west"]
    plain = plan_of_text(spec([EAST]).replace("    deployments:\n" + EAST + "\n", ""))
    assert "deployments" not in plain.model_dump_json() and "fallbacks" not in plain.model_dump_json()
    # adding or changing deployments changes where calls go, not the content: a safe change, same run identity
    assert plan_digest(routed) == plan_digest(plain)
    assert {c.kind for c in plan_changes(plain, routed)} == {"safe"}
