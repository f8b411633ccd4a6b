"""runtime/stats/moments.py: per-arm sufficient statistics."""

from __future__ import annotations

import numpy as np

from expc.runtime.stats.moments import Moments


def test_map_applies_to_every_sum_present_and_keeps_the_absent_ones_absent():
    m = Moments.of([2.0, 3.0], [1.0, 2.0], [1.0, 4.0]).with_covariate(pre_sum=[5.0, 6.0])
    flipped = m.map(lambda x: x[::-1])
    np.testing.assert_array_equal(flipped.n, [3.0, 2.0])
    np.testing.assert_array_equal(flipped.pre_sum, [6.0, 5.0])
    assert flipped.den_sum is None and flipped.cross is None
