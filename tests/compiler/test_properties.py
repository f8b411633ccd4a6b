"""Property tests: expc never crashes on a spec, and locates what it reports.

(a) Any bytes or text: loading and checking never raise, and every finding
    has a line, a column and a registered code.
(b) Mutations of the valid example specs that surely break them (a required
    key deleted, a value of the wrong type, an unknown key, the text cut
    inside `experiment:`, nesting past the limit, a byte that is never valid):
    never raise, are invalid, and report at least one located error.
(c) Round trips: the same data with its mapping keys in another order, or
    written in another YAML style (or as JSON), is exactly as valid as before.
"""

from __future__ import annotations

import copy
import json
import random
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from expc.compiler.diagnostics import CODES
from expc.compiler.loader import MAX_DEPTH, load_bytes, load_text
from expc.compiler.pipeline import CheckResult, check_bytes
from expc.compiler.validate import model_at

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))
SPEC_TEXT = {p.name: p.read_text(encoding="utf-8") for p in SPEC_FILES}


def _data(name: str) -> dict[str, Any]:
    doc, diags = load_text(SPEC_TEXT[name], name)
    assert doc is not None, diags
    return doc.data


SPEC_DATA = {name: _data(name) for name in SPEC_TEXT}

COMMON = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def dump(data: Any, flow: bool | None = False) -> bytes:
    """YAML text of plain data, as ``yaml.safe_dump`` writes it."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=flow, width=10_000).encode()


def fast_dump(data: Any) -> bytes:
    """The same text as :func:`dump`, from libyaml's emitter when PyYAML has it (for exhaustive loops)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=10_000).encode()


def assert_located(result: CheckResult) -> None:
    for d in result.diagnostics:
        assert d.line >= 1 and d.col >= 1, d
        assert d.code in CODES, d
        assert d.severity == ("error" if d.code.startswith("E") else "warning"), d
        assert d.message.strip(), d


def assert_invalid(result: CheckResult) -> list[str]:
    """Invalid, with at least one located error; returns the error codes."""
    assert_located(result)
    assert not result.ok()
    errors = [d.code for d in result.diagnostics if d.is_error]
    assert errors, result.diagnostics
    return errors


def test_the_example_specs_are_valid():
    assert SPEC_FILES, "no example specs in specs/"
    for name, text in SPEC_TEXT.items():
        result = check_bytes(text.encode(), name)
        assert result.ok(), [(d.code, d.line, d.col, d.message) for d in result.diagnostics]


# ------------------------------------------------------------------ tree helpers


def nodes(data: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (path, node) of a tree, the root first."""
    out = [(path, data)]
    if isinstance(data, dict):
        for k, v in data.items():
            out += nodes(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += nodes(v, path + (i,))
    return out


def get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def model_nodes(data: dict) -> list[tuple[tuple, dict, type[BaseModel]]]:
    """Mappings that a spec model describes (not free-form ones such as `where` or `params`)."""
    found = []
    for path, node in nodes(data):
        if isinstance(node, dict):
            model = model_at(path)
            if model is not None:
                found.append((path, node, model))
    return found


def _lenient(meta: Any) -> bool:
    # Fields that accept other spellings, shorthands (`layer: name`) and quantities (`5%`, `7d`),
    # carry metadata that changes validation (a BeforeValidator, the model's shorthand marker);
    # plain constraints (Gt, MinLen, patterns) do not.
    return hasattr(meta, "__get_pydantic_core_schema__")


def value_kind(field: Any) -> str | None:
    """What a field's value must be ('mapping', 'list', 'number', 'string', 'bool'); None if it accepts several."""
    if any(_lenient(m) for m in field.metadata):
        return None
    tp = field.annotation
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return None
        tp = args[0]
    if typing.get_origin(tp) is typing.Annotated:
        if any(_lenient(m) for m in typing.get_args(tp)[1:]):
            return None
        tp = typing.get_args(tp)[0]
    if tp is bool:
        return "bool"
    if tp in (int, float):
        return "number"
    if tp is str:
        return "string"
    if typing.get_origin(tp) is list:
        return "list"
    if typing.get_origin(tp) is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "mapping"
    return None  # Literal, Any, ...


REPLACEMENTS = {
    "mapping": {"zz_mutant": 1},
    "list": ["zz_mutant", 1],
    "number": 3,
    "string": "zz_mutant",
    "bool": True,
}


def typed_leaves(data: dict) -> list[tuple[tuple, str]]:
    """(path, kind) of every value given in the spec whose field takes exactly one kind of value."""
    out = []
    for path, node, model in model_nodes(data):
        for key in node:
            field = model.model_fields.get(key)
            kind = value_kind(field) if field is not None else None
            if kind is not None:
                out.append((path + (key,), kind))
    return out


def required_keys(data: dict) -> list[tuple]:
    """Paths of every required key that the spec gives."""
    return [
        path + (key,)
        for path, node, model in model_nodes(data)
        for key, field in model.model_fields.items()
        if field.is_required() and key in node
    ]


spec_names = st.sampled_from(sorted(SPEC_TEXT))


def test_the_mutation_helpers_find_something():
    for name, data in SPEC_DATA.items():
        assert ("version",) in required_keys(data) and ("experiment", "id") in required_keys(data), name
        kinds = {kind for _, kind in typed_leaves(data)}
        assert {"mapping", "list", "number", "string"} <= kinds, (name, kinds)


# ------------------------------------------------------------------ (a) anything at all


@COMMON
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes):
    doc, diags = load_bytes(raw, "fuzz.yaml")
    assert (doc is None) == bool(diags)
    for d in diags:
        assert d.line >= 1 and d.col >= 1 and d.code in CODES and d.is_error
    assert_located(check_bytes(raw, "fuzz.yaml"))


@COMMON
@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises(text: str):
    raw = text.encode("utf-8")
    doc, diags = load_bytes(raw, "fuzz.yaml")
    assert (doc is None) == bool(diags)
    assert_located(check_bytes(raw, "fuzz.yaml"))


YAMLISH = st.lists(
    st.sampled_from([
        "version: 1\n", "experiment:\n", "  id: x\n", "variants:\n", "  - ", "- ", "key", ": ", ":", "? ",
        "&a ", "*a", "*b", "&b ", "!!python/object ", "!!str ", "!!int ", "!x ", "[", "]", "{", "}", ", ",
        "'", '"', "|\n", ">-\n", "---\n", "...\n", "%YAML 1.2\n", "\t", "# note\n", "\n", "  ", "    ",
        "1", "-1.5e3", ".inf", ".nan", "true", "~", "null", "0x1F", "5%", "7d", "\u00e9", "\x07", "\ufeff",
        "{{ user.x }}", "$gt", "<<: *a\n",
    ]),
    max_size=60,
).map("".join)


@COMMON
@given(YAMLISH)
def test_yaml_like_text_never_raises(text: str):
    result = check_bytes(text.encode("utf-8"), "fuzz.yaml")
    assert_located(result)
    if result.doc is None:
        assert result.diagnostics and all(d.is_error for d in result.diagnostics)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)


@COMMON
@given(st.dictionaries(st.sampled_from(["version", "experiment", "attributes", "audiences", "prompts", "variants",
                                          "allocation", "metrics", "analysis", "stopping", "simulation", "generation",
                                          "extra"]), JSONISH, max_size=8))
def test_arbitrary_sections_never_raise(data: dict):
    assert_located(check_bytes(dump(data), "fuzz.yaml"))


# ------------------------------------------------------------------ (b) mutations that surely break a spec


@COMMON
@given(spec_names, st.data())
def test_deleting_a_required_key(name: str, data: st.DataObject):
    spec = copy.deepcopy(SPEC_DATA[name])
    path = data.draw(st.sampled_from(required_keys(spec)), label="path")
    del get(spec, path[:-1])[path[-1]]
    errors = assert_invalid(check_bytes(dump(spec), name))
    assert "E021" in errors


@COMMON
@given(spec_names, st.data())
def test_a_value_of_the_wrong_type(name: str, data: st.DataObject):
    spec = copy.deepcopy(SPEC_DATA[name])
    path, kind = data.draw(st.sampled_from(typed_leaves(spec)), label="path")
    other = data.draw(st.sampled_from(sorted(k for k in REPLACEMENTS if k != kind)), label="replacement")
    get(spec, path[:-1])[path[-1]] = copy.deepcopy(REPLACEMENTS[other])
    errors = assert_invalid(check_bytes(dump(spec), name))
    assert "E022" in errors


MUTANT_KEY = st.from_regex(r"\Azz_[a-z][a-z0-9_]{0,12}\Z")


@COMMON
@given(spec_names, st.data(), MUTANT_KEY, st.sampled_from([1, "x", None, True, [1, 2], {"a": 1}]))
def test_an_unknown_key(name: str, data: st.DataObject, key: str, value: Any):
    spec = copy.deepcopy(SPEC_DATA[name])
    path, _, _ = data.draw(st.sampled_from(model_nodes(spec)), label="mapping")
    get(spec, path)[key] = value
    raw = dump(spec)
    result = check_bytes(raw, name)
    assert "E020" in assert_invalid(result)
    # the unknown key is reported where it is written
    lines = raw.decode().splitlines()
    where = [(i + 1, line.index(key + ":") + 1) for i, line in enumerate(lines) if key + ":" in line]
    assert len(where) == 1
    found = [(d.line, d.col) for d in result.diagnostics if d.code == "E020"]
    assert where[0] in found, (where, found)


def _experiment_section(text: str) -> tuple[int, int]:
    start = re.search(r"^experiment:", text, re.MULTILINE).start()
    nxt = re.compile(r"^[^\s#]", re.MULTILINE).search(text, start + 1)
    return start, nxt.start() if nxt else len(text)


@COMMON
@given(spec_names, st.data())
def test_truncated_inside_the_experiment_section(name: str, data: st.DataObject):
    text = SPEC_TEXT[name]
    start, end = _experiment_section(text)
    cut = data.draw(st.integers(start, end - 1), label="cut")
    # Whatever is left, the variants and metrics are gone (or the YAML is broken):
    # the spec cannot be valid.
    assert "variants:" not in text[:cut]
    assert_invalid(check_bytes(text[:cut].encode(), name))


@FEW
@given(spec_names, st.data(), st.integers(MAX_DEPTH + 1, 3 * MAX_DEPTH), st.sampled_from(["list", "mapping"]))
def test_nesting_past_the_limit(name: str, data: st.DataObject, depth: int, shape: str):
    spec = copy.deepcopy(SPEC_DATA[name])
    paths = [p for p, _ in nodes(spec) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    deep: Any = "bottom"
    for _ in range(depth):
        deep = [deep] if shape == "list" else {"d": deep}
    get(spec, path[:-1])[path[-1]] = deep
    errors = assert_invalid(check_bytes(dump(spec, flow=data.draw(st.sampled_from([False, None]))), name))
    assert errors == ["E010"]


NEVER_UTF8 = [0xC0, 0xC1, *range(0xF5, 0x100)]
CONTROL = [b for b in range(0x20) if b not in (0x09, 0x0A, 0x0D)] + [0x7F]


@COMMON
@given(spec_names, st.data(), st.sampled_from(NEVER_UTF8 + CONTROL))
def test_inserting_a_byte_that_is_never_allowed(name: str, data: st.DataObject, byte: int):
    raw = SPEC_TEXT[name].encode()
    at = data.draw(st.integers(0, len(raw)), label="at")
    mutated = raw[:at] + bytes([byte]) + raw[at:]
    errors = assert_invalid(check_bytes(mutated, name))
    assert errors == ["E003" if byte >= 0x80 else "E005"]


@COMMON
@given(spec_names, st.data(), st.binary(min_size=1, max_size=8))
def test_inserting_any_bytes_never_raises(name: str, data: st.DataObject, junk: bytes):
    raw = SPEC_TEXT[name].encode()
    at = data.draw(st.integers(0, len(raw)), label="at")
    assert_located(check_bytes(raw[:at] + junk + raw[at:], name))


# ------------------------------------------------------------------ (c) round trips


def shuffled(data: Any, rnd: random.Random) -> Any:
    """The same data with the keys of every mapping in a random order (lists keep theirs)."""
    if isinstance(data, dict):
        items = list(data.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(data, list):
        return [shuffled(v, rnd) for v in data]
    return data


def codes(result: CheckResult) -> list[str]:
    return sorted(d.code for d in result.diagnostics)


@COMMON
@given(spec_names, st.randoms(use_true_random=False), st.sampled_from([False, None, True]))
def test_reordering_keys_keeps_a_spec_valid(name: str, rnd: random.Random, flow: bool | None):
    result = check_bytes(dump(shuffled(SPEC_DATA[name], rnd), flow), name)
    assert_located(result)
    assert result.ok(), [(d.code, d.line, d.col, d.message) for d in result.diagnostics]
    assert codes(result) == codes(check_bytes(SPEC_TEXT[name].encode(), name))


@FEW
@given(spec_names, st.randoms(use_true_random=False))
def test_a_spec_written_as_json_is_as_valid(name: str, rnd: random.Random):
    text = json.dumps(shuffled(SPEC_DATA[name], rnd), indent=rnd.choice([None, 2]), ensure_ascii=rnd.random() < 0.5)
    result = check_bytes(text.encode(), name)
    assert result.ok(), [(d.code, d.line, d.col, d.message) for d in result.diagnostics]


@COMMON
@given(spec_names, st.data(), MUTANT_KEY, st.randoms(use_true_random=False))
def test_reordering_keys_keeps_a_broken_spec_broken_the_same_way(name: str, data: st.DataObject, key: str,
                                                                  rnd: random.Random):
    spec = copy.deepcopy(SPEC_DATA[name])
    how = data.draw(st.sampled_from(["delete", "retype", "unknown"]), label="mutation")
    if how == "delete":
        path = data.draw(st.sampled_from(required_keys(spec)), label="path")
        del get(spec, path[:-1])[path[-1]]
    elif how == "retype":
        path, kind = data.draw(st.sampled_from(typed_leaves(spec)), label="path")
        other = data.draw(st.sampled_from(sorted(k for k in REPLACEMENTS if k != kind)), label="replacement")
        get(spec, path[:-1])[path[-1]] = copy.deepcopy(REPLACEMENTS[other])
    else:
        path, _, _ = data.draw(st.sampled_from(model_nodes(spec)), label="mapping")
        get(spec, path)[key] = 1
    before = check_bytes(dump(spec), name)
    after = check_bytes(dump(shuffled(spec, rnd)), name)
    assert not before.ok() and not after.ok()
    assert codes(before) == codes(after)


# ------------------------------------------------------------------ numbers at the edges


EDGE_NUMBERS = [0, -1, 1e-20, 1e-320, 1e308, 2**63, float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize("name", sorted(SPEC_TEXT))
def test_edge_numbers_anywhere_never_raise(name: str):
    """Any edge number at the place of any number: findings or a valid spec, never a crash.

    Exhaustive rather than sampled, so that every crash site is listed at once.
    """
    crashes = []
    numbers = [p for p, v in nodes(SPEC_DATA[name]) if p and isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers
    for path in numbers:
        for number in EDGE_NUMBERS:
            spec = copy.deepcopy(SPEC_DATA[name])
            get(spec, path[:-1])[path[-1]] = number
            try:
                result = check_bytes(fast_dump(spec), name)
            except Exception as exc:  # the point is to list them
                crashes.append(f"{'.'.join(map(str, path))} = {number!r}: {type(exc).__name__}: {exc}")
                continue
            assert_located(result)
    assert not crashes, "\n".join(crashes)
