"""GrowthBook's hashing, for one id and vectorised over a column of ids.

GrowthBook assigns a unit by hashing its id with FNV-1a (32 bit) over the
id's UTF-16 code units, as its JavaScript SDK does with ``charCodeAt`` and its
Python SDK 4.x does too (so ids with emoji hash alike in both):

* version 1: ``fnv1a32(id + seed) % 1000 / 1000``;
* version 2: ``fnv1a32(str(fnv1a32(seed + id))) % 10000 / 10000``.

A unit is in a namespace ``(name, start, end)`` when the version-1 hash of
its id with seed ``"__" + name`` lies in ``[start, end)``.

The vectorised functions take a numpy array of ids (``str``) and return a
float array of the same length. They loop over character *positions* (an id
is a few dozen characters long), never over units: the state of every unit's
hash advances one character at a time, in numpy.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

OFFSET_BASIS = 0x811C9DC5
PRIME = 0x01000193
MASK = 0xFFFFFFFF


# ------------------------------------------------------------------ one id


def fnv1a32(text: str, state: int = OFFSET_BASIS) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of ``text``, continuing from ``state``."""
    for unit in _utf16_units(text):
        state = ((state ^ unit) * PRIME) & MASK
    return state


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def gbhash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's hash of ``value`` with ``seed``: a float in [0, 1), or None for an unknown version."""
    if version == 2:
        return fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000
    if version == 1:
        return fnv1a32(value + seed) % 1000 / 1000
    return None


def in_namespace(unit_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether a unit falls in a namespace (layer) range."""
    name, start, end = namespace
    n = gbhash("__" + name, unit_id, 1)
    return n is not None and start <= n < end


def choose_variation(n: float, ranges: list[tuple[float, float]]) -> int:
    """Index of the range that holds ``n``, or -1 when none does."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


# ------------------------------------------------------------- many ids
#
# numpy uint32 arithmetic wraps modulo 2**32, which is exactly FNV's "& MASK".
# Ids are hashed in chunks small enough for the CPU cache, one character
# position of the whole chunk at a time.

CHUNK = 1 << 15
_PRIME32 = np.uint32(PRIME)


def as_text(ids: np.ndarray) -> np.ndarray:
    """Ids as a fixed-width unicode array (free when they already are one)."""
    return ids if ids.dtype.kind == "U" else np.asarray(ids, dtype=np.str_)


def _code_units(points: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points (rows of a chunk) -> UTF-16 code units: characters above U+FFFF become surrogate pairs."""
    astral = points > 0xFFFF
    if not astral.any():
        return points, lengths
    n, width = points.shape
    step = 1 + astral.astype(np.int64)
    offsets = np.cumsum(step, axis=1) - step  # where each code point lands in the widened row
    out = np.zeros((n, 2 * width), dtype=np.uint32)
    rows = np.broadcast_to(np.arange(n)[:, None], points.shape)
    wide = points.astype(np.int64) - 0x10000
    out[rows, offsets] = np.where(astral, 0xD800 + (wide >> 10), points)
    out[rows[astral], offsets[astral] + 1] = (0xDC00 + (wide & 0x3FF))[astral]
    return out, lengths + astral.sum(axis=1)


def _fnv_rows(states: list[np.ndarray], points: np.ndarray, lengths: np.ndarray) -> None:
    """Advance each row's states over its own code units, in place (shorter rows stop early)."""
    units, lengths = _code_units(points, lengths)
    columns = np.ascontiguousarray(units.T)  # one contiguous vector per character position
    shortest = int(lengths.min()) if len(lengths) else 0
    for j in range(columns.shape[0]):
        column = columns[j]
        for state in states:
            if j < shortest:
                state ^= column
                state *= _PRIME32
            else:
                np.copyto(state, (state ^ column) * _PRIME32, where=lengths > j)


def _fnv_text(state: np.ndarray, text: str) -> None:
    """Advance every state over the same text (a seed), in place."""
    for unit in _utf16_units(text):
        state ^= np.uint32(unit)
        state *= _PRIME32


_TEN = np.uint32(10)
_ZERO_CHAR = np.uint32(48)


def _fnv_decimal(values: np.ndarray) -> np.ndarray:
    """fnv1a32 of each value's decimal string (hash version 2's second round)."""
    digits = np.empty((10, len(values)), dtype=np.uint32)  # digits[k]: the digit worth 10**k
    rest = values.copy()
    for k in range(10):
        quotient = rest // _TEN
        digits[k] = rest - quotient * _TEN + _ZERO_CHAR
        rest = quotient
    state = np.full(len(values), OFFSET_BASIS, dtype=np.uint32)
    for k in range(9, -1, -1):  # most significant first; leading zeros are not written
        updated = (state ^ digits[k]) * _PRIME32
        if k == 0:
            state = updated
        else:
            np.copyto(state, updated, where=values >= np.uint32(10**k))
    return state


def gbhash_arrays(ids: np.ndarray, hashes: list[tuple[str, int]], threads: int | None = None) -> list[np.ndarray]:
    """Several :func:`gbhash` of every id at once: one float64 array in [0, 1) per (seed, version).

    An experiment's hash and its layer's hash read the ids once together, and
    chunks of ids are spread over the CPU cores (numpy releases the GIL).
    """
    for _, version in hashes:
        if version not in (1, 2):
            raise ValueError(f"unknown hash version {version!r}")
    text = as_text(ids)
    n = len(text)
    outs = [np.empty(n, dtype=np.float64) for _ in hashes]
    width = text.dtype.itemsize // 4
    points = text.view(np.uint32).reshape(n, width) if width else np.zeros((n, 0), dtype=np.uint32)
    lengths = np.strings.str_len(text)
    # version 2 hashes seed + id: start from the seed's state; version 1 hashes id + seed
    starts = [fnv1a32(seed) if version == 2 else OFFSET_BASIS for seed, version in hashes]
    # Ids of one length share every character position, so nothing needs masking: hash them by length.
    distinct = np.unique(lengths)
    groups = [None] if len(distinct) <= 1 else [np.flatnonzero(lengths == size) for size in distinct]
    tasks = [(rows, lo) for rows in groups for lo in range(0, n if rows is None else len(rows), CHUNK)]

    def chunk(task: tuple[np.ndarray | None, int]) -> None:
        rows, lo = task
        where = slice(lo, min(lo + CHUNK, n)) if rows is None else rows[lo:lo + CHUNK]
        size = int(lengths[where].max(initial=0))
        states = [np.full(len(lengths[where]), start, dtype=np.uint32) for start in starts]
        _fnv_rows(states, points[where, :size], lengths[where])
        for (seed, version), state, out in zip(hashes, states, outs):
            if version == 2:
                out[where] = _fnv_decimal(state) % np.uint32(10000) / 10000
            else:
                _fnv_text(state, seed)
                out[where] = state % np.uint32(1000) / 1000

    workers = threads or min(os.cpu_count() or 1, len(tasks))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(chunk, tasks))
    else:
        for task in tasks:
            chunk(task)
    return outs


def gbhash_array(seed: str, ids: np.ndarray, version: int) -> np.ndarray:
    """:func:`gbhash` of every id: a float64 array in [0, 1)."""
    return gbhash_arrays(ids, [(seed, version)])[0]


def choose_variations(n: np.ndarray, ranges: list[tuple[float, float]]) -> np.ndarray:
    """:func:`choose_variation` for every hash: int array, -1 where no range holds it."""
    chosen = np.full(len(n), -1, dtype=np.int64)
    for i, (start, end) in reversed(list(enumerate(ranges))):  # the first matching range wins
        chosen[(n >= start) & (n < end)] = i
    return chosen
