"""evaluate(): a plan and hand-built moments become results and a stopping decision."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import BASE, plan_of_text

from expc.compiler.plan import Look, Plan, SequentialDesign
from expc.runtime.evaluate import evaluate
from expc.runtime.stats.moments import Moments
from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction

GUARDRAIL = """\
  - id: errors
    kind: proportion
    event: error
    role: guardrail
    direction: decrease
    margin: 10%
  - id: revenue
    kind: mean
    event: purchase
"""

RULES = """\
  rules:
    - {when: srm, then: stop_inconclusive}
    - {when: guardrail_harm, then: stop_rollback}
    - {when: primary_significant, then: stop_ship_winner}
    - {when: futility, then: stop_futility}
    - {when: max_days, then: stop_inconclusive}
    - {when: max_units, then: stop_inconclusive}
"""

THIRD_VARIANT = """\
  - id: treatment_b
    content: Hi there!
"""


def make_plan(*, method: str = "fixed", correction: str = "holm", family: str = "per_metric",
              min_units: int = 1000, max_days: int = 14, max_units: int = 1_000_000,
              guardrails: bool = True, three_arms: bool = False, rules: str = RULES, analysis: str = "") -> Plan:
    text = BASE
    if three_arms:
        text = text.replace("allocation:\n", THIRD_VARIANT + "allocation:\n")
    if guardrails:
        text += GUARDRAIL
    else:  # a guardrail_harm rule needs a guardrail (E050)
        rules = "".join(line for line in rules.splitlines(True) if "guardrail_harm" not in line)
    text += f"analysis:\n  method: {method}\n  correction: {correction}\n  family: {family}\n" + analysis
    text += f"stopping:\n  min_units_per_variant: {min_units}\n  max_days: {max_days}\n  max_units: {max_units}\n"
    text += rules
    return plan_of_text(text)


def look(plan: Plan, day: float) -> Look:
    """The plan's look at ``day`` (daily looks: look ``day``, capped at ``max_days``)."""
    return plan.schedule.look_at(day * 86400)


def revenue(n) -> Moments:
    """A mean metric with per-unit mean 2 and sd about 3 in every arm."""
    n = np.asarray(n, dtype=np.float64)
    return Moments.of(n, 2.0 * n, (4.0 + 9.0) * n)


def reduction(n, activated, errors=None, metrics: dict | None = None) -> Reduction:
    n = list(n)
    ms = {"activated": Moments.proportion(n, activated)}
    ms["errors"] = Moments.proportion(n, errors if errors is not None else [round(0.01 * k) for k in n])
    ms["revenue"] = revenue(n)
    ms.update(metrics or {})
    excluded = {k: 0 for k in EXCLUDED_KEYS} | {"bad_rows": 3}
    return Reduction(metrics=ms, units=np.asarray(n, dtype=np.int64), excluded=excluded, sql="")


def comparison(ev, metric: str, variant: str = "treatment"):
    return next(c for c in ev.metric(metric).comparisons if c.variant == variant)


# ------------------------------------------------------------------ decisions


def test_ship_winner_when_primary_is_significant():
    plan = make_plan()
    ev = evaluate(plan, reduction([10_000, 10_000], [1000, 1200]), look(plan, 3))
    c = comparison(ev, "activated")
    assert c.significant and c.better and c.trustworthy
    assert c.p_value < 1e-4 and c.adjusted_p_value == pytest.approx(c.p_value)
    assert c.abs_lift == pytest.approx(0.02)
    assert ev.decision.action == "stop_ship_winner"
    assert ev.decision.variant == "treatment"
    assert ev.decision.rule == "primary_significant"
    assert any("treatment" in r for r in ev.decision.reasons)


def test_ship_winner_picks_the_best_significant_treatment():
    plan = make_plan(three_arms=True, guardrails=False)
    ev = evaluate(plan, reduction([10_000] * 3, [1000, 1200, 1350]))
    assert ev.decision.action == "stop_ship_winner"
    assert ev.decision.variant == "treatment_b"


def test_significant_in_the_bad_direction_does_not_ship():
    ev = evaluate(make_plan(), reduction([10_000, 10_000], [1000, 800]))
    c = comparison(ev, "activated")
    assert c.significant and not c.better
    assert ev.decision.rule != "primary_significant"
    assert ev.decision.action != "stop_ship_winner"


def test_rollback_on_guardrail_harm():
    # errors (decrease is good) triple in the treatment; the primary is significant too, but the
    # guardrail rule comes first
    ev = evaluate(make_plan(), reduction([10_000, 10_000], [1000, 1200], errors=[100, 300]))
    g = comparison(ev, "errors").guardrail
    assert g is not None and g.harm and not g.non_inferior
    assert ev.decision.action == "stop_rollback"
    assert ev.decision.rule == "guardrail_harm"
    assert ev.decision.variant == "control"
    assert any("errors" in r for r in ev.decision.reasons)


def test_guardrail_no_harm_when_better_or_shown_non_inferior():
    # fewer errors: not harm even though the guardrail test itself may be inconclusive
    ev = evaluate(make_plan(), reduction([10_000, 10_000], [1000, 1000], errors=[100, 90]))
    assert not comparison(ev, "errors").guardrail.harm
    # slightly more errors but non-inferiority at a 10% margin shown with a large sample
    ev = evaluate(make_plan(), reduction([1_000_000, 1_000_000], [100_000, 100_000], errors=[10_000, 10_050]))
    g = comparison(ev, "errors").guardrail
    assert g.non_inferior and not g.harm


def test_guardrail_harm_at_an_interim_look_needs_a_significant_worsening():
    # 10,000 per arm (planned 57,760), day 3 of 14: an interim look
    plan = make_plan()
    slightly_worse = reduction([10_000, 10_000], [1000, 1000], errors=[100, 115])  # z ≈ 1.0: noise
    g = comparison(evaluate(plan, slightly_worse, look(plan, 3)), "errors").guardrail
    assert not g.non_inferior  # the old rule (not shown and worse) would have fired
    assert not g.harm and g.basis == "significantly_worse"
    assert evaluate(plan, slightly_worse, look(plan, 3)).decision.action == "continue"
    much_worse = reduction([10_000, 10_000], [1000, 1000], errors=[100, 160])  # z ≈ 3.7
    ev = evaluate(plan, much_worse, look(plan, 3))
    assert comparison(ev, "errors").guardrail.harm
    assert ev.decision.action == "stop_rollback" and "interim" in ev.decision.reasons[0]
    # the sequential method's own test is the always-valid one: stricter than the fixed z-test
    seq = make_plan(method="sequential")
    border = reduction([10_000, 10_000], [1000, 1000], errors=[100, 135])  # fixed p ≈ 0.03
    assert comparison(evaluate(plan, border, look(plan, 3)), "errors").guardrail.harm
    g = comparison(evaluate(seq, border, look(seq, 3)), "errors").guardrail
    assert not g.harm and g.basis == "significantly_worse"


def test_guardrail_harm_at_the_final_look_is_non_inferiority_not_shown():
    plan = make_plan()
    slightly_worse = reduction([10_000, 10_000], [1000, 1000], errors=[100, 115])
    for at in (look(plan, 14), look(plan, 20), Look(index=20, seconds=20 * 86400)):  # max_days reached
        g = comparison(evaluate(plan, slightly_worse, at), "errors").guardrail
        assert g.harm and g.basis == "non_inferiority" and not g.non_inferior
    # planned size reached (57,760 per variant) before max_days: also final
    big = reduction([60_000, 60_000], [6000, 6000], errors=[600, 610])
    g = comparison(evaluate(plan, big, look(plan, 5)), "errors").guardrail
    assert g.basis == "non_inferiority" and g.harm == (not g.non_inferior)
    shown = reduction([1_000_000, 1_000_000], [100_000, 100_000], errors=[10_000, 10_050])
    g = comparison(evaluate(plan, shown, look(plan, 14)), "errors").guardrail
    assert g.non_inferior and not g.harm
    d = evaluate(plan, slightly_worse, look(plan, 14)).decision
    assert d.action == "stop_rollback" and "final look" in d.reasons[0]
    errors = next(m for m in evaluate(plan, slightly_worse, look(plan, 14)).to_dict()["metrics"] if m["id"] == "errors")
    assert errors["comparisons"][0]["guardrail"]["basis"] == "non_inferiority"


def test_srm_flag_stops_and_marks_comparisons_untrustworthy():
    ev = evaluate(make_plan(), reduction([10_000, 11_000], [1000, 1300]))
    assert ev.srm.flagged and ev.srm.p_value < 0.001
    assert all(not c.trustworthy for m in ev.metrics for c in m.comparisons)
    assert ev.decision.action == "stop_inconclusive"
    assert ev.decision.rule == "srm"
    assert ev.decision.variant is None


def test_srm_blocks_shipping_even_without_an_srm_rule():
    rules = "  rules:\n    - {when: primary_significant, then: stop_ship_winner}\n"
    ev = evaluate(make_plan(rules=rules), reduction([10_000, 11_000], [1000, 1300]))
    assert ev.srm.flagged
    assert ev.decision.action == "continue"


def test_min_units_gates_primary_significant():
    data = reduction([500, 500], [50, 150])
    gated = evaluate(make_plan(min_units=1000), data)
    assert comparison(gated, "activated").significant
    assert gated.decision.action == "continue" and gated.decision.rule is None
    open_ = evaluate(make_plan(min_units=0), data)
    assert open_.decision.action == "stop_ship_winner"


def test_min_units_gates_guardrail_harm_too():
    plan = make_plan(min_units=1000)
    assert evaluate(plan, reduction([500, 500], [50, 50], errors=[5, 40])).decision.action == "continue"
    ev = evaluate(plan, reduction([1000, 1000], [100, 100], errors=[10, 80]))
    assert ev.decision.action == "stop_rollback"


def test_max_days_at_or_after_the_limit():
    # no guardrail: at day 14 (the final look) an under-powered guardrail would rightly stop for harm first
    plan = make_plan(max_days=14, guardrails=False)
    data = reduction([10_000, 10_000], [1000, 1000])
    assert evaluate(plan, data, look(plan, 13)).decision.action == "continue"
    assert evaluate(plan, data, None).decision.action == "continue"
    # a time past max_days is numbered as the schedule's last look, day 14
    assert look(plan, 20) == look(plan, 14) == plan.schedule.looks[-1] and plan.schedule.is_last(look(plan, 20))
    for at in (look(plan, 14), Look(index=20, seconds=20 * 86400)):
        ev = evaluate(plan, data, at)
        assert (ev.decision.action, ev.decision.rule) == ("stop_inconclusive", "max_days")
        assert ev.day == at.day and ev.decision.reasons == [f"day {int(at.day)} >= max_days 14"]


def test_max_units():
    d = evaluate(make_plan(max_units=20_000), reduction([10_000, 10_000], [1000, 1000])).decision
    assert (d.action, d.rule) == ("stop_inconclusive", "max_units")


def test_continue_otherwise():
    plan = make_plan()
    ev = evaluate(plan, reduction([10_000, 10_000], [1000, 1010]), look(plan, 2))
    assert not comparison(ev, "activated").significant
    assert not ev.srm.flagged
    assert ev.decision.action == "continue"
    assert ev.decision.variant is None and ev.decision.rule is None


def test_futility_when_the_interval_rules_out_the_mde():
    # 5% relative MDE on a 10% rate = 0.005 absolute; with 100k per arm the CI is about ±0.0026
    ev = evaluate(make_plan(), reduction([100_000, 100_000], [10_000, 10_000]))
    assert ev.decision.action == "stop_futility" and ev.decision.rule == "futility"


def test_first_rule_that_holds_decides_even_continue():
    rules = ("  rules:\n    - {when: max_days, then: continue}\n"
             "    - {when: primary_significant, then: stop_ship_winner}\n")
    plan = make_plan(rules=rules)
    d = evaluate(plan, reduction([10_000, 10_000], [1000, 1200]), look(plan, 20)).decision
    assert (d.action, d.rule) == ("continue", "max_days")


# ------------------------------------------------------------------ methods


def test_bayesian_chance_to_beat_and_no_p_value():
    ev = evaluate(make_plan(method="bayesian"), reduction([10_000, 10_000], [1000, 1200], errors=[100, 80]))
    c = comparison(ev, "activated")
    assert 0.999 < c.chance_to_beat <= 1.0
    assert math.isnan(c.p_value) and math.isnan(c.adjusted_p_value)
    assert c.significant and c.better
    # a decrease-is-good metric: fewer errors means a high chance to beat, P(T < C)
    e = comparison(ev, "errors")
    assert 0.5 < e.chance_to_beat < 1.0 and e.better
    # mean metric through the normal model
    assert comparison(ev, "revenue").chance_to_beat == pytest.approx(0.5, abs=1e-6)
    assert ev.decision.action == "stop_ship_winner" and ev.decision.variant == "treatment"
    out = ev.to_dict()
    primary = out["metrics"][0]["comparisons"][0]
    assert primary["p_value"] is None and primary["chance_to_beat"] > 0.999


def test_sequential_uses_always_valid_inference():
    ev = evaluate(make_plan(method="sequential"), reduction([10_000, 10_000], [1000, 1200]))
    fixed_ev = evaluate(make_plan(), reduction([10_000, 10_000], [1000, 1200]))
    c, f = comparison(ev, "activated"), comparison(fixed_ev, "activated")
    assert c.abs_lift == pytest.approx(f.abs_lift)
    assert c.p_value > f.p_value  # the price of continuous monitoring
    assert c.abs_ci[1] - c.abs_ci[0] > f.abs_ci[1] - f.abs_ci[0]
    assert math.isnan(c.chance_to_beat)
    # the relative interval: the confidence sequence's radius on the log ratio, wider than the fixed one
    assert c.rel_ci[0] < c.rel_lift < c.rel_ci[1] and c.rel_ci[1] - c.rel_ci[0] > f.rel_ci[1] - f.rel_ci[0]
    assert c.significant and ev.decision.action == "stop_ship_winner"


# ------------------------------------------------------------------ corrections


def test_correction_changes_significance_near_alpha():
    # two treatments with raw p = 0.037 and 0.028
    data = reduction([10_000] * 3, [1000, 1090, 1095])
    raw = {}
    for correction in ("none", "holm", "bonferroni", "bh"):
        ev = evaluate(make_plan(three_arms=True, correction=correction, guardrails=False), data)
        cs = ev.metric("activated").comparisons
        raw[correction] = [c.significant for c in cs]
        assert [c.p_value for c in cs] == pytest.approx([0.03747274, 0.02824447], rel=1e-6)
    assert raw["none"] == [True, True]
    assert raw["holm"] == [False, False]
    assert raw["bonferroni"] == [False, False]
    assert raw["bh"] == [True, True]


def test_families_separate_metrics():
    # per_metric: the guardrail and the secondary do not dilute the primary's correction
    data = reduction([10_000, 10_000], [1000, 1095])
    for family in ("per_metric", "primary"):
        ev = evaluate(make_plan(family=family), data)
        c = comparison(ev, "activated")
        assert c.adjusted_p_value == pytest.approx(c.p_value)
        assert c.significant


def test_control_not_first_in_the_plan():
    text = BASE.replace("  - id: control\n    content: Welcome!\n", "") + ""
    text = text.replace("allocation:\n", "  - id: control\n    content: Welcome!\n    control: true\nallocation:\n")
    plan = plan_of_text(text)
    assert [v.id for v in plan.variants] == ["treatment", "control"]
    # arms in plan order: treatment first
    red = Reduction(metrics={"activated": Moments.proportion([10_000, 10_000], [1200, 1000])},
                    units=np.array([10_000, 10_000]), excluded={k: 0 for k in EXCLUDED_KEYS}, sql="")
    ev = evaluate(plan, red)
    c = ev.metric("activated").comparisons[0]
    assert (c.variant, c.baseline) == ("treatment", "control")
    assert c.abs_lift == pytest.approx(0.02)
    assert [v.id for v in ev.metric("activated").variants] == ["control", "treatment"]


# ------------------------------------------------------------------ JSON shape


def test_json_shape():
    data = reduction([10_000, 10_000], [1000, 1200])
    plan = make_plan()
    ev = evaluate(plan, data, look(plan, 1))
    out = ev.to_dict()
    text = json.dumps(out, allow_nan=False)  # no NaN / inf anywhere
    assert json.loads(text) == out
    assert {"metrics", "srm", "decision", "excluded"} <= set(out)
    assert [m["id"] for m in out["metrics"]] == ["activated", "errors", "revenue"]
    for m in out["metrics"]:
        assert {"id", "variants", "comparisons"} <= set(m)
        for v in m["variants"]:
            assert {"id", "units", "mean"} <= set(v)
        for c in m["comparisons"]:
            assert {"variant", "baseline", "abs_lift", "abs_ci", "rel_lift", "rel_ci", "p_value",
                    "significant", "chance_to_beat"} <= set(c)
            assert len(c["abs_ci"]) == 2 and len(c["rel_ci"]) == 2
            assert c["chance_to_beat"] is None  # fixed method
    assert out["metrics"][0]["variants"] == [{"id": "control", "units": 10_000, "mean": 0.1},
                                             {"id": "treatment", "units": 10_000, "mean": 0.12}]
    assert set(out["srm"]) >= {"p_value", "flagged"}
    assert set(out["decision"]) == {"action", "variant", "rule", "reasons"}
    assert out["decision"]["action"] == "stop_ship_winner"
    assert out["excluded"]["bad_rows"] == 3 and set(out["excluded"]) == set(EXCLUDED_KEYS)


def test_nan_is_written_as_null():
    # one unit per arm: nothing can be estimated
    ev = evaluate(make_plan(min_units=0), reduction([1, 1], [0, 1], errors=[0, 0]))
    out = ev.to_dict()
    json.dumps(out, allow_nan=False)
    c = out["metrics"][0]["comparisons"][0]
    assert c["p_value"] is None and c["abs_ci"] == [None, None] and c["significant"] is False
    assert ev.decision.action == "continue"


# ------------------------------------------------------------------ group sequential


def test_group_sequential_design_in_the_plan_and_boundaries_at_each_look():
    plan = make_plan(method="sequential", max_days=5, guardrails=False, analysis="  sequential: group\n")
    assert plan.sequential == SequentialDesign(type="group", alpha=0.05, planned_per_variant=57_760,
                                               spending="obrien_fleming")
    assert plan.schedule.every_seconds == 86400 and [k.day for k in plan.schedule.looks] == [1, 2, 3, 4, 5]
    data = reduction([10_000, 10_000], [1000, 1100])  # z ≈ 2.30
    early = evaluate(plan, data, look(plan, 1))
    c = comparison(early, "activated")
    width = (c.abs_ci[1] - c.abs_ci[0]) / 2
    se = math.sqrt(0.1 * 0.9 / 10_000 + 0.11 * 0.89 / 10_000)
    assert width / se > 4.877  # fraction 0.17 at the first look: stricter than the equal-spacing 4.877
    assert not c.significant and early.decision.action == "continue"
    assert math.isnan(c.adjusted_p_value) and 0.02 < c.p_value < 0.025  # nominal p, for information
    final = evaluate(plan, data, look(plan, 5))  # max_days: the last look spends what is left
    c = comparison(final, "activated")
    # 17% of the planned units by max_days: the earlier looks (fractions 0.03-0.14) spent almost nothing,
    # so the last look spends nearly all of alpha
    assert (c.abs_ci[1] - c.abs_ci[0]) / 2 / se == pytest.approx(1.95996, abs=1e-4)
    assert c.significant and final.decision.action == "stop_ship_winner"
    # the planned 57,760 per variant reached at day 5: looks at fractions 0.2, 0.4, ..., 1, and the
    # published last boundary of 5 equally spaced O'Brien-Fleming looks (gsDesign): 2.031
    planned = reduction([57_760, 57_760], [5776, 6007])
    c = comparison(evaluate(plan, planned, look(plan, 5)), "activated")
    se_planned = math.sqrt((0.1 * 0.9 + 0.104 * 0.896) / 57_760)
    assert (c.abs_ci[1] - c.abs_ci[0]) / 2 / se_planned == pytest.approx(2.031, abs=6e-4)
    always_valid_plan = make_plan(method="sequential", max_days=5, guardrails=False)
    always_valid = evaluate(always_valid_plan, data, look(always_valid_plan, 5))
    assert not comparison(always_valid, "activated").significant  # the confidence sequence is wider


def test_group_sequential_pocock_and_the_schema():
    plan = make_plan(method="sequential", max_days=5, guardrails=False,
                     analysis="  sequential: group\n  spending: pocock\n")
    assert plan.sequential.spending == "pocock"
    # the planned units at the last look: 5 equally spaced looks
    c = comparison(evaluate(plan, reduction([57_760, 57_760], [5776, 6007]), look(plan, 5)), "activated")
    se = math.sqrt((0.1 * 0.9 + 0.104 * 0.896) / 57_760)
    assert (c.abs_ci[1] - c.abs_ci[0]) / 2 / se == pytest.approx(2.386, abs=1e-3)  # Pocock-type, K = 5, last look
    assert make_plan().sequential is None
