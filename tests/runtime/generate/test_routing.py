"""Deployments: calls spread within rpm/tpm limits, fall back on a 500/429 storm, each reply's deployment recorded.

The router itself runs on a fake clock (no waiting); the end-to-end tests use two
loopback servers (tests/fakellm.py), one per deployment.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate.routing import WINDOW, Route, Router
from expc.runtime.generate.runner import GenerateOptions, GenerationInputError, MissingCredentials, generate
from expc.runtime.generate.store import Store
from expc.runtime.report.rows import _generation
from expc.runtime.run import generation_summary

MODEL = "openai/gpt-4o-mini"  # a model with a known price


class FakeClock:
    """A clock that only moves when the router sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def picks(router: Router, n: int, avoid: frozenset[str] = frozenset()) -> list[str]:
    async def go() -> list[str]:
        return [(await router.pick(avoid)).id for _ in range(n)]
    return asyncio.run(go())


# ------------------------------------------------------------------ the router alone


def test_calls_spread_in_proportion_to_rpm_and_wait_when_every_limit_is_reached() -> None:
    clock = FakeClock()
    router = Router((Route("a", MODEL, rpm=2), Route("b", MODEL, rpm=4)), clock, clock.sleep)
    first = picks(router, 6)
    assert sorted(first) == ["a", "a", "b", "b", "b", "b"] and clock.slept == []
    assert picks(router, 1) and clock.now >= 1000.0 + WINDOW  # the 7th call waited for the window to free
    in_any_minute = picks(router, 60)
    assert in_any_minute.count("a") <= 2 * (1 + 60 // 6) and in_any_minute.count("b") == 2 * in_any_minute.count("a")


def test_tokens_per_minute_hold_a_deployment_back() -> None:
    clock = FakeClock()
    a, b = Route("a", MODEL, tpm=100), Route("b", MODEL)
    router = Router((a, b), clock, clock.sleep)
    router.succeeded(a, 150)  # a used its minute's tokens
    assert set(picks(router, 5)) == {"b"}
    clock.now += WINDOW + 1
    assert "a" in picks(router, 3)


def test_a_failing_deployment_cools_down_and_the_fallback_serves_only_meanwhile() -> None:
    clock = FakeClock()
    primary, spare = Route("primary", MODEL), Route("spare", MODEL, fallback=1)
    router = Router((primary, spare), clock, clock.sleep)
    assert set(picks(router, 4)) == {"primary"}  # the fallback serves nothing while the primary is up
    assert picks(router, 1, frozenset({"primary"})) == ["spare"]  # a call that failed there tries elsewhere
    for _ in range(Router.failures_to_cool):
        router.failed(primary)
    assert set(picks(router, 4)) == {"spare"}
    clock.now += Router.cooldown + 1
    assert picks(router, 1) == ["primary"]
    router.failed(primary, retry_after=90)  # a 429 with Retry-After cools it at once, for that long
    assert picks(router, 1) == ["spare"]
    clock.now += 91
    assert picks(router, 1) == ["primary"]


def test_when_every_deployment_is_down_the_call_waits_for_the_first_back() -> None:
    clock = FakeClock()
    a, b = Route("a", MODEL), Route("b", MODEL)
    router = Router((a, b), clock, clock.sleep)
    router.failed(a, retry_after=10)
    router.failed(b, retry_after=20)
    assert picks(router, 1) == ["a"] and clock.now == pytest.approx(1010.0)


# ------------------------------------------------------------------ end to end, two loopback servers


@pytest.fixture(scope="module")
def servers():
    with FakeLLM() as east, FakeLLM() as west:
        yield east, west


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, servers) -> None:
    east, west = servers
    east.always(None)
    west.always(None)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("EXPC_ALLOWED_KEY_ENVS", raising=False)
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", f"{east.url},{west.url}")


def routed_spec(servers, east: str = "", west: str = "", fallbacks: str = "") -> str:
    e, w = servers
    extra = ("temperature: 0.5\n    deployments:\n"
             f"      - {{id: east, model: {MODEL}, api_base: '{e.url}'{east}}}\n"
             f"      - {{id: west, model: {MODEL}, api_base: '{w.url}'{west}}}\n"
             + (f"    fallbacks: {fallbacks}\n" if fallbacks else ""))
    return spec_text(model=MODEL, extra=extra)


def run(servers, tmp_path: Path, n: int, start: int = 0, **spec_kw):
    return generate(plan_of(routed_spec(servers, **spec_kw)), units_of(n, start), tmp_path / "s.sqlite",
                    GenerateOptions(backoff_base=0.01, concurrency=4))


def treated(result) -> list:
    return [i for i in result.items if i.variant == "treatment"]


def test_calls_spread_within_rpm_and_each_items_deployment_is_recorded(servers, tmp_path: Path) -> None:
    east, west = servers
    before = (east.calls, west.calls)
    result = run(servers, tmp_path, 20, east=", rpm: 5", west=", rpm: 1000")
    to_east, to_west = east.calls - before[0], west.calls - before[1]
    assert to_east + to_west == 20 and 1 <= to_east <= 5
    items = treated(result)
    assert all(i.status == "ok" for i in items)
    assert sum(i.deployment == "east" for i in items) == to_east
    assert sum(i.deployment == "west" for i in items) == to_west
    assert all(i.to_json()["deployment"] in ("east", "west") for i in items)
    with Store(tmp_path / "s.sqlite") as store:
        rows = store._db.execute("SELECT deployment, count(*) FROM calls GROUP BY deployment").fetchall()
    assert dict(rows) == {"east": to_east, "west": to_west}


@pytest.mark.parametrize("storm", ["500", "429:30"])
def test_a_storm_on_one_deployment_falls_back_to_the_other(servers, tmp_path: Path, storm: str) -> None:
    east, west = servers
    east.always(storm)
    before = east.calls
    result = run(servers, tmp_path, 30)
    items = treated(result)
    assert all(i.status == "ok" and i.deployment == "west" for i in items)
    assert east.calls - before <= 4 + 3  # a few calls find the storm; then east cools down and gets none
    assert result.calls == 30  # failed tries are not calls: nothing was paid twice


def test_fallbacks_serve_only_while_the_primary_fails(servers, tmp_path: Path) -> None:
    east, west = servers
    before = west.calls
    calm = run(servers, tmp_path, 6, fallbacks="[west]")
    assert west.calls == before and {i.deployment for i in treated(calm)} == {"east"}
    east.always("503")
    stormy = run(servers, tmp_path, 6, start=100, fallbacks="[west]")
    assert {i.deployment for i in treated(stormy)} == {"west"} and all(i.status == "ok" for i in treated(stormy))


def test_cost_per_deployment_is_summed_across_resumed_runs(servers, tmp_path: Path) -> None:
    east, west = servers
    west.always("500")
    first = run(servers, tmp_path, 4)  # all served by east
    west.always(None)
    east.always("500")
    again = run(servers, tmp_path, 10)  # units 0-3 from the store (east), 4-9 from west
    rows = {r["deployment"]: r for r in again.per_deployment()}
    assert rows["east"]["calls"] == 4 and rows["east"]["calls_now"] == 0
    assert rows["east"]["cost"] == pytest.approx(first.spent) and rows["east"]["cost_now"] == 0
    assert rows["west"]["calls"] == rows["west"]["calls_now"] == 6 and rows["west"]["cost"] > 0
    assert sum(r["cost"] for r in rows.values()) == pytest.approx(again.spent_total)
    assert again.spent == pytest.approx(rows["west"]["cost"])  # this run paid for west only
    report = generation_summary(again)
    assert report["generation"]["spent"] == pytest.approx(again.spent_total, abs=1e-6)  # rounded to 6 places
    assert report["generation"]["spent"] > report["generation"]["this_invocation"]["spent"]
    line = _generation(report).line
    assert "east" in line and "west" in line and "(0 calls now)" in line


def test_a_deployment_without_its_key_is_named_before_any_call(servers, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "EAST_KEY")
    monkeypatch.delenv("EAST_KEY", raising=False)
    east, _ = servers
    before = east.calls
    with pytest.raises(MissingCredentials, match="deployment `east`"):
        run(servers, tmp_path, 2, east=", api_key_env: EAST_KEY")
    assert east.calls == before


def test_a_plan_whose_deployment_names_a_host_you_have_not_allowed_is_refused_before_any_call(
        servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(routed_spec(servers))  # compiled while the hosts were allowed
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", servers[1].url)  # east's host is no longer allowed
    before = servers[0].calls + servers[1].calls
    with pytest.raises(GenerationInputError, match="deployment `east`: `api_base` is not on your allow-list"):
        generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    assert servers[0].calls + servers[1].calls == before
    east_before = servers[0].calls
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions(api_base=servers[1].url))
    assert result.calls == 2 and servers[0].calls == east_before  # --api-base wins: both deployments go to west's host
