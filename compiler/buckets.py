"""GrowthBook's bucket ranges: which slice of [0, 1) each variant's units hash into.

Computed exactly as GrowthBook's SDKs compute them from weights and coverage,
so a compiled plan can be served by any GrowthBook SDK and still agree with
expc's own assignment: coverage is clamped to [0, 1]; weights of the wrong
length or whose sum is outside [0.99, 1.01] fall back to equal weights; variant
i takes ``[c_i, c_i + coverage * w_i)`` where ``c_i`` is the sum of the weights
before it.
"""

from __future__ import annotations


def equal_weights(n: int) -> list[float]:
    """n equal weights summing to 1 (GrowthBook's ``getEqualWeights``)."""
    return [1.0 / n] * n if n > 0 else []


def normalise(weights: list[float]) -> list[float]:
    """Relative weights scaled to sum to 1."""
    total = float(sum(weights))
    return [w / total for w in weights]


def bucket_ranges(n: int, coverage: float = 1.0, weights: list[float] | None = None) -> list[tuple[float, float]]:
    """Each variant's [start, end) in hash space (GrowthBook's ``getBucketRanges``)."""
    coverage = min(max(coverage, 0.0), 1.0)
    if weights is None or len(weights) != n or not 0.99 <= sum(weights) <= 1.01:
        weights = equal_weights(n)
    ranges = []
    cumulative = 0.0
    for w in weights:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges
