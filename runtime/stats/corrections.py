"""Multiple-testing corrections: adjusted p-values, over one family or within labelled families.

An adjusted p-value ``p̃_i`` is the smallest family-wide level at which
hypothesis ``i`` is rejected, so "reject when ``p̃_i < alpha``" applies the
procedure at level ``alpha``. All three agree with
``statsmodels.stats.multitest.multipletests`` (methods "bonferroni", "holm",
"fdr_bh").

NaN p-values (comparisons that could not be computed) still count as
hypotheses (conservative: a failed comparison does not shrink the family) and
rank as p = 1; their adjusted value is NaN. Nothing here raises on data.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Method = Literal["none", "bonferroni", "holm", "bh", "fdr_bh"]


def _prepare(p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat float p-values with NaN as 1, their NaN mask, and the original array (for its shape)."""
    arr = np.asarray(p, dtype=np.float64)
    flat = arr.ravel()
    nan = np.isnan(flat)
    return np.where(nan, 1.0, flat), nan, arr


def _finish(adjusted: np.ndarray, nan: np.ndarray, arr: np.ndarray) -> np.ndarray:
    return np.where(nan, np.nan, np.minimum(adjusted, 1.0)).reshape(arr.shape)


def bonferroni(p) -> np.ndarray:
    """Bonferroni: ``min(1, m p_i)``. Controls the family-wise error rate under any dependence."""
    flat, nan, arr = _prepare(p)
    return _finish(flat * flat.size, nan, arr)


def holm(p) -> np.ndarray:
    """Holm's step-down (Holm 1979): ``p̃_(i) = max_{j ≤ i} min(1, (m - j + 1) p_(j))`` over sorted p.

    Why: controls the family-wise error rate under any dependence, like
    Bonferroni, and is uniformly more powerful.
    """
    flat, nan, arr = _prepare(p)
    m = flat.size
    order = np.argsort(flat, kind="stable")
    raw = flat[order] * np.arange(m, 0, -1)
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(np.minimum(raw, 1.0)) if m else raw
    return _finish(adjusted, nan, arr)


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg step-up (1995): ``p̃_(i) = min_{j ≥ i} min(1, m p_(j) / j)`` over sorted p.

    Why: controls the false discovery rate (expected share of false
    rejections) for independent or positively dependent tests, much less
    conservative than FWER control when many metrics are tested (Statsig,
    Optimizely).
    """
    flat, nan, arr = _prepare(p)
    m = flat.size
    order = np.argsort(flat, kind="stable")
    raw = flat[order] * m / np.arange(1, m + 1)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum.accumulate(raw[::-1])[::-1] if m else raw
    return _finish(adjusted, nan, arr)


_METHODS = {
    "bonferroni": bonferroni,
    "holm": holm,
    "bh": benjamini_hochberg,
    "fdr_bh": benjamini_hochberg,
}


def adjust(p, method: Method) -> np.ndarray:
    """Adjusted p-values of one family by ``method``: none, bonferroni, holm, bh (= fdr_bh)."""
    if method != "none" and method not in _METHODS:
        raise ValueError(f"method must be one of {('none', *_METHODS)}, got {method!r}")
    if method == "none":
        return np.asarray(p, dtype=np.float64).copy()
    return _METHODS[method](p)


def adjust_within(p, families, method: Method) -> np.ndarray:
    """Adjust p-values separately within each family (same-shaped array of labels).

    Why: the spec's ``analysis.family`` decides what a family is (each metric's
    treatment comparisons, or all primary comparisons); hypotheses in
    different families do not share an error budget. The loop runs over the
    distinct labels (a handful), not over p-values.
    """
    arr = np.asarray(p, dtype=np.float64)
    labels = np.asarray(families)
    if labels.shape != arr.shape:
        raise ValueError(f"families has shape {labels.shape}, p-values {arr.shape}")
    out = np.empty_like(arr)
    for label in np.unique(labels):
        mask = labels == label
        out[mask] = adjust(arr[mask], method)
    return out
