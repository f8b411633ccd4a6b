"""A multi-armed bandit on sufficient statistics: period weighting, the probability of being best, Thompson weights.

Shapes follow the rest of :mod:`expc.runtime.stats`: arms on the last axis
(control first), leading axes (replications) broadcast. A bandit's data come in
*periods*, the intervals between two looks during which the weights were fixed;
per-period statistics have shape ``S + (P, arms)``.

Period weighting (the analysis of a changing allocation)
--------------------------------------------------------
When the weights move towards an arm while the base rate drifts, pooling all of
an arm's units compares arms observed at different times (Simpson's paradox: an
arm that got most of its traffic on a good day looks better). Each period is a
randomised experiment of its own, so the estimate of arm ``a`` is the
post-stratified mean over periods ::

    θ̂_a = Σ_p π_p x̄_{p,a},   Var(θ̂_a) = Σ_p π_p² s²_{p,a} / n_{p,a}

with ``π_p`` the period's share of all units (every arm's units weighted by the
same ``π``). Its expectation is ``Σ_p π_p θ_{p,a}``, the arm's mean over the
traffic that entered, whatever the weights were, so differences between arms
are unbiased for the traffic-averaged effect. A period in which some arm has no
unit (fewer than two for a mean) is left out and ``π`` renormalised over the
others (the minimum weight makes this rare). :func:`effective_moments` turns
the estimates into :class:`~expc.runtime.stats.moments.Moments` with the same
``n``, the weighted mean and a variance giving the weighted standard error, so
the decision kernel's fixed-horizon comparison (a Welch / z test) and
guardrail non-inferiority run on them unchanged.

The posterior and the probability of being best
-----------------------------------------------
* Proportions: Beta-Binomial, ``Beta(1 + x, 1 + n - x)`` per arm and period;
  the weighted rate ``Σ π_p θ_{p,a}`` is given the Beta with the same mean and
  variance (exact with one period).
* Means: normal model with plug-in variance (flat prior), ``N(θ̂_a, Var(θ̂_a))``.

``P(arm i is best) = ∫ f_i(x) Π_{j≠i} F_j(x) dx`` (best in the metric's good
direction) is computed by the trapezoidal rule on ``x = m_i + s_i z``,
``z ∈ [-8, 8]`` in steps of 0.1: deterministic (no Monte Carlo), so a look
gives the same weights whenever it is evaluated. Beta posteriors are
integrated exactly (Beta densities and CDFs) where some arm has fewer than
``EXACT_COUNT`` pseudo-successes or failures or ``exact=True`` (one look of a
real run); elsewhere with their normal approximation (same mean and variance),
which at such counts moves a probability by less than 0.01.

Thompson weights: ``w = min_weight + (1 - arms × min_weight) × P(best)``
(Thompson sampling's allocation in the batched form: each arm's share of
traffic is its chance of being best; Russo et al., "A Tutorial on Thompson
Sampling", 2018, §6), equal weights during the exploration period.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .moments import Moments
from .srm import SRM

__all__ = ["EXACT_COUNT", "effective_moments", "expected_shares", "period_weighted", "posterior",
           "probability_best", "srm_by_period", "thompson_weights"]

EXACT_COUNT = 30.0
_Z = np.arange(-8.0, 8.0 + 1e-9, 0.1)
_PHI = np.exp(-0.5 * _Z**2) / np.sqrt(2 * np.pi)
GRID_POINTS = int(_Z.size)
"""Quadrature points per arm: :func:`probability_best` holds ``S × arms² × GRID_POINTS`` numbers."""


def _usable(n: np.ndarray, kind: str) -> np.ndarray:
    """``S + (P,)``: periods in which every arm has units enough for a variance."""
    least = 1.0 if kind == "proportion" else 2.0
    return np.all(n >= least, axis=-1)


def period_shares(n: np.ndarray, kind: str) -> np.ndarray:
    """``S + (P,)``: each usable period's share of the units of the usable periods (0 for the others)."""
    n = np.asarray(n, dtype=np.float64)
    total = np.where(_usable(n, kind), n.sum(axis=-1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(total / total.sum(axis=-1, keepdims=True))


def period_weighted(periods: Moments, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The period-weighted mean of each arm and its variance, ``S + (arms,)`` each, from ``S + (P, arms)``.

    Proportions use the per-period rate ``x / n`` and, for the variance, the
    Beta posterior's variance (never 0, even for a period with no success).
    """
    n = np.asarray(periods.n, dtype=np.float64)
    pi = period_shares(n, kind)[..., None]
    usable = pi > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = periods.mean()
        if kind == "proportion":
            a, b = 1.0 + periods.sum, 1.0 + n - periods.sum
            var_p = a * b / ((a + b) ** 2 * (a + b + 1))
        else:
            var_p = periods.variance_of_mean()
    mean_p = np.where(usable, mean_p, 0.0)
    var_p = np.where(usable, var_p, 0.0)
    has = np.any(usable, axis=-2)
    mean = np.where(has, (pi * mean_p).sum(axis=-2), np.nan)
    var = np.where(has, (pi**2 * var_p).sum(axis=-2), np.nan)
    return mean, var


def effective_moments(periods: Moments, kind: str) -> Moments:
    """Moments (a mean's ``n, Σx, Σx²``) whose mean and variance of the mean are the period-weighted ones.

    ``n`` is each arm's units over all periods; ``Σx = n θ̂`` and ``Σx²`` is set
    so that ``variance() / n`` equals ``Var(θ̂)``. Compare them as ``mean``.
    """
    n = np.asarray(periods.n, dtype=np.float64).sum(axis=-2)
    mean, var = period_weighted(periods, kind)
    with np.errstate(invalid="ignore"):
        s = n * mean
        s2 = var * n * (n - 1) + s**2 / np.where(n > 0, n, 1.0)
    return Moments.of(n, np.where(np.isfinite(s), s, 0.0), np.where(np.isfinite(s2), s2, 0.0))


def posterior(periods: Moments, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each arm's posterior of its period-weighted mean: ``mean``, ``sd`` and, for proportions, Beta ``(a, b)``.

    Returns ``(mean, sd, ab)`` with ``ab`` of shape ``S + (arms, 2)`` (moment-matched Beta parameters) or None.
    """
    if kind != "proportion":
        mean, var = period_weighted(periods, kind)
        return mean, np.sqrt(var), None
    n = np.asarray(periods.n, dtype=np.float64)
    pi = period_shares(n, kind)[..., None]
    a, b = 1.0 + periods.sum, 1.0 + n - periods.sum
    m_p, v_p = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    has = np.any(pi > 0, axis=-2)
    mean = np.where(has, (pi * m_p).sum(axis=-2), 0.5)
    var = np.where(has, (pi**2 * v_p).sum(axis=-2), 1.0 / 12.0)
    kappa = np.maximum(mean * (1 - mean) / np.maximum(var, 1e-300) - 1.0, 1e-9)
    ab = np.stack([mean * kappa, (1 - mean) * kappa], axis=-1)
    return mean, np.sqrt(var), ab


def probability_best(mean: np.ndarray, sd: np.ndarray, ab: np.ndarray | None = None, sign: float = 1.0,
                     exact: bool = False) -> np.ndarray:
    """``S + (arms,)``: each arm's posterior probability of being best in the good direction (``sign``).

    Normal posteriors ``N(mean, sd²)``, or Beta ``ab`` (see the module docs).
    Arms without a posterior (NaN) get probability 0 of being best; the
    probabilities are normalised to sum to 1.
    """
    shape = np.shape(mean)
    arms = shape[-1]
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, arms)
    sd = np.broadcast_to(np.asarray(sd, dtype=np.float64), shape).reshape(-1, arms)
    if ab is not None:
        ab = np.broadcast_to(np.asarray(ab, dtype=np.float64), shape + (2,)).reshape(-1, arms, 2)
    ok = np.isfinite(mean) & np.isfinite(sd) & (sd > 0)
    m = np.where(ok, sign * mean, -np.inf)
    s = np.where(ok, sd, 1.0)
    x = m[..., :, None] + s[..., :, None] * _Z  # S + (arms, G): each arm's own grid
    with np.errstate(invalid="ignore", over="ignore"):
        # cdf[..., i, j, g] = P(arm j < x_i[g]) under the normal approximation
        cdf = special.ndtr((x[..., :, None, :] - m[..., None, :, None]) / s[..., None, :, None])
        cdf = np.where(ok[..., None, :, None], cdf, 1.0)
        dens = np.broadcast_to(_PHI, x.shape)
        if ab is not None:
            a, b = ab[..., 0], ab[..., 1]
            need = np.ones(mean.shape[0], dtype=bool) if exact else np.any(np.minimum(a, b) < EXACT_COUNT, axis=-1)
            if np.any(need):
                idx = np.nonzero(need)[0]
                xs = sign * x[idx]  # (E, arms, G) back on the rate scale
                ae, be = a[idx], b[idx]
                inside = (xs > 0) & (xs < 1)
                xc = np.clip(xs, 1e-300, 1 - 1e-16)
                logpdf = ((ae[..., None] - 1) * np.log(xc) + (be[..., None] - 1) * np.log1p(-xc)
                          - special.betaln(ae, be)[..., None])
                d_exact = np.where(inside, np.exp(logpdf) * s[idx][..., None], 0.0)
                f = special.betainc(ae[:, None, :, None], be[:, None, :, None], np.clip(xs, 0, 1)[:, :, None, :])
                c_exact = f if sign > 0 else 1.0 - f
                c_exact = np.where(ok[idx][:, None, :, None], c_exact, 1.0)
                cdf = cdf.copy()
                dens = dens.copy()
                cdf[idx] = c_exact
                dens[idx] = d_exact
        eye = np.eye(arms, dtype=bool)[..., None]
        others = np.where(eye, 1.0, cdf).prod(axis=-2)  # S + (arms, G)
        p = np.trapezoid(dens * others, _Z, axis=-1)
    p = np.where(ok, np.clip(p, 0.0, 1.0), 0.0)
    total = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, p / total, 1.0 / arms).reshape(shape)


def thompson_weights(best: np.ndarray, min_weight: float) -> np.ndarray:
    """``S + (arms,)``: ``min_weight + (1 - arms × min_weight) × P(best)`` (sums to 1)."""
    best = np.asarray(best, dtype=np.float64)
    arms = best.shape[-1]
    floor = min(float(min_weight), 1.0 / arms)
    return floor + (1.0 - arms * floor) * best


def expected_shares(period_units: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``S + (arms,)``: the share of units each arm should have, ``Σ_p N_p w_p / Σ_p N_p``.

    ``period_units`` is ``S + (P, arms)`` (units that entered each period),
    ``weights`` ``S + (P, arms)`` (the weights in force in each period).
    """
    n = np.asarray(period_units, dtype=np.float64).sum(axis=-1, keepdims=True)
    total = n.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (n * weights).sum(axis=-2) / total, weights[..., -1, :])


def srm_by_period(period_units: np.ndarray, weights: np.ndarray, threshold: float = 0.001) -> SRM:
    """Sample-ratio check against the weights in force in each period: Pearson's χ² summed over the periods.

    Each period is a multinomial draw with its own weights, so the sum of the
    periods' χ² statistics has ``P × (arms - 1)`` degrees of freedom (periods
    without units add nothing and no degree of freedom). Zero-weight arms with
    units give ``inf`` (flagged). ``expected`` is the expected total per arm.
    """
    o = np.asarray(period_units, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    total = o.sum(axis=-1, keepdims=True)
    expected = total * w / w.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (o - expected) ** 2 / expected, np.where(o > 0, np.inf, 0.0))
    statistic = terms.sum(axis=(-1, -2))
    df = ((total[..., 0] > 0) * ((w > 0).sum(axis=-1) - 1)).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        p_value = np.where(df > 0, special.chdtrc(np.maximum(df, 1), statistic), np.nan)
    flagged = np.where(np.isnan(p_value), False, p_value < threshold)
    return SRM(statistic=np.where(df > 0, statistic, np.nan), p_value=p_value, flagged=flagged,
               expected=expected.sum(axis=-2), df=int(np.max(df)) if np.size(df) else 0, threshold=float(threshold))
