"""Power planning: exact agreement with compiler/planning.py, statsmodels NormalIndPower, references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BASE, check_text
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from expc.compiler.planning import sample_size, units_for_mean, units_for_proportion
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
