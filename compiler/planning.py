"""Design planning at compile time: how many units the primary metric needs.

A normal approximation from the standard library (``statistics.NormalDist``),
two-sided, fixed horizon, with unpooled variances for proportions:

    n = (z[1 - a/2] + z[power])^2 * (p1 (1 - p1) + p2 (1 - p2)) / (p2 - p1)^2

and ``n = 2 (z[1 - a/2] + z[power])^2 sd^2 / delta^2`` for means and ratios.
Days count the units that reach the allocation each day (``simulation.units_per_day``)
times the layer's share of hash space, the coverage and the smallest arm's weight.
With more than one treatment and a Bonferroni or Holm correction, alpha is
split across the treatments (the conservative Bonferroni bound). The
statistics engine refines this with each method's exact design.

An always-valid sequential analysis (``method: sequential``, the default
``sequential: always_valid``) rejects once ``|Δ̂|`` passes the confidence
sequence's radius, which at the planned units is ``k(α) × se`` rather than
``z[1 - a/2] × se`` (``k = 3.03`` for α = 0.05, see :func:`mixing_ratio`). For
the same power at the planned end, n grows by ``((k + z[power]) / (z[1 - a/2] +
z[power]))²``: 1.92× for α = 0.05 and 80% power. That is conservative (a
sequence that crosses earlier only adds power), and it is the n the runtime
tunes the sequence to. A group-sequential design keeps the fixed-horizon n: its
inflation (2-3% for O'Brien-Fleming with five looks, more for Pocock) needs the
boundaries, which the runtime computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the runtime's statistics import this module without the spec models
    from .model import Metric, Spec

_Z = NormalDist()


_FIXED_HORIZON = "normal approximation, two-sided, fixed horizon"
_ALWAYS_VALID = "normal approximation, two-sided, always-valid sequential (power at the planned end)"


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Required units for the primary metric, and how long they take to arrive."""

    metric: str
    baseline: float
    mde: float
    alpha: float
    power: float
    per_variant: int
    total: int
    estimated_days: int | None
    method: str = _FIXED_HORIZON
    fixed_horizon_per_variant: int | None = None  # before the sequential inflation (sequential designs only)


def mixing_ratio(alpha: float) -> float:
    """``r = τ²/V`` at the planned units that makes the always-valid confidence sequence narrowest there.

    The sequence's radius is ``sqrt(V (1 + r)/r · (log(1 + r) + 2 log(1/α)))``
    (Howard et al. 2021, eq. 14, with ``τ² = r V``); its minimum over ``r``
    solves ``r = 2 log(1/α) + log(1 + r)``, which Newton's method finds in a few
    steps from ``r = 2 log(1/α)`` (the function is increasing and convex there).
    8.212 for α = 0.05. The runtime tunes ``τ²`` with it
    (``runtime/stats/sequential.py``).
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    c = -2.0 * math.log(alpha)
    r = c + math.log1p(c)
    for _ in range(50):
        step = (r - c - math.log1p(r)) * (1 + r) / r  # g / g' with g(r) = r - c - log(1 + r)
        r -= step
        if abs(step) <= 1e-15 * r:
            break
    return r


def always_valid_inflation(alpha: float, power: float) -> float:
    """Units for an always-valid sequential test over units for the fixed-horizon one, at equal power.

    At the planned units the sequence rejects beyond ``k × se`` with
    ``k = sqrt((1 + r)/r · (log(1 + r) + 2 log(1/α)))`` and ``r`` from
    :func:`mixing_ratio`; power ``Φ(Δ/se - k)`` reaches ``power`` when
    ``Δ/se = k + z[power]``, against ``z[1 - α/2] + z[power]`` for the fixed
    test, and ``se² ∝ 1/n``.
    """
    r = mixing_ratio(alpha)
    k = math.sqrt((1 + r) / r * (math.log1p(r) - 2.0 * math.log(alpha)))
    z_power = _Z.inv_cdf(power)
    return ((k + z_power) / (_Z.inv_cdf(1 - alpha / 2) + z_power)) ** 2


def units_for_proportion(baseline: float, target: float, alpha: float, power: float) -> int:
    """Units per arm to tell rate ``baseline`` from ``target`` (two-sided, unpooled)."""
    z = _Z.inv_cdf(1 - alpha / 2) + _Z.inv_cdf(power)
    variance = baseline * (1 - baseline) + target * (1 - target)
    return math.ceil(z * z * variance / (target - baseline) ** 2)


def units_for_mean(sd: float, delta: float, alpha: float, power: float) -> int:
    """Units per arm to detect an absolute difference ``delta`` in means with s.d. ``sd``."""
    z = _Z.inv_cdf(1 - alpha / 2) + _Z.inv_cdf(power)
    return math.ceil(2 * z * z * sd * sd / (delta * delta))


def planning_inputs(spec: Spec, metric: Metric) -> tuple[float | None, float | None]:
    """The metric's baseline and s.d.: from the metric, else the simulation's control truth."""
    baseline, sd = metric.baseline, metric.sd
    control = spec.control
    if spec.simulation and control is not None:
        truth = spec.simulation.truth.get(control.id, {}).get(metric.id)
        if truth is not None:
            baseline = truth.mean if baseline is None else baseline
            sd = truth.sd if sd is None else sd
    return baseline, sd


def comparison_alpha(spec: Spec) -> float:
    """Alpha for one treatment-vs-control comparison of the primary metric."""
    treatments = max(len(spec.variants) - 1, 1)
    if spec.analysis.correction in ("bonferroni", "holm") and treatments > 1:
        return spec.analysis.alpha / treatments
    return spec.analysis.alpha


def sample_size(spec: Spec) -> tuple[SampleSize | None, str | None]:
    """Plan the primary metric's sample size; or None and the reason it cannot be done."""
    try:
        return _sample_size(spec)
    except (ArithmeticError, ValueError) as exc:  # extreme inputs: 1e-300 baselines, alpha 1e-20, ...
        return None, f"the planning inputs are out of range ({exc})"


def _sample_size(spec: Spec) -> tuple[SampleSize | None, str | None]:
    metric = spec.primary
    if metric is None:
        return None, "the spec has no single primary metric"
    if metric.mde is None or metric.mde <= 0:
        return None, f"the primary metric `{metric.id}` has no `mde`"
    baseline, sd = planning_inputs(spec, metric)
    if baseline is None:
        return None, f"the primary metric `{metric.id}` has no `baseline` (nor a simulated control truth)"
    alpha, power = comparison_alpha(spec), spec.analysis.power
    if not (0 < alpha < 1 and 0 < power < 1):
        return None, "alpha and power must lie strictly between 0 and 1"
    sign = 1 if metric.direction == "increase" else -1
    if metric.kind == "proportion":
        target = baseline * (1 + sign * metric.mde)
        if not (0 < baseline < 1 and 0 < target < 1):
            return None, f"baseline rate {baseline} with MDE {metric.mde:.1%} leaves the range (0, 1)"
        n = units_for_proportion(baseline, target, alpha, power)
    else:
        if sd is None:
            return None, f"the primary metric `{metric.id}` needs `sd` (its per-unit standard deviation)"
        if baseline == 0:
            return None, f"a relative MDE needs a non-zero baseline for `{metric.id}`"
        n = units_for_mean(sd, abs(baseline) * metric.mde, alpha, power)
    fixed_n, method = None, _FIXED_HORIZON
    if spec.analysis.method == "sequential" and spec.analysis.sequential == "always_valid":
        fixed_n, method = n, _ALWAYS_VALID
        n = math.ceil(n * always_valid_inflation(alpha, power))
    weights = [v.weight for v in spec.variants]
    total_weight = sum(weights)
    days = None
    if spec.simulation is not None and total_weight > 0:
        layer = spec.allocation.layer
        share = (layer.range[1] - layer.range[0]) if layer else 1.0
        daily = spec.simulation.units_per_day * share * spec.allocation.coverage * min(weights) / total_weight
        days = math.ceil(n / daily) if daily > 0 else None
    total = math.ceil(n * total_weight / min(weights)) if min(weights) > 0 else n * len(weights)
    return SampleSize(metric.id, baseline, metric.mde, alpha, power, n, total, days, method, fixed_n), None
