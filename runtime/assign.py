"""Batch assignment: which variant each unit sees, computed as GrowthBook would.

A unit is in the experiment when all of these hold, as in GrowthBook's
``run_experiment``:

1. it has a usable id (not empty or null; a number that is not 0 or infinite);
2. the audience condition holds;
3. with a layer, the unit's namespace hash lies in the layer's range;
4. the experiment hash ``n`` lies in a variant's bucket range (the part of
   [0, 1) that coverage leaves out holds no variant).

The outcome does not depend on the order of the tests; the order above is the
order in which an excluded unit's *reason* is given (GrowthBook tests the
layer before the audience; expc tests the cheap column-wise condition first,
so that only the audience's ids are hashed).

Everything is vectorised over the table: the condition is evaluated
column-wise, and the two hashes of each remaining id (experiment and layer)
advance together one character position at a time, for all ids at once.

A units file of any size is assigned by :func:`assign_file`, one chunk of
units at a time (each unit's outcome depends on that unit alone, so chunks
give exactly the whole table's answer), after the whole file has been checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .conditions import attributes_of, evaluate_columns
from .hashing import choose_variations, gbhash_arrays
from .units import Units

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

#: Why a unit is not in the experiment, by code (0 = it is).
REASONS = ("assigned", "missing id", "not in the audience", "outside the layer", "outside coverage")
ASSIGNED, MISSING_ID, NOT_IN_AUDIENCE, OUTSIDE_LAYER, OUTSIDE_COVERAGE = range(5)


@dataclass(frozen=True)
class Assignment:
    """Per unit: the variant index (-1 when out), the hash ``bucket`` (NaN when not hashed) and why."""

    variant: np.ndarray
    bucket: np.ndarray
    reason: np.ndarray

    def counts(self, variant_ids: list[str]) -> dict[str, Any]:
        """How many units went where: per variant and per reason for exclusion."""
        per_variant = np.bincount(self.variant[self.variant >= 0], minlength=len(variant_ids))
        per_reason = np.bincount(self.reason, minlength=len(REASONS))
        return {
            "units": int(len(self.variant)),
            "assigned": {v: int(c) for v, c in zip(variant_ids, per_variant)},
            "excluded": {REASONS[i]: int(per_reason[i]) for i in range(1, len(REASONS))},
        }


def id_text(units: Units, unit: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Each unit's id as text, as the input wrote it (numbers as JavaScript writes them); "" when null.

    ``rows`` (indices) limits it to those units, in that order.
    """
    if unit not in units.columns:
        return np.full(len(units) if rows is None else len(rows), "", dtype=np.str_)
    column = units.columns[unit] if rows is None else units.columns[unit][rows]
    if column.dtype.kind == "U":
        return column
    if units.types.get(unit) in ("integer", "number"):
        # integer ids are whole numbers within 2**53 (the reader refuses others), so int() is exact
        finite = np.isfinite(column)
        text = np.full(len(column), "", dtype=object)
        text[finite] = column[finite].astype(np.int64).astype(str)
        return text.astype(np.str_)
    return np.where(np.equal(column, None), "", column).astype(np.str_)  # type: ignore[call-overload]


def hash_values(units: Units, unit: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Each unit's id as GrowthBook hashes it; "" for ids it cannot hash (null, empty, the number 0).

    ``rows`` (indices) limits it to those units, in that order.
    """
    text = id_text(units, unit, rows)
    if units.types.get(unit) in ("integer", "number"):
        text = np.where(text == "0", "", text)
    return text


def unhashable(units: Units, unit: str) -> np.ndarray:
    """Per unit, whether GrowthBook cannot hash its id (null, empty, the number 0): ``hash_values(...) == ""``
    without making the text of every id."""
    if unit not in units.columns:
        return np.ones(len(units), dtype=bool)
    column = units.columns[unit]
    numeric = units.types.get(unit) in ("integer", "number")
    if column.dtype.kind == "U":
        return (column == "") | (column == "0") if numeric else column == ""
    if numeric:
        finite = np.isfinite(column)
        out = ~finite
        out[finite] = column[finite].astype(np.int64) == 0
        return out
    return np.equal(column, None) | (column == "")  # type: ignore[call-overload]


def check_attributes(plan: Plan, columns: Iterable[str], source: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`~expc.runtime.tables.DataError` (naming ``source``, the units file) when ``columns``, the
    attributes the units have, lack one that the audience's condition reads: every unit would silently fall
    outside the audience."""
    spec = plan.assignment
    have = set(columns)
    missing = sorted(attributes_of(spec.condition) - have)
    if missing:
        from .tables import DataError

        where = f"{source}: " if source else ""
        raise DataError(f"{where}the units have no `{missing[0]}` column, which the audience `{spec.audience}` "
                        f"needs ({', '.join(sorted(have))} given); add it, or every unit would be "
                        "outside the audience", None if source is None else str(source))


def assign(plan: Plan, units: Units, source: str | None = None) -> Assignment:
    """Assign every unit of the table according to a compiled plan.

    Raises :class:`~expc.runtime.tables.DataError` (naming ``source``, the units
    file) when the units lack an attribute the audience's condition reads: every
    unit would silently fall outside the audience.
    """
    check_attributes(plan, units.columns, source)
    spec = plan.assignment
    n = len(units)
    reason = np.zeros(n, dtype=np.uint8)
    reason[unhashable(units, spec.unit)] = MISSING_ID
    eligible = reason == ASSIGNED

    if spec.condition:
        matches = evaluate_columns(spec.condition, units)
        reason[eligible & ~matches] = NOT_IN_AUDIENCE
        eligible &= matches

    hashes: list[tuple[str, int]] = [(spec.seed, spec.hash_version)]
    namespace = spec.namespace
    if namespace is not None:
        hashes.append(("__" + namespace.id, 1))
    rows = np.flatnonzero(eligible)
    hashed, *layer = gbhash_arrays(hash_values(units, spec.unit, rows), hashes)  # only the ids hashed
    if layer and namespace is not None:
        inside = (layer[0] >= namespace.start) & (layer[0] < namespace.end)
        reason[rows[~inside]] = OUTSIDE_LAYER
        rows, hashed = rows[inside], hashed[inside]

    bucket = np.full(n, np.nan)
    variant = np.full(n, -1, dtype=np.int64)
    ranges = [(v.bucket_range[0], v.bucket_range[1]) for v in plan.variants]
    bucket[rows] = hashed
    variant[rows] = choose_variations(hashed, ranges)
    reason[rows[variant[rows] < 0]] = OUTSIDE_COVERAGE
    return Assignment(variant, bucket, reason)


def output_columns(plan: Plan, units: Units, result: Assignment) -> dict[str, np.ndarray]:
    """The table ``expc assign`` writes: each unit's id as the input wrote it, its variant ("" when it is not
    in the experiment) and its bucket (NaN when it was not hashed)."""
    unit = plan.assignment.unit
    names = np.array([v.id for v in plan.variants] + [""], dtype=object)  # index -1 (out) -> ""
    column = units.columns.get(unit)
    if column is not None and column.dtype.kind == "O" and units.types.get(unit) not in ("integer", "number"):
        ids = column  # text as read (None for null, which is written as "" is: empty)
    else:
        ids = id_text(units, unit).astype(object)
    return {unit: ids, "variant": names[result.variant], "bucket": result.bucket}


def assign_file(plan: Plan, path: str | os.PathLike[str],
                write: Callable[[Iterator[dict[str, np.ndarray]]], Any],
                chunk_rows: int | None = None) -> dict[str, Any]:
    """Assign the units of a file, chunk by chunk, and hand the output tables to ``write``; the counts.

    The file is read by :func:`expc.runtime.tables.open_units`: every check of
    the whole file (and of the audience's attributes) passes before ``write``
    is called, so nothing is written for a file that is refused. ``write``
    receives an iterator of the :func:`output_columns` tables, one per chunk of
    ``chunk_rows`` units, in file order, and must consume it (e.g.
    :func:`expc.runtime.tables.write_assignment_chunks`). Returns what
    :meth:`Assignment.counts` returns, for all the units. Raises
    :class:`~expc.runtime.tables.DataError` for a file that cannot be used.
    """
    from .tables import open_units

    variant_ids = [v.id for v in plan.variants]
    per_variant = np.zeros(len(variant_ids), dtype=np.int64)
    per_reason = np.zeros(len(REASONS), dtype=np.int64)
    with open_units(path, plan.attributes, plan.assignment.unit, chunk_rows) as units:
        check_attributes(plan, units.attributes, path)

        def tables() -> Iterator[dict[str, np.ndarray]]:
            for chunk in units:
                result = assign(plan, chunk, str(path))
                per_variant[:] += np.bincount(result.variant[result.variant >= 0], minlength=len(variant_ids))
                per_reason[:] += np.bincount(result.reason, minlength=len(REASONS))
                yield output_columns(plan, chunk, result)

        write(tables())
        n = units.n
    return {
        "units": n,
        "assigned": {v: int(c) for v, c in zip(variant_ids, per_variant)},
        "excluded": {REASONS[i]: int(per_reason[i]) for i in range(1, len(REASONS))},
    }
