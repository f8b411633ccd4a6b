"""Sequential comparisons: always-valid inference and group-sequential boundaries.

Shapes follow the rest of :mod:`expc.runtime.stats`: the arrays of a
:class:`~expc.runtime.stats.moments.Moments` have shape ``(..., arms)`` with the
control at index 0 of the last axis; leading axes (looks, simulated
experiments) broadcast, and results have shape ``(..., arms - 1)``.

Always-valid inference (continuous monitoring)
----------------------------------------------
The difference in means ``Δ̂ = x̄_t - x̄_c`` (a difference in rates for a
proportion, a difference in delta-method ratios for a ratio metric) has
estimated variance ``V = Var(x̄_t) + Var(x̄_c)`` (``Moments.variance_of_mean``).
Mixing the Gaussian likelihood ratio over a ``N(0, τ²)`` prior on the true
difference gives the mixture sequential probability ratio (mSPRT; Robbins
1970; Johari, Pekelis & Walsh, "Always Valid Inference: Bringing Sequential
Analysis to A/B Testing", KDD 2017, with a normal mixing distribution: the
method Optimizely and Statsig use)::

    Λ = sqrt(V / (V + τ²)) · exp( τ² Δ̂² / (2 V (V + τ²)) )

``Λ`` is a nonnegative supermartingale under ``H0: Δ = 0`` (asymptotically,
with ``V`` estimated; Waudby-Smith et al. 2021, "Time-uniform central limit
theory and asymptotic confidence sequences"), so by Ville's inequality the
always-valid p-value ``p_n = min(1, min_{m ≤ n} 1/Λ_m)`` satisfies
``P(∃n: p_n ≤ α) ≤ α`` whatever the number and timing of looks. Inverting
``Λ(Δ̂ - Δ) < 1/α`` gives the confidence sequence::

    Δ̂ ± sqrt( V (V + τ²) / τ² · ( log((V + τ²) / V) + 2 log(1/α) ) )

This is exactly the two-sided normal-mixture boundary of Howard, Ramdas,
McAuliffe & Sekhon (2021, Ann. Statist., eq. 14), ``|S| < sqrt((v + ρ)
log((v + ρ) / (ρ α²)))``, written on the mean scale: intrinsic time
``v = 1/V`` (information), ``S = Δ̂ / V`` and ``ρ = 1/τ²``. It is the form
gbstats and Eppo use. The interval excludes 0 exactly when ``p ≤ α``.

Tuning rule (the mixing variance)
---------------------------------
gbstats fixes ``ρ`` from ``N* = 5,000`` units and Eppo from ``N_tune = 10,000``
whatever the experiment's size. Here ``τ²`` is chosen to minimise the
half-width of the confidence sequence at the PLANNED sample size (the tuning
Howard et al. 2021 give with eq. 14, with ``N_tune =`` the planned n). With
``V_plan = s²_t / N_t + s²_c / N_c`` (current per-unit variance estimates,
planned units per arm ``N``) and ``x = τ² / V_plan`` the squared half-width at
``V_plan`` is ``V_plan (1 + 1/x) (log(1 + x) + c)``, ``c = 2 log(1/α)``; its
minimiser solves ``x = c + log(1 + x)``, i.e.::

    x* = -1 - W₋₁(-exp(-(1 + c))),   τ² = x* · V_plan

(``W₋₁``: the lower branch of Lambert's W). Howard et al.'s closed form
``x ≈ c + log(1 + c)`` (the one gbstats uses) is one fixed-point step of this
equation; for α = 0.05, ``x* = 8.212`` against 7.936. Pass ``tau2`` to override.

Group-sequential designs
------------------------
Lan & DeMets (1983) alpha spending with the O'Brien–Fleming-type function
``α*(t) = 2 - 2 Φ(z_{1-α/2} / √t)`` (or the Pocock-type
``α log(1 + (e - 1) t)``), two-sided symmetric boundaries at planned
information fractions ``t_1 < … < t_K``.

Two conventions of the O'Brien–Fleming-type function are in use, and the
widely tabulated boundaries come from the second:

* ``"obrien_fleming"``: the formula above with the two-sided ``α`` (Lan &
  DeMets 1983). K = 5 equal looks, α = 0.05: 4.383, 3.100, 2.553, 2.254,
  2.064 (the first is exactly ``z_{0.975} / √0.2``).
* ``"obrien_fleming_per_side"``: each tail spends the one-sided function at
  ``α/2``, ``2 - 2 Φ(z_{1-α/4} / √t)``, so the two-sided total is
  ``4 - 4 Φ(z_{1-α/4} / √t)``: the convention of R's ``gsDesign``
  (``sfLDOF``, symmetric two-sided design with one-sided α = 0.025) and
  ``ldbounds`` (``iuse = 1``, ``alpha = c(0.025, 0.025)``). K = 5: 4.877,
  3.357, 2.680, 2.290, 2.031; K = 3: 3.710, 2.511, 1.993; K = 2: 2.963, 1.969.

Both spend exactly ``α`` at ``t = 1``; the per-side form spends less early.

Boundaries come from recursive numerical integration of the joint null
distribution of the sequential z statistics (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000,
ch. 19): on the score scale ``S_k = Z_k √t_k`` the increments are independent
``N(θ Δt, Δt)``, so the sub-density of continuing paths is propagated by
Simpson-rule convolution and each ``c_k`` solves
``P(continue to k, |Z_k| ≥ c_k) = α*(t_k) - α*(t_{k-1})``. The corresponding
z statistics have the canonical correlation ``corr(Z_i, Z_j) = sqrt(t_i/t_j)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import special

from expc.compiler.planning import mixing_ratio

from ._build import build, float_arrays
from .fixed import unit_variance
from .moments import Moments

Spending = Literal["obrien_fleming", "obrien_fleming_per_side", "pocock"]

__all__ = [
    "AlwaysValidResult",
    "GroupSequentialResult",
    "always_valid",
    "boundary_crossing_probabilities",
    "group_sequential_boundaries",
    "group_sequential_test",
    "log_mixture_likelihood_ratio",
    "mixing_variance",
    "optimal_mixing_ratio",
    "relative_interval",
    "spend_obrien_fleming",
    "spend_obrien_fleming_per_side",
    "spend_pocock",
]


# --------------------------------------------------------------------------- helpers


def _sf(x):
    """Upper tail of the standard normal (scipy.stats.norm.sf without importing scipy.stats)."""
    return special.ndtr(-np.asarray(x, dtype=np.float64))


def _isf(q):
    """Inverse of :func:`_sf`: the z with upper tail ``q``."""
    return -special.ndtri(q)


def _pdf(x):
    """Standard normal density."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _difference(m: Moments, kind=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normal approximation, computed here from Moments: (control mean, treatment mean, Δ̂, V).

    Per-unit variances follow :func:`~expc.runtime.stats.fixed.unit_variance`
    (Wald ``p(1 - p)`` for a proportion, ``n - 1`` sample variance for a mean).
    """
    mean = m.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        vom = unit_variance(m, kind) / m.n
    diff = mean[..., 1:] - mean[..., :1]
    var = vom[..., 1:] + vom[..., :1]
    return mean[..., :1], mean[..., 1:], diff, var


def _per_arm(x, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a scalar or an (arms,)-shaped value to the moments' shape."""
    return np.broadcast_to(np.asarray(x, dtype=np.float64), shape)


def relative_interval(m: Moments, multiplier, kind=None) -> np.ndarray:
    """``(..., t, 2)``: the interval of the relative lift ``mean_t / mean_c - 1`` with ``multiplier`` standard errors.

    A sequential analysis widens its absolute interval to ``Δ̂ ± k se`` (``k``
    the confidence sequence's radius over ``se``, or a group-sequential look's
    boundary); the relative interval takes the same ``k`` on the scale of the
    ratio, as the fixed-horizon one does with ``z`` (``fixed.compare``): the
    log ratio ``log(m_t / m_c) ± k sqrt(v_t/m_t² + v_c/m_c²)`` when both means
    are positive (it cannot go below -100%), else the delta method
    ``r ± k sqrt(v_t/m_c² + m_t² v_c/m_c⁴)`` (``v`` the variance of a mean).
    Asymptotically it keeps the absolute interval's guarantee, as GrowthBook's
    sequential relative intervals do.
    """
    mean = np.asarray(m.mean(), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vom = unit_variance(m, kind) / m.n
        m_c, m_t = mean[..., :1], mean[..., 1:]
        v_c, v_t = vom[..., :1], vom[..., 1:]
        k = np.broadcast_to(np.asarray(multiplier, dtype=np.float64), m_t.shape)
        positive = (m_c > 0) & (m_t > 0)
        log_half = k * np.sqrt(v_t / m_t**2 + v_c / m_c**2)
        log_ratio = np.log(np.where(positive, m_t / m_c, 1.0))
        rel = m_t / m_c - 1
        half = k * np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
        lo = np.where(positive, np.expm1(log_ratio - log_half), rel - half)
        hi = np.where(positive, np.expm1(log_ratio + log_half), rel + half)
        ok = np.isfinite(lo) & np.isfinite(hi) & (m_c != 0)
    return np.stack([np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)], axis=-1)


# --------------------------------------------------------------------------- always valid


@lru_cache(maxsize=64)
def optimal_mixing_ratio(alpha: float = 0.05) -> float:
    """``x* = τ² / V_plan`` minimising the CS half-width at the planned variance (cached per α).

    Solves ``x = 2 log(1/α) + log(1 + x)``, i.e. ``x* = -1 - W₋₁(-e^{-(1 + 2 log(1/α))})``
    (Howard et al. 2021, tuning of the eq. 14 boundary; their closed form
    ``c + log(1 + c)`` is one fixed-point step). 8.212 for α = 0.05. Computed by
    :func:`expc.compiler.planning.mixing_ratio`, the one the compiler sizes
    always-valid designs with, so the plan and the test use the same sequence.
    """
    return mixing_ratio(alpha)


def mixing_variance(m: Moments, planned_n, alpha: float = 0.05, kind=None) -> np.ndarray:
    """Mixing variance ``τ² = x*(α) · V_plan`` tuned for the planned sample size.

    ``V_plan = s²_t / N_t + s²_c / N_c``: the variance of the difference in means
    expected when every arm has reached its planned size ``N`` (``planned_n``:
    units per arm, a scalar or one value per arm), using the current per-unit
    variance estimates ``s²`` (``Moments.variance``, delta method for ratios).
    Minimises the half-width of the normal-mixture confidence sequence
    (Howard et al. 2021, eq. 14) at ``V = V_plan``; shape ``(..., arms - 1)``.
    """
    var = unit_variance(m, kind)
    n_plan = _per_arm(planned_n, var.shape)
    if np.any(n_plan <= 0):
        raise ValueError("planned_n must be positive")
    v_plan = var[..., 1:] / n_plan[..., 1:] + var[..., :1] / n_plan[..., :1]
    return optimal_mixing_ratio(alpha) * v_plan


def log_mixture_likelihood_ratio(diff, var, tau2) -> np.ndarray:
    """``log Λ`` of the normal-mixture SPRT (Johari et al. 2017).

    ``log Λ = ½ log(V / (V + τ²)) + τ² Δ̂² / (2 V (V + τ²))`` for an estimate
    ``Δ̂ = diff`` with variance ``V = var`` and mixing distribution ``N(0, τ²)``
    on the true difference. Arrays broadcast.
    """
    diff, var, tau2 = (np.asarray(a, dtype=np.float64) for a in (diff, var, tau2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return -0.5 * np.log1p(tau2 / var) + tau2 * diff**2 / (2.0 * var * (var + tau2))


@dataclass(frozen=True, eq=False)
class AlwaysValidResult:
    """Always-valid results, one entry per treatment (shape ``(..., t)``; ``abs_ci`` ``(..., t, 2)``).

    ``p_value`` and ``abs_ci`` are cumulative over ``look_axis`` when one was
    given (running minimum / running intersection), otherwise per look.
    ``abs_ci`` excludes 0 iff ``p_value ≤ alpha`` (per look, without
    accumulation).
    """

    alpha: float
    control_mean: np.ndarray
    treatment_mean: np.ndarray
    abs_lift: np.ndarray
    se: np.ndarray
    tau2: np.ndarray
    log_lr: np.ndarray
    p_value: np.ndarray
    abs_ci: np.ndarray

    @property
    def reject(self) -> np.ndarray:
        """``p_value ≤ alpha``."""
        return self.p_value <= self.alpha


def always_valid(
    m: Moments,
    *,
    planned_n=None,
    alpha: float = 0.05,
    tau2=None,
    look_axis: int | None = None,
    kind=None,
) -> AlwaysValidResult:
    """Always-valid p-values and confidence sequences for ``mean_t - mean_c``.

    Normal-mixture mSPRT (Johari, Pekelis & Walsh 2017), equivalently the
    two-sided normal-mixture confidence sequence of Howard et al. (2021, eq. 14):
    ``p = min(1, 1/Λ)`` with ``Λ = sqrt(V/(V+τ²)) exp(τ² Δ̂² / (2V(V+τ²)))`` and
    ``Δ̂ ± sqrt(V (V+τ²)/τ² · (log((V+τ²)/V) + 2 log(1/α)))``.

    ``tau2`` defaults to :func:`mixing_variance` for ``planned_n`` (units per arm
    at the planned end of the experiment): the width is minimised at the planned
    sample size. One of ``planned_n`` / ``tau2`` is required. ``look_axis`` names
    a leading axis of the moments that indexes successive looks (cumulative
    data); along it the p-value becomes the running minimum and the interval the
    running intersection, both still always valid. A comparison whose variance
    is not positive and finite gets ``p = 1`` and the interval ``(-inf, inf)``.

    With the default, ``τ²`` follows the current per-unit variance estimate at
    each look (as gbstats' standardised ``ρ`` does); it settles as the estimate
    converges, which the asymptotic guarantee (Waudby-Smith et al. 2021)
    covers. To freeze it, pass ``tau2`` computed once (e.g. at the first look
    or from pre-experiment data).
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if look_axis is None and (fast := _always_valid_scalar(m, planned_n, alpha, tau2, kind)) is not None:
        return fast
    mc, mt, diff, var = _difference(m, kind)
    if tau2 is None:
        if planned_n is None:
            raise ValueError("give planned_n (units per arm) or tau2")
        tau2 = mixing_variance(m, planned_n, alpha, kind)
    tau2 = np.broadcast_to(np.asarray(tau2, dtype=np.float64), diff.shape)
    ok = np.isfinite(var) & (var > 0) & np.isfinite(diff) & np.isfinite(tau2) & (tau2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where(ok, log_mixture_likelihood_ratio(diff, var, tau2), 0.0)
        p = np.minimum(1.0, np.exp(-llr))
        radius2 = var * (var + tau2) / tau2 * (np.log1p(tau2 / var) - 2.0 * np.log(alpha))
        radius = np.where(ok, np.sqrt(radius2), np.inf)
    lo = np.where(ok, diff - radius, -np.inf)
    hi = np.where(ok, diff + radius, np.inf)
    if look_axis is not None:
        # results keep the moments' axes (arms -> treatments), so the index carries over
        axis = look_axis if look_axis >= 0 else diff.ndim + look_axis
        if not 0 <= axis < diff.ndim - 1:
            raise ValueError("look_axis must name a leading axis, not the arms axis")
        p = np.minimum.accumulate(p, axis=axis)
        lo = np.maximum.accumulate(lo, axis=axis)
        hi = np.minimum.accumulate(hi, axis=axis)
    return AlwaysValidResult(
        alpha=alpha,
        control_mean=np.broadcast_to(mc, diff.shape),
        treatment_mean=mt,
        abs_lift=diff,
        se=np.sqrt(var),
        tau2=tau2,
        log_lr=llr,
        p_value=p,
        abs_ci=np.stack([lo, hi], axis=-1),
    )


def _always_valid_scalar(m: Moments, planned_n, alpha: float, tau2, kind=None) -> AlwaysValidResult | None:
    """:func:`always_valid` for one control and one treatment (1-D moments of two arms), in floats.

    Same formulas as the vectorised path, computed with ``math`` on Python
    floats (numpy costs about a microsecond per operation on 2-element arrays,
    which made a single comparison cost ~150 µs). Only the regular case: a
    unit-level metric (proportion or mean), both arms with at least two units,
    positive finite variances and a positive ``τ²``; None otherwise, and the
    caller uses the vectorised path (so edge cases keep one implementation).
    """
    n = m.n
    if n.shape != (2,) or m.den_sum is not None or m.sum.shape != (2,) or m.sum_sq.shape != (2,):
        return None
    n_c, n_t = n.tolist()
    if not (n_c >= 2 and n_t >= 2):
        return None
    x_c, x_t = m.sum.tolist()
    q_c, q_t = m.sum_sq.tolist()
    mc, mt = x_c / n_c, x_t / n_t
    if kind is None:  # fixed.is_binary, on floats
        kind = "proportion" if x_c == q_c and x_t == q_t and 0 <= x_c <= n_c and 0 <= x_t <= n_t else "mean"
    if kind == "proportion":  # fixed.unit_variance: Wald
        s2_c, s2_t = mc * (1 - mc), mt * (1 - mt)
    elif kind == "mean":  # Moments.variance
        s2_c, s2_t = (q_c - x_c * x_c / n_c) / (n_c - 1), (q_t - x_t * x_t / n_t) / (n_t - 1)
    else:
        return None
    var = s2_t / n_t + s2_c / n_c
    diff = mt - mc
    if tau2 is None:
        if planned_n is None:
            raise ValueError("give planned_n (units per arm) or tau2")
        if type(planned_n) is int or type(planned_n) is float or np.ndim(planned_n) == 0:
            np_c = np_t = float(planned_n)
        else:
            np_c, np_t = np.broadcast_to(np.asarray(planned_n, dtype=np.float64), (2,)).tolist()
        if np_c <= 0 or np_t <= 0:
            raise ValueError("planned_n must be positive")
        t2 = optimal_mixing_ratio(alpha) * (s2_t / np_t + s2_c / np_c)
    elif np.size(tau2) == 1:
        t2 = float(np.asarray(tau2, dtype=np.float64).reshape(()))
    else:
        return None
    if not (var > 0 and t2 > 0 and math.isfinite(var + diff + t2)):
        return None
    r = t2 / var  # the formulas of log_mixture_likelihood_ratio and the radius, with τ²/V factored out
    log1p_r = math.log1p(r)
    llr = -0.5 * log1p_r + r * (diff * diff) / (2.0 * (var + t2))
    p = math.exp(-llr) if llr > 0 else 1.0  # min(1, 1/Λ)
    radius = math.sqrt((var + t2) / r * (log1p_r - 2.0 * math.log(alpha)))
    cm, tm, lift, se, tau, lr, pv, ci = _AV_ARRAYS(
        mc, mt, diff, math.sqrt(var), t2, llr, p, diff - radius, diff + radius
    )
    return build(AlwaysValidResult, {
        "alpha": alpha,
        "control_mean": cm,
        "treatment_mean": tm,
        "abs_lift": lift,
        "se": se,
        "tau2": tau,
        "log_lr": lr,
        "p_value": pv,
        "abs_ci": ci,
    })


# the arrays of a one-comparison AlwaysValidResult, in field order: the vectorised path's shapes for 1-D moments
_AV_ARRAYS = float_arrays((1,), (1,), (1,), (1,), (1,), (1,), (1,), (1, 2))


# --------------------------------------------------------------------------- group sequential


def spend_obrien_fleming(t, alpha: float = 0.05) -> np.ndarray:
    """Lan–DeMets O'Brien–Fleming-type spending ``α*(t) = 2 - 2 Φ(z_{1-α/2} / √t)`` (two-sided).

    Lan & DeMets (1983), Biometrika 70, 659–663. ``α*(0) = 0``, ``α*(t ≥ 1) = α``.
    """
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    z = _isf(alpha / 2.0)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2.0 * _sf(z / np.sqrt(t)), 0.0)


def spend_pocock(t, alpha: float = 0.05) -> np.ndarray:
    """Lan–DeMets Pocock-type spending ``α*(t) = α log(1 + (e - 1) t)`` (Lan & DeMets 1983)."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return alpha * np.log1p((np.e - 1.0) * t)


def spend_obrien_fleming_per_side(t, alpha: float = 0.05) -> np.ndarray:
    """Two-sided total of one-sided O'Brien–Fleming-type spending at ``α/2`` per tail.

    ``α*(t) = 2 · [2 - 2 Φ(z_{1-α/4} / √t)]``: each tail spends Lan & DeMets'
    (1983) function evaluated at the one-sided level ``α/2`` (gsDesign ``sfLDOF``,
    ldbounds ``iuse = 1`` conventions). ``α*(t ≥ 1) = α``.
    """
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    z = _isf(alpha / 4.0)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 4.0 * _sf(z / np.sqrt(t)), 0.0)


_SPENDING: dict[str, Callable[..., np.ndarray]] = {
    "obrien_fleming": spend_obrien_fleming,
    "obrien_fleming_per_side": spend_obrien_fleming_per_side,
    "pocock": spend_pocock,
}

_Z_MAX = 40.0  # a boundary this large means "nothing spent at this look"


class _Recursion:
    """Armitage–McPherson–Rowe recursion on the score scale ``S_k = Z_k √t_k``.

    Holds the sub-density of paths that have not crossed any boundary so far, on
    a Simpson grid over the last continuation region, and advances it one look
    at a time. ``drift`` θ is the mean of ``Z`` at ``t = 1`` (``E Z_k = θ √t_k``).
    """

    def __init__(self, drift: float, min_step: float) -> None:
        self.drift = drift
        # grid step: ≤ 1/16 of the smallest increment's standard deviation
        self.h_target = min(0.01, np.sqrt(min_step) / 16.0)
        self.t = 0.0
        self.s: np.ndarray | None = None
        self.mass: np.ndarray | None = None  # density × Simpson weight

    def _kernel_moments(self, t_next: float) -> tuple[float, float]:
        dt = t_next - self.t
        return self.drift * dt, np.sqrt(dt)

    def exit_probability(self, t_next: float, c: float) -> float:
        """P(no crossing before, |Z| ≥ c at t_next)."""
        b = c * np.sqrt(t_next)
        if self.s is None:
            mu, sd = self.drift * t_next, np.sqrt(t_next)
            return float(_sf((b - mu) / sd) + special.ndtr((-b - mu) / sd))
        shift, sd = self._kernel_moments(t_next)
        loc = self.s + shift
        tail = _sf((b - loc) / sd) + special.ndtr((-b - loc) / sd)
        return float(self.mass @ tail)

    def advance(self, t_next: float, c: float) -> None:
        """Move to ``t_next`` keeping only paths with ``|Z| < c`` there."""
        sd_tot = np.sqrt(t_next)
        centre = self.drift * t_next
        b = min(c, _Z_MAX) * sd_tot
        lo = max(-b, centre - 12.0 * sd_tot)
        hi = min(b, centre + 12.0 * sd_tot)
        if hi <= lo:
            self.s = np.zeros(1)
            self.mass = np.zeros(1)
            self.t = t_next
            return
        n_int = max(200, int(np.ceil((hi - lo) / self.h_target)))
        n_int += n_int % 2  # Simpson: even number of intervals
        s_new = np.linspace(lo, hi, n_int + 1)
        w = np.ones(n_int + 1)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        w *= (hi - lo) / n_int / 3.0
        if self.s is None:
            dens = _pdf((s_new - centre) / sd_tot) / sd_tot
        else:
            shift, sd = self._kernel_moments(t_next)
            dens = np.empty_like(s_new)
            for i in range(0, s_new.size, 1024):  # bounded memory
                block = s_new[i : i + 1024, None]
                dens[i : i + 1024] = _pdf((block - self.s[None, :] - shift) / sd) @ self.mass / sd
        self.s, self.mass, self.t = s_new, dens * w, t_next


def _check_fractions(information_fractions) -> np.ndarray:
    t = np.asarray(information_fractions, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("information_fractions must be a non-empty 1-D sequence")
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise ValueError("information fractions must be positive and strictly increasing")
    return t


def group_sequential_boundaries(
    information_fractions,
    alpha: float = 0.05,
    spending: Spending | Callable[[np.ndarray, float], np.ndarray] = "obrien_fleming",
) -> np.ndarray:
    """Two-sided Lan–DeMets alpha-spending z boundaries ``c_1..c_K``.

    Each ``c_k`` solves ``P_0(|Z_j| < c_j for j < k, |Z_k| ≥ c_k) = α*(t_k) - α*(t_{k-1})``
    (Lan & DeMets 1983) with the joint null law of the sequential z statistics
    (independent score increments; ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``),
    integrated recursively (Armitage, McPherson & Rowe 1969; Jennison &
    Turnbull 2000, ch. 19). ``spending``: ``"obrien_fleming"`` (default,
    ``2 - 2Φ(z_{1-α/2}/√t)``), ``"obrien_fleming_per_side"`` (``4 - 4Φ(z_{1-α/4}/√t)``,
    the gsDesign / ldbounds convention behind the usual tables), ``"pocock"``
    (``α log(1 + (e-1) t)``) or a callable ``f(t, alpha)`` giving the cumulative
    two-sided α spent by information fraction ``t``.
    Fractions above 1 spend nothing more than ``α``. Reject at look ``k``
    when ``|Z_k| ≥ c_k``. A boundary of ``inf`` means nothing is spent there.
    """
    t = _check_fractions(information_fractions)
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    spend = _SPENDING[spending] if isinstance(spending, str) else spending
    cum = np.maximum.accumulate(np.asarray(spend(t, alpha), dtype=np.float64))
    inc = np.diff(np.concatenate([[0.0], cum]))
    steps = np.diff(np.concatenate([[0.0], t]))
    rec = _Recursion(0.0, float(steps.min()))
    bounds = np.empty(t.size)
    for k, (tk, a) in enumerate(zip(t, inc)):
        if a <= 1e-15:
            c = np.inf
        elif k == 0:
            c = float(_isf(a / 2.0))
        else:
            g = lambda c_, tk=tk, a=a: rec.exit_probability(tk, c_) - a  # the search runs in this iteration
            if g(0.0) <= 0:  # cannot spend that much: reject everything that is left
                c = 0.0
            else:
                from scipy import optimize  # only the group-sequential search needs it

                c = optimize.brentq(g, 0.0, _Z_MAX, xtol=1e-12, rtol=1e-14)
        bounds[k] = c
        if k < t.size - 1:
            rec.advance(tk, c)
    return bounds


def boundary_crossing_probabilities(boundaries, information_fractions, drift: float = 0.0) -> np.ndarray:
    """Per-look probabilities ``P(first |Z_k| ≥ c_k at look k)``, by the same recursion.

    Under the null (``drift = 0``) they sum to the overall type I error; with
    ``E Z_k = drift · √t_k`` (drift = the z statistic's mean at full
    information) their sum is the power. Armitage, McPherson & Rowe (1969).
    """
    t = _check_fractions(information_fractions)
    c = np.asarray(boundaries, dtype=np.float64)
    if c.shape != t.shape:
        raise ValueError("one boundary per look")
    rec = _Recursion(float(drift), float(np.diff(np.concatenate([[0.0], t])).min()))
    out = np.empty(t.size)
    for k, (tk, ck) in enumerate(zip(t, c)):
        out[k] = 0.0 if not np.isfinite(ck) else rec.exit_probability(tk, ck)
        if k < t.size - 1:
            rec.advance(tk, ck)
    return out


@dataclass(frozen=True, eq=False)
class GroupSequentialResult:
    """Group-sequential test at each look: arrays ``(..., looks, t)``.

    ``crossed``: ``|z| ≥ boundary`` at that look; ``rejected``: crossed at this
    look or an earlier one (the test stops at the first crossing).
    """

    abs_lift: np.ndarray
    se: np.ndarray
    z: np.ndarray
    boundary: np.ndarray
    crossed: np.ndarray
    rejected: np.ndarray


def group_sequential_test(m: Moments, boundaries, kind=None) -> GroupSequentialResult:
    """Compare the Wald z statistic ``Δ̂ / sqrt(V)`` with two-sided boundaries look by look.

    ``m``'s arrays have shape ``(..., looks, arms)`` (cumulative data at each
    look; the looks axis is the one just before the arms) and ``boundaries``
    has one value per look (from :func:`group_sequential_boundaries`). Under
    the null the z statistics follow the canonical joint distribution with
    ``corr(Z_i, Z_j) = sqrt(t_i / t_j)`` (Jennison & Turnbull 2000, ch. 3).
    """
    _, _, diff, var = _difference(m, kind)
    c = np.asarray(boundaries, dtype=np.float64)
    if diff.ndim < 2 or diff.shape[-2] != c.size:
        raise ValueError("moments must have a looks axis (just before the arms) with one entry per boundary")
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var)
        z = diff / se
    crossed = np.abs(z) >= c[:, None]
    crossed &= np.isfinite(z)
    rejected = np.logical_or.accumulate(crossed, axis=-2)
    return GroupSequentialResult(diff, se, z, np.broadcast_to(c[:, None], z.shape), crossed, rejected)
