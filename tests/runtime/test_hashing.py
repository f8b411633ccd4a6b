"""Hashing and buckets: identical to the growthbook Python SDK, one id or a million."""

from __future__ import annotations

import numpy as np
import pytest
from growthbook import core as gb
from hypothesis import given, settings
from hypothesis import strategies as st

from expc.compiler.buckets import bucket_ranges
from expc.runtime.hashing import (
    choose_variation,
    choose_variations,
    fnv1a32,
    gbhash,
    gbhash_array,
    gbhash_arrays,
    in_namespace,
)

# ids as they come: ASCII, accents, CJK, emoji (outside the BMP), empty
ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
seeds = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


def test_documented_values():
    assert gbhash("", "a", 1) == 0.22
    assert gbhash("seed", "a", 2) == 0.0505
    assert gbhash("seed", "a", 3) is None
    assert fnv1a32("") == 0x811C9DC5


@settings(max_examples=500, deadline=None)
@given(seed=seeds, value=ids, version=st.sampled_from([1, 2]))
def test_one_id_hashes_as_the_sdk(seed, value, version):
    assert gbhash(seed, value, version) == gb.gbhash(seed, value, version)


@settings(max_examples=150, deadline=None)
@given(seed=seeds, values=st.lists(ids, min_size=0, max_size=60), version=st.sampled_from([1, 2]))
def test_a_column_hashes_as_the_sdk(seed, values, version):
    got = gbhash_array(seed, np.array(values, dtype=object), version)
    assert got.tolist() == [gb.gbhash(seed, v, version) for v in values]


def test_mixed_lengths_astral_characters_and_chunks():
    rng = np.random.default_rng(3)
    alphabet = list("abcXYZ019-_é中") + ["\U0001F600", "\U0001F44D"]
    values = ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(70_000)]
    arr = np.array(values, dtype=object)
    v2, v1 = gbhash_arrays(arr, [("exp", 2), ("__layer", 1)])
    sample = rng.choice(len(values), 3000, replace=False)
    assert all(v2[i] == gb.gbhash("exp", values[i], 2) for i in sample)
    assert all(v1[i] == gb.gbhash("__layer", values[i], 1) for i in sample)
    # one thread or several: the same numbers
    assert (gbhash_arrays(arr, [("exp", 2)], threads=1)[0] == v2).all()


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 10), min_size=1, max_size=6),
    coverage=st.floats(0, 1),
    n=st.floats(0, 1, exclude_max=True),
)
def test_bucket_ranges_and_choice_match_the_sdk(weights, coverage, n):
    total = sum(weights)
    normalised = [w / total for w in weights]
    ours = bucket_ranges(len(weights), coverage, normalised)
    assert ours == gb.getBucketRanges(len(weights), coverage, normalised)
    assert choose_variation(n, ours) == gb.chooseVariation(n, ours)
    assert choose_variations(np.array([n]), ours).tolist() == [gb.chooseVariation(n, ours)]


@settings(max_examples=300, deadline=None)
@given(value=ids, name=seeds, bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_namespaces_match_the_sdk(value, name, bounds):
    start, end = sorted(bounds)
    assert in_namespace(value, (name, start, end)) == gb.inNamespace(value, (name, start, end))


def test_unknown_version_is_refused():
    with pytest.raises(ValueError):
        gbhash_array("s", np.array(["a"]), 3)
