"""compiler/planning.py: sample sizes against statsmodels NormalIndPower and the references, always-valid sizing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BASE, check_text
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from expc.compiler.planning import (
    always_valid_inflation,
    mixing_ratio,
    sample_size,
    units_for_mean,
    units_for_proportion,
)


def test_reference_figures():
    # references.md: baseline 10%, relative MDE 5%, alpha 0.05 two-sided, power 0.8 -> 57,760 (unpooled)
    assert units_for_proportion(0.10, 0.105, 0.05, 0.8) == 57_760
    assert units_for_mean(100, 5, 0.05, 0.8) == 6_280


# the usual A/B regime (small relative MDE, rates not near 0 or 1): unpooled and Cohen's h within 0.1%
TYPICAL = [(0.10, 0.05, 0.05, 0.8), (0.02, 0.10, 0.05, 0.9), (0.5, 0.01, 0.01, 0.8), (0.3, 0.05, 0.1, 0.95),
           (0.05, 0.03, 0.05, 0.8), (0.6, 0.02, 0.05, 0.8)]
# rare events, large effects, rates near 1: the two designs differ by up to ~3%
EXTREME = [(0.3, 0.2, 0.1, 0.95), (0.001, 0.5, 0.025, 0.8), (0.9, 0.05, 0.05, 0.8)]


@pytest.mark.parametrize("baseline, mde, alpha, power", TYPICAL + EXTREME)
def test_unpooled_sizes_agree_with_normal_ind_power(baseline, mde, alpha, power):
    tolerance = 1e-3 if (baseline, mde, alpha, power) in TYPICAL else 5e-2
    for sign in (1, -1):
        target = baseline * (1 + sign * mde)
        if not 0 < target < 1:
            continue
        h = proportion_effectsize(target, baseline)
        ref = NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=1.0)
        assert units_for_proportion(baseline, target, alpha, power) == pytest.approx(ref, rel=tolerance)


def test_the_compiled_plans_days_count_the_smallest_arms_traffic():
    text = BASE + "simulation:\n  units_per_day: 10000\n"
    text = text.replace("generate: {per: unit}", "generate: {per: unit}\n    weight: 3")
    planned, reason = sample_size(check_text(text).spec)
    assert reason is None and planned.per_variant == 57_760
    assert planned.estimated_days == math.ceil(57_760 / (10_000 * 1 / 4)) == 24


# --------------------------------------------------------------------------- always-valid sequential designs


@pytest.mark.parametrize("alpha", [0.3, 0.1, 0.05, 0.01, 1e-6])
def test_mixing_ratio_is_scipys_lambert_w_solution(alpha):
    from scipy.special import lambertw

    c = -2.0 * np.log(alpha)
    reference = float(-1.0 - lambertw(-np.exp(-(1.0 + c)), k=-1).real)
    assert mixing_ratio(alpha) == pytest.approx(reference, rel=1e-13)


def test_always_valid_inflation_reference_values():
    # k = sqrt((1 + r)/r (log(1 + r) + 2 log 20)) = 3.035 at r = 8.212; ((k + 0.8416) / (1.96 + 0.8416))^2
    assert always_valid_inflation(0.05, 0.8) == pytest.approx(1.91481, abs=1e-5)
    assert always_valid_inflation(0.05, 0.9) < always_valid_inflation(0.05, 0.8)  # a larger z[power] dilutes k


@pytest.mark.parametrize("alpha, power", [(0.05, 0.8), (0.01, 0.9)])
def test_always_valid_inflation_gives_the_nominal_power_at_the_planned_end(alpha, power):
    from expc.runtime.stats.moments import Moments
    from expc.runtime.stats.sequential import always_valid

    base, target = 0.10, 0.106
    n = int(np.ceil(units_for_proportion(base, target, alpha, power) * always_valid_inflation(alpha, power)))
    reps = 20_000
    successes = np.random.default_rng(20261128).binomial(n, [base, target], size=(reps, 2))
    result = always_valid(Moments.proportion(np.full((reps, 2), n), successes), planned_n=n, alpha=alpha,
                          kind="proportion")
    assert abs(float(np.mean(result.reject)) - power) < 0.015  # the standard error of 20,000 draws is 0.003


def test_an_always_valid_spec_is_sized_up_and_a_group_one_is_not():
    fixed = sample_size(check_text(BASE).spec)[0]
    always = sample_size(check_text(BASE + "analysis:\n  method: sequential\n").spec)[0]
    group = sample_size(check_text(BASE + "analysis:\n  method: sequential\n  sequential: group\n").spec)[0]
    assert fixed.fixed_horizon_per_variant is None and group.fixed_horizon_per_variant is None
    assert group.per_variant == fixed.per_variant == always.fixed_horizon_per_variant == 57_760
    assert always.per_variant == int(np.ceil(57_760 * always_valid_inflation(0.05, 0.8)))
    assert "always-valid" in always.method and "fixed horizon" in group.method
