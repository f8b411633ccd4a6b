"""Sequential inference: always-valid mSPRT / confidence sequences and group-sequential boundaries.

Fixed inputs are checked against independent computations (numerical integration
of the mixture likelihood ratio, Howard et al.'s boundary written on its own
scale, scipy's multivariate normal CDF, published boundary tables); simulations
(vectorised, fixed seeds) check the error rates the methods exist for.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from expc.runtime.stats import fixed
from expc.runtime.stats.moments import Moments
from expc.runtime.stats.sequential import (
    always_valid,
    boundary_crossing_probabilities,
    group_sequential_boundaries,
    group_sequential_test,
    log_mixture_likelihood_ratio,
    mixing_variance,
    optimal_mixing_ratio,
    spend_obrien_fleming,
    spend_obrien_fleming_per_side,
    spend_pocock,
)

ALPHA = 0.05
DAYS = 28
PER_DAY = 1_000  # units per arm per day


def _radius(var, tau2, alpha=ALPHA):
    return np.sqrt(var * (var + tau2) / tau2 * (np.log1p(tau2 / var) - 2 * np.log(alpha)))


def _daily_proportions(rng, sims, p_c, p_t, days=DAYS, per_day=PER_DAY) -> Moments:
    """Cumulative Moments of shape (sims, days, 2): binomial successes per day, summed."""
    succ = rng.binomial(per_day, [p_c, p_t], size=(sims, days, 2)).cumsum(axis=1)
    n = np.broadcast_to(per_day * np.arange(1, days + 1)[:, None], succ.shape)
    return Moments.proportion(n, succ)


def _daily_normal_means(rng, sims, mu_c, mu_t, sigma, days=DAYS, per_day=PER_DAY) -> Moments:
    """Cumulative Moments of normal unit values, from exact per-day sample means and variances."""
    mu = np.array([mu_c, mu_t])
    means = rng.normal(mu, sigma / np.sqrt(per_day), size=(sims, days, 2))
    ss = sigma**2 * rng.chisquare(per_day - 1, size=(sims, days, 2))  # Σ(x - x̄)² per day
    s1 = (per_day * means).cumsum(axis=1)
    s2 = (ss + per_day * means**2).cumsum(axis=1)
    n = np.broadcast_to(per_day * np.arange(1, days + 1)[:, None], s1.shape)
    return Moments.of(n, s1, s2)


def _naive_z_p(m: Moments) -> np.ndarray:
    """Fixed-horizon two-sided z-test p-values, computed independently of the module."""
    mean, vom = m.mean(), m.variance_of_mean()
    z = (mean[..., 1:] - mean[..., :1]) / np.sqrt(vom[..., 1:] + vom[..., :1])
    return 2 * stats.norm.sf(np.abs(z))


# --------------------------------------------------------------------------- mixing parameter


def test_optimal_mixing_ratio_solves_the_fixed_point_and_minimises_the_width():
    for alpha in (0.01, 0.05, 0.1):
        c = -2 * np.log(alpha)
        x = optimal_mixing_ratio(alpha)
        assert x == pytest.approx(c + np.log1p(x), rel=1e-12)
        width = lambda lx, c=c: (1 + 1 / np.exp(lx)) * (np.log1p(np.exp(lx)) + c)
        best = optimize.minimize_scalar(width, bounds=(-5, 10), method="bounded", options={"xatol": 1e-10})
        assert x == pytest.approx(np.exp(best.x), rel=1e-4)
        # Howard et al.'s closed form is one fixed-point step from c, slightly below the optimum
        assert c + np.log1p(c) < x < c + np.log1p(c) + 0.5
    assert optimal_mixing_ratio(0.05) == pytest.approx(8.2120, abs=1e-4)


def test_mixing_variance_is_tuned_to_the_planned_sample_size():
    m = Moments.proportion([2_000, 2_000, 4_000], [200, 230, 420])
    tau2 = mixing_variance(m, planned_n=20_000)
    p = m.mean()
    v = p * (1 - p)  # a proportion's per-unit variance is the Wald p(1 - p) (fixed.unit_variance)
    expected = optimal_mixing_ratio(0.05) * (v[1:] / 20_000 + v[0] / 20_000)
    np.testing.assert_allclose(tau2, expected, rtol=1e-14)
    # per-arm planned sizes
    tau2 = mixing_variance(m, planned_n=[10_000, 10_000, 40_000])
    np.testing.assert_allclose(tau2, optimal_mixing_ratio() * (v[1:] / [10_000, 40_000] + v[0] / 10_000), rtol=1e-14)
    # at the planned variance, the tuned τ² gives the narrowest sequence of all τ²
    v_plan = v[1] / 20_000 + v[0] / 20_000
    tuned = _radius(v_plan, optimal_mixing_ratio() * v_plan)
    for mult in (0.1, 0.3, 0.5, 0.8, 1.25, 2.0, 5.0, 20.0):
        assert tuned < _radius(v_plan, mult * optimal_mixing_ratio() * v_plan)
    # a τ² tuned for gbstats' fixed N* = 5,000 units (τ² = (c + log(1 + c)) σ² / N*) is wider at 20k per arm
    c = -2 * np.log(0.05)
    sigma2 = v[1] + v[0]  # per-unit variance of the difference with one unit per arm
    gb = _radius(v_plan, (c + np.log1p(c)) * sigma2 / 5_000)
    assert tuned < gb
    with pytest.raises(ValueError):
        mixing_variance(m, planned_n=0)


# --------------------------------------------------------------------------- fixed inputs


def test_mixture_likelihood_ratio_matches_numerical_integration():
    rng = np.random.default_rng(11)
    for _ in range(6):
        var = rng.uniform(1e-5, 1e-3)
        tau2 = rng.uniform(0.1, 20) * var
        diff = rng.normal(0, 3 * np.sqrt(var))
        sd = np.sqrt(var)
        num = integrate.quad(
            lambda th, diff=diff, sd=sd, tau2=tau2: stats.norm.pdf(diff, th, sd) * stats.norm.pdf(th, 0, np.sqrt(tau2)),
            -np.inf,
            np.inf,
            points=None,
            epsabs=0,
            epsrel=1e-12,
        )[0]
        lam = num / stats.norm.pdf(diff, 0, sd)
        assert log_mixture_likelihood_ratio(diff, var, tau2) == pytest.approx(np.log(lam), rel=1e-8, abs=1e-10)


def test_confidence_sequence_is_howard_eq14_and_dual_to_the_p_value():
    rng = np.random.default_rng(5)
    n = rng.integers(500, 50_000, size=(200, 3))
    x = rng.binomial(n, [0.10, 0.105, 0.095])
    m = Moments.proportion(n, x)
    r = always_valid(m, planned_n=60_000)
    mean = m.mean()
    vom = mean * (1 - mean) / m.n  # Wald, as the fixed z-test
    diff = mean[:, 1:] - mean[:, :1]
    var = vom[:, 1:] + vom[:, :1]
    np.testing.assert_allclose(r.abs_lift, diff)
    np.testing.assert_allclose(r.se, np.sqrt(var))
    # Howard et al. (2021) eq. 14 on its own scale: |S| < sqrt((v + ρ) log((v + ρ) / (ρ α²)))
    v, rho = 1 / var, 1 / r.tau2
    boundary = np.sqrt((v + rho) * np.log((v + rho) / (rho * ALPHA**2)))
    np.testing.assert_allclose(r.abs_ci[..., 1] - diff, boundary * var, rtol=1e-10)
    np.testing.assert_allclose(diff - r.abs_ci[..., 0], boundary * var, rtol=1e-10)
    # duality: the sequence excludes 0 exactly when p ≤ α
    excludes = (r.abs_ci[..., 0] > 0) | (r.abs_ci[..., 1] < 0)
    np.testing.assert_array_equal(excludes, r.p_value <= ALPHA)
    assert 0 < excludes.mean() < 1
    # always-valid p-values are never below the fixed-horizon z-test's
    assert np.all(r.p_value >= _naive_z_p(m) - 1e-12)


def test_worked_example_and_edge_cases():
    m = Moments.proportion([10_000, 10_000], [1_000, 1_100])
    r = always_valid(m, planned_n=10_000)
    assert r.abs_lift[0] == pytest.approx(0.01)
    # z ≈ 2.31 gives p ≈ 0.021 at a fixed horizon; the always-valid p-value is much larger
    assert 0.1 < r.p_value[0] < 1
    explicit_tau = always_valid(m, tau2=r.tau2)
    np.testing.assert_array_equal(explicit_tau.p_value, r.p_value)
    # degenerate: no variance (0 successes everywhere), fewer than two units
    d = always_valid(Moments.proportion([100, 100, 1], [0, 0, 1]), planned_n=1_000)
    np.testing.assert_array_equal(d.p_value, [1.0, 1.0])
    assert np.all(np.isinf(d.abs_ci))
    with pytest.raises(ValueError):
        always_valid(m)
    with pytest.raises(ValueError):
        always_valid(m, planned_n=100, alpha=1.5)


def test_look_axis_gives_running_minimum_and_intersection():
    rng = np.random.default_rng(3)
    m = _daily_proportions(rng, 50, 0.1, 0.1)
    per_look = always_valid(m, planned_n=DAYS * PER_DAY)
    cum = always_valid(m, planned_n=DAYS * PER_DAY, look_axis=1)
    np.testing.assert_array_equal(cum.p_value, np.minimum.accumulate(per_look.p_value, axis=1))
    np.testing.assert_array_equal(cum.abs_ci[..., 0], np.maximum.accumulate(per_look.abs_ci[..., 0], axis=1))
    np.testing.assert_array_equal(cum.abs_ci[..., 1], np.minimum.accumulate(per_look.abs_ci[..., 1], axis=1))
    assert np.all(np.diff(cum.p_value, axis=1) <= 0)
    with pytest.raises(ValueError):
        always_valid(m, planned_n=100, look_axis=-1)


# --------------------------------------------------------------------------- simulations: always valid


def test_aa_false_positive_rate_with_28_daily_looks_proportions():
    """Peeking every day: the always-valid p-value holds α, the naive z-test does not."""
    rng = np.random.default_rng(20240501)
    m = _daily_proportions(rng, 4_000, 0.10, 0.10)
    r = always_valid(m, planned_n=DAYS * PER_DAY, look_axis=1)
    fpr_sequential = (r.p_value[:, -1, 0] <= ALPHA).mean()
    fpr_naive = (_naive_z_p(m)[..., 0] <= ALPHA).any(axis=1).mean()
    fpr_final_only = (_naive_z_p(m)[:, -1, 0] <= ALPHA).mean()
    assert fpr_sequential <= 0.055
    assert fpr_naive > 0.08  # ≈ 0.25: why the sequential method exists
    assert 0.035 < fpr_final_only < 0.065  # the z-test itself is fine when looked at once


def test_aa_false_positive_rate_with_28_daily_looks_means():
    rng = np.random.default_rng(7)
    m = _daily_normal_means(rng, 4_000, 5.0, 5.0, sigma=3.0)
    r = always_valid(m, planned_n=DAYS * PER_DAY, look_axis=1)
    assert (r.p_value[:, -1, 0] <= ALPHA).mean() <= 0.055
    assert (_naive_z_p(m)[..., 0] <= ALPHA).any(axis=1).mean() > 0.08


def test_confidence_sequence_covers_the_true_difference_at_every_look():
    rng = np.random.default_rng(99)
    p_c, p_t = 0.10, 0.11
    m = _daily_proportions(rng, 4_000, p_c, p_t)
    r = always_valid(m, planned_n=DAYS * PER_DAY)
    lo, hi = r.abs_ci[..., 0, 0], r.abs_ci[..., 0, 1]
    covered_everywhere = ((lo <= p_t - p_c) & (p_t - p_c <= hi)).all(axis=1)
    assert covered_everywhere.mean() >= 0.95
    # and the sequence still learns: most runs detect a 10% relative lift by day 28
    assert (r.p_value[:, -1, 0] <= ALPHA).mean() > 0.3

    m = _daily_normal_means(rng, 4_000, 5.0, 5.2, sigma=3.0)
    r = always_valid(m, planned_n=DAYS * PER_DAY)
    covered = ((r.abs_ci[..., 0, 0] <= 0.2) & (0.2 <= r.abs_ci[..., 0, 1])).all(axis=1)
    assert covered.mean() >= 0.95


def test_relative_interval_with_z_standard_errors_is_the_fixed_horizon_one():
    from expc.runtime.stats import fixed
    from expc.runtime.stats.sequential import relative_interval

    z = 1.959963984540054
    m = Moments.proportion(np.array([10_000.0, 10_000.0]), np.array([1_000.0, 1_100.0]))  # z test: the same quantile
    np.testing.assert_allclose(relative_interval(m, z, "proportion"), fixed.compare(m, "proportion", alpha=0.05).rel_ci,
                               rtol=1e-12)
    negative = Moments.of(np.array([100.0, 100.0]), np.array([-100.0, -50.0]), np.array([400.0, 400.0]))
    lo, hi = relative_interval(negative, z, "mean")[0]
    assert lo < -0.5 < hi  # a negative control mean: the delta method around m_t / m_c - 1 = -0.5


def test_always_valid_relative_interval_covers_the_true_relative_lift_at_every_look():
    from expc.runtime.stats.sequential import relative_interval

    rng = np.random.default_rng(7)
    p_c, p_t = 0.10, 0.11
    m = _daily_proportions(rng, 4_000, p_c, p_t)
    r = always_valid(m, planned_n=DAYS * PER_DAY)
    k = (r.abs_ci[..., 1] - r.abs_lift) / r.se
    rel = relative_interval(m, k, "proportion")
    truth = p_t / p_c - 1
    covered = ((rel[..., 0, 0] <= truth) & (truth <= rel[..., 0, 1])).all(axis=1)
    assert covered.mean() >= 0.95
    assert np.all(rel[..., 0, 0] > -1.0)  # a log-ratio interval never goes below -100%


# --------------------------------------------------------------------------- group sequential: fixed inputs


def test_published_obrien_fleming_boundaries_per_side_convention():
    """gsDesign sfLDOF / ldbounds iuse=1 tables (two-sided α = 0.05, α/2 per side)."""
    published = {
        2: [2.963, 1.969],
        3: [3.710, 2.511, 1.993],
        5: [4.877, 3.357, 2.680, 2.290, 2.031],
    }
    for k, expected in published.items():
        b = group_sequential_boundaries(np.arange(1, k + 1) / k, spending="obrien_fleming_per_side")
        np.testing.assert_allclose(b, expected, atol=6e-4)


def test_obrien_fleming_lan_demets_two_sided_formula():
    """α*(t) = 2 - 2Φ(z_{1-α/2}/√t) with two-sided α = 0.05: the first boundary is z_{0.975}/√t₁ exactly."""
    t = np.arange(1, 6) / 5
    b = group_sequential_boundaries(t)
    assert b[0] == pytest.approx(stats.norm.isf(0.025) / np.sqrt(0.2), rel=1e-12)
    np.testing.assert_allclose(b, [4.3826, 3.0997, 2.5534, 2.2538, 2.0635], atol=2e-4)
    # it spends more early than the per-side convention (4.383 < 4.877 at look 1); all three end at α
    assert spend_obrien_fleming(1.0) == pytest.approx(0.05)
    assert spend_obrien_fleming_per_side(1.0) == pytest.approx(0.05)
    assert spend_pocock(1.0) == pytest.approx(0.05)
    np.testing.assert_allclose(
        group_sequential_boundaries([0.5, 1.0]), [stats.norm.isf(0.025) / np.sqrt(0.5), 1.9793], atol=2e-4
    )


def test_published_pocock_type_boundaries():
    b = group_sequential_boundaries(np.arange(1, 6) / 5, spending="pocock")
    np.testing.assert_allclose(b, [2.438, 2.427, 2.410, 2.397, 2.386], atol=6e-4)


@pytest.mark.parametrize("spending", ["obrien_fleming", "obrien_fleming_per_side", "pocock"])
@pytest.mark.parametrize(
    "t", [np.array([0.5, 1.0]), np.array([1, 2, 3]) / 3, np.arange(1, 6) / 5, np.array([0.1, 0.25, 0.6, 0.62, 1.0])]
)
def test_boundaries_spend_exactly_alpha(spending, t):
    b = group_sequential_boundaries(t, spending=spending)
    per_look = boundary_crossing_probabilities(b, t)
    spend = {"obrien_fleming": spend_obrien_fleming, "obrien_fleming_per_side": spend_obrien_fleming_per_side}
    cum = spend.get(spending, spend_pocock)(t, ALPHA)
    np.testing.assert_allclose(np.cumsum(per_look), cum, atol=1e-9)
    # independent check: scipy's multivariate normal CDF with corr(Z_i, Z_j) = sqrt(t_i / t_j)
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = stats.multivariate_normal(np.zeros(t.size), corr, maxpts=20_000 * t.size, abseps=1e-7, releps=0)
    p_continue = mvn.cdf(b, lower_limit=-b, rng=np.random.default_rng(0))
    assert 1 - p_continue == pytest.approx(ALPHA, abs=5e-5)


def test_power_by_recursion_matches_brownian_motion_simulation():
    t = np.arange(1, 6) / 5
    b = group_sequential_boundaries(t)
    drift = stats.norm.isf(0.025) + stats.norm.isf(0.2)  # 80% power at a fixed horizon
    power = boundary_crossing_probabilities(b, t, drift=drift).sum()
    rng = np.random.default_rng(1)
    incr = rng.normal(drift * np.diff(t, prepend=0), np.sqrt(np.diff(t, prepend=0)), size=(200_000, 5))
    z = incr.cumsum(axis=1) / np.sqrt(t)
    simulated = (np.abs(z) >= b).any(axis=1).mean()
    assert power == pytest.approx(simulated, abs=0.005)
    assert 0.77 < power < 0.80  # OBF-type costs little power


def test_boundary_inputs_are_checked():
    with pytest.raises(ValueError):
        group_sequential_boundaries([0.5, 0.5, 1.0])
    with pytest.raises(ValueError):
        group_sequential_boundaries([])
    with pytest.raises(ValueError):
        boundary_crossing_probabilities([2.0], [0.5, 1.0])


# --------------------------------------------------------------------------- group sequential: simulation


def test_group_sequential_five_looks_keeps_the_false_positive_rate():
    rng = np.random.default_rng(2024)
    looks, per_look = 5, 2_000
    m = _daily_proportions(rng, 20_000, 0.10, 0.10, days=looks, per_day=per_look)
    t = np.arange(1, looks + 1) / looks
    for spending in ("obrien_fleming", "obrien_fleming_per_side", "pocock"):
        r = group_sequential_test(m, group_sequential_boundaries(t, spending=spending))
        fpr = r.rejected[:, -1, 0].mean()
        assert 0.04 <= fpr <= 0.06, (spending, fpr)
    naive = (_naive_z_p(m)[..., 0] <= ALPHA).any(axis=1).mean()
    assert naive > 0.1  # five unadjusted looks: ≈ 0.14
    assert r.z.shape == (20_000, looks, 1)
    np.testing.assert_array_equal(r.rejected, np.logical_or.accumulate(r.crossed, axis=1))


def test_scalar_path_equals_the_vectorised_engine():
    """``always_valid`` on one comparison (1-D, two arms) takes a float fast path with the same answer."""
    rng = np.random.default_rng(6)
    for it in range(200):
        n = rng.integers(2, 100_000, 2).astype(float)
        if it % 2:
            m = Moments.proportion(n, rng.binomial(n.astype(int), rng.uniform(0.01, 0.99)))
        else:
            s = n * rng.normal(3.0, 2.0) * rng.uniform(0.9, 1.1, 2)
            m = Moments.of(n, s, s**2 / n + rng.uniform(0.1, 5.0, 2) ** 2 * (n - 1))
        planned = int(rng.integers(10, 200_000)) if it % 3 else rng.integers(10, 200_000, 2)
        stacked = Moments.of(*(np.stack([v, v]) for v in (m.n, m.sum, m.sum_sq)))
        one = always_valid(m, planned_n=planned, alpha=0.05)
        ref = always_valid(stacked, planned_n=planned, alpha=0.05)
        for name in ("control_mean", "treatment_mean", "abs_lift", "se", "tau2", "log_lr", "p_value", "abs_ci"):
            a, b = getattr(one, name), getattr(ref, name)[0]
            assert type(a) is np.ndarray and a.dtype == np.float64 and a.flags.writeable, name
            assert a.shape == np.shape(b), name
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=0, err_msg=name)


def test_group_sequential_28_daily_looks_keeps_the_false_positive_rate():
    """The design `sequential: group` uses for 28 daily looks: A/A rejection rate ≤ 0.055, naive peeking far above."""
    rng = np.random.default_rng(28)
    m = _daily_proportions(rng, 10_000, 0.10, 0.10, days=DAYS, per_day=500)
    t = np.arange(1, DAYS + 1) / DAYS
    for spending in ("obrien_fleming_per_side", "pocock"):
        r = group_sequential_test(m, group_sequential_boundaries(t, spending=spending))
        fpr = r.rejected[:, -1, 0].mean()
        assert fpr <= 0.055, (spending, fpr)
        assert fpr >= 0.035, (spending, fpr)  # and it is not trivially conservative
    naive = (_naive_z_p(m)[..., 0] <= ALPHA).any(axis=1).mean()
    assert naive > 0.15  # 28 unadjusted daily looks


def test_proportions_use_the_wald_variance_like_the_fixed_test():
    """One convention per kind: a proportion's variance of the mean is p(1 - p)/n everywhere (section 1 of
    docs/statistics.md); a mean's is the n - 1 sample variance over n."""
    m = Moments.proportion([10_000, 10_000], [1_000, 1_100])
    r = always_valid(m, planned_n=20_000)
    wald = np.sqrt(0.1 * 0.9 / 10_000 + 0.11 * 0.89 / 10_000)
    assert r.se[0] == pytest.approx(wald, rel=1e-14)
    assert r.se[0] == pytest.approx(fixed.proportions(m).se[0], rel=1e-14)
    assert always_valid(m, planned_n=20_000, kind="proportion").p_value[0] == r.p_value[0]
    as_mean = always_valid(m, planned_n=20_000, kind="mean")  # n - 1: larger by n / (n - 1)
    assert as_mean.se[0] == pytest.approx(wald * np.sqrt(10_000 / 9_999), rel=1e-12)
    stacked = Moments.proportion([[10_000, 10_000]] * 2, [[1_000, 1_100]] * 2)  # the vectorised path agrees
    np.testing.assert_allclose(always_valid(stacked, planned_n=20_000).se[:, 0], wald, rtol=1e-14)
    g = group_sequential_test(Moments.proportion([[10_000, 10_000]], [[1_000, 1_100]]), [2.0])
    assert g.se[0, 0] == pytest.approx(wald, rel=1e-14)
