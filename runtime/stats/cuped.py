"""CUPED: variance reduction with a pre-exposure covariate (Deng, Xu, Kohavi & Walker, WSDM 2013).

Each unit has an outcome ``x`` (the metric measured after exposure) and a
covariate ``z``, the same metric measured over a look-back period before the
unit's first exposure. Because ``z`` is fixed before randomisation it is
independent of the assignment, so for any constant ``θ`` the adjusted value

    u = x - θ (z - z̄)          (z̄: the mean of z over all arms)

has the same expected difference between arms as ``x``, and the least
variance at ``θ = Cov(x, z) / Var(z)``, where it is ``Var(x) (1 - ρ²)``.

:func:`adjust` turns :class:`~expc.runtime.stats.moments.Moments` that carry
the covariate sums (``pre_*`` fields, from :mod:`.reduce`) into the moments of
``u``: a unit-level ``Moments`` whose ``mean()`` is the adjusted estimate and
whose ``variance()`` is the per-unit variance of ``u``. Every existing method
that works from a mean and a variance (Welch's t in :mod:`.fixed`, the
always-valid test in :mod:`.sequential`, the normal model in :mod:`.bayesian`)
therefore runs unchanged on the adjusted moments. Proportions are adjusted
too, but their adjusted values are not 0/1, so they are compared as means
(Welch t; the normal model under ``bayesian``), not with the binomial variance.

θ is pooled: ``θ = Σ_a S_xz,a / Σ_a S_zz,a`` with ``S`` the sums of cross
products centred *within* each arm. Why one θ for all arms: the same
adjustment applied to every arm keeps the comparison unbiased by construction
(the difference of adjusted means is ``Δx̄ - θ Δz̄``, and ``E[Δz̄] = 0``), it
uses every unit to estimate θ (stable with several or small arms), and it is
exactly the slope of the regression ``x ~ arm + z`` (ANCOVA), so the
adjusted difference equals that regression's treatment coefficient. Why
centred within arms: a real treatment effect moves the arm means of ``x``;
centring within arms keeps that shift out of the estimate of θ.

Ratio metrics (``Σx / Σy``): the delta-method linearisation (Deng, Knoblich &
Lu, KDD 2018, section on CUPED for ratio metrics). Per unit
``l = (x - R y) / ȳ`` and, for the pre-period ratio ``R₀ = Σz / Σw``,
``l₀ = (z - R₀ w) / w̄``; θ is the pooled within-arm slope of ``l`` on ``l₀``,
the estimate is ``R - θ (R₀,a - R₀)`` (``R₀`` pooled over arms) and the
per-unit variance is that of ``l - θ l₀``. Without a covariate it reduces to
the ratio's delta-method variance (``Moments.variance``).

The variance treats θ as known (as Deng et al. do); estimating it costs one
degree of freedom, an O(1/n) effect. When the covariate has no variance in
any arm (e.g. every unit is new, with no pre-exposure events) or cannot be
formed (a ratio whose pre-period denominator is 0 in some arm), θ is 0 and
``applied`` is False: callers should then use the unadjusted analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .moments import Moments

__all__ = ["Adjustment", "adjust", "ols_classical_se"]


@dataclass(frozen=True, eq=False)
class Adjustment:
    """CUPED-adjusted moments with θ and what the adjustment gained.

    ``moments``: unit-level moments of the adjusted values (arms on the last
    axis, control first as in the input). ``theta``: the pooled slope, shape
    ``(...)``. ``variance_reduction``: per treatment ``1 - Var_adj(Δ) / Var(Δ)``
    of the difference with the control, shape ``(..., arms - 1)`` (for large
    samples about ``ρ²``). ``applied``: False where the covariate could not be
    used (θ forced to 0), shape ``(...)``.
    """

    moments: Moments
    theta: np.ndarray
    variance_reduction: np.ndarray
    applied: np.ndarray


def _centred(n: np.ndarray, sa: np.ndarray, sb: np.ndarray, sab: np.ndarray) -> np.ndarray:
    """``Σ(a - ā)(b - b̄)`` within each arm from ``Σa``, ``Σb``, ``Σab`` (0 for an empty arm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, sab - sa * sb / n, 0.0)


def _given(sums: np.ndarray | None, name: str) -> np.ndarray:
    """``sums``, which the adjustment needs: a ValueError naming the Moments field when it is missing."""
    if sums is None:
        raise ValueError(f"CUPED needs the sums Moments.{name}")
    return sums


def _parts(m: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per arm: estimate, covariate estimate, pooled covariate estimate, S_ll, S_l0, S_00 (centred sums)."""
    n = np.asarray(m.n, dtype=np.float64)
    x, xx = m.sum, m.sum_sq
    z, zz, xz = _given(m.pre_sum, "pre_sum"), _given(m.pre_sum_sq, "pre_sum_sq"), _given(m.pre_cross, "pre_cross")
    with np.errstate(divide="ignore", invalid="ignore"):
        if not m.is_ratio:
            est = x / n
            pre = z / n
            pooled = np.sum(z, axis=-1, keepdims=True) / np.sum(n, axis=-1, keepdims=True)
            s_ll = _centred(n, x, x, xx)
            s_l0 = _centred(n, x, z, xz)
            s_00 = _centred(n, z, z, zz)
            return est, pre, pooled, s_ll, s_l0, s_00
        if m.pre_den_sum is None:
            raise ValueError("CUPED on a ratio metric needs the pre-period denominator sums (pre_den_*)")
        y, yy, xy = _given(m.den_sum, "den_sum"), _given(m.den_sum_sq, "den_sum_sq"), _given(m.cross, "cross")
        w, ww = m.pre_den_sum, _given(m.pre_den_sum_sq, "pre_den_sum_sq")
        zw, xw = _given(m.pre_num_den, "pre_num_den"), _given(m.pre_cross_den, "pre_cross_den")
        yz, yw = _given(m.pre_den_cross, "pre_den_cross"), _given(m.pre_den_cross_den, "pre_den_cross_den")
        r = x / y
        r0 = z / w
        ybar, wbar = y / n, w / n
        cxx, cyy, cxy = _centred(n, x, x, xx), _centred(n, y, y, yy), _centred(n, x, y, xy)
        czz, cww, czw = _centred(n, z, z, zz), _centred(n, w, w, ww), _centred(n, z, w, zw)
        cxz, cxw = _centred(n, x, z, xz), _centred(n, x, w, xw)
        cyz, cyw = _centred(n, y, z, yz), _centred(n, y, w, yw)
        s_ll = (cxx - 2 * r * cxy + r**2 * cyy) / ybar**2
        s_00 = (czz - 2 * r0 * czw + r0**2 * cww) / wbar**2
        s_l0 = (cxz - r0 * cxw - r * cyz + r * r0 * cyw) / (ybar * wbar)
        pooled = np.sum(z, axis=-1, keepdims=True) / np.sum(w, axis=-1, keepdims=True)
        return r, r0, pooled, s_ll, s_l0, s_00


def adjust(m: Moments) -> Adjustment:
    """CUPED-adjust every arm of one metric with the pooled θ (see the module documentation).

    ``m`` must carry the covariate sums (``m.has_covariate``); arms on the last
    axis, any leading axes are independent experiments (vectorised).
    """
    if not m.has_covariate:
        raise ValueError("CUPED needs the pre-exposure covariate sums (Moments.pre_sum, pre_sum_sq, pre_cross)")
    n = np.asarray(m.n, dtype=np.float64)
    est, pre, pooled, s_ll, s_l0, s_00 = _parts(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        populated = n > 0
        usable = np.all(np.where(populated, np.isfinite(s_00) & np.isfinite(s_l0) & np.isfinite(pre), True), axis=-1)
        den = np.sum(np.where(populated, s_00, 0.0), axis=-1)
        num = np.sum(np.where(populated, s_l0, 0.0), axis=-1)
        applied = usable & np.isfinite(den) & (den > 0) & np.isfinite(num)
        theta = np.where(applied, num / np.where(applied, den, 1.0), 0.0)
        t = theta[..., None]
        shift = np.where(applied[..., None], pre - pooled, 0.0)
        adj = est - t * shift
        s_uu = s_ll - 2 * t * np.where(applied[..., None], s_l0, 0.0) + t**2 * np.where(applied[..., None], s_00, 0.0)
        s_uu = np.maximum(s_uu, 0.0)  # rounding can take a perfect fit a hair below 0
        adjusted = Moments.of(n, n * adj, s_uu + n * adj**2)
        raw = m.variance_of_mean()
        new = adjusted.variance_of_mean()
        reduction = 1.0 - (new[..., 1:] + new[..., :1]) / (raw[..., 1:] + raw[..., :1])
    return Adjustment(moments=adjusted, theta=theta, variance_reduction=reduction, applied=applied)


def ols_classical_se(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """Treatment coefficients and their classical OLS standard errors of ``x ~ arm + z`` (unit-level metrics).

    The regression view of CUPED (ANCOVA), from the same sums: coefficient
    ``Δx̄ - θ Δz̄`` (equal to the difference of :func:`adjust`'s means) and
    ``se² = σ̂² (1/n_t + 1/n_c + (z̄_t - z̄_c)² / Σ_a S_zz,a)`` with
    ``σ̂² = Σ_a (S_xx,a - θ S_xz,a) / (N - arms - 1)`` (homoscedastic). Used to
    verify the estimator against ``statsmodels`` OLS; the engine itself uses
    per-arm variances of the adjusted values (Welch), which do not assume equal
    variances across arms.
    """
    if m.is_ratio or not m.has_covariate:
        raise ValueError("ols_classical_se needs unit-level Moments with the covariate sums")
    n = np.asarray(m.n, dtype=np.float64)
    est, pre, _, s_ll, s_l0, s_00 = _parts(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        szz = np.sum(s_00, axis=-1)
        theta = np.sum(s_l0, axis=-1) / szz
        rss = np.sum(s_ll, axis=-1) - theta * np.sum(s_l0, axis=-1)
        sigma2 = rss / (np.sum(n, axis=-1) - n.shape[-1] - 1)
        coef = (est[..., 1:] - est[..., :1]) - theta[..., None] * (pre[..., 1:] - pre[..., :1])
        se = np.sqrt(sigma2[..., None] * (1 / n[..., 1:] + 1 / n[..., :1]
                                          + (pre[..., 1:] - pre[..., :1]) ** 2 / szz[..., None]))
    return coef, se
