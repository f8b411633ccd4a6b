"""Sample ratio mismatch: scipy.stats.chisquare agreement, flags, edge cases, A/A behaviour."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from expc.runtime.stats.srm import srm

CASES = [
    ([5_000, 5_000], [1, 1]),
    ([5_000, 5_250], [1, 1]),
    ([10_123, 9_877], [0.5, 0.5]),
    ([2_400, 7_600], [1, 3]),
    ([3_300, 3_350, 3_410], [1, 1, 1]),
    ([1_000, 2_100, 6_900], [0.1, 0.2, 0.7]),
]


@pytest.mark.parametrize("observed, weights", CASES)
def test_matches_scipy_chisquare(observed, weights):
    w = np.asarray(weights, float)
    expected = np.sum(observed) * w / w.sum()
    ref = stats.chisquare(observed, expected)
    r = srm(observed, weights)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.df == len(observed) - 1
    assert r.flagged == (ref.pvalue < 0.001)
    np.testing.assert_allclose(r.expected, expected)


def test_flag_threshold():
    r = srm([5_000, 5_250], [1, 1])  # p ≈ 0.013
    assert not r.flagged and 0.001 < r.p_value < 0.05
    assert srm([5_000, 5_250], [1, 1], threshold=0.05).flagged  # Statsig-style warning level
    assert srm([5_000, 5_400], [1, 1]).flagged  # p ≈ 8.6e-5


def test_edge_cases_never_raise():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = srm([0, 0], [1, 1])
        assert np.isnan(empty.p_value) and not empty.flagged
        single = srm([100], [1])
        assert np.isnan(single.p_value) and not single.flagged and single.df == 0
        # units in an arm planned to get none: impossible by chance
        stray = srm([100, 100, 3], [1, 1, 0])
        assert stray.flagged and stray.p_value == 0 and np.isposinf(stray.statistic)
        # an unused zero-weight arm is left out (df counts the arms with weight)
        unused = srm([100, 100, 0], [1, 1, 0])
        assert unused.df == 1 and unused.p_value == pytest.approx(1.0) and not unused.flagged
    with pytest.raises(ValueError):
        srm([1, 2], [1, 1, 1])
    with pytest.raises(ValueError):
        srm([1, 2], [0, 0])


def test_batches_of_checks():
    obs = np.array([[5_000, 5_000], [5_000, 5_400], [0, 0]])
    r = srm(obs, [1, 1])
    assert r.p_value.shape == (3,) and r.flagged.tolist() == [False, True, False]


def test_aa_flag_rate_and_uniform_p_values():
    # correct allocation: flags at about the threshold rate, p-values close to uniform
    rng = np.random.default_rng(31)
    obs = rng.multinomial(30_000, [0.2, 0.3, 0.5], size=20_000)
    r = srm(obs, [2, 3, 5])
    assert np.mean(r.flagged) <= 0.003
    assert 0.04 <= np.mean(r.p_value < 0.05) <= 0.06
    # a 1% leak from one arm to another is caught nearly always at this size
    bad = rng.multinomial(30_000, [0.19, 0.31, 0.5], size=2_000)
    assert np.mean(srm(bad, [2, 3, 5]).flagged) > 0.5
