"""A design's operating characteristics, analytically: fast counterparts of ``expc simulate``'s figures for validate.

Two figures, from the standard library only (``statistics.NormalDist``; no
numpy or scipy, so ``expc validate`` stays light):

* **Power** at the primary metric's MDE for the units per variant a design
  reaches (:func:`power_at`, :func:`reachable_per_variant`): the inverse of
  :func:`~expc.compiler.planning.sample_size`'s normal approximation (the same
  comparison alpha, unpooled variances, and the always-valid sequence's wider
  radius for ``sequential: always_valid``), ``Φ(Δ/se - z)`` with ``z =
  z[1 - α/2]`` (or the sequence's ``k``). The far tail is left out, as the
  planner leaves it out.
* The **false-positive rate of unadjusted repeated looks**
  (:func:`crossing_probability`): the chance that a z-test at level alpha,
  made at every look of an A/A experiment, is significant at one of them
  (Armitage, McPherson & Rowe 1969). With ``Z_i = S(t_i)/√t_i`` for a Brownian
  motion ``S`` observed at the looks' information ``t_i`` (their cumulative
  units), the density of ``S`` on the continuation region is carried from
  look to look by numerical integration (Simpson's rule on a grid of
  :data:`GRID` points). Equal looks give the classical table: 8.3% for 2 looks,
  14.2% for 5, 19.3% for 10, 24.8% for 20 at alpha 0.05 (two-sided). A design
  that stops at the first significant look ships a treatment at the upper
  crossings only, half of that by symmetry: the figure ``expc simulate
  --truth aa`` estimates as its false-positive rate.

At most :data:`MAX_LOOKS` looks are integrated (evenly chosen among more), so
the work is bounded whatever the spec says; with more looks the figure is a
lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

from .plan import DAY, DEFAULT_HORIZON_DAYS
from .planning import comparison_alpha, mixing_ratio, planning_inputs

if TYPE_CHECKING:
    from .model import Spec

__all__ = ["GRID", "MAX_LOOKS", "MIN_POWER", "Reach", "crossing_probability", "power_at",
           "reachable_per_variant", "tested_looks"]

_Z = NormalDist()
GRID = 61  # Simpson points per look (odd)
MAX_LOOKS = 200
MIN_POWER = 0.8
"""The power a design should have at its primary metric's MDE unless told otherwise."""


def _simpson(n: int) -> list[float]:
    return [1.0 if i in (0, n - 1) else (4.0 if i % 2 else 2.0) for i in range(n)]


_WEIGHTS = _simpson(GRID)


def _thin(info: Sequence[float], limit: int) -> list[float]:
    """At most ``limit`` of the looks, evenly chosen, the last one always kept."""
    if len(info) <= limit:
        return list(info)
    step = len(info) / limit
    return [info[min(len(info) - 1, math.ceil((j + 1) * step) - 1)] for j in range(limit)]


def crossing_probability(alpha: float, info: Sequence[float], two_sided: bool = True) -> float:
    """The chance that a level-``alpha`` z-test made at every look is significant at one of them, under the null.

    ``info`` is each look's cumulative information (units), increasing. With
    ``two_sided=False`` only the upper side counts (``Z_i > z[1 - α/2]``).
    One look gives ``alpha`` (``alpha/2`` one-sided).
    """
    looks = [float(t) for t in info if t > 0]
    if not looks or not 0 < alpha < 1:
        return 0.0
    looks = _thin(sorted(set(looks)), MAX_LOOKS)
    c = _Z.inv_cdf(1 - alpha / 2)
    scale = looks[0]
    looks = [t / scale for t in looks]  # information in units of the first look: S(t_1) ~ N(0, 1)

    def bounds(t: float) -> tuple[float, float]:
        r = math.sqrt(t)
        return (-c * r if two_sided else -(c + 8.0) * r), c * r

    # after the first look: the density of S(t_1) on the continuation region
    lo, hi = bounds(looks[0])
    h = (hi - lo) / (GRID - 1)
    xs = [lo + i * h for i in range(GRID)]
    density = [math.exp(-x * x / 2) / math.sqrt(2 * math.pi) for x in xs]
    crossed = 1.0 - (_Z.cdf(hi) - _Z.cdf(lo))
    for prev, t in zip(looks, looks[1:]):
        sd = math.sqrt(t - prev)
        mass = [w * h / 3 * f for w, f in zip(_WEIGHTS, density)]  # Simpson mass at each grid point
        lo, hi = bounds(t)
        # the mass that leaves the continuation region at this look
        stay = sum(m * (_Z.cdf((hi - x) / sd) - _Z.cdf((lo - x) / sd)) for m, x in zip(mass, xs))
        crossed += sum(mass) - stay
        h_new = (hi - lo) / (GRID - 1)
        ys = [lo + i * h_new for i in range(GRID)]
        norm = 1.0 / (sd * math.sqrt(2 * math.pi))
        density = [norm * sum(m * math.exp(-((y - x) / sd) ** 2 / 2) for m, x in zip(mass, xs)) for y in ys]
        xs, h = ys, h_new
    return min(1.0, max(0.0, crossed))


@dataclass(frozen=True, slots=True)
class Reach:
    """Units per variant (smallest arm) a design reaches, and what bounds them."""

    per_variant: int
    bound: str  # "max_days" or "max_units"


def _daily_per_variant(spec: Spec) -> float | None:
    """Units entering the smallest arm each day (None without simulated traffic)."""
    weights = [v.weight for v in spec.variants]
    if spec.simulation is None or not weights or sum(weights) <= 0:
        return None
    layer = spec.allocation.layer
    share = (layer.range[1] - layer.range[0]) if layer else 1.0
    return spec.simulation.units_per_day * share * spec.allocation.coverage * min(weights) / sum(weights)


def reachable_per_variant(spec: Spec) -> Reach | None:
    """The units per variant the design has at ``max_days`` (with simulated traffic), or at ``max_units``.

    With traffic, ``max_units`` is reached at the first look that has them (a
    look's units, not the bound's). The fewer of the two when both are known;
    None when neither bounds the design (no ``max_days`` with
    ``simulation.units_per_day``, no ``max_units``).
    """
    st = spec.stopping
    weights = [v.weight for v in spec.variants]
    if not weights or sum(weights) <= 0 or min(weights) <= 0:
        return None
    found: list[Reach] = []
    daily = _daily_per_variant(spec)
    if daily is not None and daily > 0 and st.max_days is not None:
        found.append(Reach(int(daily * st.max_days), "max_days"))
    if st.max_units is not None:
        share = min(weights) / sum(weights)
        if daily is not None and daily > 0:  # the first look with max_units in total
            every = st.looks / DAY
            looks_needed = math.ceil(round(st.max_units * share / daily / every, 9))
            found.append(Reach(int(daily * looks_needed * every), "max_units"))
        else:
            found.append(Reach(int(st.max_units * share), "max_units"))
    return min(found, key=lambda r: r.per_variant, default=None)


def power_at(spec: Spec, per_variant: float) -> float | None:
    """Analytic power at the primary metric's MDE with ``per_variant`` units in each arm (see the module docs).

    None when the spec lacks the planning inputs (no primary metric, MDE,
    baseline or s.d.: warning W002 says which).
    """
    metric = spec.primary
    if metric is None or metric.mde is None or metric.mde <= 0 or per_variant <= 0:
        return None
    baseline, sd = planning_inputs(spec, metric)
    if baseline is None:
        return None
    alpha = comparison_alpha(spec)
    if not 0 < alpha < 1:
        return None
    sign = 1 if metric.direction == "increase" else -1
    if metric.kind == "proportion":
        target = baseline * (1 + sign * metric.mde)
        if not (0 < baseline < 1 and 0 < target < 1):
            return None
        se = math.sqrt((baseline * (1 - baseline) + target * (1 - target)) / per_variant)
        delta = abs(target - baseline)
    else:
        if sd is None or sd <= 0 or baseline == 0:
            return None
        se = sd * math.sqrt(2 / per_variant)
        delta = abs(baseline) * metric.mde
    z = _Z.inv_cdf(1 - alpha / 2)
    if spec.analysis.method == "sequential" and spec.analysis.sequential == "always_valid":
        r = mixing_ratio(alpha)  # the sequence's radius at these units is k × se (planning.always_valid_inflation)
        z = math.sqrt((1 + r) / r * (math.log1p(r) - 2.0 * math.log(alpha)))
    return _Z.cdf(delta / se - z)


def tested_looks(spec: Spec) -> list[float]:
    """The cumulative units (or days, without traffic) at each look where the primary metric is tested.

    Looks every ``stopping.looks`` until ``max_days`` (else the default
    horizon); a look before ``min_units_per_variant`` tests nothing, and a
    ``max_units`` rule that stops the experiment ends the looks at the first
    one that reaches it. Traffic is even, so information grows with time.
    """
    st = spec.stopping
    horizon = (st.max_days or DEFAULT_HORIZON_DAYS) * DAY
    count = min(-(-horizon // st.looks), 100 * MAX_LOOKS)  # the schedule's own bound is E070's
    days = [min(i * st.looks, horizon) / DAY for i in range(1, count + 1)]
    daily = _daily_per_variant(spec)
    if daily is None:
        return days
    stops = any(r.when == "max_units" and r.then != "continue" for r in st.rules)
    weights = [v.weight for v in spec.variants]
    total_per_variant = sum(weights) / min(weights)  # all units over the smallest arm's
    looks: list[float] = []
    for d in days:
        units = daily * d
        if units < st.min_units_per_variant:
            continue
        looks.append(units)
        if stops and st.max_units is not None and units * total_per_variant >= st.max_units:
            break
    return looks
