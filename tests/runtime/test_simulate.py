"""runtime/simulate.py: exact draws, decisions equal to evaluate()'s, error rates of the example design."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ROOT, check_text, codes, edited, plan_of_text

from expc import compile_file
from expc.compiler.plan import Plan
from expc.runtime.evaluate import evaluate
from expc.runtime.simulate import (
    Draws,
    SimulationError,
    decide_draws,
    design_of,
    draw,
    look_reduction,
    simulate,
    truth_values,
)


@pytest.fixture(scope="module")
def welcome() -> Plan:
    return compile_file(ROOT / "specs" / "welcome-email.yaml")


def primary_only(plan: Plan, **truth: float) -> Plan:
    """The plan with only the primary-metric rules (no guardrail rule) and, optionally, another treatment truth."""
    def edit(p: dict) -> None:
        p["stopping"]["rules"] = [r for r in p["stopping"]["rules"] if r["when"] != "guardrail_harm"]
        for variant, rate in truth.items():
            p["simulation"]["truth"][variant]["activated"] = {"mean": rate, "sd": None}

    return edited(plan, edit)


def look_of(d: Draws, plan: Plan, k: int):
    """The schedule's look ``k`` (0-based) of a simulation."""
    assert plan.simulation is not None
    return plan.simulation.looks[k]


def spec(method: str, metrics: str, rules: str, truth: str, variants: str = "", extra: str = "",
         days: int = 10, per_day: int = 1200, min_units: int = 100, max_units: str = "  max_units: 50000\n") -> str:
    return f"""\
version: 1
experiment: {{id: sim-test, unit: user_id}}
attributes: {{user_id: string}}
variants:
  - {{id: control, content: A}}
  - {{id: b, content: B}}
{variants}metrics:
{metrics}analysis: {{method: {method}, alpha: 0.05{extra}}}
stopping:
  looks: daily
  min_units_per_variant: {min_units}
  max_days: {days}
{max_units}  rules:
{rules}simulation:
  units_per_day: {per_day}
  seed: 1
  truth:
{truth}"""


# ================================================================== the model


def test_design_follows_the_plan_traffic_and_looks(welcome):
    d = design_of(welcome)
    assert d.arm_ids == ("control", "personalized")
    assert d.looks == 28 and list(d.look_days) == list(range(1, 29))
    assert list(d.last) == [False] * 27 + [True]
    assert d.entering.sum() == 6000 * 28 and set(d.entering) == {6000}


def test_weekly_looks_and_layer_share_and_coverage():
    text = spec("fixed", "  - {id: m, kind: proportion, event: e, role: primary, mde: 10%}\n",
                "    - {when: max_days, then: stop_inconclusive}\n",
                "    control: {m: 0.1}\n", days=20).replace("looks: daily", "looks: weekly")
    text = text.replace("metrics:", "allocation: {coverage: 50%, layer: {id: l, range: [0, 0.5]}}\nmetrics:", 1)
    d = design_of(plan_of_text(text))
    assert list(d.look_days) == [7, 14, 20]  # no look after max_days: the last is at the 20-day horizon
    assert d.per_day == pytest.approx(1200 * 0.5 * 0.5)
    assert d.entering.sum() == 300 * 20


def test_mean_and_ratio_draws_have_the_true_mean_and_delta_method_sd():
    text = spec("fixed",
                "  - {id: rev, kind: mean, event: o, role: primary, mde: 5%}\n"
                "  - {id: rps, kind: ratio, numerator: o, denominator: s}\n",
                "    - {when: max_days, then: stop_inconclusive}\n",
                "    control: {rev: {mean: 2.0, sd: 10.0}, rps: {mean: 1.5, sd: 4.0}}\n", days=3)
    plan = plan_of_text(text)
    d = draw(plan, 4000, "spec", seed=3)
    for mid, mean, sd in (("rev", 2.0, 10.0), ("rps", 1.5, 4.0)):
        m = d.metrics[mid]
        est, var = m.mean()[:, -1, :], m.variance()[:, -1, :]
        n = m.n[:, -1, :]
        assert np.mean(est) == pytest.approx(mean, abs=4 * sd / math.sqrt(n.sum()))
        assert np.sqrt(np.mean(var)) == pytest.approx(sd, rel=0.01)
        z = (est - mean) / np.sqrt(var / n)  # calibrated: the estimate's spread is what the variance says
        assert np.std(z) == pytest.approx(1.0, abs=0.05)


def test_truth_is_the_plans_table_and_aa_copies_the_control_row(welcome):
    spec_truth = truth_values(welcome, "spec")
    assert spec_truth["personalized"]["activated"] == (0.106, None)
    aa = truth_values(welcome, "aa")
    assert aa["personalized"] == aa["control"] == spec_truth["control"]


def test_a_spec_without_simulation_is_refused_and_one_without_an_sd_does_not_validate(welcome):
    with pytest.raises(SimulationError, match="no `simulation` block"):
        simulate(edited(welcome, lambda p: p.update(simulation=None)), 10)
    text = spec("fixed", "  - {id: rev, kind: mean, event: o, role: primary, mde: 5%, baseline: 2}\n",
                "    - {when: max_days, then: stop_inconclusive}\n", "")
    result = check_text(text.replace("  truth:\n", "  truth: {}\n"))
    assert "E060" in codes(result) and "needs a per-unit sd" in str(result.diagnostics)
    with pytest.raises(ValueError):
        simulate(welcome, 0)


# ================================================================== decisions equal evaluate()'s


PROPORTIONS = """\
  - {id: conv, kind: proportion, event: c, role: primary, mde: 10%}
  - {id: err, kind: proportion, event: x, role: guardrail, direction: decrease, margin: 30%}
"""
ALL_RULES = """\
    - {when: srm, then: stop_inconclusive}
    - {when: guardrail_harm, then: stop_rollback}
    - {when: primary_significant, then: stop_ship_winner}
    - {when: futility, then: stop_futility}
    - {when: max_units, then: stop_inconclusive}
    - {when: max_days, then: continue}
"""
CASES = {
    "sequential, 2 arms": spec(
        "sequential", PROPORTIONS, ALL_RULES,
        "    control: {conv: 0.10, err: 0.05}\n    b: {conv: 0.115, err: 0.05}\n", days=8),
    "fixed, 3 arms, bonferroni, means and a ratio guardrail": spec(
        "fixed",
        "  - {id: rev, kind: mean, event: o, role: primary, mde: 5%}\n"
        "  - {id: rps, kind: ratio, numerator: o, denominator: s, role: guardrail, direction: increase, margin: 10%}\n",
        ALL_RULES,
        "    control: {rev: {mean: 2.0, sd: 8.0}, rps: {mean: 1.0, sd: 3.0}}\n"
        "    b: {rev: {mean: 2.3, sd: 8.0}}\n    c: {rev: {mean: 2.1, sd: 8.5}, rps: {mean: 0.9, sd: 3.0}}\n",
        variants="  - {id: c, content: C, weight: 2}\n", extra=", correction: bonferroni", days=8,
        max_units="  max_units: 9000\n"),
    "bayesian, proportions, 3 arms": spec(
        "bayesian", PROPORTIONS, ALL_RULES,
        "    control: {conv: 0.10, err: 0.02}\n    b: {conv: 0.12, err: 0.02}\n    c: {conv: 0.10, err: 0.03}\n",
        variants="  - {id: c, content: C}\n", days=5, per_day=3000),
    "bayesian, means": spec(
        "bayesian",
        "  - {id: rev, kind: mean, event: o, role: primary, mde: 10%}\n"
        "  - {id: rps, kind: ratio, numerator: o, denominator: s, role: guardrail, direction: increase, margin: 10%}\n",
        ALL_RULES,
        "    control: {rev: {mean: 2.0, sd: 8.0}, rps: {mean: 1.0, sd: 3.0}}\n"
        "    b: {rev: {mean: 2.2, sd: 8.0}, rps: {mean: 1.05, sd: 3.0}}\n", days=6),
    "group sequential, 3 arms, pocock": spec(
        "sequential", PROPORTIONS, ALL_RULES,
        "    control: {conv: 0.10, err: 0.05}\n    b: {conv: 0.113, err: 0.05}\n    c: {conv: 0.10, err: 0.06}\n",
        variants="  - {id: c, content: C}\n", extra=", sequential: group, spending: pocock", days=8, per_day=3000),
    "fixed, futility and max_units": spec(
        "fixed", PROPORTIONS, ALL_RULES,
        "    control: {conv: 0.10, err: 0.05}\n", days=6, per_day=12000, max_units="  max_units: 30000\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_look_decides_as_evaluate_does(name):
    """For a few replications, each look's action and variant equal evaluate()'s on the same moments."""
    plan = plan_of_text(CASES[name])
    d = draw(plan, 4, "spec", seed=11)
    looks = decide_draws(plan, d)
    seen = set()
    for r in range(4):
        for k in range(d.design.looks):
            want = evaluate(plan, look_reduction(d, plan, r, k), look_of(d, plan, k)).decision
            got_variant = int(looks.variant[r, k])
            assert looks.actions[looks.action[r, k]] == want.action, (r, k, want)
            assert (d.design.arm_ids[got_variant] if got_variant >= 0 else None) == want.variant, (r, k, want)
            seen.add(want.action)
    assert len(seen) >= 2, seen  # the case exercises more than one outcome


def test_a_sample_ratio_mismatch_decides_as_evaluate_does(welcome):
    d = draw(welcome, 3, "aa", seed=1)
    units = d.units.copy()
    units[0, :, 1] = (units[0, :, 1] * 0.9).astype(units.dtype)  # replication 0 loses 10% of its treatment units
    d = Draws(d.design, units, d.metrics)
    looks = decide_draws(welcome, d)
    for r in range(3):
        for k in (0, 5, 27):
            want = evaluate(welcome, look_reduction(d, welcome, r, k), look_of(d, welcome, k)).decision
            assert looks.actions[looks.action[r, k]] == want.action
    assert looks.actions[looks.action[0, 5]] == "stop_inconclusive" and looks.rule[0, 5] == 0


def test_stopping_look_and_decision_of_simulate_equal_evaluate_at_the_first_stop(welcome):
    """simulate() keeps, per replication, the first look where evaluate() stops (here with the guardrail rule)."""
    plan = primary_only(welcome, personalized=0.112)
    d = draw(plan, 6, "spec", seed=5)
    looks = decide_draws(plan, d)
    for r in range(6):
        stop = None
        for k in range(d.design.looks):
            ev = evaluate(plan, look_reduction(d, plan, r, k), look_of(d, plan, k)).decision
            if ev.action != "continue":
                stop = (k, ev.action, ev.variant)
                break
        stops = np.flatnonzero(looks.stops()[r])
        got = (int(stops[0]), looks.actions[looks.action[r, stops[0]]],
               d.design.arm_ids[looks.variant[r, stops[0]]] if looks.variant[r, stops[0]] >= 0 else None)
        assert got == stop


def test_beta_screening_gives_the_exact_decisions():
    plan = plan_of_text(CASES["bayesian, proportions, 3 arms"])
    d = draw(plan, 25, "aa", seed=2)
    fast, exact = decide_draws(plan, d), decide_draws(plan, d, exact=True)
    np.testing.assert_array_equal(fast.action, exact.action)
    np.testing.assert_array_equal(fast.variant, exact.variant)


# ================================================================== operating characteristics


def test_aa_false_positive_rate_of_the_welcome_design_is_within_alpha(welcome):
    """Always-valid inference at 28 daily looks keeps the A/A rate of shipping at most alpha."""
    n = 3000
    as_shipped = simulate(welcome, n, "aa", seed=1).to_dict()
    assert as_shipped["false_positive_rate"] <= 0.05
    primary = simulate(primary_only(welcome), n, "aa", seed=1).to_dict()  # the primary test alone
    se = math.sqrt(0.05 * 0.95 / n)
    assert 0.003 < primary["false_positive_rate"] <= 0.05 + 2 * se
    naive = edited(primary_only(welcome), lambda p: p["analysis"].update(method="fixed"))  # peeking: far above
    assert simulate(naive, n, "aa", seed=1).to_dict()["false_positive_rate"] > 0.10


def test_power_increases_with_the_effect(welcome):
    powers = [simulate(primary_only(welcome, personalized=rate), 400, "spec", seed=4).to_dict()["power"]
              for rate in (0.102, 0.106, 0.112)]
    assert powers[0] < powers[1] < powers[2]
    assert powers[2] > 0.9


def test_same_seed_same_result_other_seed_other_result(welcome):
    a = simulate(welcome, 300, "spec", seed=9).to_dict()
    b = simulate(welcome, 300, "spec", seed=9).to_dict()
    c = simulate(welcome, 300, "spec", seed=10).to_dict()
    assert a == b
    assert a != c


def test_result_shape(welcome):
    d = simulate(welcome, 200, "spec").to_dict()
    assert d["seed"] == 7 and d["replications"] == 200 and d["truth"] == "spec"
    assert d["best_variant"] == ["personalized"] and 0 <= d["power"] <= 1
    assert "false_positive_rate" not in d
    assert sum(d["decisions"].values()) == pytest.approx(1.0)
    assert sum(h["share"] for h in d["stopping_day"]["histogram"]) == pytest.approx(d["stopping_day"]["stopped"])
    q = d["units_used"]["quantiles"]
    assert q["p5"] <= q["p50"] <= q["p95"] <= 6000 * 28
    aa = simulate(welcome, 50, "aa").to_dict()
    assert "power" not in aa and aa["false_positive_rate"] is not None
