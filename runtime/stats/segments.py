"""Statistics across segments: which values stand alone, and whether an effect differs between them.

Pure functions on arrays (no I/O), for the per-segment results of issue 13:

* :func:`group_segments` keeps a long tail readable and honest: values with
  fewer than ``min_units`` units, and all but the ``top`` largest, are pooled
  into one ``other`` group, so that a country list of 200 values becomes at
  most ``top + 1`` comparisons, none of them on a handful of units. Unknown
  values (null or empty) form their own group, ``(unknown)``, which is
  pooled like any other.
* :func:`heterogeneity` is Cochran's Q test of whether the segments' effects
  are one effect: ``Q = Σ w_i (θ_i - θ̄)²`` with inverse-variance weights
  ``w_i = 1 / se_i²`` and ``θ̄ = Σ w_i θ_i / Σ w_i``, compared with a
  χ² with ``k - 1`` degrees of freedom; ``I² = max(0, (Q - (k - 1)) / Q)`` is
  the share of the spread that is beyond chance. Segments whose estimate or
  standard error is missing, infinite or zero-variance are left out (they
  carry no weight). Equal to statsmodels' ``combine_effects`` (its ``q``,
  ``i2`` and ``test_homogeneity``), tested.

Multiplicity across segments uses :func:`expc.runtime.stats.corrections.adjust_within`
(Benjamini-Hochberg within each metric × attribute family by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .moments import Moments

OTHER = "other"
"""The group of the values pooled by :func:`group_segments`."""
UNKNOWN = "(unknown)"
"""The segment of units whose attribute value is null or empty."""


@dataclass(frozen=True)
class SegmentMoments:
    """One attribute's segments: their names, units per arm and every metric's moments, ``(S, arms)``.

    Arms are in the order of the :class:`~expc.runtime.stats.reduce.Reduction` they come with (the
    plan's variant order) until the evaluation puts the control first.
    """

    attribute: str
    values: list[str]
    units: np.ndarray
    metrics: dict[str, Moments]

    def reordered(self, order: list[int]) -> SegmentMoments:
        """The same segments with the arms in ``order``."""
        return SegmentMoments(self.attribute, self.values, np.asarray(self.units)[..., order],
                              {k: m.map(lambda x: np.asarray(x)[..., order]) for k, m in self.metrics.items()})


def group_segments(values: np.ndarray, units: np.ndarray, *, min_units: int = 0, top: int | None = None
                   ) -> dict[str, str]:
    """Each segment value's group: itself, or :data:`OTHER` when it is small or beyond the ``top`` largest.

    ``values`` are the distinct segment values and ``units`` their unit counts
    (all arms together). A value stands alone when it has at least
    ``min_units`` units and is among the ``top`` largest (ties broken by the
    value, so the grouping does not depend on the order of the rows); the rest
    are pooled. A pool of a single value keeps that value's name (there is
    nothing to pool it with). Values named ``other`` in the data are pooled
    too, so that a group's name is never ambiguous.
    """
    names = [UNKNOWN if v is None or str(v) == "" else str(v) for v in values.tolist()]
    counts = np.asarray(units, dtype=np.int64)
    order = sorted(range(len(names)), key=lambda i: (-int(counts[i]), names[i]))
    keep: set[int] = set()
    for rank, i in enumerate(order):
        if counts[i] >= min_units and (top is None or rank < top) and names[i] != OTHER:
            keep.add(i)
    pooled = [i for i in range(len(names)) if i not in keep]
    if len(pooled) == 1 and names[pooled[0]] != OTHER:
        keep.add(pooled[0])
    return {names[i]: (names[i] if i in keep else OTHER) for i in range(len(names))}


@dataclass(frozen=True)
class Heterogeneity:
    """Cochran's Q test over the segments' estimates (see the module documentation)."""

    q: float
    df: int
    p_value: float
    i2: float
    segments: int
    """How many segments carried weight (``df + 1``)."""

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN becomes None."""
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)
        return {"q": num(self.q), "df": self.df, "p_value": num(self.p_value), "i2": num(self.i2),
                "segments": self.segments}


def heterogeneity(estimates: np.ndarray, std_errors: np.ndarray) -> Heterogeneity:
    """Cochran's Q over the segments with a finite estimate and a positive, finite standard error.

    With fewer than two such segments there is nothing to compare: Q, p and I² are NaN.
    """
    theta = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(std_errors, dtype=np.float64)
    ok = np.isfinite(theta) & np.isfinite(se) & (se > 0)
    k = int(ok.sum())
    if k < 2:
        return Heterogeneity(float("nan"), max(k - 1, 0), float("nan"), float("nan"), k)
    w = 1.0 / se[ok] ** 2
    mean = float(np.sum(w * theta[ok]) / np.sum(w))
    q = float(np.sum(w * (theta[ok] - mean) ** 2))
    df = k - 1
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return Heterogeneity(q, df, float(special.chdtrc(df, q)), i2, k)  # chi2.sf, without importing scipy.stats
