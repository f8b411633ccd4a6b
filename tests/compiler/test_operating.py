"""Analytic operating characteristics (expc.compiler.operating) and the design checks that use them: W001, W006,
W011 with their figures, W021 when the analytic power at the MDE is below the minimum."""

from __future__ import annotations

import pytest
from conftest import BASE, check_text, codes, located
from conftest import SIMULATED_ACTIVATION as SIM

from expc.compiler.checks import with_min_power
from expc.compiler.operating import (
    MAX_LOOKS,
    crossing_probability,
    power_at,
    reachable_per_variant,
)
from expc.compiler.operating import tested_looks as looks_tested
from expc.compiler.planning import sample_size

PEEK = "stopping:\n  rules:\n    - {when: primary_significant, then: stop_ship_winner}\n"


@pytest.mark.parametrize(
    "looks, expected",  # Armitage, McPherson & Rowe (1969); Jennison & Turnbull (2000), table 1.1
    [(1, 0.05), (2, 0.083), (3, 0.107), (5, 0.142), (10, 0.193), (20, 0.248), (50, 0.320)],
)
def test_equally_spaced_unadjusted_looks_give_the_classical_rates(looks: int, expected: float):
    assert crossing_probability(0.05, range(1, looks + 1)) == pytest.approx(expected, abs=0.0015)


def test_one_sided_crossing_is_about_half_and_one_look_spends_alpha():
    assert crossing_probability(0.01, [7.0]) == pytest.approx(0.01, abs=1e-12)
    assert crossing_probability(0.05, [3.0], two_sided=False) == pytest.approx(0.025, abs=1e-12)
    two, one = crossing_probability(0.05, range(1, 29)), crossing_probability(0.05, range(1, 29), two_sided=False)
    assert two / 2 <= one <= two / 2 + 0.01
    assert crossing_probability(0.05, []) == 0.0 and crossing_probability(1.0, [1, 2]) == 0.0


def test_only_the_information_ratios_matter_and_many_looks_are_bounded():
    assert crossing_probability(0.05, [1000, 2000, 3000]) == pytest.approx(crossing_probability(0.05, [1, 2, 3]))
    many = crossing_probability(0.05, range(1, 20 * MAX_LOOKS))  # thinned to MAX_LOOKS: a lower bound
    assert crossing_probability(0.05, range(1, 101)) < many < 1


def test_power_at_the_planned_units_is_the_planned_power():
    spec = check_text(BASE).spec
    assert spec is not None
    planned, _ = sample_size(spec)
    assert planned is not None and planned.per_variant == 57760
    assert power_at(spec, planned.per_variant) == pytest.approx(0.8, abs=1e-4)
    assert power_at(spec, planned.per_variant / 4) < 0.4 < power_at(spec, planned.per_variant * 2)
    mean = check_text(BASE.replace("kind: proportion", "kind: mean").replace("    baseline: 0.1\n",
                                                                             "    baseline: 10\n    sd: 30\n")).spec
    assert mean is not None
    planned_mean, _ = sample_size(mean)
    assert planned_mean is not None and power_at(mean, planned_mean.per_variant) == pytest.approx(0.8, abs=1e-4)


def test_power_of_an_always_valid_sequence_at_its_inflated_units_is_the_planned_power():
    spec = check_text(BASE + "analysis:\n  method: sequential\n").spec
    assert spec is not None
    planned, _ = sample_size(spec)
    assert planned is not None and planned.fixed_horizon_per_variant is not None
    assert power_at(spec, planned.per_variant) == pytest.approx(0.8, abs=1e-3)
    assert power_at(spec, planned.fixed_horizon_per_variant) < 0.6  # the same units as a fixed test: less power


def test_reach_is_the_fewer_of_max_days_and_max_units():
    spec = check_text(BASE + SIM + "stopping:\n  max_days: 14\n  max_units: 10000\n").spec
    assert spec is not None
    reach = reachable_per_variant(spec)
    assert reach is not None and (reach.per_variant, reach.bound) == (5000, "max_units")
    spec = check_text(BASE + SIM + "stopping:\n  max_days: 14\n").spec
    assert spec is not None and reachable_per_variant(spec) == type(reach)(7000, "max_days")  # 1,000/day × 1/2 × 14
    no_horizon = check_text(BASE + SIM).spec
    assert no_horizon is not None and reachable_per_variant(no_horizon) is None


def test_tested_looks_skip_those_before_the_minimum_and_end_at_max_units():
    spec = check_text(BASE + SIM + PEEK + "  max_days: 10\n  min_units_per_variant: 1500\n").spec
    assert spec is not None
    assert looks_tested(spec) == [1500.0 + 500 * i for i in range(8)]  # days 3..10 at 500 per variant a day
    spec = check_text(BASE + SIM + PEEK + "    - {when: max_units, then: stop_inconclusive}\n"
                      "  max_days: 10\n  max_units: 4000\n").spec
    assert spec is not None and looks_tested(spec) == [500.0, 1000.0, 1500.0, 2000.0]
    assert len(looks_tested(check_text(BASE + PEEK).spec)) == 28  # no traffic: every look of the default horizon


def test_w006_gives_the_inflated_rates_of_its_looks():
    [d] = check_text(BASE + PEEK + "  max_days: 10\n").diagnostics
    assert d.code == "W006"
    assert "significant at one of its 10 tested looks about 19.3% of the time (alpha 0.05 for one test)" in d.message
    assert "ships a variant that is no better about 9.7% of the time" in d.message


def test_w011_gives_the_rate_of_its_looks_for_the_spec_alpha():
    text = BASE + PEEK + "  max_days: 28\nanalysis:\n  method: bayesian\n  alpha: 0.1\n"
    [d] = check_text(text).diagnostics
    expected = crossing_probability(0.1, range(1, 29), two_sided=False)
    assert d.code == "W011" and f"about {expected:.1%} of the time at its 28 looks" in d.message


def test_w001_says_what_power_the_design_has_by_then():
    [d] = check_text(BASE + SIM + "stopping:\n  max_days: 14\n").diagnostics
    assert d.code == "W001"  # no W021 as well: W001 already says it, with the figure
    assert d.message.endswith("by then it has about 7,000 per variant, an analytic power of 16% at the MDE "
                              "(planned 80%)")


def test_w021_when_the_spec_plans_for_less_than_the_minimum_power():
    text = BASE + "analysis:\n  power: 0.6\n"
    result = check_text(text)
    assert codes(result) == ["W021"] and result.ok() and not result.ok(strict=True)
    d = result.diagnostics[0]
    assert "plans for 60.0% power" in d.message and "minimum of 80.0%" in d.message
    assert located(result, "W021") == [(40, 10)]  # analysis.power
    assert check_text(BASE + "analysis:\n  power: 0.8\n").ok(strict=True)


def test_w021_when_the_units_reached_by_max_units_give_too_little_power():
    text = BASE + SIM + "stopping:\n  max_units: 100000\n"  # 50,000 per variant of the 57,760 planned
    result = check_text(text)
    assert codes(result) == ["W001"]  # max_units below the plan: W001 covers it
    enough = check_text(BASE + SIM + "stopping:\n  max_days: 200\n  max_units: 115520\n")
    assert enough.ok(strict=True)  # planned exactly: the minimum is met


def test_min_power_moves_the_minimum_and_reports_w021_next_to_w001():
    result = check_text(BASE + SIM + "stopping:\n  max_days: 200\n")  # 100,000 per variant: ~97% power
    assert result.doc is not None and result.spec is not None and result.ok(strict=True)
    assert with_min_power(result.doc, result.spec, result.diagnostics, 0.95) == []
    [d] = with_min_power(result.doc, result.spec, result.diagnostics, 0.99)
    assert d.code == "W021"
    assert "is 95.8% with the 100,000 units per variant it reaches by max_days: below the minimum of 99.0%" in d.message
    assert "extend `max_days`" in (d.hint or "")
    short = check_text(BASE + SIM + "stopping:\n  max_days: 14\n")
    assert short.doc is not None and short.spec is not None
    found = with_min_power(short.doc, short.spec, short.diagnostics, 0.5)
    assert [x.code for x in found] == ["W001", "W021"]


def test_w021_for_max_units_names_the_max_units_to_set():
    result = check_text(BASE + SIM + "stopping:\n  max_days: 200\n  max_units: 120000\n")
    assert result.doc is not None and result.spec is not None and result.ok(strict=True)
    [d] = with_min_power(result.doc, result.spec, result.diagnostics, 0.9)
    assert "60,000 units per variant it reaches by max_units" in d.message
    assert "raise `max_units` to" in (d.hint or "")


def test_the_sequential_examples_and_hostile_inputs_give_no_crash():
    for extreme in ("1e-300", "0.999999"):
        result = check_text(BASE.replace("    baseline: 0.1", f"    baseline: {extreme}") + PEEK)
        assert result.spec is not None and result.ok()  # findings at most, never an exception
    result = check_text(BASE + PEEK + "  looks: 1h\n  max_days: 365\n")
    d = next(x for x in result.diagnostics if x.code == "W006")
    assert "at least about" in d.message  # 8,760 looks: thinned to MAX_LOOKS, a lower bound


def test_a_single_tested_look_gives_w006_without_a_rate():
    text = (BASE + SIM + PEEK + "    - {when: max_units, then: stop_inconclusive}\n"
            "  max_days: 200\n  min_units_per_variant: 20000\n  max_units: 40000\n")  # tested once, too early
    d = next(x for x in check_text(text).diagnostics if x.code == "W006")
    assert d.message.endswith("which inflates false positives")
