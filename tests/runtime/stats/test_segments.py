"""Segments: pooling a long tail into `other`, and Cochran's Q against statsmodels' meta-analysis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from expc.runtime.stats.segments import OTHER, UNKNOWN, group_segments, heterogeneity


def test_small_values_and_the_long_tail_are_pooled_into_other():
    values = np.array(["US", "DE", "FR", "IS", "LI", None], dtype=object)
    units = np.array([5000, 3000, 3000, 40, 3, 700])
    assert group_segments(values, units, min_units=100) == {
        "US": "US", "DE": "DE", "FR": "FR", "IS": OTHER, "LI": OTHER, UNKNOWN: UNKNOWN}
    top2 = group_segments(values, units, min_units=100, top=2)
    assert top2["US"] == "US" and top2["DE"] == "DE" and top2["FR"] == OTHER  # DE before FR: ties by name
    assert {v for v in top2.values()} == {"US", "DE", OTHER}


def test_the_grouping_does_not_depend_on_the_order_of_the_rows():
    rng = np.random.default_rng(3)
    values = np.array([f"c{i}" for i in range(200)], dtype=object)
    units = rng.integers(1, 500, size=200)
    order = rng.permutation(200)
    assert group_segments(values, units, min_units=50, top=10) == group_segments(
        values[order], units[order], min_units=50, top=10)
    assert len(set(group_segments(values, units, min_units=50, top=10).values())) == 11


def test_a_pool_of_one_keeps_its_name_and_a_value_called_other_is_never_alone():
    values = np.array(["a", "b", "tiny"], dtype=object)
    assert group_segments(values, np.array([500, 400, 2]), min_units=10)["tiny"] == "tiny"
    assert group_segments(np.array(["a", OTHER], dtype=object), np.array([500, 400]))[OTHER] == OTHER


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cochrans_q_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    theta = rng.normal(0.02, 0.05, size=k)
    se = rng.uniform(0.005, 0.05, size=k)
    ours = heterogeneity(theta, se)
    ref = combine_effects(theta, se**2)
    test = ref.test_homogeneity()
    assert math.isclose(ours.q, ref.q, rel_tol=1e-12) and math.isclose(ours.q, test.statistic, rel_tol=1e-12)
    assert ours.df == k - 1 == test.df
    assert math.isclose(ours.p_value, test.pvalue, rel_tol=1e-9)
    assert math.isclose(ours.i2, ref.i2, rel_tol=1e-12, abs_tol=1e-15)


def test_segments_without_weight_are_left_out_and_one_segment_has_nothing_to_compare():
    with_gaps = heterogeneity(np.array([0.1, np.nan, 0.3, 0.2, 0.5]), np.array([0.05, 0.1, 0.0, 0.05, np.inf]))
    plain = heterogeneity(np.array([0.1, 0.2]), np.array([0.05, 0.05]))
    assert with_gaps == plain and plain.segments == 2
    alone = heterogeneity(np.array([0.1]), np.array([0.05]))
    assert math.isnan(alone.q) and alone.to_dict()["p_value"] is None and alone.df == 0


def test_under_no_difference_the_test_rejects_at_its_level():
    rng = np.random.default_rng(7)
    se = rng.uniform(0.01, 0.05, size=8)
    p = np.array([heterogeneity(rng.normal(0.0, se), se).p_value for _ in range(4000)])
    assert abs((p < 0.05).mean() - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000)
