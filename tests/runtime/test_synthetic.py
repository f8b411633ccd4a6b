"""Simulated runs: attributes from their distributions, outcomes from the truth, and look
reductions that equal reduce() on the written files."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from conftest import ROOT, check_text, codes, edited, plan_of_text, with_traffic

import expc
from expc.compiler.plan import Plan, TruthValue
from expc.runtime.assign import assign
from expc.runtime.stats.reduce import reduce
from expc.runtime.synthetic import (
    DAY_US,
    SyntheticRun,
    draw_outcomes,
    draw_units,
    look_reduction,
    look_reductions,
    write_files,
)

SPECS = {
    "welcome-email": "proportion",
    "product-descriptions": "mean",  # with a ratio and two proportions beside it
    "push-notification": "proportion",
}



def with_event_times(run, ts):
    """The run with its events moved to the times ``ts`` (kept in time order, as a run's events are)."""
    order = np.argsort(ts, kind="stable")
    return dataclasses.replace(run, event_ts=ts[order], event_unit=run.event_unit[order],
                               event_code=run.event_code[order], event_value=run.event_value[order], _cache={})


def plan_of(name: str, units_per_day: int | None = None) -> Plan:
    """An example's plan, compiled again with another ``simulation.units_per_day`` when one is given."""
    if units_per_day is None:
        return _compiled(name)
    text = (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(  units_per_day: )\d+", rf"\g<1>{units_per_day}", text, count=1)
    return plan_of_text(text, f"{name}.yaml")


_CACHE: dict[str, Plan] = {}


def _compiled(name: str) -> Plan:
    if name not in _CACHE:
        _CACHE[name] = expc.compile_file(ROOT / "specs" / f"{name}.yaml")
    return _CACHE[name]


def metric(**fields: Any) -> dict[str, Any]:
    """A plan metric's JSON form: ``fields``, and every other PlanMetric field at a neutral value."""
    return {"name": None, "description": None, "event": None, "numerator": None, "denominator": None,
            "window_seconds": None, "role": "secondary", "direction": "increase", "mde": None, "margin": None,
            "baseline": None, "sd": None, "cuped": False, "family": f"metric:{fields['id']}", "family_size": 1,
            **fields}


def add_metric(p: dict[str, Any], truth: dict[str, Any], **fields: Any) -> None:
    """Append a metric to a plan's JSON form, with the same ``truth`` in every variant (plans give every one)."""
    p["metrics"].append(metric(**fields))
    for row in p["simulation"]["truth"].values():
        row[fields["id"]] = truth


def spec_text(name: str, truth: str) -> str:
    """A spec of ``specs/`` with its ``simulation.truth`` block replaced by ``truth`` (indented YAML lines)."""
    text = (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")
    new, count = re.subn(r"  truth:\n(?:    .*\n|\n)+", lambda _: "  truth:\n" + truth, text)
    assert count == 1
    return new


def simulate(plan: Plan, days: int, seed: int = 1, truth: str = "spec") -> tuple[Any, SyntheticRun]:
    units, entry = draw_units(plan, days, seed)
    run = draw_outcomes(plan, units, entry, assign(plan, units).variant, seed, truth=truth)
    return units, run


def assert_same(numpy_red, sql_red) -> None:
    """Counts exactly, sums to 1e-9 relative; everything but the SQL text."""
    assert numpy_red.units.tolist() == sql_red.units.tolist()
    assert numpy_red.excluded == sql_red.excluded
    assert numpy_red.ignored == sql_red.ignored
    assert (numpy_red.as_of, numpy_red.first_exposure, numpy_red.last_exposure) == (
        sql_red.as_of, sql_red.first_exposure, sql_red.last_exposure)
    assert list(numpy_red.metrics) == list(sql_red.metrics)
    assert numpy_red.in_progress == sql_red.in_progress
    assert list(numpy_red.caps) == list(sql_red.caps)
    for mid, cap in numpy_red.caps.items():
        assert (cap is None) == (sql_red.caps[mid] is None), mid
        assert cap is None or cap == pytest.approx(sql_red.caps[mid], rel=1e-12, abs=1e-12), mid
    for mid, ours in numpy_red.metrics.items():
        theirs = sql_red.metrics[mid]
        for f in dataclasses.fields(ours):
            a, b = getattr(ours, f.name), getattr(theirs, f.name)
            assert (a is None) == (b is None), (mid, f.name)
            if a is None:
                continue
            if f.name == "n":
                assert a.tolist() == b.tolist(), mid
            else:
                scale = max(1.0, float(np.max(np.abs(b))))
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * scale, err_msg=f"{mid}.{f.name}")


# ---------------------------------------------------------------- look_reduction == reduce


@pytest.mark.parametrize("name", sorted(SPECS))
def test_look_reduction_equals_reduce_on_the_files(name: str, tmp_path: Path) -> None:
    plan = plan_of(name, units_per_day=250)
    _, run = simulate(plan, days=10, seed=4)
    exposures, events = write_files(run, tmp_path)
    # day 0.5 cuts the first day in half; 3 and 10 cut 7-day windows; 30 sees every event
    for day in (0.5, 1, 3, 10, 30):
        ours = look_reduction(plan, run, day)
        theirs = reduce(plan, exposures, events, as_of=run.as_of(day))
        assert_same(ours, theirs)
    assert look_reduction(plan, run, 3).ignored["events_after_as_of"] > 0  # windows really were cut
    assert sum(look_reduction(plan, run, 30).ignored.values()) == 0


def test_look_reduction_with_a_plan_whose_windows_differ_from_the_draw(tmp_path: Path) -> None:
    """Events drawn within 7 days, read with a 2-day window and without one: both ways agree."""
    plan = plan_of("welcome-email", units_per_day=200)
    _, run = simulate(plan, days=6, seed=8)

    def edit(p: dict[str, Any]) -> None:
        p["metrics"][0]["window_seconds"] = 2 * 86400  # activated: 2 days
        add_metric(p, {"mean": 0.01, "sd": None}, id="unsub_ever", kind="proportion", event="unsubscribed",
                   window_seconds=None)
        add_metric(p, {"mean": 1.0, "sd": 1.0}, id="activations_per_unsub", kind="ratio",
                   window_seconds=3 * 86400, numerator={"event": "activated", "measure": "count"},
                   denominator={"event": "unsubscribed", "measure": "count"})

    other = edited(plan, edit)
    paths = write_files(run, tmp_path)
    for day in (2, 4, 12):
        ours = look_reduction(other, run, day)
        assert_same(ours, reduce(other, *paths, as_of=run.as_of(day)))
    assert look_reduction(other, run, 12).excluded["events_outside_window"] > 0


def test_look_reduction_counts_events_before_exposure(tmp_path: Path) -> None:
    plan = plan_of("push-notification", units_per_day=200)
    _, run = simulate(plan, days=4, seed=2)
    ts = run.event_ts.copy()
    ts[::5] -= 3 * 86400 * 1_000_000  # every fifth event three days earlier: before its exposure
    moved = with_event_times(run, ts)
    paths = write_files(moved, tmp_path)
    for day in (1, 3, 9):
        assert_same(look_reduction(plan, moved, day), reduce(plan, *paths, as_of=moved.as_of(day)))
    assert look_reduction(plan, moved, 9).excluded["events_before_exposure"] > 0


def test_cuped_covariate_sums_agree_with_reduce(tmp_path: Path) -> None:
    """With CUPED on, the pre-exposure sums (events in the look-back before exposure) agree too."""

    def edit(p: dict[str, Any]) -> None:
        add_metric(p, {"mean": 1.0, "sd": 1.0}, id="aov", kind="ratio", window_seconds=5 * 86400,
                   numerator={"event": "order_completed", "measure": "value"},
                   denominator={"event": "order_completed", "measure": "count"})
        for m in p["metrics"]:
            m["cuped"] = True
        p["analysis"]["cuped_lookback"] = 2 * 86400

    plan = edited(plan_of("product-descriptions", units_per_day=150), edit)
    _, run = simulate(plan, days=4, seed=12)
    ts = run.event_ts.copy()
    ts[::3] -= np.arange(len(ts[::3])) % 4 * 86400 * 1_000_000  # some events 1-3 days before exposure
    moved = with_event_times(run, ts)
    paths = write_files(moved, tmp_path)
    for day in (1, 2.5, 12):
        ours = look_reduction(plan, moved, day)
        assert_same(ours, reduce(plan, *paths, as_of=moved.as_of(day)))
    final = look_reduction(plan, moved, 12).metrics
    assert all(m.pre_sum is not None for m in final.values())
    assert final["added_to_cart"].pre_sum.sum() > 0 and np.all(final["revenue_per_session"].pre_den_sum > 10)
    assert final["aov"].pre_den_cross_den is not None


@pytest.mark.parametrize("in_progress", ["exclude", "include"])
def test_caps_and_in_progress_windows_agree_with_reduce(tmp_path: Path, in_progress: str) -> None:
    """Capped means and ratio numerators (a quantile, a value; CUPED covariates capped alike), each look."""

    def edit(p: dict[str, Any]) -> None:
        p["metrics"][0]["cap"] = {"quantile": 0.99, "value": None}  # revenue per visitor: ~3% buy
        p["metrics"][1]["cap"] = {"quantile": None, "value": 60.0}  # revenue per session's numerator
        add_metric(p, {"mean": 1.0, "sd": 1.0}, id="aov", kind="ratio", window_seconds=None,
                   numerator={"event": "order_completed", "measure": "value"},
                   denominator={"event": "order_completed", "measure": "count"},
                   cap={"quantile": 0.995, "value": None})
        for m in p["metrics"]:
            m["cuped"] = True
        p["analysis"]["cuped_lookback"] = 2 * 86400
        p["analysis"]["in_progress"] = in_progress

    plan = edited(plan_of("product-descriptions", units_per_day=300), edit)
    _, run = simulate(plan, days=9, seed=5)
    ts = run.event_ts.copy()
    ts[::4] -= np.arange(len(ts[::4])) % 3 * 86400 * 1_000_000  # some events 1-2 days before exposure
    moved = with_event_times(run, ts)
    paths = write_files(moved, tmp_path)
    looks = (0.5, 3, 7.5, 8, 9, 30)
    for day, ours in zip(looks, look_reductions(plan, moved, list(looks))):
        assert_same(ours, reduce(plan, *paths, as_of=moved.as_of(day)))
    at_8 = look_reduction(plan, moved, 8)
    assert at_8.caps["revenue_per_session"] == 60.0 and at_8.caps["revenue_per_visitor"] > 0
    if in_progress == "exclude":  # units of the last day wait for their 7-day windows; "aov" has none
        assert at_8.in_progress["revenue_per_visitor"] > 0 and "aov" not in at_8.in_progress
        assert at_8.metrics["aov"].n.tolist() == at_8.units.tolist()
        assert at_8.metrics["revenue_per_visitor"].n.sum() < at_8.units.sum()
    else:
        assert at_8.in_progress == {}


def test_ratio_models_agree_with_reduce(tmp_path: Path) -> None:
    """Ratios that draw their own events: the same event's value over its count; count over count."""

    def edit(p: dict[str, Any]) -> None:
        p["metrics"] = [
            metric(id="aov", kind="ratio", window_seconds=5 * 86400, role="primary",
                   numerator={"event": "order", "measure": "value"},
                   denominator={"event": "order", "measure": "count"}),
            metric(id="clicks_per_visit", kind="ratio", window_seconds=None,
                   numerator={"event": "click", "measure": "count"},
                   denominator={"event": "visit", "measure": "count"}),
            metric(id="refund", kind="mean", event="refund", window_seconds=86400),
        ]
        control = {"aov": {"mean": 80, "sd": 40}, "clicks_per_visit": {"mean": 0.5, "sd": 1},
                   "refund": {"mean": -3, "sd": 2}}
        p["simulation"]["truth"] = {"spec_sheet": control, "benefit_led": control | {"aov": {"mean": 84, "sd": 40}}}

    plan = edited(plan_of("product-descriptions", units_per_day=200), edit)
    _, run = simulate(plan, days=5, seed=3)
    paths = write_files(run, tmp_path)
    for day in (1, 2.5, 12):
        assert_same(look_reduction(plan, run, day), reduce(plan, *paths, as_of=run.as_of(day)))
    final = look_reduction(plan, run, 12).metrics
    assert np.all(final["refund"].sum < 0)  # a negative true mean gives negative values (refunds)
    aov = final["aov"].mean()
    assert abs(aov[0] - 80) < 5 and abs(aov[1] - 84) < 5


def test_look_reductions_is_look_reduction_at_each_day() -> None:
    plan = plan_of("welcome-email", units_per_day=100)
    _, run = simulate(plan, days=3)
    many = look_reductions(plan, run, [1, 2, 3])
    for day, red in zip([1, 2, 3], many):
        assert_same(look_reduction(plan, run, day), red)
    assert [r.units.sum() for r in many] == sorted(r.units.sum() for r in many)


# ---------------------------------------------------------------- who is exposed


def test_units_outside_the_audience_are_never_exposed(tmp_path: Path) -> None:
    plan = edited(plan_of("product-descriptions", units_per_day=400), lambda p: p["simulation"]["attributes"].update(
        country={"values": ["US", "CA", "FR"], "weights": [1, 1, 2]}))
    units, entry = draw_units(plan, 3, 5)
    assignment = assign(plan, units)
    run = draw_outcomes(plan, units, entry, assignment.variant, 5)
    french = set(units.columns["visitor_id"][units.columns["country"] == "FR"])
    assert len(french) > 400  # about half the units
    assert not french & set(run.ids)
    assert set(run.rows) == set(np.flatnonzero(assignment.variant >= 0))
    exposures, events = write_files(run, tmp_path)
    con = duckdb.connect()
    exposed = {r[0] for r in con.execute(f"SELECT visitor_id FROM '{exposures}'").fetchall()}
    with_events = {r[0] for r in con.execute(f"SELECT DISTINCT visitor_id FROM '{events}'").fetchall()}
    assert exposed == set(run.ids) and not french & exposed
    assert with_events <= exposed
    assert look_reduction(plan, run, 3).units.sum() == len(exposed)


def test_coverage_leaves_units_out() -> None:
    plan = plan_of("push-notification", units_per_day=2000)  # coverage 90%
    units, run = simulate(plan, days=1)
    assert 0.87 < run.exposures / len(units) < 0.93


def test_exposures_fall_on_the_entry_day_in_order() -> None:
    plan = plan_of("welcome-email", units_per_day=300)
    units, entry = draw_units(plan, 4, 9)
    run = draw_outcomes(plan, units, entry, assign(plan, units).variant, 9, start="2026-03-01T12:00:00+02:00")
    start = run.start_us
    assert run.start == "2026-03-01T10:00:00Z"
    day = (run.exposure_ts - start) // DAY_US
    assert np.array_equal(day, entry[run.rows])
    assert np.all(np.diff(run.exposure_ts) >= 0) and np.all(np.diff(run.event_ts) >= 0)
    assert np.all(np.diff(run.rows) > 0)  # ids arrive in table order


def test_events_lie_in_the_drawing_metrics_window() -> None:
    plan = plan_of("push-notification", units_per_day=500)
    _, run = simulate(plan, days=3)
    windows = {m.event: m.window_seconds * 1_000_000 for m in plan.metrics}
    first = run.exposure_ts[run.event_unit]
    for code, name in enumerate(run.event_names):
        mine = run.event_code == code
        lag = run.event_ts[mine] - first[mine]
        assert lag.min() >= 0 and lag.max() <= windows[name]
        if mine.sum() >= 100:  # spread over the whole window
            assert lag.max() > 0.95 * windows[name] and lag.min() < 0.05 * windows[name]


def test_events_without_a_window_end_at_the_horizon() -> None:

    def edit(p: dict[str, Any]) -> None:
        for m in p["metrics"]:
            m["window_seconds"] = None

    plan = edited(plan_of("welcome-email", units_per_day=300), edit)
    _, run = simulate(plan, days=5)
    assert run.event_ts.max() <= run.start_us + 5 * DAY_US
    assert np.all(run.event_ts >= run.exposure_ts[run.event_unit])


# ---------------------------------------------------------------- outcomes follow the truth


def test_proportions_follow_the_truth_and_aa_removes_the_effect() -> None:
    plan = edited(plan_of("welcome-email", units_per_day=20000),  # a large effect, visible in one draw
                  lambda p: p["simulation"]["truth"]["personalized"].update(activated={"mean": 0.15, "sd": None}))
    for truth, expected in (("spec", 0.15), ("aa", 0.10)):
        _, run = simulate(plan, days=2, seed=21, truth=truth)
        m = look_reduction(plan, run, 20).metrics["activated"]
        rate = m.mean()
        se = np.sqrt(rate * (1 - rate) / m.n)
        assert abs(rate[0] - 0.10) < 4 * se[0]
        assert abs(rate[1] - expected) < 4 * se[1], truth
        assert run.true_values["activated"]["personalized"][0] == expected


def test_means_and_ratios_follow_the_truth() -> None:
    plan = plan_of("product-descriptions", units_per_day=60000)
    _, run = simulate(plan, days=2, seed=5)
    red = look_reduction(plan, run, 20)
    rev = red.metrics["revenue_per_visitor"]
    for arm, (mean, sd) in enumerate([(2.40, 19.5), (2.53, 20.0)]):
        assert abs(rev.mean()[arm] - mean) < 4 * sd / math.sqrt(rev.n[arm])
        assert abs(math.sqrt(rev.variance()[arm]) / sd - 1) < 0.1
    ratio = red.metrics["revenue_per_session"]
    for arm, (r, _sd) in enumerate([(1.55, 14.0), (1.63, 14.5)]):
        se = math.sqrt(ratio.variance_of_mean()[arm])
        assert abs(ratio.mean()[arm] - r) < 4 * se
    # about 3% of visitors order, for about 80 each (the zero-inflated exponential)
    orders = run.event_code == run.event_names.index("order_completed")
    assert 0.025 < orders.sum() / run.exposures < 0.035
    assert 70 < run.event_value[orders].mean() < 90


def test_a_mean_with_a_small_sd_is_a_gamma_for_everyone() -> None:

    def edit(p: dict[str, Any]) -> None:
        for row in p["simulation"]["truth"].values():
            row["revenue_per_visitor"] = {"mean": 10, "sd": 2}

    plan = edited(plan_of("product-descriptions", units_per_day=5000), edit)
    _, run = simulate(plan, days=1, seed=6)
    orders = run.event_code == run.event_names.index("order_completed")
    assert orders.sum() == run.exposures  # every unit
    assert abs(run.event_value[orders].mean() - 10) < 0.2 and abs(run.event_value[orders].std() - 2) < 0.2
    assert run.event_value[orders].min() > 0


def test_truth_falls_back_to_the_control_then_the_baseline() -> None:
    """The plan's truth table resolves the shorthand, and the outcomes are drawn from that table."""
    plan = plan_of_text(spec_text("welcome-email", "    control: {activated: 0.2, unsubscribed: 0.01}\n"))
    plan = with_traffic(plan, 50)
    assert plan.simulation.truth["personalized"]["activated"] == TruthValue(mean=0.2, sd=None)  # the control's
    _, run = simulate(plan, days=1)
    assert run.true_values["activated"]["personalized"][0] == 0.2
    # no truth and no baseline: the spec does not validate (there is no default rate any more)
    result = check_text(spec_text("welcome-email", "    control: {activated: 0.2}\n"))
    assert "E060" in codes(result) and "unsubscribed" in str(result.diagnostics)
    product = plan_of_text(spec_text("product-descriptions", (
        "    spec_sheet: {revenue_per_session: {mean: 1.55, sd: 14.0}, added_to_cart: 0.085,"
        " return_requested: 0.0045}\n"
        "    benefit_led: {revenue_per_session: 1.63}\n")))
    truth = product.simulation.truth
    assert truth["benefit_led"]["revenue_per_visitor"] == TruthValue(mean=2.40, sd=19.5)  # baseline and sd
    assert truth["benefit_led"]["revenue_per_session"] == TruthValue(mean=1.63, sd=14.0)  # the control's sd
    product = with_traffic(product, 50)
    _, run = simulate(product, days=1)
    assert run.true_values["revenue_per_visitor"]["benefit_led"] == (2.40, 19.5)


# ---------------------------------------------------------------- reproducibility


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    plan = plan_of("push-notification", units_per_day=300)
    u1, r1 = simulate(plan, days=3, seed=7)
    u2, r2 = simulate(plan, days=3, seed=7)
    u3, r3 = simulate(plan, days=3, seed=8)
    for name in u1.columns:
        assert u1.columns[name].tolist() == u2.columns[name].tolist()
    for f in ("rows", "arm", "exposure_ts", "event_unit", "event_code", "event_value", "event_ts"):
        assert np.array_equal(getattr(r1, f), getattr(r2, f)), f
    assert u1.columns["platform"].tolist() != u3.columns["platform"].tolist()
    assert not np.array_equal(r1.exposure_ts, r3.exposure_ts)
    assert len(r1.event_ts) != len(r3.event_ts) or not np.array_equal(r1.event_ts, r3.event_ts)


def test_an_attribute_draw_does_not_depend_on_the_others() -> None:
    plan = plan_of("product-descriptions", units_per_day=200)
    units, _ = draw_units(plan, 2, 3)
    fewer = edited(plan, lambda p: p["attributes"].pop("device"))
    other, _ = draw_units(fewer, 2, 3)
    assert units.columns["category"].tolist() == other.columns["category"].tolist()


# ---------------------------------------------------------------- attribute distributions


def test_declared_distributions_are_respected() -> None:
    plan = plan_of("push-notification", units_per_day=20000)
    units, entry = draw_units(plan, 1, 13)
    c = units.columns
    n = len(units)
    assert n == 20000 and entry.tolist() == [0] * n
    share = {v: float(np.mean(c["app_version"] == v)) for v in ("5.4.0", "5.6.2", "6.0.1")}
    for v, w in zip(("5.4.0", "5.6.2", "6.0.1"), (0.1, 0.3, 0.6)):
        assert abs(share[v] - w) < 4 * math.sqrt(w * (1 - w) / n)
    days = c["days_since_last_open"]
    assert days.dtype == np.float64 and np.all(days == np.round(days))
    assert days.min() == 3 and days.max() == 30 and len(np.unique(days)) == 28
    assert set(c["first_name"]) == {"Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro"}
    topics = c["notification_topics"]
    assert {type(t) for t in topics} == {tuple}
    assert set(topics) == {("promotions",), ("recommendations",), ("promotions", "recommendations")}
    assert c["user_id"][0] == "u000001" and len(set(c["user_id"])) == n


def test_numbers_booleans_and_lists() -> None:

    def edit(p: dict[str, Any]) -> None:
        p["attributes"].update({"score": "number", "vip": "boolean", "height": "integer", "joined": "datetime",
                                "tags": "list[string]", "build": "version"})
        p["simulation"]["attributes"].update({
            "score": {"min": 2.5, "max": 4.0},
            "vip": {"p": 0.2},
            "height": {"mean": 170, "sd": 10, "min": 150, "max": 185},
            "tags": {"values": ["a", "b", "c", "d"], "weights": [8, 1, 1, 0], "size": [2, 3]},
        })

    plan = edited(plan_of("welcome-email", units_per_day=20000), edit)
    units, _ = draw_units(plan, 1, 2)
    c = units.columns
    assert c["score"].min() >= 2.5 and c["score"].max() < 4.0
    assert {type(v) for v in c["vip"]} == {bool} and abs(np.mean(c["vip"] == True) - 0.2) < 0.02  # noqa: E712
    assert c["height"].min() == 150 and c["height"].max() == 185 and abs(np.median(c["height"]) - 170) <= 1
    tags = c["tags"]
    assert {len(t) for t in tags} == {2, 3}
    assert all("d" not in t for t in tags)  # weight 0
    assert all(list(t) == sorted(t) for t in tags)  # vocabulary order
    assert np.mean(["a" in t for t in tags]) > 0.9
    assert all(isinstance(v, str) and v.startswith("2025-") and v.endswith("Z") for v in c["joined"][:100])
    assert set(c["build"]) == {"1.0.0", "1.2.0", "2.0.0"}
    vocabulary = ["running", "cooking", "travel", "gaming", "reading"]
    assert all(set(t) <= set(vocabulary) and list(t) == sorted(t, key=vocabulary.index) for t in c["interests"])
    assert {len(t) for t in c["interests"]} == {1, 2}


def test_defaults_stay_inside_the_audience() -> None:
    """Without distributions, attributes the audience constrains are drawn inside it."""
    plan = edited(plan_of("push-notification", units_per_day=3000), lambda p: p["simulation"].update(attributes={}))
    units, _ = draw_units(plan, 1, 1)
    c = units.columns
    assert set(c["platform"]) == {"ios", "android"}
    assert c["days_since_last_open"].min() >= 3 and c["days_since_last_open"].max() <= 30
    assert all(set(t) <= {"promotions", "recommendations"} for t in c["notification_topics"])
    assert all(v is not None for v in c["first_name"])
    assert len(set(c["favorite_category"])) == 5
    in_audience = np.mean(assign(plan, units).reason != 2)
    assert in_audience == 1.0


def test_integer_ids_are_numbers() -> None:
    plan = edited(plan_of("welcome-email", units_per_day=50), lambda p: p["attributes"].update(user_id="integer"))
    units, _ = draw_units(plan, 2, 1)
    assert units.columns["user_id"].dtype == np.float64
    assert units.columns["user_id"][:3].tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------- files and errors


def test_written_files_have_the_columns_reduce_reads(tmp_path: Path) -> None:
    plan = plan_of("welcome-email", units_per_day=100)
    _, run = simulate(plan, days=2)
    exposures, events = write_files(run, tmp_path / "data")
    con = duckdb.connect()
    ecols = con.execute(f"DESCRIBE SELECT * FROM '{exposures}'").fetchall()
    vcols = con.execute(f"DESCRIBE SELECT * FROM '{events}'").fetchall()
    assert [(r[0], r[1]) for r in ecols] == [("user_id", "VARCHAR"), ("variant", "VARCHAR"),
                                           ("timestamp", "TIMESTAMP")]
    assert [(r[0], r[1]) for r in vcols] == [("user_id", "VARCHAR"), ("event", "VARCHAR"), ("value", "DOUBLE"),
                                           ("timestamp", "TIMESTAMP")]
    assert con.execute(f"SELECT count(*) FROM '{exposures}'").fetchone()[0] == run.exposures
    assert set(r[0] for r in con.execute(f"SELECT DISTINCT variant FROM '{exposures}'").fetchall()) <= {
        "control", "personalized"}
    assert not list(tmp_path.glob("data/*.tmp"))


def test_errors_are_explained() -> None:
    plan = plan_of("welcome-email", units_per_day=10)
    with pytest.raises(ValueError, match="no `simulation` block"):
        draw_units(edited(plan, lambda p: p.update(simulation=None)), 3, 1)
    with pytest.raises(ValueError, match="truth"):
        draw_units(plan, 3, 1, truth="bogus")
    _, run = simulate(plan, days=1)

    def rename(p: dict[str, Any]) -> None:  # a plan has at least two variants: another name, not fewer
        p["variants"][1]["id"] = "other"
        p["simulation"]["truth"]["other"] = p["simulation"]["truth"].pop("personalized")

    other = edited(plan, rename)
    with pytest.raises(ValueError, match="variants"):
        look_reduction(other, run, 1)


def test_simulation_days() -> None:
    """A simulated run lasts simulation.days, else stopping.max_days, else 28 days (resolved in the plan)."""
    plan = plan_of("welcome-email")
    assert plan.simulation.days == 28 == plan.stopping.max_days
    text = (ROOT / "specs" / "welcome-email.yaml").read_text(encoding="utf-8")
    assert plan_of_text(text.replace("  seed: 7\n", "  seed: 7\n  days: 9\n", 1)).simulation.days == 9
    no_limit = plan_of_text(text.replace("  max_days: 28\n", "", 1).replace(
        "    - {when: max_days, then: stop_inconclusive}\n", "", 1))
    assert no_limit.stopping.max_days is None and no_limit.simulation.days == 28
