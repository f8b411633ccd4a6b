"""Caps on heavy-tailed metrics and the in-progress rule: spec keys, the E064 check and the plan."""

from __future__ import annotations

import pytest
from conftest import BASE, check_text, codes, located

from expc.compiler.compile import compile_plan
from expc.compiler.plan import Plan, PlanError

REVENUE = """\
  - id: revenue
    kind: mean
    event: purchase
    cap: {quantile: 0.99}
  - id: aov
    kind: ratio
    numerator: {event: purchase, cap: {value: 500}}
    denominator: {event: purchase, measure: count}
"""


def _plan(text: str) -> Plan:
    result = check_text(text)
    assert result.ok(), result.diagnostics
    return compile_plan(result.doc, result.spec)


def test_caps_reach_the_plan_as_the_metrics_cap():
    plan = _plan(BASE + REVENUE)
    revenue, aov = plan.metric("revenue"), plan.metric("aov")
    assert revenue.cap is not None and revenue.cap.quantile == 0.99 and revenue.cap.value is None
    assert aov.cap is not None and aov.cap.value == 500 and aov.cap.quantile is None
    assert aov.numerator is not None and aov.numerator.cap is None  # carried once, in the metric's cap
    assert plan.metric("activated").cap is None
    assert plan.analysis.in_progress == "exclude"
    assert Plan.from_json(plan.to_json()) == plan


def test_a_ratios_metric_level_cap_is_its_numerators():
    text = BASE + REVENUE.replace("numerator: {event: purchase, cap: {value: 500}}",
                                  "numerator: purchase\n    cap: {value: 250}")
    assert _plan(text).metric("aov").cap.value == 250


def test_in_progress_include_reaches_the_plan():
    assert _plan(BASE + "analysis:\n  in_progress: include\n").analysis.in_progress == "include"
    assert "E023" in codes(check_text(BASE + "analysis:\n  in_progress: later\n"))


@pytest.mark.parametrize(
    "metric, where",
    [
        ("  - id: clicked\n    kind: proportion\n    event: click\n    cap: {value: 1}\n", (42, 5)),
        ("  - id: aov\n    kind: ratio\n    numerator: purchase\n"
         "    denominator: {event: purchase, measure: count, cap: {value: 3}}\n", (42, 52)),
        ("  - id: aov\n    kind: ratio\n    cap: {value: 9}\n    numerator: {event: purchase, cap: {value: 5}}\n"
         "    denominator: session\n", (42, 34)),
        ("  - id: spend\n    kind: mean\n    event: purchase\n    cap: {quantile: 0.9, value: 5}\n", (42, 5)),
        ("  - id: spend\n    kind: mean\n    event: purchase\n    cap: {}\n", (42, 5)),
    ],
)
def test_a_cap_that_does_not_fit_is_a_located_E064(metric, where):
    result = check_text(BASE + metric)
    assert not result.ok()
    assert located(result, "E064") == [where], result.diagnostics


@pytest.mark.parametrize("cap", ["{quantile: 0}", "{quantile: 1}", "{quantile: 1.5}", "{value: .inf}",
                                 "{value: .nan}", "{quantile: '99%'}"])
def test_a_quantile_outside_zero_one_or_an_infinite_value_is_refused(cap):
    result = check_text(BASE + f"  - id: spend\n    kind: mean\n    event: purchase\n    cap: {cap}\n")
    assert not result.ok()
    assert set(codes(result)) & {"E022", "E023"}, result.diagnostics


def test_a_plan_with_a_cap_on_a_proportion_is_not_a_valid_plan():
    plan = _plan(BASE + REVENUE)
    data = plan.to_dict()
    data["metrics"][0]["cap"] = {"quantile": 0.5, "value": None}
    with pytest.raises(PlanError, match="cap"):
        Plan.from_dict(data)
