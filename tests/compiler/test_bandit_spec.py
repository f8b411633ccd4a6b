"""A bandit's spec: its settings compile into the plan, and bad settings are located errors (E075, E076)."""

from __future__ import annotations

from conftest import check_text, codes, located, plan_of_text

BANDIT = """\
version: 1
experiment: {id: bandit}
attributes: {user_id: string}
variants:
  - {id: a, content: "A"}
  - {id: b, content: "B"}
  - {id: c, content: "C"}
metrics:
  - {id: click, kind: proportion, event: click, role: primary}
  - {id: dwell, kind: ratio, numerator: dwell, denominator: view, role: guardrail, direction: increase, margin: 5%}
analysis: {method: bandit, bandit: {explore_days: 2, min_weight: 10%, threshold: 99%}}
stopping:
  max_days: 14
  rules:
    - {when: best_arm, then: stop_ship_winner}
    - {when: guardrail_harm, then: stop_rollback}
    - {when: max_days, then: stop_inconclusive}
"""


def test_a_bandit_compiles_with_its_settings_and_other_plans_have_none() -> None:
    plan = plan_of_text(BANDIT)
    assert plan.analysis.method == "bandit"
    assert plan.analysis.bandit is not None and plan.analysis.bandit.threshold == 0.99
    other = plan_of_text(BANDIT.replace("method: bandit", "method: fixed").replace("best_arm", "primary_significant"))
    assert other.analysis.bandit is None and "bandit" not in other.to_dict()["analysis"]


def test_a_ratio_primary_is_a_located_error() -> None:
    text = BANDIT.replace("kind: proportion, event: click", "kind: ratio, numerator: click, denominator: view")
    result = check_text(text)
    assert "E075" in codes(result)
    assert located(result, "E075") == [(9, 23)]


def test_a_minimum_weight_above_one_over_arms_and_a_threshold_of_one_are_errors() -> None:
    result = check_text(BANDIT.replace("min_weight: 10%", "min_weight: 40%").replace("threshold: 99%", "threshold: 1"))
    assert codes(result).count("E075") == 2


def test_best_arm_needs_a_bandit_and_a_bandit_does_not_stop_on_significance() -> None:
    fixed = check_text(BANDIT.replace("method: bandit", "method: fixed"))
    assert "E076" in codes(fixed)
    assert located(fixed, "E076") == [(15, 14)]
    peeking = check_text(BANDIT.replace("best_arm", "primary_significant"))
    assert "E076" in codes(peeking)


def test_a_bandit_looks_at_most_500_times() -> None:
    result = check_text(BANDIT.replace("  max_days: 14\n", "  max_days: 14\n  looks: 30m\n"))
    assert "E070" in codes(result)
    assert "a bandit's limit is 500" in next(d.message for d in result.diagnostics if d.code == "E070")
    assert "E070" not in codes(check_text(BANDIT.replace("  max_days: 14\n", "  max_days: 14\n  looks: 1h\n")))


def test_a_simulated_bandit_counts_each_arms_outcomes_against_the_limits() -> None:
    text = BANDIT + "simulation:\n  units_per_day: 200000\n  days: 10\n"  # 2,000,000 units x 3 arms
    result = check_text(text)
    assert "E070" in codes(result)
    assert "under each of its 3 arms" in next(d.message for d in result.diagnostics if d.code == "E070")
    assert "E070" not in codes(check_text(BANDIT.replace("method: bandit", "method: fixed").replace(
        "best_arm", "primary_significant") + "simulation:\n  units_per_day: 200000\n  days: 10\n"))


def test_a_bandit_does_not_stop_on_segment_harm_yet() -> None:
    text = BANDIT.replace("analysis: {method: bandit,", "attributes_extra: {}\nanalysis: {segments: [country], "
                          "method: bandit,").replace("attributes_extra: {}\n", "").replace(
        "attributes: {user_id: string}", "attributes: {user_id: string, country: string}").replace(
        "    - {when: max_days, then: stop_inconclusive}\n",
        "    - {when: segment_harm, then: stop_rollback}\n    - {when: max_days, then: stop_inconclusive}\n")
    result = check_text(text)
    assert codes(result).count("E076") == 1
    assert "segment_harm" in next(d.message for d in result.diagnostics if d.code == "E076")


def test_min_weight_is_checked_against_the_arms_a_run_assigns_to_candidates_included() -> None:
    """`ai` with 6 candidates, 4 kept: 5 arms with the desk's, so each can keep at most 20%."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "specs" / "news-headlines.yaml").read_text()
    assert "E075" not in codes(check_text(text.replace("min_weight: 5%", "min_weight: 20%")))
    result = check_text(text.replace("min_weight: 5%", "min_weight: 25%"))
    assert codes(result) == ["E075"] and "5 arms would need 125%" in result.diagnostics[0].message
