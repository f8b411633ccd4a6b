"""Fast construction of the result dataclasses on the scalar (one-comparison) paths.

A one-comparison result is a handful of Python floats that must come back as
numpy arrays of fixed small shapes inside a frozen dataclass. At that size the
arithmetic is cheap and the fixed costs dominate: numpy's per-object overhead
(0.1-0.2 µs to make, index or free even a one-element array; ``np.array`` on
a tuple of floats ~1 µs) and the dataclass's generated ``__init__``. Both are
paid here as few times as possible.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_new = object.__new__
_set = object.__setattr__


def build(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` whose attributes are ``fields``, without its ``__init__``.

    Why: a frozen dataclass's generated ``__init__`` sets each field through
    ``object.__setattr__``, about 0.4 µs per field; for a one-comparison
    result (9-15 fields) that is a large share of the whole computation.
    Installing the ``__dict__`` in one step gives the same object (same
    fields, equality and repr, still frozen against later assignment). Only
    for plain (non-slots) dataclasses without ``__post_init__``; the caller
    passes every field (a fresh dict, which the instance keeps).
    """
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj


def float_arrays(*shapes: tuple[int, ...]) -> Callable[..., tuple[np.ndarray, ...]]:
    """A function ``cut(*values)`` giving float64 arrays of ``shapes``, filled in order from ``values``.

    Each of the (two or more) shapes is ``()``, ``(k,)`` or ``(1, k)``; ``cut``
    takes as many floats as the shapes hold in all. Every call writes the
    values into one fresh buffer (``struct.pack_into`` into ``np.empty``: half
    the cost of ``np.array`` on a tuple of floats, which converts element by
    element) and returns writable views of it, each made by one index
    operation, all in one ``operator.itemgetter`` call (a slice followed by a
    reshape would cost two). Results of different calls share no memory.
    """
    if len(shapes) < 2:
        raise ValueError("give two or more shapes")  # itemgetter of one index returns a bare item
    index: list[Any] = []
    size = 0
    for shape in shapes:
        if shape == ():
            index.append((Ellipsis, size))
            size += 1
        elif len(shape) == 1:
            index.append(slice(size, size + shape[0]))
            size += shape[0]
        elif len(shape) == 2 and shape[0] == 1:
            index.append((None, slice(size, size + shape[1])))
            size += shape[1]
        else:
            raise ValueError(f"shape {shape!r} is not (), (k,) or (1, k)")
    pack = struct.Struct(f"={size}d").pack_into
    views = operator.itemgetter(*index)
    empty = np.empty

    def cut(*values: float) -> tuple[np.ndarray, ...]:
        buf = empty(size)
        # numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12 (buf.data is ~50% slower here)
        pack(buf, 0, *values)  # type: ignore[arg-type]
        return views(buf)

    return cut
