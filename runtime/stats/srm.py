"""Sample ratio mismatch: do the units per arm match the planned allocation weights?

Pearson's χ² goodness of fit (as ``scipy.stats.chisquare``):
``χ² = Σ_i (o_i - e_i)² / e_i`` with ``e_i = N w_i / Σw`` and ``k - 1``
degrees of freedom (``k`` arms with a positive weight). A mismatch means the
assignment or the logging is broken (bots filtered in one arm, a redirect
that loses users, a crash) and that every comparison is suspect, so the
threshold is strict: 0.001 by default, as gbstats and Statsig's alert level
(Statsig warns at 0.01). Fabijan et al., "Diagnosing Sample Ratio Mismatch
in Online Controlled Experiments", KDD 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True, eq=False)
class SRM:
    """Result of the check: arrays of shape ``observed.shape[:-1]`` (scalars for one experiment)."""

    statistic: np.ndarray
    p_value: np.ndarray
    flagged: np.ndarray
    expected: np.ndarray
    df: int
    threshold: float


def srm(observed, weights, threshold: float = 0.001) -> SRM:
    """χ² goodness-of-fit test of units per arm against planned weights; flag when p < threshold.

    ``observed`` has shape ``(..., arms)`` (leading axes: independent checks),
    ``weights`` shape ``(arms,)`` in any scale. Edge cases, never raising:
    no units at all or fewer than two arms with positive weight give
    p = NaN and ``flagged = False`` (nothing to test); units in an arm whose
    weight is 0 give χ² = inf, p = 0, flagged (they cannot be there by chance);
    a zero-weight arm with no units is left out of the test and its ``df``.
    """
    o = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != o.shape[-1:]:
        raise ValueError(f"weights has shape {w.shape}, observed arms {o.shape[-1:]}")
    if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w!r}")
    total = o.sum(axis=-1, keepdims=True)
    expected = total * (w / w.sum())
    positive = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(positive, (o - expected) ** 2 / expected, np.where(o > 0, np.inf, 0.0))
        statistic = terms.sum(axis=-1)
    df = int(positive.sum()) - 1
    if df >= 1:
        p_value = np.where(total[..., 0] > 0, special.chdtrc(df, statistic), np.nan)
    else:
        p_value = np.full(statistic.shape, np.nan)
    flagged = np.where(np.isnan(p_value), False, p_value < threshold)
    return SRM(
        statistic=np.where(total[..., 0] > 0, statistic, np.nan),
        p_value=p_value,
        flagged=flagged,
        expected=expected,
        df=df,
        threshold=float(threshold),
    )
