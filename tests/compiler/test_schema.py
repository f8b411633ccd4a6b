"""The JSON Schema: generated from the models, committed, draft-07, and in step with the validator."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from conftest import BASE, ROOT, check_text

from expc.compiler.schema import SCHEMA_FILE, schema_json, spec_schema

DRAFT_2019_PLUS = ("$defs", "prefixItems", "unevaluatedProperties", "dependentRequired", "dependentSchemas",
                   "$anchor", "$dynamicRef", "$recursiveRef")


def test_committed_schema_is_up_to_date():
    committed = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_json(), "run `expc schema > schemas/expc-spec.schema.json` and commit it"


def test_schema_is_valid_draft_07_without_newer_keywords():
    schema = spec_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#" and schema["$id"]
    text = json.dumps(schema)
    for keyword in DRAFT_2019_PLUS:
        assert f'"{keyword}"' not in text, keyword


def test_every_property_has_a_title_and_a_description():
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if not (sub.get("title") and sub.get("description")):
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")

    walk(spec_schema(), "#")
    assert missing == []


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_under_the_schema_and_carry_the_modeline(spec):
    text = spec.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/expc-spec.schema.json\n")
    jsonschema.Draft7Validator(spec_schema()).validate(yaml.safe_load(text))


@pytest.mark.parametrize(
    "old, new",
    [
        ("id: demo", "id: demo\n  colour: red"),  # unknown key
        ("version: 1", "version: 2"),
        ("mde: 5%", "mde: lots"),
        ("kind: proportion", "kind: propotion"),
        ("    event: activated", "    event: [a]"),
        ("  user_id: string", "  user_id: str"),
        ("generate: {per: unit}", "generate: {per: unit}\n    weight: heavy"),
    ],
)
def test_schema_and_validator_agree_on_structural_errors(old, new):
    text = BASE.replace(old, new)
    assert not check_text(text).ok()
    errors = list(jsonschema.Draft7Validator(spec_schema()).iter_errors(yaml.safe_load(text)))
    assert errors, "the schema accepted what the validator refused"


def test_schema_accepts_the_valid_base_spec():
    jsonschema.Draft7Validator(spec_schema()).validate(yaml.safe_load(BASE))
