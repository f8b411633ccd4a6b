"""Sufficient statistics of one metric, per arm, and the means and variances they give.

For a unit-level metric with per-unit value x (1/0 for a proportion, the
unit's sum of values for a mean), an arm is summarised by ``n``, ``Σx`` and
``Σx²``. A ratio metric (Σ numerator / Σ denominator over units) also needs
the denominator's ``Σy``, ``Σy²`` and the cross term ``Σxy``; its variance
comes from the delta method. Index 0 is by convention the control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def _floats(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _optional(values: ArrayLike | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class Moments:
    """Per-arm sums: arrays of shape (arms,). Denominator fields only for ratio metrics."""

    n: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    den_sum: np.ndarray | None = None
    den_sum_sq: np.ndarray | None = None
    cross: np.ndarray | None = None
    # Pre-exposure covariate (CUPED, runtime/stats/cuped.py), all optional: z is the metric's own
    # per-unit value before exposure (for a ratio, w is the pre-period denominator).
    pre_sum: np.ndarray | None = None  # Σz
    pre_sum_sq: np.ndarray | None = None  # Σz²
    pre_cross: np.ndarray | None = None  # Σxz
    pre_den_sum: np.ndarray | None = None  # Σw (ratio)
    pre_den_sum_sq: np.ndarray | None = None  # Σw² (ratio)
    pre_num_den: np.ndarray | None = None  # Σzw (ratio)
    pre_cross_den: np.ndarray | None = None  # Σxw (ratio)
    pre_den_cross: np.ndarray | None = None  # Σyz (ratio)
    pre_den_cross_den: np.ndarray | None = None  # Σyw (ratio)

    @classmethod
    def of(cls, n: ArrayLike, sum: ArrayLike, sum_sq: ArrayLike, den_sum: ArrayLike | None = None,
           den_sum_sq: ArrayLike | None = None, cross: ArrayLike | None = None) -> Moments:
        """Build from sequences, as float arrays."""
        return cls(_floats(n), _floats(sum), _floats(sum_sq), _optional(den_sum), _optional(den_sum_sq),
                   _optional(cross))

    @classmethod
    def proportion(cls, n: ArrayLike, successes: ArrayLike) -> Moments:
        """Moments of a 0/1 metric from unit and success counts (Σx² = Σx)."""
        return cls.of(n, successes, successes)

    def with_covariate(self, **sums: ArrayLike | None) -> Moments:
        """The same moments with the pre-exposure sums (``pre_*`` fields) set, as float arrays."""
        from dataclasses import replace

        # the keys are field names, which replace() checks when it runs
        arrays: dict[str, Any] = {k: _optional(v) for k, v in sums.items()}
        return replace(self, **arrays)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Moments:
        """The same moments with ``fn`` applied to every sum that is present (a permutation, a cumulation, ...)."""
        from dataclasses import fields

        arrays: dict[str, Any] = {f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                                  for f in fields(self)}
        return Moments(**arrays)

    @property
    def has_covariate(self) -> bool:
        """True when the pre-exposure covariate sums are present (CUPED can adjust)."""
        return self.pre_sum is not None

    @property
    def is_ratio(self) -> bool:
        """True for a ratio metric (Σx / Σy)."""
        return self.den_sum is not None

    def mean(self) -> np.ndarray:
        """Per-arm estimate: the mean (rate) of x, or Σx / Σy for a ratio."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sum / (self.den_sum if self.is_ratio else self.n)

    def variance(self) -> np.ndarray:
        """Per-unit sample variance of x (n - 1 denominator); for a ratio, n × Var(mean) by the delta method."""
        n = self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.is_ratio:
                return (self.sum_sq - self.sum**2 / n) / (n - 1)
            mx, my = self.sum / n, self.den_sum / n
            vx = (self.sum_sq - n * mx**2) / (n - 1)
            vy = (self.den_sum_sq - n * my**2) / (n - 1)
            cxy = (self.cross - n * mx * my) / (n - 1)
            r = mx / my
            return (vx - 2 * r * cxy + r**2 * vy) / my**2

    def variance_of_mean(self) -> np.ndarray:
        """Variance of each arm's estimate (``variance() / n``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.variance() / self.n
