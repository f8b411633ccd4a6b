"""Fixed-horizon comparisons: agreement with statsmodels / scipy, worked numbers, edge cases, simulations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats import proportion as smp

from expc.compiler.planning import units_for_proportion
from expc.runtime.stats import fixed
from expc.runtime.stats.moments import Moments

REL = 1e-6
SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}

# (n, successes) per arm, arm 0 the control
PROPORTION_CASES = [
    ([10_000, 10_000], [1_000, 1_100]),
    ([60, 55], [6, 13]),
    ([5_000, 4_800, 5_100], [250, 270, 230]),
    ([1_234, 987], [17, 31]),
    ([200_000, 200_000], [12_000, 11_800]),
]


def from_units(*arms: np.ndarray) -> Moments:
    """Moments of a unit-level metric from raw per-arm values."""
    return Moments.of(
        [a.size for a in arms], [a.sum() for a in arms], [np.square(a).sum() for a in arms]
    )


def ratio_from_units(*arms: tuple[np.ndarray, np.ndarray]) -> Moments:
    """Moments of a ratio metric from raw per-arm (numerator, denominator) unit values."""
    return Moments.of(
        [x.size for x, _ in arms],
        [x.sum() for x, _ in arms],
        [np.square(x).sum() for x, _ in arms],
        [y.sum() for _, y in arms],
        [np.square(y).sum() for _, y in arms],
        [(x * y).sum() for x, y in arms],
    )


# --- worked numbers from references.md ------------------------------------------------------------


def test_worked_example_from_the_references():
    c = fixed.proportions(Moments.proportion([10_000, 10_000], [1_000, 1_100]))
    assert c.p_value.shape == (1,) and c.abs_ci.shape == (1, 2) and c.rel_ci.shape == (1, 2)
    assert c.p_value[0] == pytest.approx(0.02106, abs=1e-5)
    assert c.rel_lift[0] == pytest.approx(0.10, rel=1e-12)
    assert c.abs_lift[0] == pytest.approx(0.01, rel=1e-12)
    assert np.isinf(c.df[0]) and c.method == "z-test (unpooled Wald)"
    # Welch on the 0/1 data (n - 1 variances): gbstats' 0.02107
    w = fixed.means(Moments.proportion([10_000, 10_000], [1_000, 1_100]))
    assert w.p_value[0] == pytest.approx(0.02107, abs=1e-5)


# --- proportions vs statsmodels -------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("n, x", PROPORTION_CASES)
def test_proportions_match_statsmodels_wald(n, x, alternative):
    c = fixed.proportions(Moments.proportion(n, x), alpha=0.05, alternative=alternative)
    for i in range(1, len(n)):
        ref = smp.test_proportions_2indep(x[i], n[i], x[0], n[0], method="wald", compare="diff",
                                      alternative=SM_ALT[alternative])
        assert c.statistic[i - 1] == pytest.approx(ref.statistic, rel=REL)
        assert c.p_value[i - 1] == pytest.approx(ref.pvalue, rel=REL)
        if alternative == "two-sided":
            lo, hi = smp.confint_proportions_2indep(x[i], n[i], x[0], n[0], method="wald", compare="diff", alpha=0.05)
            assert c.abs_ci[i - 1] == pytest.approx([lo, hi], rel=REL)


@pytest.mark.parametrize("n, x", PROPORTION_CASES)
def test_log_relative_interval_matches_statsmodels_katz_log_ratio(n, x):
    c = fixed.proportions(Moments.proportion(n, x), alpha=0.1)
    for i in range(1, len(n)):
        lo, hi = smp.confint_proportions_2indep(x[i], n[i], x[0], n[0], method="log", compare="ratio", alpha=0.1)
        assert c.rel_ci[i - 1] == pytest.approx([lo - 1, hi - 1], rel=REL)


@pytest.mark.parametrize("n, x", PROPORTION_CASES)
def test_pooled_test_matches_proportions_ztest(n, x):
    c = fixed.proportions(Moments.proportion(n, x), pooled=True)
    plain = fixed.proportions(Moments.proportion(n, x))
    for i in range(1, len(n)):
        z, p = smp.proportions_ztest([x[i], x[0]], [n[i], n[0]])
        assert c.statistic[i - 1] == pytest.approx(z, rel=REL)
        assert c.p_value[i - 1] == pytest.approx(p, rel=REL)
    np.testing.assert_array_equal(c.abs_ci, plain.abs_ci)  # the interval stays Wald


def test_one_sided_intervals_are_dual_to_the_one_sided_p_value():
    m = Moments.proportion([10_000, 10_000, 10_000], [1_000, 1_100, 960])
    g = fixed.proportions(m, alternative="greater")
    assert np.all(np.isposinf(g.abs_ci[:, 1])) and np.all(np.isposinf(g.rel_ci[:, 1]))
    np.testing.assert_allclose(g.abs_ci[:, 0], g.abs_lift - stats.norm.ppf(0.95) * g.se, rtol=1e-12)
    np.testing.assert_array_equal(g.p_value < 0.05, g.abs_ci[:, 0] > 0)
    less = fixed.proportions(m, alternative="less")
    assert np.all(np.isneginf(less.abs_ci[:, 0]))
    np.testing.assert_allclose(less.p_value, 1 - g.p_value, rtol=1e-12)


# --- means vs scipy -------------------------------------------------------------------------------


MEAN_SEEDS = [1, 2, 3]


@pytest.mark.parametrize("seed", MEAN_SEEDS)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy(seed, alternative):
    rng = np.random.default_rng(seed)
    arms = [rng.lognormal(1.0, 1.0, 40), rng.lognormal(1.1, 1.3, 65), rng.gamma(2.0, 1.5, 23)]
    m = from_units(*arms)
    c = fixed.means(m, alpha=0.05, alternative=alternative)
    for i in range(1, 3):
        a, b = arms[i], arms[0]
        ref = stats.ttest_ind_from_stats(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size,
                                         equal_var=False, alternative=alternative)
        assert c.statistic[i - 1] == pytest.approx(ref.statistic, rel=REL)
        assert c.p_value[i - 1] == pytest.approx(ref.pvalue, rel=REL)
        raw = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        assert c.df[i - 1] == pytest.approx(raw.df, rel=REL)
        ci = raw.confidence_interval(0.95)
        for ours, ref_bound in zip(c.abs_ci[i - 1], (ci.low, ci.high)):
            assert ours == pytest.approx(ref_bound, rel=REL)


def test_welch_with_one_zero_variance_arm_matches_scipy():
    m = Moments.of([50, 40], [50 * 3.0, 40 * 3.5], [50 * 9.0, 40 * 12.25 + 39 * 4.0])  # control constant 3.0
    c = fixed.means(m)
    ref = stats.ttest_ind_from_stats(3.5, 2.0, 40, 3.0, 0.0, 50, equal_var=False)
    assert c.statistic[0] == pytest.approx(ref.statistic, rel=REL)
    assert c.p_value[0] == pytest.approx(ref.pvalue, rel=REL)
    assert c.df[0] == pytest.approx(39, rel=1e-9)  # all the variance from the treatment arm


# --- ratio metrics --------------------------------------------------------------------------------


def test_ratio_delta_method_equals_the_linearisation_of_each_unit():
    rng = np.random.default_rng(7)
    arms = []
    for rate, n in ((0.30, 400), (0.33, 380)):
        y = rng.poisson(2.0, n) + 1.0  # sessions per user
        arms.append((rng.binomial(y.astype(int), rate).astype(float), y))
    c = fixed.ratios(ratio_from_units(*arms))
    # independent reference: l_i = (x_i - r y_i) / ȳ, Var(r̂) ≈ Var(l) / n (Deng et al. 2018)
    var = []
    for x, y in arms:
        r = x.sum() / y.sum()
        var.append(np.var((x - r * y) / y.mean(), ddof=1) / x.size)
    diff = arms[1][0].sum() / arms[1][1].sum() - arms[0][0].sum() / arms[0][1].sum()
    se = np.sqrt(sum(var))
    assert c.abs_lift[0] == pytest.approx(diff, rel=1e-12)
    assert c.se[0] == pytest.approx(se, rel=1e-9)
    assert c.p_value[0] == pytest.approx(2 * stats.norm.sf(abs(diff / se)), rel=1e-9)
    assert np.isinf(c.df[0])


def test_compare_dispatches_on_kind_and_rejects_mismatched_moments():
    m = Moments.proportion([100, 100], [10, 20])
    np.testing.assert_array_equal(fixed.compare(m, "proportion").p_value, fixed.proportions(m).p_value)
    np.testing.assert_array_equal(fixed.compare(m, "mean").p_value, fixed.means(m).p_value)
    with pytest.raises(ValueError):
        fixed.ratios(m)
    with pytest.raises(ValueError):
        fixed.compare(m, "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fixed.proportions(m, alpha=1.5)


# --- relative intervals ---------------------------------------------------------------------------


def test_delta_relative_interval_reproduces_gbstats_on_the_small_sample_case():
    # references: 6/60 (control) vs 13/55 -> gbstats [-0.78, 3.51] (delta method, Welch t quantile)
    c = fixed.proportions(Moments.proportion([60, 55], [6, 13]), relative="delta")
    v_c, v_t = 0.1 * 0.9 / 60, (13 / 55) * (42 / 55) / 55
    df = (v_c + v_t) ** 2 / (v_c**2 / 59 + v_t**2 / 54)
    lo, hi = c.rel_lift[0] + np.array([-1, 1]) * stats.t.ppf(0.975, df) * c.rel_se[0]
    assert (round(lo, 2), round(hi, 2)) == (-0.78, 3.51)


def test_log_relative_interval_never_crosses_minus_100_percent_where_delta_does():
    # the references' case: at 95% the delta interval is [-0.75, 3.48]; at 99% (e.g. after splitting
    # alpha over five comparisons) it claims the treatment may have a negative conversion rate
    m = Moments.proportion([60, 55], [6, 13])
    delta = fixed.proportions(m, relative="delta", alpha=0.01)
    ours = fixed.proportions(m, alpha=0.01)
    assert delta.rel_ci[0, 0] < -1
    assert -1 < ours.rel_ci[0, 0] < 0 < ours.rel_lift[0] < ours.rel_ci[0, 1]
    # and a plainer small-sample case at the default 95%: 2/40 vs 6/40
    m = Moments.proportion([40, 40], [2, 6])
    assert fixed.proportions(m, relative="delta").rel_ci[0, 0] < -1
    assert fixed.proportions(m).rel_ci[0, 0] > -1
    # the log interval is asymmetric around the point estimate, as a ratio's sampling distribution
    lo, hi = fixed.proportions(Moments.proportion([60, 55], [6, 13])).rel_ci[0]
    assert hi - 1.3636 > 1.3636 - lo


@settings(max_examples=200, deadline=None)
@given(
    n=st.lists(st.integers(2, 5_000), min_size=2, max_size=4),
    frac=st.lists(st.floats(0.001, 1.0), min_size=4, max_size=4),
    alpha=st.floats(1e-6, 0.5),
)
def test_log_relative_interval_is_always_above_minus_100_percent(n, frac, alpha):
    x = [max(1, int(k * f)) for k, f in zip(n, frac)]
    for kind in ("proportion", "mean"):
        c = fixed.compare(Moments.proportion(n, x), kind, alpha=alpha)
        lower = c.rel_ci[..., 0]
        # exp(log ratio - q se) - 1 > -1 exactly; in floating point it can round to -1 when q se is huge (n = 2)
        assert np.all(np.isnan(lower) | (lower >= -1))
        inside = (c.rel_ci[..., 0] <= c.rel_lift) & (c.rel_lift <= c.rel_ci[..., 1])
        assert np.all(np.isnan(c.rel_ci[..., 0]) | inside)


# --- edge cases -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["proportion", "mean", "ratio"])
def test_arms_with_zero_or_one_unit_give_nan_and_never_raise(kind):
    n = [0, 1, 100, 1]
    x = [0, 1, 30, 0]
    if kind == "ratio":
        m = Moments.of(n, x, x, [0, 2, 150, 1], [0, 4, 300, 1], [0, 2, 60, 0])
    else:
        m = Moments.proportion(n, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = fixed.compare(m, kind)
        ni = fixed.non_inferiority(m, kind, 0.05)
    # control has n = 0: every comparison is undefined
    for arr in (c.abs_lift, c.rel_lift, c.p_value, c.statistic, c.se, c.abs_ci, c.rel_ci, ni.p_value):
        assert np.all(np.isnan(arr))
    # control fine, a treatment with one unit: that comparison only is NaN
    m2 = Moments.proportion([100, 1, 100], [30, 1, 40]) if kind != "ratio" else Moments.of(
        [100, 1, 100], [30, 1, 40], [30, 1, 40], [150, 2, 150], [300, 4, 300], [60, 2, 80])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c2 = fixed.compare(m2, kind)
    assert np.isnan(c2.p_value[0]) and np.isnan(c2.abs_ci[0]).all() and np.isnan(c2.rel_ci[0]).all()
    assert np.isfinite(c2.p_value[1]) and np.isfinite(c2.abs_ci[1]).all()


def test_zero_variance_arms():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # one arm without events: finite z, abs CI fine, log relative CI undefined (log 0)
        c = fixed.proportions(Moments.proportion([100, 100], [5, 0]))
        assert np.isfinite(c.p_value[0]) and c.rel_lift[0] == -1
        assert np.isnan(c.rel_ci[0]).all() and np.isfinite(c.abs_ci[0]).all()
        # both arms constant and equal: 0 / 0, no evidence either way
        c = fixed.proportions(Moments.proportion([100, 100], [0, 0]))
        assert np.isnan(c.p_value[0]) and np.isnan(c.rel_lift[0])  # control mean 0: no relative lift
        # both arms constant and different: the difference is certain
        c = fixed.proportions(Moments.proportion([100, 100], [0, 100]))
        assert c.p_value[0] == 0 and np.isposinf(c.statistic[0])
        c = fixed.means(Moments.of([10, 10], [10.0, 20.0], [10.0, 40.0]))
        assert c.p_value[0] == 0 and c.df[0] == 18  # Welch df is 0/0 here: the pooled df stands in
        # a constant 0.1 whose Σx² - (Σx)²/n rounds to -1.5e-17: clipped to 0, not a NaN standard error
        c = fixed.means(Moments.of([30, 30], [30 * 0.1, 30 * 0.3], [30 * 0.01, 30 * 0.09]))
        assert c.se[0] == 0 and c.p_value[0] == 0
        c = fixed.means(Moments.of([10, 10], [10.0, 10.0], [10.0, 10.0]))
        assert np.isnan(c.p_value[0]) and c.abs_lift[0] == 0 and c.rel_lift[0] == 0
        # control mean zero: absolute results, no relative ones
        c = fixed.means(Moments.of([10, 10], [0.0, 5.0], [10.0, 10.0]))
        assert np.isfinite(c.p_value[0]) and np.isnan(c.rel_lift[0]) and np.isnan(c.rel_ci[0]).all()


def test_shapes_for_several_treatments_and_batches():
    c = fixed.proportions(Moments.proportion([100, 100, 100, 100], [10, 12, 14, 9]))
    assert c.p_value.shape == (3,) and c.abs_ci.shape == (3, 2) and c.rel_ci.shape == (3, 2)
    b = fixed.proportions(Moments.proportion(np.full((5, 3), 100), np.full((5, 3), 10)))
    assert b.p_value.shape == (5, 2) and b.abs_ci.shape == (5, 2, 2) and b.control_mean.shape == (5,)


# --- non-inferiority ------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_non_inferiority_for_means_is_welch_against_the_scaled_control(direction):
    rng = np.random.default_rng(11)
    arms = [rng.lognormal(2.0, 0.8, 300), rng.lognormal(1.98, 0.9, 280), rng.lognormal(2.05, 0.8, 310)]
    margin = 0.05
    theta = 1 - margin if direction == "increase" else 1 + margin
    r = fixed.non_inferiority(from_units(*arms), "mean", margin, direction)
    assert r.bound == theta
    b = arms[0]
    for i in (1, 2):
        a = arms[i]
        ref = stats.ttest_ind_from_stats(a.mean(), a.std(ddof=1), a.size, theta * b.mean(), theta * b.std(ddof=1),
                                         b.size, equal_var=False,
                                         alternative="greater" if direction == "increase" else "less")
        assert r.statistic[i - 1] == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value[i - 1] == pytest.approx(ref.pvalue, rel=REL)


def test_non_inferiority_for_proportions_is_direction_aware():
    # errors: a decrease is good; treatment 1 has 20% more errors, treatment 2 the same
    m = Moments.proportion([50_000, 50_000, 50_000], [1_000, 1_200, 1_000])
    r = fixed.non_inferiority(m, "proportion", 0.10, "decrease")
    assert r.p_value[0] > 0.5 and r.p_value[1] < 0.05
    p_c, p_t = 0.02, 0.024
    z = (p_t - 1.1 * p_c) / np.sqrt(p_t * (1 - p_t) / 50_000 + 1.1**2 * p_c * (1 - p_c) / 50_000)
    assert r.statistic[0] == pytest.approx(z, rel=1e-12) and r.p_value[0] == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    # with no margin it is the one-sided Wald test
    zero = fixed.non_inferiority(m, "proportion", 0.0, "increase")
    np.testing.assert_allclose(zero.p_value, fixed.proportions(m, alternative="greater").p_value, rtol=1e-12)
    # a treatment with no errors at all is still testable (the log ratio would not be)
    none = fixed.non_inferiority(Moments.proportion([5_000, 5_000], [40, 0]), "proportion", 0.1, "decrease")
    assert none.p_value[0] < 1e-6
    with pytest.raises(ValueError):
        fixed.non_inferiority(m, "proportion", 1.0, "increase")


def test_non_inferiority_size_at_the_margin_by_simulation():
    # true ratio exactly at the bound (1 - 2%): the one-sided test at 5% rejects about 5% of the time
    rng = np.random.default_rng(2024)
    sims, n = 20_000, 20_000
    p = np.array([0.10, 0.10 * 0.98])
    x = rng.binomial(n, p, size=(sims, 2))
    r = fixed.non_inferiority(Moments.proportion(np.full((sims, 2), n), x), "proportion", 0.02)
    assert 0.04 <= np.mean(r.p_value[:, 0] < 0.05) <= 0.06


# --- simulations ----------------------------------------------------------------------------------


SIMS = 20_000


def test_aa_false_positive_rate_of_the_z_test():
    rng = np.random.default_rng(12345)
    n = 5_000
    x = rng.binomial(n, 0.10, size=(SIMS, 2))
    c = fixed.proportions(Moments.proportion(np.full((SIMS, 2), n), x), alpha=0.05)
    assert 0.04 <= np.mean(c.p_value[:, 0] < 0.05) <= 0.06
    # the p-value is close to uniform: a tenth below 0.1, half below 0.5
    assert 0.09 <= np.mean(c.p_value < 0.1) <= 0.11 and 0.49 <= np.mean(c.p_value < 0.5) <= 0.51


def test_aa_false_positive_rate_of_welch_on_skewed_data():
    rng = np.random.default_rng(54321)
    data = rng.lognormal(0.0, 1.0, size=(SIMS, 2, 100))
    m = Moments.of(np.full((SIMS, 2), 100), data.sum(-1), np.square(data).sum(-1))
    c = fixed.means(m)
    assert 0.04 <= np.mean(c.p_value[:, 0] < 0.05) <= 0.06


def test_aa_false_positive_rate_of_the_ratio_delta_method():
    rng = np.random.default_rng(777)
    n = 200
    y = rng.poisson(2.0, size=(SIMS, 2, n)) + 1
    x = rng.binomial(y, 0.3).astype(float)
    y = y.astype(float)
    m = Moments.of(np.full((SIMS, 2), n), x.sum(-1), np.square(x).sum(-1), y.sum(-1), np.square(y).sum(-1),
                   (x * y).sum(-1))
    c = fixed.ratios(m)
    assert 0.04 <= np.mean(c.p_value[:, 0] < 0.05) <= 0.06


def test_interval_coverage_for_a_true_effect():
    rng = np.random.default_rng(99)
    n, p = 5_000, np.array([0.10, 0.11])
    x = rng.binomial(n, p, size=(SIMS, 2))
    c = fixed.proportions(Moments.proportion(np.full((SIMS, 2), n), x), alpha=0.05)
    lo, hi = c.abs_ci[:, 0, 0], c.abs_ci[:, 0, 1]
    assert 0.94 <= np.mean((lo <= 0.01) & (0.01 <= hi)) <= 0.96
    rel_lo, rel_hi = c.rel_ci[:, 0, 0], c.rel_ci[:, 0, 1]
    assert 0.94 <= np.mean((rel_lo <= 0.1) & (0.1 <= rel_hi)) <= 0.96


def test_log_relative_interval_coverage_on_small_samples_beats_delta():
    # 6/60-sized arms: the log interval keeps nominal coverage better than the symmetric delta interval
    rng = np.random.default_rng(5)
    n, p = 60, np.array([0.10, 0.20])
    x = rng.binomial(n, p, size=(SIMS, 2))
    m = Moments.proportion(np.full((SIMS, 2), n), x)
    cover, below = {}, {}
    for rel in ("log", "delta"):
        ci = fixed.proportions(m, relative=rel).rel_ci[:, 0]
        ok = ~np.isnan(ci[:, 0])
        cover[rel] = np.mean((ci[ok, 0] <= 1.0) & (1.0 <= ci[ok, 1]))
        below[rel] = np.mean(ci[ok, 0] < -1)
    assert abs(cover["log"] - 0.95) < abs(cover["delta"] - 0.95)  # measured: 0.968 vs 0.918
    assert below["log"] == 0 and below["delta"] > 0.2  # the delta interval crosses -100% in a third of them


def test_power_at_the_designed_mde():
    rng = np.random.default_rng(8)
    baseline, mde = 0.10, 0.05
    n = units_for_proportion(baseline, baseline * (1 + mde), 0.05, 0.8)
    assert n == 57_760
    x = rng.binomial(n, [baseline, baseline * (1 + mde)], size=(SIMS, 2))
    c = fixed.proportions(Moments.proportion(np.full((SIMS, 2), n), x))
    assert abs(np.mean(c.p_value[:, 0] < 0.05) - 0.8) <= 0.03


def test_scalar_path_equals_the_vectorised_engine():
    """One comparison (1-D moments of two arms) takes a float fast path; it must give the vectorised answer."""
    rng = np.random.default_rng(5)
    fields = ("control_mean", "treatment_mean", "abs_lift", "abs_ci", "rel_lift", "rel_ci", "p_value",
              "statistic", "se", "df", "rel_se")
    for it in range(200):
        n = rng.integers(2, 100_000, 2).astype(float)
        if it % 2:
            m, f = Moments.proportion(n, rng.binomial(n.astype(int), rng.uniform(0.01, 0.99))), fixed.proportions
        else:
            s = n * rng.normal(3.0, 2.0) * rng.uniform(0.9, 1.1, 2)
            m, f = Moments.of(n, s, s**2 / n + rng.uniform(0.1, 5.0, 2) ** 2 * (n - 1)), fixed.means
        stacked = Moments.of(*(np.stack([v, v]) for v in (m.n, m.sum, m.sum_sq)))  # 2-D: the vectorised engine
        for alt in ("two-sided", "greater", "less"):
            for rel in ("log", "delta"):
                one, ref = f(m, alternative=alt, relative=rel), f(stacked, alternative=alt, relative=rel)
                for name in fields:
                    a, b = getattr(one, name), getattr(ref, name)[0]
                    assert type(a) is np.ndarray and a.dtype == np.float64 and a.flags.writeable, name
                    assert a.shape == np.shape(b), name
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, err_msg=name)


def test_scalar_path_arrays_never_overlap():
    """Fast-path fields are disjoint views, and two results share no memory: writing into one leaves the other alone."""
    m = Moments.of([1_000, 1_000], [2_400.0, 2_520.0], [10_000.0, 11_000.0])
    first, second = fixed.means(m), fixed.means(m)
    names = ("control_mean", "treatment_mean", "abs_lift", "abs_ci", "rel_lift", "rel_ci", "p_value", "statistic",
             "se", "df", "rel_se")
    for a in names:
        for b in names:
            assert not np.shares_memory(getattr(first, a), getattr(second, b)), (a, b)
            assert a == b or not np.shares_memory(getattr(first, a), getattr(first, b)), (a, b)
    p = second.p_value[0]
    first.p_value[0] = -1.0
    assert second.p_value[0] == p


def test_float_path_student_t_is_scipys_to_the_last_bit():
    """The scalar path's t CDF and quantile (cython_special) are the functions behind the ufuncs, not approximations."""
    from scipy import special

    dfs = np.concatenate([[1.0, 2.5, 7.0, 29.0], np.geomspace(30.0, 1e9, 40)])
    for df in dfs.tolist():
        for t in (-40.0, -8.0, -3.2, -1.96, -0.4, 0.0, 0.7, 2.5, 12.0):
            assert fixed._stdtr(df, t) == special.stdtr(df, t), (df, t)
        for level in (0.5, 0.9, 0.95, 0.975, 0.995, 1 - 1e-6, 1 - 1e-12):
            assert fixed._stdtrit(df, level) == special.stdtrit(df, level), (df, level)
