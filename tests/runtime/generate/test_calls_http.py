"""The real HTTP path: litellm talks to a loopback OpenAI-compatible server that misbehaves on demand."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate.runner import (
    BudgetExhausted,
    GenerateOptions,
    MissingCredentials,
    ProviderFailed,
    generate,
)
from expc.runtime.generate.store import Store

MODEL = "openai/gpt-4o-mini"  # a model with a known price; the server echoes any name


pytestmark = pytest.mark.usefixtures("no_openai_key")


def _opts(server: FakeLLM, **kw) -> GenerateOptions:
    return GenerateOptions(api_base=server.url, backoff_base=0.01, **kw)


def _run(server: FakeLLM, tmp_path: Path, n: int = 3, checks: str = "{}", model: str = MODEL, **kw):
    server.always(None)
    plan = plan_of(spec_text(model=model, checks=checks))
    return generate(plan, units_of(n), tmp_path / "s.sqlite", _opts(server, **kw))


def _ok(result) -> list:
    return [i for i in result.items if i.status == "ok"]


def test_calls_store_and_second_run_makes_none(server: FakeLLM, tmp_path: Path) -> None:
    before = server.calls
    result = _run(server, tmp_path, n=4)
    assert server.calls - before == 4 and result.calls == 4
    assert _ok(result)[0].content == "fake reply to: Write a greeting for Name0. [seed=0]"
    assert all(i.tokens > 0 and i.cost > 0 and i.cost_known for i in _ok(result))
    assert result.spent == pytest.approx(sum(i.cost for i in result.items))
    again = _run(server, tmp_path, n=4)
    assert server.calls - before == 4 and again.calls == 0 and again.spent == 0
    assert all(i.from_store for i in _ok(again))
    assert [i.content for i in _ok(again)] == [i.content for i in _ok(result)]
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 4


@pytest.mark.parametrize("fault", ["429:1", "500", "503", "timeout", "malformed", "empty_choices"])
def test_transient_faults_are_retried(server: FakeLLM, tmp_path: Path, fault: str) -> None:
    before = server.calls
    server.faults([fault])
    result = _run(server, tmp_path, n=2, concurrency=1, timeout=1.0)
    assert len(_ok(result)) == 2
    assert server.calls - before == 3  # one failed try, then each unit once
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 2


def test_429_honours_retry_after(server: FakeLLM, tmp_path: Path) -> None:
    import time

    server.faults(["429:1"])
    started = time.monotonic()
    _run(server, tmp_path, n=1, concurrency=1)
    assert time.monotonic() - started >= 1.0  # backoff alone (base 0.01 s) would retry at once


def test_empty_content_regenerates_with_a_new_seed(server: FakeLLM, tmp_path: Path) -> None:
    server.faults(["empty_content"])
    start = len(server.requests)
    result = _run(server, tmp_path, n=1, concurrency=1)
    sent = server.requests[start:]
    assert [r["seed"] for r in sent] == [0, 1]
    assert _ok(result)[0].content.endswith("[seed=1]")
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 2  # the empty reply was a paid call: it is stored too


def test_persistent_failure_is_a_typed_error_and_state_is_saved(server: FakeLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    server.always(None)
    generate(plan, units_of(3), tmp_path / "s.sqlite", _opts(server))
    server.always("503")
    before = server.calls
    with pytest.raises(ProviderFailed) as info:
        generate(plan, units_of(6), tmp_path / "s.sqlite", _opts(server, concurrency=1, max_tries=3))
    assert info.value.exit_code == 3 and ("ServiceUnavailableError" in str(info.value) or "503" in str(info.value))
    assert "run the same command again" in str(info.value)
    assert server.calls - before == 3  # one request, three tries, then no new call started
    assert sum(i.status == "ok" for i in info.value.result.items) == 3
    server.always(None)
    before = server.calls
    result = generate(plan, units_of(6), tmp_path / "s.sqlite", _opts(server))
    assert server.calls - before == 3 and len(_ok(result)) == 6


def test_budget_stops_new_calls_and_resumes(server: FakeLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    server.always(None)
    before = server.calls
    with pytest.raises(BudgetExhausted) as info:
        generate(plan, units_of(5), tmp_path / "s.sqlite", _opts(server, concurrency=1, max_cost=1e-9))
    message = str(info.value)
    assert info.value.exit_code == 3 and "spent" in message and "resume" in message
    assert str(tmp_path / "s.sqlite") in message
    assert server.calls - before == 1
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 1
    result = generate(plan, units_of(5), tmp_path / "s.sqlite", _opts(server, max_cost=1.0))
    assert server.calls - before == 5 and len(_ok(result)) == 5


def test_unknown_price_is_counted_by_tokens_and_flagged(server: FakeLLM, tmp_path: Path) -> None:
    result = _run(server, tmp_path, n=2, model="openai/expc-local-model-without-price")
    made = _ok(result)
    assert len(made) == 2 and all(not i.cost_known and i.tokens > 0 for i in made)
    assert result.per_variant()[1]["cost_known"] is False


def test_missing_key_is_refused_before_any_call(server: FakeLLM, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    before = server.calls
    plan = plan_of(spec_text(model=MODEL))
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"):
        generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", server.url)  # the user allows the spec's host and key variable
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "EXPC_TEST_NO_SUCH_KEY")
    plan = plan_of(spec_text(model=MODEL, extra=f"api_base: {server.url}\n    api_key_env: EXPC_TEST_NO_SUCH_KEY"))
    with pytest.raises(MissingCredentials, match="EXPC_TEST_NO_SUCH_KEY") as info:
        generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    assert info.value.exit_code == 3 and server.calls == before


def test_failed_checks_follow_on_fail(server: FakeLLM, tmp_path: Path) -> None:
    checks = "{forbid: [fake reply], regenerate: 1, on_fail: use_control}"
    result = _run(server, tmp_path, n=2, checks=checks)
    treated = [i for i in result.items if i.variant == "treatment"]
    assert all(i.status == "use_control" and i.content == "Hello!" for i in treated)
    assert "forbidden" in treated[0].reason and result.calls == 4  # two attempts each
    skipped = _run(server, tmp_path, n=2, checks=checks.replace("use_control", "skip"))
    assert {i.status for i in skipped.items if i.variant == "treatment"} == {"skipped"}
    assert skipped.calls == 0  # same requests: every attempt is in the store
    failed = _run(server, tmp_path, n=2, checks=checks.replace("use_control", "error"))
    assert len(failed.rejected()) == 2


def test_budget_counts_what_earlier_runs_spent(server: FakeLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    server.always(None)
    first = generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server))
    before = server.calls
    with pytest.raises(BudgetExhausted):  # the two stored calls already used the whole budget
        generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server, max_cost=first.spent))
    assert server.calls == before
