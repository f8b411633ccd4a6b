"""evaluate() with CUPED: the spec's keys reach the plan, comparisons use adjusted moments and say so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BASE, edited, plan_of_text

from expc.compiler.plan import Plan
from expc.runtime.evaluate import evaluate
from expc.runtime.stats import cuped, fixed
from expc.runtime.stats.moments import Moments
from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction

METRICS = """\
  - id: revenue
    kind: mean
    event: purchase
  - id: errors
    kind: proportion
    event: error
    role: guardrail
    direction: decrease
    margin: 10%
    cuped: false
"""


def make_plan(method: str = "fixed", cuped_on: bool = True, lookback: str = "7d") -> Plan:
    text = BASE + METRICS + f"analysis:\n  method: {method}\n  cuped: {str(cuped_on).lower()}\n"
    text += f"  cuped_lookback: {lookback}\n"
    return plan_of_text(text)


def test_plan_carries_the_effective_flag_and_the_lookback():
    plan = make_plan()
    assert plan.analysis.cuped is True and plan.analysis.cuped_lookback == 7 * 86400
    assert {m.id: m.cuped for m in plan.metrics} == {"activated": True, "revenue": True, "errors": False}
    off = make_plan(cuped_on=False)
    assert {m.id: m.cuped for m in off.metrics} == {"activated": False, "revenue": False, "errors": False}
    assert off.analysis.cuped_lookback == 7 * 86400


def with_cov(m: Moments, pre_sum, pre_sum_sq, pre_cross) -> Moments:
    return m.with_covariate(pre_sum=pre_sum, pre_sum_sq=pre_sum_sq, pre_cross=pre_cross)


def reduction() -> Reduction:
    n = [5000, 5000]
    act = with_cov(Moments.proportion(n, [500, 560]), [1500, 1490], [1500, 1490], [400, 440])
    rev = with_cov(Moments.of(n, [50_000, 52_000], [1_500_000, 1_560_000]),
                   [48_000, 48_500], [1_400_000, 1_420_000], [1_200_000, 1_260_000])
    err = with_cov(Moments.proportion(n, [100, 95]), [90, 90], [90, 90], [20, 20])  # cuped off: ignored
    return Reduction({"activated": act, "revenue": rev, "errors": err}, np.array(n), dict.fromkeys(EXCLUDED_KEYS, 0),
                     "")


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_comparisons_are_adjusted_and_marked(method):
    plan = make_plan(method)
    red = reduction()
    ev = evaluate(plan, red)
    out = ev.to_dict()
    json.dumps(out, allow_nan=False)
    by = {m["id"]: m["comparisons"][0] for m in out["metrics"]}
    assert by["activated"]["cuped"] and by["revenue"]["cuped"] and not by["errors"]["cuped"]
    assert by["errors"]["variance_reduction"] is None
    for k in ("activated", "revenue"):
        adj = cuped.adjust(red.metrics[k])
        assert by[k]["variance_reduction"] == pytest.approx(float(adj.variance_reduction[0]), rel=1e-12)
        assert by[k]["variance_reduction"] > 0.1
        assert by[k]["abs_lift"] == pytest.approx(float(np.diff(adj.moments.mean())[0]), rel=1e-12)
    # the variants' means stay the unadjusted estimates
    act = next(m for m in out["metrics"] if m["id"] == "activated")
    assert [v["mean"] for v in act["variants"]] == [0.1, 0.112]


def test_fixed_adjusted_comparison_is_welch_on_adjusted_moments_and_guardrails_follow():
    plan = edited(make_plan("fixed"), lambda p: p["metrics"][2].update(cuped=True))  # the guardrail too
    red = reduction()
    ev = evaluate(plan, red)
    rev = ev.metric("revenue").comparisons[0]
    ref = fixed.means(cuped.adjust(red.metrics["revenue"]).moments)
    assert rev.p_value == pytest.approx(float(ref.p_value[0]), rel=1e-12)
    g = ev.metric("errors").comparisons[0]
    assert g.cuped and g.guardrail is not None
    ni = fixed.non_inferiority(cuped.adjust(red.metrics["errors"]).moments, "mean", 0.1, "decrease")
    assert g.guardrail.p_value == pytest.approx(float(ni.p_value[0]), rel=1e-12)


def test_no_covariate_or_no_variance_falls_back_to_the_plain_analysis():
    plan = make_plan("fixed")
    red = reduction()
    plain = Reduction({k: Moments(m.n, m.sum, m.sum_sq) for k, m in red.metrics.items()}, red.units, red.excluded, "")
    rev = plain.metrics["revenue"]
    flat = Reduction({**red.metrics, "revenue": with_cov(rev, [0, 0], [0, 0], [0, 0])}, red.units, red.excluded, "")
    for r in (plain, flat):
        c = evaluate(plan, r).metric("revenue").comparisons[0]
        assert not c.cuped
        assert c.p_value == pytest.approx(float(fixed.means(plain.metrics["revenue"]).p_value[0]), rel=1e-12)


def test_covariate_sums_follow_the_arms_when_the_control_is_not_first():

    def swap(p: dict) -> None:  # arms are reordered control-first, covariate sums with them
        p["control"] = "treatment"
        p["arm_order"] = [1, 0]
        for v in p["variants"]:
            v["control"] = v["id"] == "treatment"

    plan = edited(make_plan("fixed"), swap)
    red = reduction()
    c = evaluate(plan, red).metric("revenue").comparisons[0]
    assert c.cuped and c.variant == "control" and c.baseline == "treatment"
    m = red.metrics["revenue"]
    swapped = Moments(**{k: None if v is None else np.asarray(v)[::-1] for k, v in vars(m).items()})
    ref = fixed.means(cuped.adjust(swapped).moments)
    assert c.abs_lift == pytest.approx(float(ref.abs_lift[0]), rel=1e-12)
    assert c.p_value == pytest.approx(float(ref.p_value[0]), rel=1e-12)
