"""Multiple-testing corrections: statsmodels' multipletests to 1e-12, NaN handling, families."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from expc.runtime.stats.corrections import adjust, adjust_rows, adjust_within, benjamini_hochberg, bonferroni, holm

OURS = {"bonferroni": bonferroni, "holm": holm, "fdr_bh": benjamini_hochberg}


def reference(p, method: str) -> np.ndarray:
    """statsmodels' adjusted p-values, the reference, with NaN counted as a hypothesis ranked as p = 1 and kept NaN.

    statsmodels' "holm" runs ``gc.collect()`` on every call (0.05 s alone, about
    0.5 s late in a whole test run, when the heap is large); that collection
    has nothing to do with the numbers, so it is skipped here.
    """
    p = np.asarray(p, dtype=np.float64)
    collect = gc.collect
    gc.collect = lambda generation=2: 0  # type: ignore[assignment]
    try:
        adjusted = multipletests(np.where(np.isnan(p), 1.0, p), method=method)[1]
    finally:
        gc.collect = collect  # type: ignore[assignment]
    return np.where(np.isnan(p), np.nan, adjusted)


FIXED = [
    [0.01, 0.04, 0.03, 0.005],
    [0.5],
    [0.001, 0.001, 0.02, 0.02, 0.02, 0.9, 1.0],  # ties
    [0.2, 0.3, 0.25, 0.9, 0.04, 0.011, 0.0004, 0.7, 0.049, 0.051],
    [1e-12, 0.3, 1.0, 1.0],
]


@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
@pytest.mark.parametrize("p", FIXED)
def test_fixed_inputs_match_statsmodels(p, method):
    ref = reference(p, method)
    np.testing.assert_allclose(OURS[method](p), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(adjust(p, "bh" if method == "fdr_bh" else method), ref, rtol=0, atol=1e-12)


def test_a_worked_example():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(bonferroni(p), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])


# p-values where the corrections have their corners: ties, 0, 1, values whose adjustment reaches the cap of 1
CORNERS = st.sampled_from([0.0, 1e-300, 0.001, 0.01, 0.05, 0.2, 0.5, 1.0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0) | CORNERS, min_size=1, max_size=40),
       st.sampled_from(["bonferroni", "holm", "fdr_bh"]))
def test_random_inputs_match_statsmodels(p, method):
    np.testing.assert_allclose(OURS[method](p), reference(p, method), rtol=0, atol=1e-12)


def test_random_arrays_match_statsmodels():
    rng = np.random.default_rng(3)
    for size in (2, 3, 17, 500):
        p = rng.uniform(size=size) ** 3
        for method, fn in OURS.items():
            np.testing.assert_allclose(fn(p), reference(p, method), rtol=0, atol=1e-12)


def test_nan_counts_as_a_hypothesis_and_stays_nan():
    p = np.array([0.01, np.nan, 0.02])
    for fn in OURS.values():
        out = fn(p)
        assert np.isnan(out[1])
        # the NaN ranks as p = 1, so the others are adjusted as in a family of three
    np.testing.assert_allclose(holm(p)[[0, 2]], reference([0.01, 1.0, 0.02], "holm")[[0, 2]])
    np.testing.assert_allclose(bonferroni(p)[[0, 2]], [0.03, 0.06])


def test_empty_and_shapes():
    for fn in OURS.values():
        assert fn([]).shape == (0,)
    p = np.array([[0.01, 0.2], [0.03, 0.04]])
    assert holm(p).shape == (2, 2)
    np.testing.assert_allclose(holm(p).ravel(), reference(p.ravel(), "holm"))
    np.testing.assert_array_equal(adjust(p, "none"), p)
    with pytest.raises(ValueError):
        adjust(p, "sidak")  # type: ignore[arg-type]


def test_adjust_within_families():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.02])
    families = np.array(["ctr", "ctr", "revenue", "ctr", "revenue", "errors"])
    for method, sm in (("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")):
        out = adjust_within(p, families, method)
        for label in set(families):
            mask = families == label
            np.testing.assert_allclose(out[mask], reference(p[mask], sm), rtol=0, atol=1e-12)
    # one family is the plain correction
    np.testing.assert_array_equal(adjust_within(p, np.zeros(6, int), "holm"), holm(p))
    with pytest.raises(ValueError):
        adjust_within(p, families[:3], "holm")



@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
def test_many_families_at_once_match_statsmodels_row_by_row(method):
    rng = np.random.default_rng(0)
    p = np.concatenate([
        rng.uniform(0, 0.2, size=(30, 4)),  # 30 families (say replications) of 4, small p-values
        rng.uniform(0, 1, size=(20, 4)) ** 2,  # and 20 where the cap of 1 and the step-down order matter
        [[0.01, 0.01, 0.01, 0.01],  # all tied
         [0.02, 0.02, 0.5, 0.5],  # two ties
         [1.0, 1.0, 0.0, 0.3],  # p = 1 and p = 0
         [0.04, np.nan, 0.01, 0.03],  # NaN counts as a hypothesis ranked as p = 1
         [np.nan, np.nan, np.nan, 0.001],
         [0.3, 0.2, 0.1, 0.0001]],  # descending
    ])
    want = np.stack([reference(row, method) for row in p])
    np.testing.assert_allclose(adjust_rows(p, method), want, rtol=0, atol=1e-12)


def test_many_families_at_once_keep_nan_as_a_hypothesis():
    p = np.array([[0.01, np.nan, 0.04], [np.nan, np.nan, 0.02]])
    got = adjust_rows(p, "holm")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(p))
    np.testing.assert_allclose(got[0, [0, 2]], [0.03, 0.08])  # three hypotheses in the family, not two
