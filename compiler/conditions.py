"""Audience conditions: GrowthBook's condition syntax, checked against attribute types.

A condition is a mapping. Its keys are either logical operators (``$and``,
``$or``, ``$nor``, ``$not``) or attribute paths (``country``, dotted for nested
fields). An attribute's value is a literal (meaning ``$eq``) or a mapping of
operators. This module only checks conditions statically; the runtime
evaluates them with GrowthBook's semantics (the Python SDK's where the
JavaScript SDK coerces types).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .diagnostics import did_you_mean

LOGICAL = {"$and", "$or", "$nor", "$not"}
COMPARISON = {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte"}
MEMBERSHIP = {"$in", "$nin", "$ini", "$nini"}
ARRAY = {"$all", "$alli", "$size", "$elemMatch"}
VERSION = {"$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"}
OTHER = {"$exists", "$type", "$regex", "$regexi", "$notRegex", "$notRegexi", "$not"}
FIELD_OPERATORS = COMPARISON | MEMBERSHIP | ARRAY | VERSION | OTHER
TYPE_NAMES = {"string", "number", "boolean", "array", "object", "null", "undefined"}

# Which Python values may stand for an attribute of each declared type. A list
# attribute compares as a whole (GrowthBook: `==` on the list), so its literal is a list.
_SCALAR_FITS = {
    "string": (str,),
    "integer": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "version": (str,),
    "datetime": (str,),
    "list[string]": (list,),
}
_ORDERED = {"string", "integer", "number", "version", "datetime"}
_VERSION = re.compile(r"^v?[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.-]+)?(\+.*)?$")


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem in a condition: code, message, path of the node, whether it is a key."""

    code: str
    message: str
    path: tuple
    on_key: bool = False
    hint: str | None = None


def check_condition(condition: Any, attributes: Mapping[str, str], path: tuple) -> list[Finding]:
    """Every problem in ``condition`` given ``attributes`` (name -> declared type)."""
    return list(_condition(condition, attributes, path))


def _condition(cond: Any, attrs: Mapping[str, str], path: tuple) -> Iterator[Finding]:
    if not isinstance(cond, dict):
        yield Finding("E037", "a condition must be a mapping of attributes or operators", path)
        return
    for key, value in cond.items():
        p = path + (key,)
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                yield Finding("E037", f"`{key}` takes a non-empty list of conditions", p)
                continue
            for i, sub in enumerate(value):
                yield from _condition(sub, attrs, p + (i,))
        elif key == "$not":
            yield from _condition(value, attrs, p)
        elif key.startswith("$"):
            yield Finding("E037", f"`{key}` is not an operator at this level", p, True,
                          did_you_mean(key, LOGICAL) or "at the top of a condition use $and, $or, $nor or $not")
        else:
            yield from _field(key, value, attrs, p)


def _field(name: str, value: Any, attrs: Mapping[str, str], path: tuple) -> Iterator[Finding]:
    root, _, rest = name.partition(".")
    if root not in attrs:
        yield Finding("E035", f"`{root}` is not a declared attribute", path, True,
                      did_you_mean(root, attrs) or "declare it under `attributes`")
        return
    kind = attrs[root]
    if rest:
        yield Finding("E036", f"`{root}` is {_a(kind)} attribute; it has no field `{rest}`", path, True)
        return
    if isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
        yield from _operators(root, kind, value, attrs, path)
    elif isinstance(value, dict):
        yield Finding("E037", f"`{root}`: a mapping here must hold only operators such as $eq or $in", path)
    else:
        yield from _literal(root, kind, "$eq", value, path)


def _literal(name: str, kind: str, op: str, value: Any, path: tuple) -> Iterator[Finding]:
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        yield Finding("E036", f"`{name}`: `{op}` compares with {value}, which JSON (the plan, GrowthBook's "
                      "payload) cannot carry", path, False, "compare with a finite number, or leave the bound out")
        return
    fits = isinstance(value, _SCALAR_FITS[kind]) and not (isinstance(value, bool) and kind != "boolean")
    if fits and kind == "list[string]":
        fits = all(isinstance(item, str) for item in value)
    if not fits:
        hint = "to test for one element use `$in: [...]` or `$elemMatch`" if kind == "list[string]" else None
        yield Finding("E036", f"`{name}` is {_a(kind)} attribute; `{op}` compares it with {_kind_of(value)}", path,
                      False, hint)


def _element(kind: str) -> str:
    """The type of one element: what `$in` items and `$elemMatch` compare with."""
    return "string" if kind == "list[string]" else kind


def _operators(name: str, kind: str, ops: dict, attrs: Mapping[str, str], path: tuple) -> Iterator[Finding]:
    if not ops:
        yield Finding("E037", f"`{name}`: an empty mapping of operators always holds", path,
                      hint="give at least one operator, such as {$eq: ...}")
    for op, arg in ops.items():
        p = path + (op,)
        if op not in FIELD_OPERATORS:
            yield Finding("E037", f"unknown operator `{op}`", p, True, did_you_mean(op, FIELD_OPERATORS))
        elif op in ("$eq", "$ne") and kind == "list[string]":
            # GrowthBook's $eq is JavaScript's ===, which never holds between two lists
            yield Finding("E036", f"`{op}` never matches a list attribute such as `{name}` in GrowthBook", p, True,
                          f"write the whole list as a plain value (`{name}: [a, b]`), or use `$in`, `$all` or `$size`")
        elif op in ("$eq", "$ne"):
            yield from _literal(name, kind, op, arg, p)
        elif op in ("$lt", "$lte", "$gt", "$gte"):
            if kind not in _ORDERED:
                yield Finding("E036", f"`{op}` orders values, but `{name}` is {_a(kind)} attribute", p, True)
            else:
                yield from _literal(name, kind, op, arg, p)
        elif op in MEMBERSHIP:
            if not isinstance(arg, list):
                yield Finding("E037", f"`{op}` takes a list of values", p)
            elif not arg and op in ("$in", "$ini"):
                yield Finding("E037", f"`{op}: []` matches nobody", p)
            else:
                for i, item in enumerate(arg):
                    yield from _literal(name, _element(kind), op, item, p + (i,))
        elif op in ("$all", "$alli", "$size", "$elemMatch"):
            if kind != "list[string]":
                yield Finding("E036", f"`{op}` applies to lists, but `{name}` is {_a(kind)} attribute", p, True)
            elif op in ("$all", "$alli") and not isinstance(arg, list):
                yield Finding("E037", f"`{op}` takes a list of values", p)
            elif op in ("$all", "$alli"):
                for i, item in enumerate(arg):
                    if isinstance(item, dict):
                        yield from _operators(name, "string", item, attrs, p + (i,))
                    else:
                        yield from _literal(name, "string", op, item, p + (i,))
            elif op == "$size" and isinstance(arg, dict):
                if all(str(k).startswith("$") for k in arg):
                    yield from _operators(f"{name}.length", "integer", arg, attrs, p)
                else:
                    yield Finding("E037", "`$size` takes a whole number or operators on the size, such as {$gte: 2}", p)
            elif op == "$size" and not (isinstance(arg, int) and not isinstance(arg, bool)):
                yield Finding("E037", "`$size` takes a whole number or operators on the size, such as {$gte: 2}", p)
            elif op == "$elemMatch":
                if not isinstance(arg, dict) or not arg or not all(str(k).startswith("$") for k in arg):
                    yield Finding("E037", "`$elemMatch` on a list of strings takes operators on one element, "
                                  "such as {$eq: vip} or {$regex: ^a}", p)
                else:
                    yield from _operators(name, "string", arg, attrs, p)
        elif op in VERSION:
            if kind not in ("version", "string"):
                yield Finding("E036", f"`{op}` compares versions, but `{name}` is {_a(kind)} attribute", p, True)
            elif not isinstance(arg, str) or not _VERSION.match(arg):
                yield Finding("E037", f"`{op}` takes a version string such as \"2.1.0\"", p)
        elif op == "$exists":
            if not isinstance(arg, bool):
                yield Finding("E037", "`$exists` takes true or false", p)
        elif op == "$type":
            if arg not in TYPE_NAMES:
                yield Finding("E037", f"`$type` takes one of {', '.join(sorted(TYPE_NAMES))}", p, False,
                              did_you_mean(str(arg), TYPE_NAMES))
        elif op in ("$regex", "$regexi", "$notRegex", "$notRegexi"):
            if kind not in ("string", "version", "datetime"):
                yield Finding("E036", f"`{op}` matches text, but `{name}` is {_a(kind)} attribute", p, True)
            elif not isinstance(arg, str):
                yield Finding("E037", f"`{op}` takes a regular expression", p)
            else:
                try:
                    re.compile(arg)
                except re.error as exc:
                    yield Finding("E048", f"invalid regular expression: {exc}", p)
        elif op == "$not":
            if not isinstance(arg, dict) or not all(str(k).startswith("$") for k in arg):
                yield Finding("E037", "`$not` on an attribute takes a mapping of operators", p)
            else:
                yield from _operators(name, kind, arg, attrs, p)


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
