"""Power planning for fixed-horizon two-sided tests: units per arm, MDE, power and duration.

Normal approximation, equal arms, two-sided at ``alpha``, with
``z = z[1 - alpha/2] + z[power]`` and a *relative* MDE (``target = baseline ·
(1 ± mde)``, the sign from the metric's good direction):

* proportions, ``method="unpooled"`` (default; the variance the z-test of
  :mod:`.fixed` uses, and ``compiler.planning.units_for_proportion`` exactly):
  ``n = z² (p₁q₁ + p₂q₂) / (p₂ - p₁)²`` (Chow, Shao & Wang, *Sample Size
  Calculations in Clinical Research*, §4.2);
* ``method="pooled"`` (Fleiss, Levin & Paik 2003, no continuity correction):
  ``n = (z_a √(2 p̄ q̄) + z_b √(p₁q₁ + p₂q₂))² / (p₂ - p₁)²``;
* ``method="arcsine"`` (Cohen's h, as ``statsmodels.stats.power.NormalIndPower``):
  ``n = 2 z² / h²`` with ``h = 2 asin √p₂ - 2 asin √p₁``;
* means and ratio metrics: ``n = 2 z² sd² / δ²`` with ``δ = |baseline| · mde``
  (``compiler.planning.units_for_mean`` exactly); for a ratio metric ``sd`` is
  the delta-method per-unit standard deviation, ``sqrt(Moments.variance())``
  of the control.

The unpooled and mean sample sizes are ``compiler/planning.py``'s own
functions, so compile-time plans and runtime plans agree to the unit; the
others use the same standard-library normal quantiles. Reference: baseline 10%, relative MDE 5%, alpha 0.05, power 0.8 →
57,760 (unpooled), 57,763 (pooled), 57,756 (arcsine / NormalIndPower).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import numpy as np
from scipy import special

from expc.compiler.planning import units_for_mean, units_for_proportion

ProportionMethod = Literal["unpooled", "pooled", "arcsine"]
Direction = Literal["increase", "decrease"]

_Z = NormalDist()


def _z(alpha: float, power: float) -> tuple[float, float]:
    """``z[1 - alpha/2]`` and ``z[power]`` from the standard library (as the compiler)."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha!r}, {power!r}")
    return _Z.inv_cdf(1 - alpha / 2), _Z.inv_cdf(power)


def _sign(direction: str) -> int:
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}")
    return 1 if direction == "increase" else -1


def sample_size_proportion(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    direction: Direction = "increase",
    method: ProportionMethod = "unpooled",
) -> int:
    """Units per arm to detect a relative change ``mde`` of rate ``baseline`` (two-sided z-test).

    Formulas in the module docstring; ``"unpooled"`` equals
    ``compiler.planning.units_for_proportion(baseline, baseline * (1 ± mde), alpha, power)``.
    Raises ValueError when the inputs leave their ranges (planning inputs, not data).
    """
    za, zb = _z(alpha, power)
    target = baseline * (1 + _sign(direction) * mde)
    if not (mde > 0 and 0 < baseline < 1 and 0 < target < 1):
        raise ValueError(f"baseline {baseline!r} with relative MDE {mde!r} leaves the range (0, 1)")
    if method == "unpooled":
        return units_for_proportion(baseline, target, alpha, power)
    if method == "pooled":
        pbar = (baseline + target) / 2
        root = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(
            baseline * (1 - baseline) + target * (1 - target)
        )
        return math.ceil(root * root / (target - baseline) ** 2)
    if method == "arcsine":
        h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))
        z = za + zb
        return math.ceil(2 * z * z / (h * h))
    raise ValueError(f"method must be 'unpooled', 'pooled' or 'arcsine', got {method!r}")


def sample_size_mean(baseline: float, sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect a relative change ``mde`` of a mean: ``2 z² sd² / (|baseline| mde)²``.

    Equals ``compiler.planning.units_for_mean(sd, abs(baseline) * mde, alpha, power)``;
    planned with z (Welch's t is within a unit for the n an online test needs).
    """
    _z(alpha, power)  # checks their range
    delta = abs(baseline) * mde
    if not (sd > 0 and delta > 0 and math.isfinite(delta)):
        raise ValueError(f"need sd > 0, a non-zero baseline and mde > 0, got {baseline!r}, {sd!r}, {mde!r}")
    return units_for_mean(sd, delta, alpha, power)


def sample_size_ratio(baseline: float, sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a ratio metric (Σx / Σy): the mean formula with the delta-method s.d.

    ``sd`` is the per-unit delta-method standard deviation of the ratio
    (``sqrt(Moments.variance())``: ``(Var x - 2 r Cov(x, y) + r² Var y) / μ_y²``,
    Deng et al. KDD 2018), ``baseline`` the control ratio.
    """
    return sample_size_mean(baseline, sd, mde, alpha, power)


def _target(baseline: np.ndarray, mde: np.ndarray, direction: str) -> np.ndarray:
    return baseline * (1 + _sign(direction) * mde)


def power_proportion(
    baseline,
    mde,
    n,
    alpha: float = 0.05,
    *,
    direction: Direction = "increase",
    method: ProportionMethod = "unpooled",
) -> np.ndarray:
    """Power of the two-sided z-test with ``n`` units per arm at a relative change ``mde`` (both tails).

    unpooled: ``Φ(|Δ|/σ₁ - z_a) + Φ(-|Δ|/σ₁ - z_a)``, ``σ₁² = (p₁q₁ + p₂q₂)/n``;
    pooled: ``Φ((|Δ| - z_a σ₀)/σ₁) + Φ((-|Δ| - z_a σ₀)/σ₁)``, ``σ₀² = 2 p̄ q̄ / n``;
    arcsine: ``Φ(|h| √(n/2) - z_a) + Φ(-|h| √(n/2) - z_a)`` (NormalIndPower).
    Vectorised over array inputs; NaN outside the valid range.
    """
    za, _ = _z(alpha, 0.5)
    p1 = np.asarray(baseline, dtype=np.float64)
    p2 = _target(p1, np.asarray(mde, dtype=np.float64), direction)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (p1 > 0) & (p1 < 1) & (p2 > 0) & (p2 < 1) & (n > 0)
        d = np.abs(p2 - p1)
        s1 = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
        if method == "unpooled":
            out = special.ndtr(d / s1 - za) + special.ndtr(-d / s1 - za)
        elif method == "pooled":
            pbar = (p1 + p2) / 2
            s0 = np.sqrt(2 * pbar * (1 - pbar) / n)
            out = special.ndtr((d - za * s0) / s1) + special.ndtr((-d - za * s0) / s1)
        elif method == "arcsine":
            h = np.abs(2 * np.arcsin(np.sqrt(p2)) - 2 * np.arcsin(np.sqrt(p1))) * np.sqrt(n / 2)
            out = special.ndtr(h - za) + special.ndtr(-h - za)
        else:
            raise ValueError(f"method must be 'unpooled', 'pooled' or 'arcsine', got {method!r}")
    return np.where(ok, out, np.nan)[()]


def power_mean(baseline, sd, mde, n, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided z approximation for means/ratios: ``Φ(δ/σ - z_a) + Φ(-δ/σ - z_a)``, ``σ = sd √(2/n)``."""
    za, _ = _z(alpha, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.abs(np.asarray(baseline, dtype=np.float64)) * np.asarray(mde, dtype=np.float64)
        sigma = np.asarray(sd, dtype=np.float64) * np.sqrt(2 / np.asarray(n, dtype=np.float64))
        out = special.ndtr(delta / sigma - za) + special.ndtr(-delta / sigma - za)
    return out[()]


def mde_proportion(
    baseline,
    n,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    direction: Direction = "increase",
    method: ProportionMethod = "unpooled",
) -> np.ndarray:
    """Smallest relative change of rate ``baseline`` detectable with ``n`` units per arm (inverse of the sample size).

    unpooled, closed form: with ``k = z²/n`` and ``d = p₂ - p₁``,
    ``(1 + k) d² - k (1 - 2p₁) d - 2k p₁q₁ = 0`` (the root with the sign of
    the direction); arcsine: ``p₂ = sin²(asin √p₁ ± z/√(2n))``; pooled: the
    root of the Fleiss formula by vectorised bisection. NaN when no change
    within (0, 1) reaches the power.
    """
    za, zb = _z(alpha, power)
    sign = _sign(direction)
    p1 = np.asarray(baseline, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = za + zb
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "unpooled":
            k = z * z / n
            b = k * (1 - 2 * p1)
            disc = np.sqrt(b * b + 8 * (1 + k) * k * p1 * (1 - p1))
            d = (b + sign * disc) / (2 * (1 + k))
            p2 = p1 + d
        elif method == "arcsine":
            angle = np.arcsin(np.sqrt(p1)) + sign * z / np.sqrt(2 * n)
            p2 = np.where((angle > 0) & (angle < np.pi / 2), np.sin(angle) ** 2, np.nan)
        elif method == "pooled":
            lo = np.broadcast_to(p1, np.broadcast(p1, n).shape).astype(np.float64)
            hi = np.where(sign > 0, 1.0, 0.0) + 0 * lo
            for _ in range(80):  # bisection on the target rate; the required n falls monotonically away from p1
                mid = (lo + hi) / 2
                pbar = (p1 + mid) / 2
                root = za * np.sqrt(2 * pbar * (1 - pbar)) + zb * np.sqrt(p1 * (1 - p1) + mid * (1 - mid))
                need = root * root / (mid - p1) ** 2
                far = need <= n  # mid is detectable: the MDE lies nearer p1
                hi = np.where(far, mid, hi)
                lo = np.where(far, lo, mid)
            p2 = np.where(np.abs(hi - np.where(sign > 0, 1.0, 0.0)) < 1e-12, np.nan, hi)
        else:
            raise ValueError(f"method must be 'unpooled', 'pooled' or 'arcsine', got {method!r}")
        ok = (p1 > 0) & (p1 < 1) & (n > 0) & (p2 > 0) & (p2 < 1)
        out = np.where(ok, sign * (p2 - p1) / p1, np.nan)
    return out[()]


def mde_mean(baseline, sd, n, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest relative change of a mean detectable with ``n`` units per arm: ``z sd √(2/n) / |baseline|``."""
    za, zb = _z(alpha, power)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (za + zb) * np.asarray(sd, dtype=np.float64) * np.sqrt(2 / np.asarray(n, dtype=np.float64))
        out = out / np.abs(np.asarray(baseline, dtype=np.float64))
    return out[()]


def mde_ratio(baseline, sd, n, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """MDE of a ratio metric: :func:`mde_mean` with the delta-method per-unit s.d."""
    return mde_mean(baseline, sd, n, alpha, power)


def daily_units_per_arm(units_per_day: float, weights, share: float = 1.0, coverage: float = 1.0) -> np.ndarray:
    """Units reaching each arm per day: ``units_per_day · share · coverage · w_i / Σw`` (the compiler's order of operations)."""
    w = np.asarray(weights, dtype=np.float64)
    return units_per_day * share * coverage * w / sum(w.tolist())


def expected_days(units_per_arm: int, daily_units_per_arm) -> int | None:
    """Days until every arm has ``units_per_arm`` units: ``ceil(n / min_i daily_i)``; None if an arm gets none.

    Why the minimum: the smallest arm is the last to reach its sample size
    (the compiler's rule for unequal weights).
    """
    daily = np.atleast_1d(np.asarray(daily_units_per_arm, dtype=np.float64))
    slowest = float(daily.min()) if daily.size else 0.0
    if not slowest > 0 or not math.isfinite(slowest):
        return None
    return math.ceil(units_per_arm / slowest)
