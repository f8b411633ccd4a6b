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


def adjust_rows(p, method: Method) -> np.ndarray:
    """Adjusted p-values of independent families laid along the last axis (one family per row).

    NaN counts as a hypothesis ranked as p = 1 and stays NaN. Vectorised over
    the leading axes, so that a simulation adjusts every replication and look
    in one call; :func:`adjust` is the one-family case.
    """
    p = np.asarray(p, dtype=np.float64)
    if method == "none":
        return p.copy()
    m = p.shape[-1]
    nan = np.isnan(p)
    flat = np.where(nan, 1.0, p)
    if method == "bonferroni":
        adj = flat * m
    elif method in ("holm", "bh", "fdr_bh"):
        order = np.argsort(flat, axis=-1, kind="stable")
        ranked = np.take_along_axis(flat, order, axis=-1)
        if method == "holm":
            steps = np.maximum.accumulate(np.minimum(ranked * np.arange(m, 0, -1), 1.0), axis=-1)
        else:
            raw = ranked * m / np.arange(1, m + 1)
            steps = np.flip(np.minimum.accumulate(np.flip(raw, -1), axis=-1), -1)
        adj = np.empty_like(flat)
        np.put_along_axis(adj, order, steps, axis=-1)
    else:
        raise ValueError(f"method must be one of {('none', *_METHODS)}, got {method!r}")
    return np.where(nan, np.nan, np.minimum(adj, 1.0))


def _one_family(p, method: Method) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    return adjust_rows(arr.ravel(), method).reshape(arr.shape)


def bonferroni(p) -> np.ndarray:
    """Bonferroni: ``min(1, m p_i)``. Controls the family-wise error rate under any dependence."""
    return _one_family(p, "bonferroni")


def holm(p) -> np.ndarray:
    """Holm's step-down (Holm 1979): ``p̃_(i) = max_{j ≤ i} min(1, (m - j + 1) p_(j))`` over sorted p.

    Why: controls the family-wise error rate under any dependence, like
    Bonferroni, and is uniformly more powerful.
    """
    return _one_family(p, "holm")


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg step-up (1995): ``p̃_(i) = min_{j ≥ i} min(1, m p_(j) / j)`` over sorted p.

    Why: controls the false discovery rate (expected share of false
    rejections) for independent or positively dependent tests, much less
    conservative than FWER control when many metrics are tested (Statsig,
    Optimizely).
    """
    return _one_family(p, "bh")


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
