"""Model ids name a provider litellm knows (E082), checked from a static list kept equal to litellm's own."""

from __future__ import annotations

import os

import pytest
from conftest import BASE, check_text, codes, located

from expc.compiler.providers import (
    LITELLM_PROVIDERS,
    OFFLINE,
    known_providers,
    provider_of,
)

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # before litellm is imported: no price-table download


def with_model(model: str) -> str:
    return BASE.replace("    model: offline/test\n", f"    model: {model}\n")


def test_the_static_list_is_litellms_provider_list() -> None:
    litellm = pytest.importorskip("litellm")
    theirs = {str(getattr(p, "value", p)) for p in litellm.provider_list} - {OFFLINE}  # offline: ours, once registered
    assert theirs == set(LITELLM_PROVIDERS), (
        f"update compiler/providers.py from litellm {getattr(litellm, 'version', '?')}: "
        f"new {sorted(theirs - LITELLM_PROVIDERS)}, gone {sorted(LITELLM_PROVIDERS - theirs)}")


def test_an_unknown_provider_is_an_error_at_the_model() -> None:
    result = check_text(with_model("madeupprovider/foo"))
    assert codes(result) == ["E082"] and located(result, "E082") == [(21, 12)]
    assert "`madeupprovider`" in result.diagnostics[0].message
    assert "docs.litellm.ai/docs/providers" in result.diagnostics[0].hint


@pytest.mark.parametrize("model, suggestion", [("opanai/gpt-4o-mini", "openai"), ("OpenAI/gpt-4o", "openai"),
                                               ("antropic/claude-3-5-haiku", "anthropic"), ("ofline/x", "offline")])
def test_a_misspelt_provider_gets_a_did_you_mean(model: str, suggestion: str) -> None:
    [d] = check_text(with_model(model)).diagnostics
    assert d.code == "E082" and d.hint == f"did you mean `{suggestion}`?"


@pytest.mark.parametrize("model", ["offline/anything", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
                                   "openrouter/meta-llama/llama-3-8b", "gpt-4o-mini"])
def test_known_providers_and_bare_model_names_pass(model: str) -> None:
    assert check_text(with_model(model)).ok(strict=True)


def test_provider_of() -> None:
    assert provider_of("openrouter/anthropic/claude") == "openrouter"
    assert provider_of("gpt-4o-mini") is None
    assert OFFLINE in known_providers() and "openai" in known_providers()
