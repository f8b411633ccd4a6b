"""A spec may not choose where a key or a call goes: `validate` refuses it (E080, E081) unless the user allows it.

The allow-lists live outside the spec, in the environment
(EXPC_ALLOWED_API_BASES, EXPC_ALLOWED_KEY_ENVS); see
expc.compiler.destinations.
"""

from __future__ import annotations

import pytest
from conftest import BASE, check_text, codes, located

from expc.compiler.destinations import (
    SAFE_PARAMS,
    Allowances,
    has_url,
    param_problem,
    parse_base,
)

MODEL_LINE = "    model: offline/test\n"  # line 21 of BASE


@pytest.fixture(autouse=True)
def _no_allow_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPC_ALLOWED_API_BASES", raising=False)
    monkeypatch.delenv("EXPC_ALLOWED_KEY_ENVS", raising=False)


def with_prompt_lines(lines: str, model: str = "offline/test") -> str:
    """BASE with ``lines`` added under the prompt's model (line 22 on)."""
    return BASE.replace(MODEL_LINE, f"    model: {model}\n" + lines)


def errors(text: str) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.col) for d in check_text(text).diagnostics if d.is_error]


# ------------------------------------------------------------------ key variables


def test_a_spec_naming_a_key_variable_is_refused_where_it_names_it() -> None:
    result = check_text(with_prompt_lines("    api_key_env: GITHUB_TOKEN\n"))
    assert codes(result) == ["E080"] and located(result, "E080") == [(22, 18)]
    [d] = result.diagnostics
    assert "GITHUB_TOKEN" in d.message and "EXPC_ALLOWED_KEY_ENVS=GITHUB_TOKEN" in d.hint and "--api-key-env" in d.hint


def test_a_key_variable_the_user_allows_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "OPENAI_API_KEY, MY_TEAM_KEY")
    assert check_text(with_prompt_lines("    api_key_env: MY_TEAM_KEY\n")).ok(strict=True)
    assert errors(with_prompt_lines("    api_key_env: GITHUB_TOKEN\n")) == [("E080", 22, 18)]


# ------------------------------------------------------------------ hosts


@pytest.mark.parametrize("url", [
    "http://attacker.example/v1",
    "https://api.openai.com.attacker.example/v1",
    "http://api.openai.com@attacker.example/v1",        # user info: another host to some parsers
    "http://attacker.example\\@api.openai.com/v1",      # backslash: parsers disagree
    "http://attacker.example/v1?x=https://api.openai.com",
    "ftp://attacker.example/",
    "//attacker.example/v1",
    "http://attacker.example:99999/",
])
def test_a_spec_naming_a_host_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", "https://api.openai.com/v1, localhost")
    text = with_prompt_lines(f"    api_base: '{url}'\n")
    assert errors(text) == [("E080", 22, 15)]


def test_the_message_names_the_host_and_the_hint_says_how_to_allow_it() -> None:
    [d] = check_text(with_prompt_lines("    api_base: http://Attacker.example:8080/v1\n")).diagnostics
    assert "`attacker.example`" in d.message and "EXPC_ALLOWED_API_BASES=http://attacker.example" in d.hint
    [d] = check_text(with_prompt_lines("    api_base: 'http://x@attacker.example/'\n")).diagnostics
    assert "not a plain base URL" in d.message and "attacker" not in d.message


@pytest.mark.parametrize("allowed, url", [
    ("http://localhost:11434/v1", "http://localhost:11434/v1"),
    ("http://localhost:11434/v1", "http://LOCALHOST:11434/v1/"),
    ("https://llm-proxy.internal/v1", "https://llm-proxy.internal/v1/deployments"),
    ("https://llm-proxy.internal", "https://llm-proxy.internal:443/anything"),
    ("llm-proxy.internal", "http://llm-proxy.internal:8080/v1"),
    ("llm-proxy.internal:8443", "https://llm-proxy.internal:8443/v1"),
    ("a.example, llm-proxy.internal", "https://llm-proxy.internal/v1"),
])
def test_a_host_the_user_allows_is_fine(allowed: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", allowed)
    assert check_text(with_prompt_lines(f"    api_base: '{url}'\n")).ok(strict=True)


@pytest.mark.parametrize("allowed, url", [
    ("http://localhost:11434/v1", "http://localhost:11435/v1"),       # another port
    ("http://localhost:11434/v1", "https://localhost:11434/v1"),      # another scheme
    ("https://llm-proxy.internal/v1", "https://llm-proxy.internal/v10"),  # not below the allowed path
    ("https://llm-proxy.internal/v1", "https://llm-proxy.internal/"),
    ("llm-proxy.internal", "https://proxy.internal/v1"),
    ("llm-proxy.internal", "https://evil-llm-proxy.internal/v1"),
    ("llm-proxy.internal:8443", "https://llm-proxy.internal/v1"),
    ("proxy.internal", "https://llm-proxy.internal.attacker.example/v1"),
    ("", "http://localhost/v1"),
    # clients resolve dot segments (`/v1/team/../../admin` is `/admin`): not below the allowed path
    ("https://llm-proxy.internal/v1/team", "https://llm-proxy.internal/v1/team/../../admin"),
    ("https://llm-proxy.internal/v1/team", "https://llm-proxy.internal/v1/team/./../other"),
])
def test_near_misses_of_an_allowed_host_are_refused(allowed: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", allowed)
    assert not Allowances.from_environ().base_allowed(url)


def test_the_allow_lists_come_from_the_environment_only() -> None:
    allowed = Allowances.from_environ({"EXPC_ALLOWED_API_BASES": " http://a.example/v1 ,, b.example ",
                                       "EXPC_ALLOWED_KEY_ENVS": "A_KEY,B_KEY"})
    assert allowed == Allowances(("http://a.example/v1", "b.example"), ("A_KEY", "B_KEY"))
    assert Allowances.from_environ({}) == Allowances()


def test_parse_base_normalises_and_refuses_ambiguous_forms() -> None:
    base = parse_base("HTTP://Example.COM.:80/v1/")
    assert base is not None and (base.scheme, base.host, base.port, base.path) == ("http", "example.com", 80, "/v1")
    assert parse_base("http://[::1]:8000/v1").host == "[::1]"
    for bad in ("http://user:pw@example.com/", "http://example.com/%2e%2e/", "http://exa mple.com/",
                "http://example.com/v1#frag", "http://example.com\\evil/", "http:///v1", "javascript:alert(1)",
                "http://example.com/v1/..", "http://example.com/./v1"):
        assert parse_base(bad) is None, bad


# ------------------------------------------------------------------ params


@pytest.mark.parametrize("param", [
    "base_url", "api_base", "endpoint", "api_version", "extra_headers", "headers", "custom_llm_provider",
    "litellm_params", "azure_ad_token", "aws_access_key_id", "aws_region_name", "aws_bedrock_runtime_endpoint",
    "vertex_credentials", "vertex_project", "vertex_location", "organization", "deployment_id", "proxy",
    "extra_body", "metadata", "client", "watsonx_url", "region_name",
])
def test_params_that_could_send_a_call_or_a_key_elsewhere_are_refused(param: str) -> None:
    result = check_text(with_prompt_lines(f"    params: {{{param}: x}}\n"))
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E080", 22, 14)]
    assert f"params.{param}" in result.diagnostics[0].message


@pytest.mark.parametrize("param", ["stream", "n", "timeout", "num_retries", "mock_response", "tools", "caching"])
def test_other_params_are_refused_as_not_passed_on(param: str) -> None:
    assert errors(with_prompt_lines(f"    params: {{{param}: 1}}\n")) == [("E081", 22, 14)]


def test_a_misspelt_param_gets_a_hint() -> None:
    [d] = check_text(with_prompt_lines("    params: {temprature: 0.3}\n")).diagnostics
    assert d.code == "E081" and d.hint == "did you mean `temperature`?"


def test_params_that_shape_the_reply_are_fine() -> None:
    lines = ("    params:\n      stop: ['\\n']\n      seed: 3\n      presence_penalty: 0.5\n"
             "      response_format: {type: json_object}\n      logit_bias: {'50256': -100}\n")
    assert check_text(with_prompt_lines(lines)).ok(strict=True)
    assert all(param_problem(p) is None for p in SAFE_PARAMS)


def test_an_inline_secret_in_params_is_reported_once() -> None:
    result = check_text(with_prompt_lines("    params: {api_key: hunter2hunter2}\n"))
    assert codes(result) == ["E044"]


# ------------------------------------------------------------------ model ids


@pytest.mark.parametrize("model", ["huggingface/https://attacker.example/v1", "huggingface/HTTP://attacker.example",
                                   "oobabooga/http:/attacker.example", "openai//attacker.example/v1"])
def test_a_model_id_holding_a_url_is_refused(model: str) -> None:
    result = check_text(with_prompt_lines("", model=model))
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E080", 21, 12)]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "bedrock/arn:aws:bedrock:us-east-1::foundation-model/x",
                                   "vertex_ai/claude-3-5-sonnet@20240620", "ft:gpt-4o-mini:acme::abc",
                                   "openrouter/anthropic/claude-3.5-haiku"])
def test_ordinary_model_ids_hold_no_url(model: str) -> None:
    assert not has_url(model)
