"""CUPED (stats/cuped.py): against statsmodels OLS on fixed data, per-unit numpy, and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from conftest import BASE, plan_of_text
from scipy import stats

from expc.runtime.stats import cuped, fixed
from expc.runtime.stats.moments import Moments


def sums(arm: np.ndarray, arms: int, *cols: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(arm, weights=c, minlength=arms) for c in cols]


def unit_moments(arm: np.ndarray, x: np.ndarray, z: np.ndarray, arms: int) -> Moments:
    n = np.bincount(arm, minlength=arms)
    s, ss, zs, zz, xz = sums(arm, arms, x, x * x, z, z * z, x * z)
    return Moments.of(n, s, ss).with_covariate(pre_sum=zs, pre_sum_sq=zz, pre_cross=xz)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three arms of unequal size and spread; a skewed covariate; a real effect in arm 1."""
    rng = np.random.default_rng(20131)
    arm = np.repeat([0, 1, 2], [3000, 3300, 2700])
    z = rng.gamma(2.0, 2.0, size=arm.size)
    x = 3.0 + 0.8 * z + rng.normal(0.0, 1.0 + 0.5 * arm) + 0.3 * (arm == 1)
    return arm, x, z


def ols(arm, x, z, cov_type="nonrobust"):
    dummies = [arm == a for a in range(1, int(arm.max()) + 1)]
    design = np.column_stack([np.ones_like(x), *dummies, z - z.mean()]).astype(float)
    return sm.OLS(x, design).fit(cov_type=cov_type)


def test_adjusted_difference_is_the_ols_treatment_coefficient(data):
    arm, x, z = data
    m = unit_moments(arm, x, z, 3)
    adj = cuped.adjust(m)
    fit = ols(arm, x, z)
    lift = fixed.means(adj.moments).abs_lift
    np.testing.assert_allclose(lift, fit.params[1:3], rtol=1e-9)
    np.testing.assert_allclose(adj.theta, fit.params[-1], rtol=1e-9)  # θ is the ANCOVA slope
    # the regression view from the same sums: classical (homoscedastic) standard errors agree exactly
    coef, se = cuped.ols_classical_se(m)
    np.testing.assert_allclose(coef, fit.params[1:3], rtol=1e-9)
    np.testing.assert_allclose(se, fit.bse[1:3], rtol=1e-9)


def test_engine_uses_welch_on_the_adjusted_values(data):
    """The test run on adjusted moments is Welch's t on u = x - θ(z - z̄), per unit (scipy)."""
    arm, x, z = data
    adj = cuped.adjust(unit_moments(arm, x, z, 3))
    u = x - adj.theta * (z - z.mean())
    c = fixed.means(adj.moments)
    for j in (1, 2):
        ref = stats.ttest_ind(u[arm == j], u[arm == 0], equal_var=False)
        assert c.statistic[j - 1] == pytest.approx(ref.statistic, rel=1e-9)
        assert c.p_value[j - 1] == pytest.approx(ref.pvalue, rel=1e-6)
    # heteroscedasticity-robust OLS (HC2) differs from it only by θ's estimation error, O(1/n)
    hc2 = ols(arm, x, z, "HC2").bse[1:3]
    np.testing.assert_allclose(c.se, hc2, rtol=2e-3)
    # the classical OLS error assumes equal spreads, which these arms do not have
    assert not np.allclose(c.se, ols(arm, x, z).bse[1:3], rtol=2e-3)


def test_without_correlation_nothing_changes_much_and_constant_covariate_is_not_applied(data):
    arm, x, _ = data
    z = np.zeros_like(x)
    adj = cuped.adjust(unit_moments(arm, x, z, 3))
    assert not adj.applied and adj.theta == 0.0
    raw = unit_moments(arm, x, z, 3)
    np.testing.assert_allclose(adj.moments.mean(), raw.mean(), rtol=1e-12)
    np.testing.assert_allclose(adj.moments.variance(), raw.variance(), rtol=1e-9)
    np.testing.assert_allclose(adj.variance_reduction, 0.0, atol=1e-9)


def test_variance_falls_by_about_rho_squared_and_the_aa_error_rate_holds():
    """10,000 A/A experiments of 2 x 400 units, corr(x, z) = 0.6: Var(Δ) falls by ρ² = 0.36."""
    rng = np.random.default_rng(7)
    sims, n, rho = 10_000, 400, 0.6
    z = rng.normal(size=(sims, 2, n))
    x = 10 + rho * z + np.sqrt(1 - rho**2) * rng.normal(size=(sims, 2, n))
    m = Moments.of(np.full((sims, 2), n), x.sum(-1), (x * x).sum(-1)).with_covariate(
        pre_sum=z.sum(-1), pre_sum_sq=(z * z).sum(-1), pre_cross=(x * z).sum(-1))
    adj = cuped.adjust(m)
    raw_diff = m.mean()[:, 1] - m.mean()[:, 0]
    adj_diff = adj.moments.mean()[:, 1] - adj.moments.mean()[:, 0]
    empirical = 1 - adj_diff.var() / raw_diff.var()
    assert empirical == pytest.approx(rho**2, abs=0.03)
    assert np.mean(adj.variance_reduction) == pytest.approx(rho**2, abs=0.01)
    # still a valid test: the A/A false-positive rate at alpha 0.05
    fp = np.mean(fixed.means(adj.moments).p_value[:, 0] < 0.05)
    assert 0.04 <= fp <= 0.06


def test_proportions_are_adjusted_as_means():
    rng = np.random.default_rng(3)
    arm = np.repeat([0, 1], 5000)
    z = (rng.random(arm.size) < 0.3).astype(float)  # active before exposure
    x = (rng.random(arm.size) < np.where(z == 1, 0.6, 0.1) + 0.03 * arm).astype(float)
    adj = cuped.adjust(unit_moments(arm, x, z, 2))
    fit = ols(np.where(arm == 1, 1, 0), x, z)
    assert fixed.means(adj.moments).abs_lift[0] == pytest.approx(fit.params[1], rel=1e-9)
    assert 0.2 < adj.variance_reduction[0] < 0.4  # about corr(x, z)² = 0.28 here
    assert not set(np.unique(adj.moments.mean())) <= {0.0, 1.0}


def ratio_moments(arm, x, y, z, w, arms):
    n = np.bincount(arm, minlength=arms)
    s = sums(arm, arms, x, x * x, y, y * y, x * y, z, z * z, x * z, w, w * w, z * w, x * w, y * z, y * w)
    return Moments.of(n, *s[:5]).with_covariate(
        pre_sum=s[5], pre_sum_sq=s[6], pre_cross=s[7], pre_den_sum=s[8], pre_den_sum_sq=s[9],
        pre_num_den=s[10], pre_cross_den=s[11], pre_den_cross=s[12], pre_den_cross_den=s[13])


def ratio_data(rng, arms, n):
    arm = np.repeat(np.arange(arms), n)
    activity = rng.gamma(2.0, 1.0, size=arm.size)  # a unit's propensity, before and after
    w = rng.poisson(3 * activity) + 1.0  # pre-period sessions
    z = rng.poisson(0.5 * w * activity).astype(float)  # pre-period clicks
    y = rng.poisson(3 * activity) + 1.0
    x = rng.poisson(0.5 * y * activity * (1 + 0.05 * arm)).astype(float)
    return arm, x, y, z, w


def test_ratio_metrics_use_the_delta_method_linearisation():
    """Against the per-unit linearised values l = (x - R y)/ȳ, l₀ = (z - R₀ w)/w̄, computed with numpy."""
    rng = np.random.default_rng(11)
    arm, x, y, z, w = ratio_data(rng, 2, 4000)
    m = ratio_moments(arm, x, y, z, w, 2)
    adj = cuped.adjust(m)
    ls, l0s = [], []
    for a in (0, 1):
        k = arm == a
        r, r0 = x[k].sum() / y[k].sum(), z[k].sum() / w[k].sum()
        ls.append((x[k] - r * y[k]) / y[k].mean())
        l0s.append((z[k] - r0 * w[k]) / w[k].mean())
    theta = sum((li * l0).sum() for li, l0 in zip(ls, l0s)) / sum((l0 * l0).sum() for l0 in l0s)
    assert adj.theta == pytest.approx(theta, rel=1e-9)
    r0_pool = z.sum() / w.sum()
    for a in (0, 1):
        k = arm == a
        est = x[k].sum() / y[k].sum() - theta * (z[k].sum() / w[k].sum() - r0_pool)
        assert adj.moments.mean()[a] == pytest.approx(est, rel=1e-9)
        assert adj.moments.variance()[a] == pytest.approx(np.var(ls[a] - theta * l0s[a], ddof=1), rel=1e-7)
    # with θ = 0 the variance is the ratio's own delta-method variance
    np.testing.assert_allclose(np.var(ls[0], ddof=1), m.variance()[0], rtol=1e-7)
    assert 0.1 < adj.variance_reduction[0] < 0.9


def test_ratio_variance_reduction_matches_simulation():
    rng = np.random.default_rng(5)
    sims, n = 1500, 300
    _, x, y, z, w = ratio_data(rng, 2, sims * n)
    shape = (sims, 2, n)
    order = lambda v: v.reshape(2, sims, n).transpose(1, 0, 2)
    x, y, z, w = (order(v) for v in (x, y, z, w))
    assert x.shape == shape
    s = lambda v: v.sum(-1)
    m = Moments.of(np.full((sims, 2), n), s(x), s(x * x), s(y), s(y * y), s(x * y)).with_covariate(
        pre_sum=s(z), pre_sum_sq=s(z * z), pre_cross=s(x * z), pre_den_sum=s(w), pre_den_sum_sq=s(w * w),
        pre_num_den=s(z * w), pre_cross_den=s(x * w), pre_den_cross=s(y * z), pre_den_cross_den=s(y * w))
    adj = cuped.adjust(m)
    raw_diff = np.diff(m.mean(), axis=-1)[:, 0]
    adj_diff = np.diff(adj.moments.mean(), axis=-1)[:, 0]
    empirical = 1 - adj_diff.var() / raw_diff.var()
    assert empirical == pytest.approx(np.mean(adj.variance_reduction), abs=0.06)
    assert empirical > 0.1


def test_needs_the_covariate():
    with pytest.raises(ValueError, match="covariate"):
        cuped.adjust(Moments.of([10, 10], [1, 2], [1, 2]))


def test_enabled_follows_the_metric_then_the_analysis():
    """The plan's metric carries the effective flag: its own ``cuped``, else ``analysis.cuped`` (default off)."""
    metrics = ("  - {id: unset, kind: mean, event: a}\n  - {id: null_, kind: mean, event: d, cuped: null}\n"
               "  - {id: on, kind: mean, event: b, cuped: true}\n  - {id: off, kind: mean, event: c, cuped: false}\n")

    def flags(analysis: str) -> dict[str, bool]:
        return {m.id: m.cuped for m in plan_of_text(BASE + metrics + analysis).metrics}

    assert flags("analysis:\n  cuped: true\n") == {"activated": True, "unset": True, "null_": True, "on": True,
                                                    "off": False}
    assert flags("") == {"activated": False, "unset": False, "null_": False, "on": True, "off": False}
