"""validate's analytic figures (expc.compiler.operating) agree with what `expc simulate` measures on the same design."""

from __future__ import annotations

import math

import pytest
from conftest import check_text, plan_of_text

from expc.compiler.operating import crossing_probability, power_at, reachable_per_variant
from expc.compiler.operating import tested_looks as looks_tested
from expc.runtime.simulate import simulate

R = 3000


def design(method: str, rules: str, truth: str, extra: str = "") -> str:
    return f"""\
version: 1
experiment: {{id: agrees, unit: user_id}}
attributes: {{user_id: string}}
variants:
  - {{id: control, content: A}}
  - {{id: b, content: B}}
metrics:
  - {{id: conv, kind: proportion, event: c, role: primary, mde: 10%, baseline: 0.1}}
analysis: {{method: {method}}}
stopping:
  looks: daily
  max_days: 20
{extra}  rules:
{rules}simulation:
  units_per_day: 4000
  seed: 3
  truth:
    {truth}
"""


PEEK = "    - {when: primary_significant, then: stop_ship_winner}\n    - {when: max_days, then: stop_inconclusive}\n"


@pytest.mark.parametrize("method", ["fixed", "bayesian"])
def test_the_false_positive_rate_of_unadjusted_looks_matches_the_simulation(method: str):
    text = design(method, PEEK, "control: {conv: 0.10}")
    spec = check_text(text).spec
    assert spec is not None
    analytic = crossing_probability(spec.analysis.alpha, looks_tested(spec), two_sided=False)
    simulated = simulate(plan_of_text(text), R, "aa", seed=11).to_dict()["false_positive_rate"]
    se = math.sqrt(analytic * (1 - analytic) / R)
    assert analytic > 0.1 and abs(simulated - analytic) < 4 * se, (analytic, simulated)


def test_the_analytic_power_of_a_test_made_once_matches_the_simulation():
    once = ("    - {when: primary_significant, then: stop_ship_winner}\n"
            "    - {when: max_units, then: stop_inconclusive}\n")
    extra = "  min_units_per_variant: 11000\n  max_units: 22000\n"  # tested once, at day 6: ~12,000 per variant
    text = design("fixed", once, "control: {conv: 0.10}\n    b: {conv: 0.11}", extra)
    spec = check_text(text).spec
    assert spec is not None
    reach = reachable_per_variant(spec)
    assert reach is not None and (reach.per_variant, reach.bound) == (12000, "max_units")  # the look's units
    analytic = power_at(spec, reach.per_variant)
    assert analytic is not None
    simulated = simulate(plan_of_text(text), R, "spec", seed=11).to_dict()["power"]
    se = math.sqrt(analytic * (1 - analytic) / R)
    assert 0.3 < analytic < 0.9 and abs(simulated - analytic) < 4 * se, (analytic, simulated)
