"""runtime/bandit.py: a bandit's simulated operating characteristics (issue 16's Done-when figures) and its looks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import plan_of_text

from expc.compiler.plan import Plan
from expc.runtime.bandit import best_arms, simulate_bandit
from expc.runtime.simulate import design_of, simulate, truth_values

HEADLINES = """\
version: 1
experiment: {id: headline-bandit}
attributes: {user_id: string}
variants:
  - {id: control, content: "Council approves new budget"}
  - {id: ai-1, content: "What the new budget means for you"}
  - {id: ai-2, content: "New budget: five changes"}
  - {id: ai-3, content: "Council passes budget after long debate"}
metrics:
  - {id: click, kind: proportion, event: click, role: primary, mde: 10%, baseline: 5%}
analysis: {method: bandit, bandit: {explore_days: 1, min_weight: 5%, threshold: 95%}}
stopping:
  looks: daily
  max_days: 14
  rules:
    - {when: srm, then: stop_inconclusive}
    - {when: best_arm, then: stop_ship_winner}
    - {when: max_days, then: stop_inconclusive}
simulation:
  units_per_day: 20000
  truth:
    control: {click: 0.05}
    ai-1: {click: 0.055}
    ai-2: {click: 0.05}
    ai-3: {click: 0.05}
"""
R = 2000


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of_text(HEADLINES)


def test_one_arm_ten_percent_better_is_picked_at_least_90_percent_of_the_time_with_less_regret(plan: Plan) -> None:
    result = simulate(plan, R).to_dict()
    b = result["bandit"]
    assert b["best"] == ["ai-1"]
    assert b["pick_rate"] >= 0.9
    assert b["regret"] + 2 * b["regret_se"] < b["equal_split"]["regret"] - 2 * b["equal_split"]["regret_se"]
    assert b["false_ship_rate"] <= 0.01
    weights = b["weights"]
    assert weights[0]["weights"] == {a: 0.25 for a in plan.arm_ids}  # the exploration day
    assert weights[-1]["weights"]["ai-1"] > 0.6
    assert all(w >= 0.05 - 1e-9 for row in weights for w in row["weights"].values())


def test_all_arms_equal_ship_a_treatment_at_most_alpha_of_the_time(plan: Plan) -> None:
    result = simulate(plan, R, truth="aa").to_dict()
    assert result["false_positive_rate"] <= plan.analysis.alpha
    assert result["bandit"]["false_ship_rate"] == result["false_positive_rate"]
    assert "pick_rate" not in result["bandit"]


def test_the_period_weighted_estimate_is_unbiased_when_the_base_rate_drifts(plan: Plan) -> None:
    design = design_of(plan)
    base = np.linspace(0.08, 0.03, design.looks)  # interest fades while the bandit moves traffic to ai-1
    means = np.outer(base, [1.0, 1.1, 1.0, 1.0])
    runs = simulate_bandit(plan, R, means=means)
    share = design.entering / design.entering.sum()
    estimand = share @ (means - means[:, :1])
    error = (runs.final_means - runs.final_means[:, :1]) - estimand
    se = error.std(axis=0, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(error.mean(axis=0)[1:]) <= 2 * se[1:])
    pooled = (runs.pooled_means - runs.pooled_means[:, :1]) - estimand
    assert pooled.mean(axis=0)[1] < -10 * se[1]  # pooling the arms' units would reverse ai-1's lift (Simpson)


def test_simulation_is_reproducible_and_equal_split_keeps_equal_weights(plan: Plan) -> None:
    a, b = simulate_bandit(plan, 50, seed=3), simulate_bandit(plan, 50, seed=3)
    assert np.array_equal(a.pick, b.pick) and np.array_equal(a.regret, b.regret)
    equal = simulate_bandit(plan, 50, seed=3, equal_split=True)
    assert np.allclose(equal.weights, 0.25)


def test_best_arms_is_every_arm_when_all_are_equal(plan: Plan) -> None:
    assert best_arms(plan, truth_values(plan, "aa")) == [0, 1, 2, 3]
    assert best_arms(plan, truth_values(plan)) == [1]


def test_the_simulate_text_compares_the_bandit_with_an_equal_split(plan: Plan) -> None:
    from expc.simulate_report import render_text

    text = render_text(simulate(plan, 100).to_dict())
    assert "Design: bandit (Thompson sampling)" in text
    assert "picks the truly best arm (ai-1)" in text and "equal split" in text
    assert "Mean weights over time" in text


def test_guardrails_still_stop_a_bandit() -> None:
    text = HEADLINES.replace(
        "  - {id: click, kind: proportion, event: click, role: primary, mde: 10%, baseline: 5%}\n",
        "  - {id: click, kind: proportion, event: click, role: primary, mde: 10%, baseline: 5%}\n"
        "  - {id: dwell, kind: mean, event: dwell, role: guardrail, direction: increase, margin: 2%, sd: 30}\n",
    ).replace("    - {when: srm, then: stop_inconclusive}\n",
              "    - {when: srm, then: stop_inconclusive}\n"
              "    - {when: guardrail_harm, then: stop_rollback}\n").replace(
        "    ai-1: {click: 0.055}\n", "    ai-1: {click: 0.055, dwell: 40}\n").replace(
        "    control: {click: 0.05}\n", "    control: {click: 0.05, dwell: {mean: 50, sd: 30}}\n")
    harmful = plan_of_text(text)
    result = simulate(harmful, 300).to_dict()
    assert result["decisions"]["stop_rollback"] > 0.9  # the clickier headline shortens reading: rolled back
    assert result["rules_fired"]["1:guardrail_harm"] > 0.9


def test_a_mean_primary_uses_the_normal_model_and_a_decrease_can_be_good() -> None:
    text = HEADLINES.replace("{id: click, kind: proportion, event: click, role: primary, mde: 10%, baseline: 5%}",
                             "{id: wait, kind: mean, event: wait, role: primary, direction: decrease, sd: 20}").replace(
        "    control: {click: 0.05}\n    ai-1: {click: 0.055}\n    ai-2: {click: 0.05}\n    ai-3: {click: 0.05}\n",
        "    control: {wait: {mean: 30, sd: 20}}\n    ai-1: {wait: 30}\n    ai-2: {wait: 29.5}\n    ai-3: {wait: 30}\n")
    waiting = plan_of_text(text)
    spec_run = simulate(waiting, 400).to_dict()["bandit"]
    assert spec_run["best"] == ["ai-2"] and spec_run["pick_rate"] >= 0.9
    assert spec_run["regret"] < spec_run["equal_split"]["regret"]
    assert simulate(waiting, 400, truth="aa").to_dict()["false_positive_rate"] <= 0.05


def test_the_news_headlines_example_picks_its_better_headline_and_keeps_false_ships_and_rollbacks_under_alpha(
        ) -> None:
    """specs/news-headlines.yaml: 4 judged candidates and the desk's headline, ai-2 truly 10% better."""
    from pathlib import Path

    import expc

    plan = expc.compile_file(Path(__file__).resolve().parents[2] / "specs" / "news-headlines.yaml")
    b = simulate(plan, 1000).to_dict()["bandit"]
    assert b["best"] == ["ai-2"] and b["pick_rate"] >= 0.9
    assert b["regret"] + 2 * b["regret_se"] < b["equal_split"]["regret"] - 2 * b["equal_split"]["regret_se"]
    aa = simulate(plan, 1000, truth="aa").to_dict()
    assert aa["false_positive_rate"] <= plan.analysis.alpha
    assert aa["false_rollback_rate"] <= plan.analysis.alpha  # its dwell-time guardrail, read at every look
