"""The spec's JSON Schema, generated from the models, in draft-07 form.

yaml-language-server (VS Code, Neovim, ...) understands draft-07 and below,
while pydantic emits 2020-12 style. So ``$defs`` become ``definitions``, refs
are rewritten, and ``$schema``/``$id`` are set. Every property gets a title and
a description (from the models' field docstrings). ``schemas/`` holds the
committed copy; a test fails when it is stale.
"""

from __future__ import annotations

import ast
import inspect
import json
from typing import Any

from . import model
from .model import Spec

SCHEMA_ID = "https://expc.dev/schemas/expc-spec.schema.json"
SCHEMA_FILE = "schemas/expc-spec.schema.json"


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a spec."""
    raw = Spec.model_json_schema(ref_template="#/definitions/{model}")
    definitions = raw.pop("$defs", {})
    docs = field_docstrings()
    for name, node in [("Spec", raw), *definitions.items()]:
        for field, prop in node.get("properties", {}).items():
            if (name, field) in docs:
                prop["description"] = docs[(name, field)]
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        **raw,
        "definitions": definitions,
    }
    _complete(schema)
    return schema


def _complete(node: Any, name: str | None = None) -> None:
    """Give every property a title and description; drop keywords draft-07 lacks."""
    if isinstance(node, dict):
        if "$ref" in node and len(node) > 1:
            # draft-07 ignores siblings of $ref: wrap the ref so its title and description count
            ref = node.pop("$ref")
            node["allOf"] = [{"$ref": ref}]
        if "patternProperties" in node:
            node.setdefault("additionalProperties", False)
        for props in (node.get("properties"), node.get("definitions")):
            if isinstance(props, dict):
                for key, sub in props.items():
                    if isinstance(sub, dict) and props is node.get("properties"):
                        sub.setdefault("title", key.replace("_", " ").capitalize())
        for key, value in node.items():
            _complete(value, key)
    elif isinstance(node, list):
        for item in node:
            _complete(item)


def field_docstrings() -> dict[tuple[str, str], str]:
    """(model, field) -> the docstring written under the field in ``model.py``.

    Read from the source rather than by pydantic (``use_attribute_docstrings``),
    which would make every start of expc pay for parsing it.
    """
    docs: dict[tuple[str, str], str] = {}
    for cls in ast.parse(inspect.getsource(model)).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt, after in zip(cls.body, cls.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[(cls.name, stmt.target.id)] = inspect.cleandoc(after.value.value)
    return docs


def schema_json() -> str:
    """The schema as committed: indented JSON with a trailing newline."""
    return json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n"
