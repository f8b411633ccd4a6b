"""Bayesian comparisons: quadrature against scipy.integrate, closed forms and fixed-seed Monte Carlo;
one posterior for the absolute and relative views; calibration in A/A simulations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from expc.runtime.stats.bayesian import (
    LiftPosterior,
    beta_binomial,
    beta_binomial_posterior,
    normal_means,
    normal_posterior,
)
from expc.runtime.stats.moments import Moments

# (n_c, x_c, n_t, x_t): the gbstats inconsistency case, small skewed counts, the worked example,
# a large unbalanced test, a treatment far more precise than its control, then edge cases where a
# naive integral has a kink (no successes, all successes: posteriors piled against 0 or 1)
CASES = [
    (60, 6, 55, 13),
    (20, 0, 20, 2),
    (10_000, 1_000, 10_000, 1_100),
    (500_000, 50_000, 20_000, 2_100),
    (400, 44, 400_000, 40_000),
    (20, 2, 20, 0),
    (1_000, 3, 1_000, 0),
    (20, 19, 20, 20),
    (102, 8, 27, 27),
]


def _support(a, b, eps=1e-15):
    return stats.beta.ppf(eps, a, b), stats.beta.isf(eps, a, b)


def _quad(f, lo, hi, points=()):
    pts = [c for c in np.atleast_1d(points) if lo < c < hi] or None
    return integrate.quad(f, lo, hi, points=pts, epsabs=1e-13, epsrel=1e-12, limit=1000)[0]


def _ref_prob_t_le(ac, bc, at, bt, g, kinks=()):
    """P(T ≤ g(C)) = ∫ f_C(c) F_T(g(c)) dc by adaptive quadrature (told where g(c) leaves [0, 1])."""
    lo, hi = _support(ac, bc)
    pts = [ac / (ac + bc), *kinks]
    return _quad(lambda c: stats.beta.pdf(c, ac, bc) * stats.beta.cdf(g(c), at, bt), lo, hi, pts)


def _params(case, prior=(1.0, 1.0)):
    n_c, x_c, n_t, x_t = case
    return prior[0] + x_c, prior[1] + n_c - x_c, prior[0] + x_t, prior[1] + n_t - x_t


# --------------------------------------------------------------------------- Beta-Binomial accuracy


@pytest.mark.parametrize("case", CASES)
def test_beta_chance_to_beat_and_intervals_match_adaptive_quadrature(case):
    ac, bc, at, bt = _params(case)
    m = Moments.proportion([case[0], case[2]], [case[1], case[3]])
    r = beta_binomial(m, method="quadrature")  # the reference path; "auto" is tested against it below
    # chance to beat control: P(T > C) = ∫ f_T(t) F_C(t) dt (integrating over T: a different route)
    lo, hi = _support(at, bt)
    ctw = _quad(lambda t: stats.beta.pdf(t, at, bt) * stats.beta.cdf(t, ac, bc), lo, hi, at / (at + bt))
    assert r.chance_to_beat_control[0] == pytest.approx(ctw, abs=1e-9)
    # the interval ends are the posterior quantiles of T - C and T/C - 1
    (d_lo, d_hi), (r_lo, r_hi) = r.abs_ci[0], r.rel_ci[0]
    ref = _ref_prob_t_le
    assert ref(ac, bc, at, bt, lambda c: c + d_lo, [-d_lo]) == pytest.approx(0.025, abs=1e-9)
    assert ref(ac, bc, at, bt, lambda c: c + d_hi, [1 - d_hi]) == pytest.approx(0.975, abs=1e-9)
    assert ref(ac, bc, at, bt, lambda c: c * (1 + r_lo)) == pytest.approx(0.025, abs=1e-9)
    assert ref(ac, bc, at, bt, lambda c: c * (1 + r_hi), [1 / (1 + r_hi)]) == pytest.approx(0.975, abs=1e-9)
    assert r_lo > -1


@pytest.mark.parametrize("case", CASES[:3] + CASES[5:6])
def test_beta_expected_losses_match_double_integrals(case):
    ac, bc, at, bt = _params(case)
    r = beta_binomial(Moments.proportion([case[0], case[2]], [case[1], case[3]]), method="quadrature")
    # E[(C - T)⁺] = ∫ f_C(c) ∫_0^c F_T(u) du dc (integration by parts, independent of the module's formula)
    lo, hi = _support(ac, bc)
    lo_t = _support(at, bt)[0]

    def inner(c):
        return 0.0 if c <= lo_t else _quad(lambda u: stats.beta.cdf(u, at, bt), lo_t, c)

    loss_t = _quad(lambda c: stats.beta.pdf(c, ac, bc) * inner(c), lo, hi, ac / (ac + bc))
    loss_c = loss_t + at / (at + bt) - ac / (ac + bc)  # E[(T-C)⁺] - E[(C-T)⁺] = E[T - C]
    assert r.expected_loss_treatment[0] == pytest.approx(loss_t, rel=1e-7, abs=1e-12)
    assert r.expected_loss_control[0] == pytest.approx(loss_c, rel=1e-7, abs=1e-12)


def test_beta_agrees_with_fixed_seed_monte_carlo():
    rng = np.random.default_rng(12345)
    draws = 400_000
    for case in CASES:
        ac, bc, at, bt = _params(case)
        c, t = rng.beta(ac, bc, draws), rng.beta(at, bt, draws)
        r = beta_binomial(Moments.proportion([case[0], case[2]], [case[1], case[3]]))
        p = (t > c).mean()
        assert r.chance_to_beat_control[0] == pytest.approx(p, abs=4.5 * np.sqrt(p * (1 - p) / draws) + 1e-6)
        d = t - c
        for est, mc in [
            (r.expected_loss_treatment[0], np.maximum(-d, 0)),
            (r.expected_loss_control[0], np.maximum(d, 0)),
        ]:
            assert est == pytest.approx(mc.mean(), abs=4.5 * mc.std() / np.sqrt(draws) + 1e-12)
        # interval ends sit at the 2.5% / 97.5% points of the simulated lifts
        for ci, sample in [(r.abs_ci[0], d), (r.rel_ci[0], t / c - 1)]:
            frac = np.array([(sample <= ci[0]).mean(), (sample <= ci[1]).mean()])
            np.testing.assert_allclose(frac, [0.025, 0.975], atol=0.0015)


def test_prior_is_configurable():
    m = Moments.proportion([60, 55], [6, 13])
    flat = beta_binomial(m)
    strong = beta_binomial(m, prior=(10.0, 90.0))  # worth 100 units at a 10% rate: shrinks both arms
    assert strong.chance_to_beat_control[0] < flat.chance_to_beat_control[0]
    assert strong.abs_lift[0] < flat.abs_lift[0]
    p = beta_binomial_posterior(m, prior=(10.0, 90.0))
    np.testing.assert_allclose(p.a_c[..., 0], 16.0)
    np.testing.assert_allclose(p.b_t[..., 0], 132.0)
    with pytest.raises(ValueError):
        beta_binomial(m, prior=(0.0, 1.0))
    with pytest.raises(ValueError):
        beta_binomial(Moments.proportion([10, 10], [11, 3]))
    with pytest.raises(ValueError):
        beta_binomial(Moments.of([10, 10], [5, 5], [5, 5], [8, 8], [8, 8], [5, 5]))


# --------------------------------------------------------------------------- one posterior, two views


def test_absolute_and_relative_views_are_consistent():
    """gbstats reports 0.976 (absolute) vs 0.897 (relative) on 6/60 vs 13/55; here they are one number."""
    m = Moments.proportion([60, 55, 70, 65], [6, 13, 6, 4])
    p = beta_binomial_posterior(m)
    r = p.summary()
    np.testing.assert_array_equal(p.sf_abs(0.0), p.sf_rel(0.0))
    np.testing.assert_array_equal(r.chance_to_beat_control, p.sf_rel(0.0))
    np.testing.assert_allclose(p.cdf_rel(0.0) + p.sf_rel(0.0), 1.0, atol=1e-14)
    assert r.chance_to_beat_control[0] == pytest.approx(0.9738, abs=1e-4)
    # interval signs agree between the views, and the relative interval never crosses -100%
    np.testing.assert_array_equal(r.abs_ci[..., 0] > 0, r.rel_ci[..., 0] > 0)
    np.testing.assert_array_equal(r.abs_ci[..., 1] < 0, r.rel_ci[..., 1] < 0)
    assert np.all(r.rel_ci[..., 0] > -1)
    # the relative quantiles are the absolute ones divided by C in distribution, not pointwise:
    # P(T - C ≤ d) at d = abs quantile equals the level, and likewise for the relative view
    np.testing.assert_allclose(p.cdf_abs(r.abs_ci[..., 0]), 0.025, atol=1e-12)
    np.testing.assert_allclose(p.cdf_rel(r.rel_ci[..., 0]), 0.025, atol=1e-12)
    np.testing.assert_allclose(p.sf_rel(r.rel_ci[..., 1]), 0.025, atol=1e-12)
    # the normal model shares the property
    mn = Moments.of([200, 210], [1_000.0, 1_150.0], [9_000.0, 11_000.0])
    pn = normal_posterior(mn)
    np.testing.assert_array_equal(pn.sf_abs(0.0), pn.sf_rel(0.0))


def test_vectorised_over_experiments_and_arms():
    rng = np.random.default_rng(8)
    n = rng.integers(100, 5_000, size=(7, 3))
    x = rng.binomial(n, 0.1)
    m = Moments.proportion(n, x)
    r = beta_binomial(m)
    assert r.abs_ci.shape == (7, 2, 2) and r.chance_to_beat_control.shape == (7, 2)
    for i in range(7):
        for j in range(2):
            one = beta_binomial(Moments.proportion(n[i, [0, j + 1]], x[i, [0, j + 1]]))
            assert one.chance_to_beat_control[0] == pytest.approx(r.chance_to_beat_control[i, j], abs=1e-10)
            np.testing.assert_allclose(one.rel_ci[0], r.rel_ci[i, j], rtol=1e-8)


# --------------------------------------------------------------------------- normal model


def test_normal_model_matches_closed_forms():
    m = Moments.of([1_000, 1_100, 900], [5_000.0, 5_600.0, 4_400.0], [50_000.0, 60_000.0, 40_000.0])
    r = normal_means(m)
    mean, vom = m.mean(), m.variance_of_mean()
    delta = mean[1:] - mean[0]
    s = np.sqrt(vom[1:] + vom[0])
    np.testing.assert_allclose(r.chance_to_beat_control, stats.norm.cdf(delta / s), atol=1e-10)
    np.testing.assert_allclose(r.abs_ci[:, 0], delta - stats.norm.isf(0.025) * s, rtol=1e-8)
    np.testing.assert_allclose(r.abs_ci[:, 1], delta + stats.norm.isf(0.025) * s, rtol=1e-8)
    # expected loss E[max(C - T, 0)] by quadrature of the normal difference
    for k in range(2):
        ref = integrate.quad(lambda d, k=k: max(-d, 0.0) * stats.norm.pdf(d, delta[k], s[k]), -np.inf, np.inf)[0]
        assert r.expected_loss_treatment[k] == pytest.approx(ref, rel=1e-7)
    np.testing.assert_allclose(r.expected_loss_control - r.expected_loss_treatment, delta, rtol=1e-10)


def test_normal_relative_interval_is_the_exact_ratio_distribution():
    # a small, noisy control: the ratio's distribution is skewed; check against quadrature and Monte Carlo
    m = Moments.of([40, 45], [400.0, 540.0], [4_900.0, 7_600.0])
    p = normal_posterior(m)
    r = p.summary()
    mc, mt = m.mean()
    sc, st = np.sqrt(m.variance_of_mean())
    for q, ci in [(0.025, r.rel_ci[0, 0]), (0.975, r.rel_ci[0, 1])]:
        ref = integrate.quad(
            lambda c, ci=ci: stats.norm.pdf(c, mc, sc) * stats.norm.cdf(c + ci * abs(c), mt, st),
            mc - 12 * sc,
            mc + 12 * sc,
            epsabs=1e-13,
        )[0]
        assert ref == pytest.approx(q, abs=1e-9)
    rng = np.random.default_rng(77)
    c, t = rng.normal(mc, sc, 400_000), rng.normal(mt, st, 400_000)
    rel = (t - c) / np.abs(c)
    frac = [(rel <= r.rel_ci[0, 0]).mean(), (rel <= r.rel_ci[0, 1]).mean()]
    np.testing.assert_allclose(frac, [0.025, 0.975], atol=0.0015)
    # asymmetric, unlike a delta-method interval
    centre = mt / mc - 1
    assert r.rel_ci[0, 1] - centre > centre - r.rel_ci[0, 0]


def test_normal_prior_and_degenerate_inputs():
    m = Moments.of([500, 500], [1_000.0, 1_100.0], [10_000.0, 10_500.0])
    flat = normal_means(m)
    near_flat = normal_means(m, prior_mean=0.0, prior_variance=1e12)
    np.testing.assert_allclose(near_flat.abs_ci, flat.abs_ci, rtol=1e-6)
    weak = normal_means(m, prior_mean=2.0, prior_variance=0.01)
    assert abs(weak.abs_lift[0]) < abs(flat.abs_lift[0])  # shrunk towards the common prior mean
    bad = normal_means(Moments.of([1, 500], [3.0, 1_100.0], [9.0, 10_500.0]))
    assert np.isnan(bad.chance_to_beat_control[0]) and np.all(np.isnan(bad.rel_ci))
    with pytest.raises(ValueError):
        normal_means(m, prior_variance=0.0)


# --------------------------------------------------------------------------- calibration (A/A)


def test_chance_to_beat_control_is_uniform_in_aa_tests_beta():
    rng = np.random.default_rng(31337)
    sims, n = 2_000, 5_000
    x = rng.binomial(n, 0.1, size=(sims, 2))
    p = beta_binomial_posterior(Moments.proportion(np.full((sims, 2), n), x))
    ctw = p.chance_to_beat_control()[:, 0]
    assert stats.kstest(ctw, "uniform").pvalue > 0.001
    assert 0.035 < (ctw > 0.95).mean() < 0.065


def test_chance_to_beat_control_is_uniform_in_aa_tests_normal():
    rng = np.random.default_rng(4242)
    sims, n, sigma = 3_000, 2_000, 4.0
    means = rng.normal(10.0, sigma / np.sqrt(n), size=(sims, 2))
    ss = sigma**2 * rng.chisquare(n - 1, size=(sims, 2))
    m = Moments.of(np.full((sims, 2), n), n * means, ss + n * means**2)
    ctw = normal_posterior(m).chance_to_beat_control()[:, 0]
    assert stats.kstest(ctw, "uniform").pvalue > 0.001
    assert 0.035 < (ctw > 0.95).mean() < 0.065


def test_credible_interval_coverage_when_the_prior_is_true():
    """Drawing the true rates from the Beta(1, 1) prior, 95% intervals cover ≈ 95% (exact Bayesian calibration)."""
    rng = np.random.default_rng(2718)
    sims, n = 500, 200
    p_true = rng.uniform(size=(sims, 2))
    x = rng.binomial(n, p_true)
    r = beta_binomial(Moments.proportion(np.full((sims, 2), n), x))
    d = p_true[:, 1] - p_true[:, 0]
    rel = p_true[:, 1] / p_true[:, 0] - 1
    cover_abs = (r.abs_ci[:, 0, 0] <= d) & (d <= r.abs_ci[:, 0, 1])
    cover_rel = (r.rel_ci[:, 0, 0] <= rel) & (rel <= r.rel_ci[:, 0, 1])
    assert 0.92 < cover_abs.mean() < 0.98  # ±2.5 standard errors at 500 runs
    assert 0.92 < cover_rel.mean() < 0.98
    # and the chance to beat control is calibrated: among runs with P(T > C) ≈ q, T > C about q of the time
    ctw = r.chance_to_beat_control[:, 0]
    hi = ctw > 0.9
    assert (d[hi] > 0).mean() == pytest.approx(ctw[hi].mean(), abs=0.04)


def test_special_functions_used_for_upper_tails_are_accurate():
    # the module computes S_T(y) as I_{1-y}(b, a); check it against betaincc in the far tail
    a, b = 2_100.0, 17_900.0
    y = np.array([0.09, 0.105, 0.115, 0.12])
    np.testing.assert_allclose(special.betainc(b, a, 1 - y), special.betaincc(a, b, y), rtol=1e-9)


# --------------------------------------------------------------------------- fast paths (one comparison)

# large counts: every posterior has min(a, b) >= 1000, so "auto" takes the Edgeworth path
LARGE = [
    (10_000, 1_000, 10_000, 1_100),
    (500_000, 50_000, 20_000, 2_100),  # 25:1 unbalanced
    (100_000, 10_000, 100_000, 10_100),
    (1_002_000, 1_000, 1_002_000, 1_080),  # rate 0.1%
    (1_002_000, 1_001_000, 1_002_000, 1_000_950),  # rate 99.9%
    (1_000_000, 500_000, 40_000, 20_300),
    (50_000, 1_000, 2_000_000, 40_500),
    (3_000, 1_000, 3_000, 1_100),
    (1_000_000, 999, 1_000_000, 1_100),
]


@pytest.mark.parametrize("case", LARGE)
def test_beta_edgeworth_path_agrees_with_the_quadrature(case):
    """The stated accuracy of the large-count path: 1e-7 in probabilities, 1e-7 posterior sd in losses."""
    m = Moments.proportion([case[0], case[2]], [case[1], case[3]])
    fast, exact = beta_binomial(m), beta_binomial(m, method="quadrature")
    p = beta_binomial_posterior(m)
    assert fast.chance_to_beat_control[0] == pytest.approx(exact.chance_to_beat_control[0], abs=1e-7)
    # interval ends: their probability under the exact posterior is the nominal level
    (d_lo, d_hi), (r_lo, r_hi) = fast.abs_ci[0], fast.rel_ci[0]
    np.testing.assert_allclose(p.cdf_abs([d_lo]), 0.025, atol=1e-7)
    np.testing.assert_allclose(p.sf_abs([d_hi]), 0.025, atol=1e-7)
    np.testing.assert_allclose(p.cdf_rel([r_lo]), 0.025, atol=1e-7)
    np.testing.assert_allclose(p.sf_rel([r_hi]), 0.025, atol=1e-7)
    sd = float(np.hypot(p.sd_c, p.sd_t)[0])
    assert fast.expected_loss_treatment[0] == pytest.approx(exact.expected_loss_treatment[0], abs=1e-7 * sd)
    assert fast.expected_loss_control[0] == pytest.approx(exact.expected_loss_control[0], abs=1e-7 * sd)
    for name in ("control_mean", "treatment_mean", "abs_lift", "rel_lift"):
        np.testing.assert_allclose(getattr(fast, name), getattr(exact, name), rtol=1e-12)
    assert fast.abs_ci.shape == exact.abs_ci.shape == (1, 2)


def test_beta_auto_uses_the_quadrature_below_the_threshold_and_for_many_arms():
    small = Moments.proportion([60, 55], [6, 13])
    np.testing.assert_array_equal(beta_binomial(small).rel_ci, beta_binomial(small, method="quadrature").rel_ci)
    # 1-D moments with three arms and large counts: one Edgeworth row per treatment
    m = Moments.proportion([10_000, 10_000, 12_000], [1_000, 1_100, 1_250])
    fast, exact = beta_binomial(m), beta_binomial(m, method="quadrature")
    assert fast.chance_to_beat_control.shape == (2,) and fast.rel_ci.shape == (2, 2)
    np.testing.assert_allclose(fast.chance_to_beat_control, exact.chance_to_beat_control, atol=1e-7)
    with pytest.raises(ValueError):
        beta_binomial(m, method="monte-carlo")


def test_normal_means_closed_form_equals_the_quadrature():
    rng = np.random.default_rng(99)
    for _ in range(40):
        n = rng.integers(50, 50_000, 2).astype(float)
        sd = rng.uniform(0.5, 5.0, 2)
        s = n * (rng.uniform(1.0, 10.0) + rng.normal(0.0, 0.3, 2))
        m = Moments.of(n, s, s**2 / n + sd**2 * (n - 1))
        post = normal_posterior(m)
        fast, exact = normal_means(m), post.summary(0.95)
        for name in ("chance_to_beat_control", "expected_loss_treatment", "expected_loss_control", "abs_ci",
                     "rel_ci", "abs_lift", "rel_lift", "control_mean"):
            a, b = getattr(fast, name), getattr(exact, name)
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        # Fieller's closed form (used by both above) against the generic quadrature of the ratio
        quad = np.stack([LiftPosterior.rel_quantile(post, 0.025), LiftPosterior.rel_quantile(post, 0.975)], -1)
        np.testing.assert_allclose(fast.rel_ci, quad, rtol=1e-9, atol=1e-12)
