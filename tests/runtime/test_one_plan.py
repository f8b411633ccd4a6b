"""One plan, one truth: a simulated run and `expc simulate` take the same looks and the same truth from the plan,
and the decisions they share keep their error rates (group-sequential designs, Bayesian peeking)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import check_text, codes, plan_of_text

from expc.compiler.plan import Plan
from expc.runtime.generate.runner import GenerateOptions
from expc.runtime.run import RunOptions, execute
from expc.runtime.simulate import design_of, simulate
from expc.runtime.synthetic import draw_outcomes, draw_units


def spec(looks: str = "daily", max_days: int | None = 10, sim_days: int | None = None, method: str = "fixed",
         metric: str = "{id: conv, kind: proportion, event: c, role: primary, mde: 10%}",
         truth: str = "control: {conv: 0.10}", per_day: int = 200,
         rules: str = "    - {when: max_days, then: stop_inconclusive}\n", analysis: str = "") -> str:
    return f"""\
version: 1
experiment: {{id: one-plan, unit: user_id}}
attributes: {{user_id: string}}
variants:
  - {{id: control, content: A}}
  - {{id: b, content: B}}
metrics:
  - {metric}
analysis: {{method: {method}{analysis}}}
stopping:
  looks: {looks}
{f"  max_days: {max_days}" if max_days else ""}
  rules:
{rules}simulation:
  units_per_day: {per_day}
{f"  days: {sim_days}" if sim_days else ""}
  seed: 2
  truth:
    {truth}
"""


def run_days(plan: Plan, run_dir: Path) -> list[float]:
    report = execute(plan, RunOptions(run_dir=run_dir, generation=GenerateOptions(offline=True))).report
    return [h["day"] for h in report["history"]]


MATRIX = [(looks, days) for looks in ("daily", "12h", "2d", "3d", "weekly") for days in (7, 10, 13)]


@pytest.mark.parametrize(("looks", "max_days"), MATRIX)
def test_a_simulated_run_and_simulate_take_the_same_looks(looks: str, max_days: int, tmp_path: Path):
    plan = plan_of_text(spec(looks, max_days))
    simulated = [float(d) for d in design_of(plan).look_days]
    assert run_days(plan, tmp_path / "r") == simulated
    assert simulated[-1] == max_days and all(d <= max_days for d in simulated)
    assert simulated == [look.day for look in plan.schedule.looks]


def test_without_max_days_both_end_at_the_simulated_horizon(tmp_path: Path):
    plan = plan_of_text(spec("weekly", None, sim_days=9, rules="    - {when: srm, then: stop_inconclusive}\n"))
    assert run_days(plan, tmp_path / "r") == [float(d) for d in design_of(plan).look_days] == [7.0, 9.0]


def test_a_bare_number_for_a_mean_keeps_the_controls_sd_in_both():
    plan = plan_of_text(spec(metric="{id: rev, kind: mean, event: o, role: primary, mde: 5%}",
                             truth="control: {rev: {mean: 10, sd: 5}}\n    b: {rev: 11}"))
    from_simulate = simulate(plan, 20, "spec").to_dict()["truth_values"]
    units, entry = draw_units(plan, 2, seed=1)
    from_run = draw_outcomes(plan, units, entry, [0, 1] * (len(units) // 2), seed=1).true_values["rev"]
    assert from_simulate["b"]["rev"] == {"mean": 11.0, "sd": 5.0}
    assert from_run["b"] == (11.0, 5.0) and from_run["control"] == (10.0, 5.0)


# ================================================================== group-sequential designs keep their alpha


def group_plan(spending: str, share: float, max_days: int = 28) -> Plan:
    """A group-sequential A/A design whose planned units arrive at ``share`` of ``max_days``."""
    rules = ("    - {when: primary_significant, then: stop_ship_winner}\n"
             "    - {when: max_days, then: stop_inconclusive}\n")
    text = spec(max_days=max_days, method="sequential", rules=rules,
                analysis=f", sequential: group, spending: {spending}")
    n = plan_of_text(text).planned_per_variant
    assert n is not None
    per_day = math.ceil(2 * n / (share * max_days))
    return plan_of_text(text.replace("units_per_day: 200", f"units_per_day: {per_day}"))


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
@pytest.mark.parametrize("share", [0.5, 0.75, 1.0])
def test_group_sequential_aa_ship_rate_is_alpha_over_two_whatever_the_traffic(spending: str, share: float):
    """Before: O'Brien-Fleming shipped 5.5% of A/A runs when the planned units came at half of max_days."""
    R = 10_000
    rate = simulate(group_plan(spending, share), R, "aa", seed=3).to_dict()["false_positive_rate"]
    se = math.sqrt(0.025 * 0.975 / R)
    assert abs(rate - 0.025) <= 2 * se, rate


def test_a_group_design_that_reaches_its_planned_units_early_ends_there():
    plan = group_plan("obrien_fleming", 0.5)
    d = simulate(plan, 500, "aa", seed=1).to_dict()
    assert d["stopping_day"]["stopped"] == 1.0 and d["stopping_day"]["quantiles"]["p95"] <= 15
    assert d["rules_fired"]["1:max_days"] > 0.9


def test_validate_warns_when_a_group_design_outlives_its_planned_units():
    text = spec(method="sequential", analysis=", sequential: group", per_day=20000, max_days=28,
                rules="    - {when: primary_significant, then: stop_ship_winner}\n")
    d = next(d for d in check_text(text).diagnostics if d.code == "W010")
    assert "before max_days (28)" in d.message and "set `max_days:" in d.hint


# ================================================================== Bayesian peeking


def test_validate_warns_about_bayesian_decisions_at_every_look_and_the_hint_controls_the_rate():
    rules = ("    - {when: primary_significant, then: stop_ship_winner}\n"
             "    - {when: max_days, then: stop_inconclusive}\n")
    text = spec(method="bayesian", max_days=28, per_day=2000, rules=rules,
                metric="{id: conv, kind: proportion, event: c, role: primary, mde: 10%}")
    result = check_text(text)
    assert "W011" in codes(result)
    peeking = simulate(plan_of_text(text), 2000, "aa", seed=5).to_dict()["false_positive_rate"]
    assert peeking > 0.05  # the rate the warning talks about
    hint = next(d for d in result.diagnostics if d.code == "W011").hint
    assert hint.startswith("look once, at the end: `looks: 28d` with `max_days: 28`")
    fixed = spec(method="bayesian", looks="28d", max_days=28, per_day=2000, rules=rules,
                 metric="{id: conv, kind: proportion, event: c, role: primary, mde: 10%}")
    assert "W011" not in codes(check_text(fixed))
    rate = simulate(plan_of_text(fixed), 4000, "aa", seed=5).to_dict()["false_positive_rate"]
    assert rate <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 4000)


def test_the_w006_hint_controls_the_false_positive_rate_of_a_fixed_test():
    rules = ("    - {when: primary_significant, then: stop_ship_winner}\n"
             "    - {when: max_days, then: stop_inconclusive}\n")
    text = spec(method="fixed", max_days=28, per_day=4000, rules=rules)
    assert "W006" in codes(check_text(text))
    assert simulate(plan_of_text(text), 2000, "aa", seed=5).to_dict()["false_positive_rate"] > 0.05
    hint = next(d.hint for d in check_text(text).diagnostics if d.code == "W006")
    assert hint.startswith("look once, at the end: `looks: 28d` with `max_days: 28`")
    fixed = spec(method="fixed", looks="28d", max_days=28, per_day=4000, rules=rules)
    assert "W006" not in codes(check_text(fixed))
    rate = simulate(plan_of_text(fixed), 4000, "aa", seed=5).to_dict()["false_positive_rate"]
    assert rate <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 4000)
    better = spec(method="fixed", looks="28d", max_days=28, per_day=4000, rules=rules,
                  truth="control: {conv: 0.10}\n    b: {conv: 0.11}")  # the MDE, 10%
    assert simulate(plan_of_text(better), 2000, "spec", seed=5).to_dict()["power"] >= 0.8  # one test, with power
