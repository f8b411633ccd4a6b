"""Structural validation: a loaded document becomes a typed :class:`Spec`.

The pydantic models are the single source of the structure (the JSON Schema is
generated from them), so their errors, all at once, are the structural
findings. Each is turned into a located diagnostic: an unknown key points at
the key and suggests the nearest allowed one, a bad value points at the value.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .diagnostics import Diagnostic, did_you_mean, error
from .loader import Document
from .model import SPEC_VERSION, Spec

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "nothing (null)",
    "finite_number": "a finite number",
}


def describe(value: Any) -> str:
    """A short name for a YAML value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return "infinity" if math.isinf(value) else "NaN (not a number)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional layers from a type annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def model_at(path: tuple) -> type[BaseModel] | None:
    """The model class that describes the mapping at ``path`` in a spec, if any."""
    tp: Any = Spec
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"


def validate_document(doc: Document) -> tuple[Spec | None, list[Diagnostic]]:
    """Parse the document into a Spec; on failure, every structural finding."""
    try:
        return Spec.model_validate(doc.data), []
    except ValidationError as exc:
        return None, [_diagnose(doc, err) for err in exc.errors(include_url=False)]


def _diagnose(doc: Document, err: Any) -> Diagnostic:
    kind: str = err["type"]
    path = tuple(err["loc"])
    # pydantic marks errors in a dict's key with a trailing "[key]"
    on_key = bool(path) and path[-1] == "[key]"
    if on_key:
        path = path[:-1]
    # A path deeper than the YAML tree (inside a shorthand such as ``layer: x`` -> ``{id: x}``)
    # is located at its deepest existing node by Document.where.
    value = err.get("input")
    where = doc.where(path, key=on_key)
    here = _dotted(path)

    if kind == "extra_forbidden":
        model = model_at(path[:-1])
        allowed = sorted(model.model_fields) if model else []
        hint = did_you_mean(path[-1], allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else None)
        return error("E020", f"unknown key `{path[-1]}` in {_dotted(path[:-1])}", doc.where(path, key=True), hint)
    if kind == "missing":
        return error("E021", f"missing required key `{path[-1]}` in {_dotted(path[:-1])}", doc.where(path[:-1]))
    if path == ("version",) and kind == "literal_error":
        if value == str(SPEC_VERSION):
            return error("E026", f"the spec version is the string {value!r}, not the number {SPEC_VERSION}", where,
                         f"write `version: {SPEC_VERSION}` without quotes")
        return error("E026", f"spec version {value!r} is not supported", where,
                     f"this expc reads `version: {SPEC_VERSION}`")
    if kind == "duration":
        return error("E024", f"{here}: {err['msg']}", where)
    if kind == "percentage":
        return error("E025", f"{here}: {err['msg']}", where)
    if kind in _TYPE_NAMES:
        return error("E022", f"{here} must be {_TYPE_NAMES[kind]}, not {describe(value)}", where)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        hint = did_you_mean(value, options) if isinstance(value, str) else None
        return error("E023", f"{here}: `{value}` is not one of {expected}", where, hint)
    if kind == "string_pattern_mismatch":
        what = "key" if on_key else "value"
        return error("E023", f"{here}: {what} `{value}` is not a valid name", where,
                     "use letters, digits, `_` (and `.` or `-` in ids), starting with a letter or digit")
    return error("E023", f"{here}: {err['msg'][:1].lower()}{err['msg'][1:]}", where)
