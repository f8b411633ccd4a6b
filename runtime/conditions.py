"""Audience conditions at run time: does a unit (or each unit of a table) match?

Semantics: those of the GrowthBook Python SDK 4.x (``growthbook.core.evalCondition``),
re-implemented here for the operators the static checker
(:mod:`expc.compiler.conditions`) accepts. Where the JavaScript SDK differs
(it coerces types in ``$lt``/``$gt``, sees a missing attribute as
``undefined``), we follow the Python SDK. In short:

* every key of a mapping must hold; ``$or: []`` holds, ``$nor: []`` does not;
* equality is strict: ``True`` never equals ``1``, a string never a number,
  and null equals only null. A literal list equals only an equal list, while
  ``$eq``/``$ne`` never find two lists equal (JavaScript's ``===``);
* only two numbers or two strings are ordered; strings with non-ASCII text
  order by UTF-16 code units, as in JavaScript (so an emoji sorts below
  ``U+E000``..``U+FFFF``); null and NaN are ordered with nothing;
* ``$in`` and friends intersect when the attribute is a list;
  ``$nin``/``$nini`` hold for a missing attribute, and ``$in: [null]`` matches it;
* ``$notRegex``/``$notRegexi`` hold for a missing attribute; a pattern that
  fails to compile or to match fails ``$regex`` and passes ``$notRegex``;
* ``$type`` names the JSON type; a missing attribute is ``"null"``, never
  ``"undefined"``;
* versions compare as padded strings (``v`` prefix and ``+build`` dropped,
  numeric parts padded, a release later than its pre-releases); ``$vne``
  holds when either side is not a version string;
* an evaluation error fails the whole condition, so ``$not`` cannot turn it
  into a match.

The SDK answers "unknown" for an operator it does not know (``$or`` can still
hold if another branch does). The checker accepts no such operator, so here a
condition holding any operator outside the checker's set (including the
saved-group ones) simply matches nobody. Attributes are flat: a key is an
attribute's name, never a dotted path.

Vectorisation (:func:`evaluate_columns`): each clause on an attribute
becomes a boolean mask, combined with ``&``, ``|`` and ``~``. Clauses on
``float64`` columns (integer, number) and on text columns (string, version,
datetime) use numpy directly where that provably gives the scalar answer:
equality, ordering (for text, when the literal has no character at or above
U+D800, where code-point order and UTF-16 order agree), membership, ``$exists``
and ``$type``. Every other clause (lists, booleans, regexes, versions,
``$elemMatch``, case-insensitive membership, ...) is evaluated once per
distinct value of its column with :func:`evaluate`'s own operator code and
broadcast back. Distinct values come from ``np.unique`` on the floats, or on
the hashes of the objects (checked for collisions; a collision falls back to
sorting the objects).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .units import Units

__all__ = ["evaluate", "evaluate_columns"]

_LOGICAL = ("$and", "$or", "$nor", "$not")
_EVAL_ERRORS = (TypeError, ValueError, AttributeError, IndexError, RecursionError)
_TEXT_KINDS = ("string", "version", "datetime")
# None as an array: np.equal(column, None) compares the same, but numpy's stubs take no None operand
_NONE = np.array(None, dtype=object)


def attributes_of(condition: Any) -> set[str]:
    """The attributes a condition reads (the first part of each dotted path), outside ``$elemMatch``."""
    found: set[str] = set()
    stack = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _LOGICAL:
                    stack.append(value)
                elif not str(key).startswith("$"):
                    found.add(str(key).split(".", 1)[0])
    return found


# --------------------------------------------------------------------------
# one unit


def evaluate(condition: dict, attributes: dict) -> bool:
    """Whether a unit with ``attributes`` (plain Python values) matches ``condition``."""
    if not _supported(condition):
        return False
    try:
        return _holds(condition, attributes)
    except _EVAL_ERRORS:
        return False


def _holds(condition: dict, attributes: dict) -> bool:
    return all(_entry(key, value, attributes) for key, value in condition.items())


def _entry(key: str, value: Any, attributes: dict) -> bool:
    if key == "$and":
        return all(_holds(c, attributes) for c in value)
    if key == "$or":
        return _any_holds(value, attributes)
    if key == "$nor":
        return not _any_holds(value, attributes)
    if key == "$not":
        return not _holds(value, attributes)
    return _matches(value, attributes.get(key))


def _any_holds(conditions: list, attributes: dict) -> bool:
    return not conditions or any(_holds(c, attributes) for c in conditions)


def _matches(expected: Any, value: Any, insensitive: bool = False) -> bool:
    """A condition on one value: a mapping of operators (all must hold) or a literal."""
    if _is_operators(expected):
        return all(_operator(op, arg, value) for op, arg in expected.items())
    if insensitive and isinstance(expected, str) and isinstance(value, str):
        return expected.lower() == value.lower()
    return _deep_equal(expected, value)


def _is_operators(x: Any) -> bool:
    return isinstance(x, dict) and all(key.startswith("$") for key in x)


def _operator(op: str, arg: Any, value: Any) -> bool:
    return _FAMILIES[op](op, arg, value)


def _equality(op: str, arg: Any, value: Any) -> bool:
    return _strict_equal(value, arg) == (op == "$eq")


def _ordering(op: str, arg: Any, value: Any) -> bool:
    if not _orderable(value, arg) or _is_nan(value) or _is_nan(arg):
        return False
    c = _compare(value, arg)
    return {"$lt": c < 0, "$lte": c <= 0, "$gt": c > 0, "$gte": c >= 0}[op]


def _membership(op: str, arg: Any, value: Any) -> bool:
    if not isinstance(arg, list):
        return False
    fold = _lower if op in ("$ini", "$nini") else _same
    values = value if isinstance(value, list) else [value]
    found = any(_strict_equal(fold(v), fold(a)) for v in values for a in arg)
    return found if op in ("$in", "$ini") else not found


def _array(op: str, arg: Any, value: Any) -> bool:
    if not isinstance(value, list):
        return False
    if op == "$size":
        return _matches(arg, len(value))
    if op == "$elemMatch":
        # operators test each element; a condition (also one with only $or,
        # $and or $nor) tests each element's fields, which strings do not have
        on_element = _is_operators(arg) and not any(k in ("$and", "$or", "$nor") for k in arg)
        return any(
            _matches(arg, item) if on_element else _holds(arg, item if isinstance(item, dict) else {})
            for item in value
            if item is not None
        )
    if not isinstance(arg, list):  # $all, $alli
        return False
    return all(any(_matches(want, item, op == "$alli") for item in value) for want in arg)


def _version(op: str, arg: Any, value: Any) -> bool:
    if not _orderable(value, arg):
        return op == "$vne"
    a, b = _padded_version(value), _padded_version(arg)
    return {"$veq": a == b, "$vne": a != b, "$vlt": a < b, "$vlte": a <= b, "$vgt": a > b, "$vgte": a >= b}[op]


def _regex(op: str, arg: Any, value: Any) -> bool:
    negated = op.startswith("$not")
    try:
        found = re.search(arg, value, re.IGNORECASE if op.endswith("i") else 0) is not None
    except Exception:  # a bad pattern, or a value that is not text: $regex fails, $notRegex holds
        return negated
    return found != negated


def _exists(op: str, arg: Any, value: Any) -> bool:
    return (value is not None) == bool(arg)


def _type(op: str, arg: Any, value: Any) -> bool:
    return _json_type(value) == arg


def _not(op: str, arg: Any, value: Any) -> bool:
    return not _matches(arg, value)


def _never(op: str, arg: Any, value: Any) -> bool:
    """$and, $or and $nor are keys of a condition; on a value they never hold."""
    return False


_FAMILIES: dict[str, Callable[[str, Any, Any], bool]] = {
    **dict.fromkeys(("$eq", "$ne"), _equality),
    **dict.fromkeys(("$lt", "$lte", "$gt", "$gte"), _ordering),
    **dict.fromkeys(("$in", "$nin", "$ini", "$nini"), _membership),
    **dict.fromkeys(("$all", "$alli", "$size", "$elemMatch"), _array),
    **dict.fromkeys(("$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte"), _version),
    **dict.fromkeys(("$regex", "$regexi", "$notRegex", "$notRegexi"), _regex),
    "$exists": _exists,
    "$type": _type,
    "$not": _not,
    **dict.fromkeys(("$and", "$or", "$nor"), _never),
}
_KNOWN = frozenset(_FAMILIES) | frozenset(_LOGICAL)


def _supported(node: Any) -> bool:
    """Whether every ``$`` key anywhere in ``node`` is an operator we evaluate."""
    if isinstance(node, dict):
        return all(
            (not isinstance(k, str) or not k.startswith("$") or k in _KNOWN) and _supported(v)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return all(_supported(x) for x in node)
    return True


# values, as JSON and JavaScript see them


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    if isinstance(x, dict):
        return "object"
    return "unknown"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` on parsed JSON: same type, and two containers are never equal."""
    kind = _json_type(a)
    return kind == _json_type(b) and kind not in ("array", "object") and a == b


def _deep_equal(a: Any, b: Any) -> bool:
    """Literal equality: same JSON type all the way down (NaN and infinities count as null in a list)."""
    kind = _json_type(a)
    if kind != _json_type(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(_deep_equal(_as_json(x), _as_json(y)) for x, y in zip(a, b))
    if kind == "object":  # attributes are never mappings, and the checker refuses mapping literals
        return False
    return bool(a == b)


def _as_json(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _same(x: Any) -> Any:
    return x


def _lower(x: Any) -> Any:
    return x.lower() if isinstance(x, str) else x


def _orderable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def _compare(a: Any, b: Any) -> int:
    if isinstance(a, str) and not (a.isascii() and b.isascii()):
        a, b = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
    return (a > b) - (a < b)


_VERSION_DROP = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT = re.compile(r"[-.]")


def _padded_version(x: Any) -> str:
    """A version as a string that orders like the version: "v1.2.3" -> "    1-    2-    3-~"."""
    text = _js_number_text(x) if _is_number(x) else x
    if not text or not isinstance(text, str):
        text = "0"
    parts = _VERSION_SPLIT.split(_VERSION_DROP.sub("", text))
    if len(parts) == 3:
        parts.append("~")  # a release sorts after its pre-releases ("~" is the last ASCII character)
    return "-".join(p.rjust(5) if p.isdigit() else p for p in parts)


def _js_number_text(x: float) -> str:
    """JavaScript's ``String(x)`` for whole numbers below 1e21; Python's ``repr`` otherwise."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    return str(x)


# --------------------------------------------------------------------------
# a table of units


def evaluate_columns(condition: dict, units: Units) -> np.ndarray:
    """``evaluate(condition, unit)`` for every unit of ``units``, as a boolean array, vectorised.

    Meant for a condition the checker accepts and columns that follow :mod:`expc.runtime.units`;
    unlike :func:`evaluate`, a malformed condition raises rather than matching nobody.
    """
    if not _supported(condition):
        return np.zeros(len(units), dtype=bool)
    return _Table(units).holds(condition)


class _Table:
    """One evaluation over ``units``: masks per clause, distinct values per column cached."""

    def __init__(self, units: Units):
        self.units = units
        self.n = len(units)
        self._distinct: dict[str, tuple[list, np.ndarray]] = {}
        self._null: dict[str, np.ndarray] = {}

    def holds(self, condition: dict) -> np.ndarray:
        mask = np.ones(self.n, dtype=bool)
        for key, value in condition.items():
            mask &= self._entry(key, value)
        return mask

    def _entry(self, key: str, value: Any) -> np.ndarray:
        if key == "$and":
            return self.holds({}) if not value else np.logical_and.reduce([self.holds(c) for c in value])
        if key in ("$or", "$nor"):
            found = self.holds({}) if not value else np.logical_or.reduce([self.holds(c) for c in value])
            return found if key == "$or" else ~found
        if key == "$not":
            return ~self.holds(value)
        column = self.units.columns.get(key)
        if column is None:  # a missing attribute is null for everyone
            return np.full(self.n, _matches(value, None))
        return self._clause(key, column, value)

    def _clause(self, name: str, column: np.ndarray, expected: Any) -> np.ndarray:
        """Where the condition on attribute ``name`` holds: a mapping of operators or a literal."""
        if _is_operators(expected):
            mask = np.ones(self.n, dtype=bool)
            for op, arg in expected.items():
                if op == "$not":
                    mask &= ~self._clause(name, column, arg)
                    continue
                fast = self._vector(name, column, op, arg)
                mask &= fast if fast is not None else self._per_distinct(name, column, _bind(op, arg))
            return mask
        if isinstance(expected, (list, dict)):  # a whole-list literal
            return self._per_distinct(name, column, lambda v: _matches(expected, v))
        fast = self._vector(name, column, "$eq", expected)  # a scalar literal is $eq
        return fast if fast is not None else self._per_distinct(name, column, lambda v: _matches(expected, v))

    def _vector(self, name: str, column: np.ndarray, op: str, arg: Any) -> np.ndarray | None:
        """The clause with numpy alone, or None when no numpy form provably agrees with the scalar one."""
        kind = "number" if column.dtype.kind == "f" else self.units.types.get(name)

        def null() -> np.ndarray:  # built only for the operators that need it
            if name not in self._null:
                self._null[name] = np.isnan(column) if kind == "number" else np.equal(column, _NONE).astype(bool)
            return self._null[name]

        if op == "$exists":
            return ~null() if arg else null()
        if op == "$type" and kind in _JSON_TYPE_OF:
            return ~null() if arg == _JSON_TYPE_OF[kind] else null() if arg == "null" else np.zeros(self.n, bool)
        if op in ("$eq", "$ne") and arg is None:
            return null() if op == "$eq" else ~null()
        if kind == "number":
            return _vector_number(column, op, arg, null)
        if kind in _TEXT_KINDS:
            return _vector_text(column, op, arg, null)
        return None

    def _per_distinct(self, name: str, column: np.ndarray, test: Callable[[Any], bool]) -> np.ndarray:
        """``test`` on each distinct value of the column, broadcast to every unit."""
        if name not in self._distinct:
            self._distinct[name] = _factorize(column)
        values, codes = self._distinct[name]
        return np.fromiter((test(v) for v in values), dtype=bool, count=len(values))[codes]


_JSON_TYPE_OF = {"string": "string", "version": "string", "datetime": "string", "number": "number",
                 "integer": "number", "boolean": "boolean", "list[string]": "array"}
_SAFE_INT = 2**53  # integers up to this are exact as doubles
_ORDER = {"$lt": np.less, "$lte": np.less_equal, "$gt": np.greater, "$gte": np.greater_equal}


def _bind(op: str, arg: Any) -> Callable[[Any], bool]:
    return lambda value: _operator(op, arg, value)


def _exact_number(x: Any) -> bool:
    """A number that float64 holds exactly, so numpy compares it as Python would."""
    return _is_number(x) and (isinstance(x, float) or abs(x) <= _SAFE_INT)


def _vector_number(column: np.ndarray, op: str, arg: Any, null: Callable[[], np.ndarray]) -> np.ndarray | None:
    if op in ("$eq", "$ne") and _exact_number(arg):
        equal = column == float(arg)
        return equal if op == "$eq" else ~equal
    if op in _ORDER and _exact_number(arg):
        return _ORDER[op](column, float(arg))  # NaN (null) is ordered with nothing
    if op in ("$in", "$nin", "$ini", "$nini") and isinstance(arg, list):
        # case does not matter for numbers; only numbers can equal a number, only null null
        numbers = [a for a in arg if _is_number(a) and not _is_nan(a)]
        if not all(_exact_number(a) for a in numbers):
            return None
        found = np.isin(column, np.array(numbers, dtype=float))
        if any(a is None for a in arg):
            found |= null()
        return found if op in ("$in", "$ini") else ~found
    return None


def _vector_text(column: np.ndarray, op: str, arg: Any, null: Callable[[], np.ndarray]) -> np.ndarray | None:
    if op in ("$eq", "$ne") and isinstance(arg, str):
        equal = np.equal(column, arg).astype(bool)  # None == "x" is False
        return equal if op == "$eq" else ~equal
    if op in _ORDER and isinstance(arg, str) and (not arg or max(arg) < "\ud800"):
        # below U+D800 a character is one UTF-16 code unit, and a supplementary
        # character's lead unit is above it, so both orders agree with this literal
        out = np.zeros(len(column), dtype=bool)
        present = ~null()
        out[present] = _ORDER[op](column[present], arg).astype(bool)
        return out
    if op in ("$in", "$nin") and isinstance(arg, list):
        # set membership in one C loop (None is in no set of strings): faster than sorting objects
        texts = frozenset(a for a in arg if isinstance(a, str))
        found = np.frompyfunc(texts.__contains__, 1, 1)(column).astype(bool)
        if any(a is None for a in arg):
            found |= null()
        return found if op == "$in" else ~found
    return None


def _factorize(column: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct values of a column as the scalar evaluator sees them, and each unit's index into them."""
    if column.dtype.kind == "f":
        uniques, codes = np.unique(column, return_inverse=True)  # NaNs collapse into one
        return [_from_float(x) for x in uniques.tolist()], codes.reshape(-1)
    try:
        keys = np.frompyfunc(hash, 1, 1)(column).astype(np.int64)
    except TypeError:  # unhashable values: sort them instead
        return _factorize_sorted(column)
    distinct, codes = np.unique(keys, return_inverse=True)
    codes = codes.reshape(-1)
    first = np.zeros(len(distinct), dtype=np.intp)
    first[codes] = np.arange(len(codes))  # any unit with that hash
    representatives = column[first]
    if not np.equal(representatives[codes], column).astype(bool).all():  # two values with one hash
        return _factorize_sorted(column)
    return [_from_object(v) for v in representatives], codes


def _factorize_sorted(column: np.ndarray) -> tuple[list, np.ndarray]:
    null = np.equal(column, _NONE).astype(bool)
    uniques, present_codes = np.unique(column[~null], return_inverse=True)
    codes = np.full(len(column), len(uniques), dtype=np.intp)  # null: after the others
    codes[~null] = present_codes.reshape(-1)
    return [_from_object(v) for v in uniques] + [None], codes


def _from_float(x: float) -> Any:
    """NaN is null; a whole number is a Python int (JSON has one number type)."""
    if math.isnan(x):
        return None
    return int(x) if x.is_integer() else x


def _from_object(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x
