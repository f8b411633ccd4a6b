"""Power planning: exact agreement with compiler/planning.py, statsmodels NormalIndPower, references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BASE, check_text
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from expc.compiler.planning import (
    always_valid_inflation,
    mixing_ratio,
    sample_size,
    units_for_mean,
    units_for_proportion,
)
from expc.runtime.stats import power as P


def test_reference_figures():
    # references.md: baseline 10%, relative MDE 5%, alpha 0.05 two-sided, power 0.8
    assert P.sample_size_proportion(0.10, 0.05, 0.05, 0.8) == 57_760
    assert P.sample_size_proportion(0.10, 0.05, 0.05, 0.8, method="pooled") == 57_763
    assert P.sample_size_proportion(0.10, 0.05, 0.05, 0.8, method="arcsine") == 57_756
    assert P.sample_size_mean(20.0, 100.0, 0.25) == units_for_mean(100, 5, 0.05, 0.8) == 6_280


def test_reference_case_against_normal_ind_power():
    h = proportion_effectsize(0.105, 0.10)
    ref = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert int(np.ceil(ref)) == 57_756
    assert P.sample_size_proportion(0.10, 0.05) == pytest.approx(ref, rel=1e-3)  # 57,760: 0.007% apart


# the usual A/B regime (small relative MDE, rates not near 0 or 1): unpooled and Cohen's h within 0.1%
TYPICAL = [(0.10, 0.05, 0.05, 0.8), (0.02, 0.10, 0.05, 0.9), (0.5, 0.01, 0.01, 0.8), (0.3, 0.05, 0.1, 0.95),
           (0.05, 0.03, 0.05, 0.8), (0.6, 0.02, 0.05, 0.8)]
# rare events, large effects, rates near 1: the two designs differ by up to ~3%
EXTREME = [(0.3, 0.2, 0.1, 0.95), (0.001, 0.5, 0.025, 0.8), (0.9, 0.05, 0.05, 0.8)]


@pytest.mark.parametrize("baseline, mde, alpha, power", TYPICAL + EXTREME)
def test_unpooled_and_arcsine_agree_with_normal_ind_power(baseline, mde, alpha, power):
    tolerance = 1e-3 if (baseline, mde, alpha, power) in TYPICAL else 5e-2
    for direction, sign in (("increase", 1), ("decrease", -1)):
        target = baseline * (1 + sign * mde)
        if not 0 < target < 1:
            continue
        h = proportion_effectsize(target, baseline)
        ref = NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=1.0)
        ours = P.sample_size_proportion(baseline, mde, alpha, power, direction=direction)
        assert ours == pytest.approx(ref, rel=tolerance)
        arcsine = P.sample_size_proportion(baseline, mde, alpha, power, direction=direction, method="arcsine")
        assert arcsine in (int(np.ceil(ref)), int(np.ceil(ref)) + 1)  # the same design; NormalIndPower adds the far tail
        assert P.power_proportion(baseline, mde, ref, alpha, direction=direction, method="arcsine") == pytest.approx(
            NormalIndPower().power(effect_size=abs(h), nobs1=ref, alpha=alpha, ratio=1.0), rel=1e-9)


@settings(max_examples=500, deadline=None)
@given(
    baseline=st.floats(1e-4, 0.999),
    mde=st.floats(1e-3, 2.0),
    alpha=st.floats(1e-4, 0.3),
    power=st.floats(0.5, 0.999),
    direction=st.sampled_from(["increase", "decrease"]),
)
def test_proportions_equal_the_compiler_exactly(baseline, mde, alpha, power, direction):
    sign = 1 if direction == "increase" else -1
    target = baseline * (1 + sign * mde)
    if not (0 < target < 1) or target == baseline:
        return
    assert P.sample_size_proportion(baseline, mde, alpha, power, direction=direction) == units_for_proportion(
        baseline, target, alpha, power)


@settings(max_examples=500, deadline=None)
@given(
    baseline=st.floats(-1e6, 1e6).filter(lambda b: abs(b) > 1e-6),
    sd=st.floats(1e-3, 1e6),
    mde=st.floats(1e-3, 2.0),
    alpha=st.floats(1e-4, 0.3),
    power=st.floats(0.5, 0.999),
)
def test_means_and_ratios_equal_the_compiler_exactly(baseline, sd, mde, alpha, power):
    ref = units_for_mean(sd, abs(baseline) * mde, alpha, power)
    assert P.sample_size_mean(baseline, sd, mde, alpha, power) == ref
    assert P.sample_size_ratio(baseline, sd, mde, alpha, power) == ref


def test_the_compiled_plan_and_runtime_days_agree():
    text = BASE + "simulation:\n  units_per_day: 10000\n"
    text = text.replace("generate: {per: unit}", "generate: {per: unit}\n    weight: 3")
    result = check_text(text)
    planned, reason = sample_size(result.spec)
    assert reason is None and planned.per_variant == P.sample_size_proportion(0.1, 0.05)
    daily = P.daily_units_per_arm(10_000, [1, 3])
    assert P.expected_days(planned.per_variant, daily) == planned.estimated_days == 24
    assert P.expected_days(100, [10, 0]) is None


@pytest.mark.parametrize("method", ["unpooled", "pooled", "arcsine"])
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_mde_inverts_the_sample_size(method, direction):
    for baseline, n in ((0.1, 57_760), (0.02, 10_000), (0.5, 1_000), (0.3, 250_000)):
        mde = P.mde_proportion(baseline, n, 0.05, 0.8, direction=direction, method=method)
        assert 0 < mde < 1
        back = P.sample_size_proportion(baseline, float(mde), 0.05, 0.8, direction=direction, method=method)
        assert abs(back - n) <= 1
        assert P.power_proportion(baseline, mde, n, 0.05, direction=direction, method=method) == pytest.approx(0.8, abs=1e-3)
    # vectorised over baselines and sizes
    out = P.mde_proportion(np.array([0.1, 0.2]), np.array([57_760, 10_000]), method=method, direction=direction)
    assert out.shape == (2,) and np.all(np.isfinite(out))
    # three units per arm: no rate in (0, 1) is far enough from 50% to reach 80% power
    assert np.isnan(P.mde_proportion(0.5, 3, method=method, direction=direction))


def test_mde_and_power_for_means():
    n = P.sample_size_mean(10.0, 5.0, 0.05)
    assert P.mde_mean(10.0, 5.0, n) <= 0.05 and P.mde_mean(10.0, 5.0, n - 1) > 0.05
    assert P.power_mean(10.0, 5.0, 0.05, n) == pytest.approx(0.8, abs=1e-3)
    assert P.mde_ratio(2.0, 1.5, 1_000) == P.mde_mean(2.0, 1.5, 1_000)


def test_invalid_planning_inputs_raise_value_error():
    for args in ((1.2, 0.05), (0.1, 0.0), (0.9, 0.2)):
        with pytest.raises(ValueError):
            P.sample_size_proportion(*args)
    with pytest.raises(ValueError):
        P.sample_size_proportion(0.1, 0.05, alpha=0.0)
    with pytest.raises(ValueError):
        P.sample_size_mean(0.0, 1.0, 0.05)


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
