"""Worker processes (--workers): the same records, progress and budget as one process, one store shared safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate import workers
from expc.runtime.generate.routing import Route
from expc.runtime.generate.runner import BudgetExhausted, GenerateOptions, ProviderFailed, generate
from expc.runtime.generate.store import Store

MODEL = "openai/gpt-4o-mini"
pytestmark = [pytest.mark.skipif(not workers.available(), reason="worker processes need fork"),
              pytest.mark.usefixtures("no_openai_key")]


def opts(server: FakeLLM, **kw) -> GenerateOptions:
    return GenerateOptions(api_base=server.url, backoff_base=0.01, concurrency=4, **kw)


def test_two_workers_make_every_call_once_store_each_and_report_progress(server: FakeLLM, tmp_path: Path) -> None:
    server.always(None)
    plan = plan_of(spec_text(model=MODEL))
    seen: list[int] = []
    before = server.calls
    split = generate(plan, units_of(40), tmp_path / "a.sqlite", opts(server, workers=2),
                     lambda done, total, errors, cost: seen.append(done))
    one = generate(plan, units_of(40), tmp_path / "b.sqlite", opts(server))
    assert server.calls - before == 80 and split.calls == one.calls == 40
    assert [(i.content, i.status, i.tokens) for i in split.items] == \
        [(i.content, i.status, i.tokens) for i in one.items]
    assert split.spent == pytest.approx(one.spent) and split.spent > 0
    assert seen[-1] == 41 and seen == sorted(seen) and len(seen) > 2  # progress as the workers' tasks finish
    with Store(tmp_path / "a.sqlite") as store:
        assert store.count() == 40
    again = generate(plan, units_of(40), tmp_path / "a.sqlite", opts(server, workers=2))
    assert again.calls == 0 and server.calls - before == 80


def test_the_budget_is_the_runs_not_each_workers(server: FakeLLM, tmp_path: Path) -> None:
    server.always(None)
    plan = plan_of(spec_text(model=MODEL))
    one_call = generate(plan, units_of(1, 900), tmp_path / "probe.sqlite", opts(server)).spent
    with pytest.raises(BudgetExhausted) as info:
        generate(plan, units_of(60), tmp_path / "s.sqlite", opts(server, workers=3, max_cost=10 * one_call))
    spent = info.value.result.spent
    in_flight = 3 * 2  # 3 workers, each with its part of --concurrency 4 (rounded up)
    assert 10 * one_call <= spent + 1e-12 and spent <= (10 + in_flight) * one_call
    assert info.value.result.calls < 60


def test_a_call_that_fails_for_good_in_one_worker_stops_them_all(server: FakeLLM, tmp_path: Path) -> None:
    server.always("500")
    before = server.calls
    try:
        with pytest.raises(ProviderFailed):
            generate(plan_of(spec_text(model=MODEL)), units_of(200), tmp_path / "s.sqlite",
                     opts(server, workers=2, max_tries=1))
    finally:
        server.always(None)
    assert server.calls - before < 40  # the first failure halted both workers (each had 2 calls in flight)


def test_a_deployments_limits_are_divided_among_the_workers() -> None:
    assert workers._part(Route("a", MODEL, rpm=601, tpm=1000), 2) == Route("a", MODEL, rpm=301, tpm=500)
    assert workers._part(Route("a", MODEL), 4) == Route("a", MODEL)
