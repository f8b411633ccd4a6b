"""runtime/stats/bandit.py: period weighting, the probability of being best, Thompson weights, SRM per period."""

from __future__ import annotations

import numpy as np
from scipy import special

from expc.runtime.stats import bandit as B
from expc.runtime.stats.moments import Moments


def test_probability_best_of_two_normals_is_the_chance_one_beats_the_other() -> None:
    p = B.probability_best(np.array([0.10, 0.12]), np.array([0.01, 0.02]))
    assert np.allclose(p, [1 - special.ndtr(0.02 / np.hypot(0.01, 0.02)), special.ndtr(0.02 / np.hypot(0.01, 0.02))],
                       atol=1e-6)


def test_probability_best_of_beta_posteriors_agrees_with_monte_carlo_in_both_directions() -> None:
    ab = np.array([[3.0, 5.0], [6.0, 8.0], [2.0, 9.0]])
    mean = ab[:, 0] / ab.sum(1)
    sd = np.sqrt(ab[:, 0] * ab[:, 1] / (ab.sum(1) ** 2 * (ab.sum(1) + 1)))
    draws = np.random.default_rng(0).beta(ab[:, 0], ab[:, 1], size=(400_000, 3))
    up = B.probability_best(mean, sd, ab, exact=True)
    down = B.probability_best(mean, sd, ab, sign=-1, exact=True)
    assert np.allclose(up, np.bincount(draws.argmax(1)) / 400_000, atol=0.003)
    assert np.allclose(down, np.bincount(draws.argmin(1)) / 400_000, atol=0.003)


def test_probability_best_is_vectorised_and_sums_to_one() -> None:
    rng = np.random.default_rng(1)
    mean, sd = rng.uniform(0.04, 0.06, (50, 7, 4)), rng.uniform(0.001, 0.01, (50, 7, 4))
    p = B.probability_best(mean, sd)
    assert p.shape == (50, 7, 4)
    assert np.allclose(p.sum(-1), 1.0)
    assert np.allclose(p[3, 2], B.probability_best(mean[3, 2], sd[3, 2]))


def test_one_period_gives_the_arms_own_beta_posterior_and_mean() -> None:
    periods = Moments.proportion(np.array([[200.0, 100.0]]), np.array([[20.0, 30.0]]))
    mean, sd, ab = B.posterior(periods, "proportion")
    assert ab is not None and np.allclose(ab, [[21, 181], [31, 71]])
    estimate, _ = B.period_weighted(periods, "proportion")
    assert np.allclose(estimate, [0.1, 0.3])


def test_period_weighting_undoes_simpsons_paradox() -> None:
    # B gets most of its units in a bad period: pooled it looks worse, though it is better in each period
    n = np.array([[900.0, 100.0], [100.0, 900.0]])
    x = np.array([[180.0, 22.0], [5.0, 54.0]])  # period 1: 20% vs 22%; period 2: 5% vs 6%
    periods = Moments.proportion(n, x)
    pooled = x.sum(0) / n.sum(0)
    weighted, var = B.period_weighted(periods, "proportion")
    assert pooled[1] < pooled[0]
    assert weighted[1] > weighted[0]
    assert np.allclose(weighted, 0.5 * x[0] / n[0] + 0.5 * x[1] / n[1])
    m = B.effective_moments(periods, "proportion")
    assert np.allclose(m.mean(), weighted)
    assert np.allclose(m.variance_of_mean(), var)


def test_a_period_without_units_in_some_arm_is_left_out() -> None:
    periods = Moments.of(np.array([[10.0, 0.0], [10.0, 10.0]]), np.array([[50.0, 0.0], [10.0, 20.0]]),
                         np.array([[300.0, 0.0], [20.0, 50.0]]))
    mean, _ = B.period_weighted(periods, "mean")
    assert np.allclose(mean, [1.0, 2.0])


def test_thompson_weights_keep_the_minimum_and_sum_to_one() -> None:
    w = B.thompson_weights(np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]), 0.05)
    assert np.allclose(w[0], [0.85, 0.05, 0.05, 0.05])
    assert np.allclose(w[1], 0.25)


def test_srm_by_period_uses_each_periods_weights() -> None:
    units = np.array([[500, 500], [100, 900]])
    right = B.srm_by_period(units, np.array([[0.5, 0.5], [0.1, 0.9]]))
    wrong = B.srm_by_period(units, np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert right.p_value > 0.5 and not right.flagged
    assert wrong.flagged
    assert np.allclose(right.expected, [600, 1400])
