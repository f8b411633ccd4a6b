"""The GrowthBook export serves the tested copy: the `growthbook` SDK gives each user expc's variant and its copy.

The reference is the GrowthBook Python SDK fed the exported payload: for every
sample user it must pick the variant ``expc.runtime.assign`` picked, and serve
exactly the copy generated (and stored) for that variant and the user's segment.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import BASE, plan_of_text
from growthbook import GrowthBook

from expc.compiler.plan import Plan
from expc.runtime.assign import assign
from expc.runtime.export import (
    LOOKUP_PREFIX,
    ExportError,
    growthbook_export,
    growthbook_payload,
    segment_condition,
)
from expc.runtime.generate.jobs import segment_id
from expc.runtime.generate.runner import GenerateOptions, generate
from expc.runtime.tables import read_units

ONCE = BASE.replace("generate: {per: unit}", "generate: {per: once}").replace(
    'Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.', "Write a subject line.")
SEGMENT = BASE.replace("generate: {per: unit}", "generate: {per: segment, segment_by: [plan, interests]}").replace(
    'Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.',
    'Hello {{ segment.plan }} fans of {{ segment.interests | join(", ") }}.')
INTERESTS = ["chess", "maths", "cooking"]


def units_file(tmp_path: Path, n: int = 300) -> Path:
    """Sample users: most in the audience (country US), each with a plan and a few interests (or none)."""
    rng = random.Random(7)
    lines = ["user_id,country,plan,interests"]
    for i in range(n):
        chosen = sorted(rng.sample(INTERESTS, rng.randint(0, 2)))
        lines.append(f"u{i},{'US' if rng.random() < 0.8 else 'CA'},{rng.choice(['free', 'pro'])},{'|'.join(chosen)}")
    path = tmp_path / "units.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def served(payload: dict[str, Any], attributes: dict[str, Any]) -> tuple[Any, str | None]:
    """What the SDK serves a user: (value, the variant id its rule's meta names, or None outside the experiment)."""
    (key,) = payload["features"]
    found = GrowthBook(attributes=attributes, features=payload["features"]).eval_feature(key)
    result = found.experimentResult
    return found.value, (result.name if result is not None and result.inExperiment else None)


def check_users(plan: Plan, units_path: Path, payload: dict[str, Any], copy_of: Any) -> int:
    """Every user gets expc's variant and ``copy_of(variant, row)``; returns how many were in the experiment."""
    units = read_units(units_path, plan.attributes, plan.assignment.unit)
    variants = assign(plan, units).variant
    inside = 0
    for i in range(len(units)):
        row = {k: _plain(v[i]) for k, v in units.columns.items()}
        value, variant = served(payload, row)
        if variants[i] < 0:
            assert (value, variant) == (None, None), row
            continue
        inside += 1
        expected = plan.variants[variants[i]].id
        assert variant == expected, row
        assert value == copy_of(expected, row), row
    return inside


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value


def test_copy_written_once_is_each_variations_value(tmp_path: Path) -> None:
    plan = plan_of_text(ONCE)
    items = generate(plan, None, tmp_path / "c.sqlite", GenerateOptions(offline=True)).items
    copy = {i.variant: i.content for i in items}
    assert copy["control"] == "Welcome!" and copy["treatment"].startswith("[offline]")
    exported = growthbook_export(plan, items)
    assert exported.warnings == [] and "expc" not in exported.payload
    (rule,) = exported.payload["features"]["demo"]["rules"]
    assert rule["variations"] == [copy["control"], copy["treatment"]]
    inside = check_users(plan, units_file(tmp_path), exported.payload, lambda variant, row: copy[variant])
    assert inside > 150


def test_copy_per_segment_is_one_rule_per_segment_serving_that_segments_copy(tmp_path: Path) -> None:
    plan = plan_of_text(SEGMENT)
    path = units_file(tmp_path)
    units = read_units(path, plan.attributes, plan.assignment.unit)
    items = generate(plan, units, tmp_path / "c.sqlite", GenerateOptions(offline=True)).items
    copy = {segment_id(i.key): i.content for i in items if i.variant == "treatment"}
    assert len(copy) == 2 * 7  # two plans times the interests: none, three single, three pairs
    exported = growthbook_export(plan, items)
    rules = exported.payload["features"]["demo"]["rules"]
    assert len(rules) == len(copy) and {r["variations"][0] for r in rules} == {"Welcome!"}
    assert "one rule per segment" in exported.payload["expc"]["note"] and exported.warnings == []

    def expected(variant: str, row: dict[str, Any]) -> str:
        if variant == "control":
            return "Welcome!"
        return copy[segment_id({"plan": row["plan"], "interests": sorted(row["interests"] or [])})]

    assert check_users(plan, path, exported.payload, expected) > 150


def test_copy_per_unit_exports_a_lookup_key_and_says_so(tmp_path: Path) -> None:
    plan = plan_of_text(BASE)
    items = generate(plan, None, tmp_path / "c.sqlite", GenerateOptions(offline=True, variants=("control",))).items
    exported = growthbook_export(plan, items)
    (rule,) = exported.payload["features"]["demo"]["rules"]
    assert rule["variations"] == ["Welcome!", LOOKUP_PREFIX + "treatment"]
    assert exported.payload["expc"]["lookup_keys"] == {"treatment": LOOKUP_PREFIX + "treatment"}
    assert "per unit" in exported.payload["expc"]["note"]
    (warning,) = exported.warnings
    assert "`treatment`" in warning and "lookup key" in warning
    key = {"control": "Welcome!", "treatment": LOOKUP_PREFIX + "treatment"}
    assert check_users(plan, units_file(tmp_path), exported.payload, lambda variant, row: key[variant]) > 150


def test_without_items_the_values_are_the_variant_ids() -> None:
    plan = plan_of_text(ONCE)
    (rule,) = growthbook_payload(plan)["features"]["demo"]["rules"]
    assert rule["variations"] == ["control", "treatment"]


def test_copy_that_failed_its_checks_is_not_exported() -> None:
    plan = plan_of_text(ONCE)
    items = [SimpleNamespace(variant="control", key=None, content="Welcome!", status="static", reason=None),
             SimpleNamespace(variant="treatment", key=None, content="FREE MONEY", status="failed",
                             reason="forbidden phrase")]
    with pytest.raises(ExportError, match="variant `treatment` has no tested copy.*forbidden phrase"):
        growthbook_export(plan, items)


@pytest.mark.parametrize(("segment", "condition"), [
    ({"plan": "pro"}, {"plan": "pro"}),
    ({"interests": ["chess", "maths"]}, {"interests": {"$size": 2, "$all": ["chess", "maths"]}}),
    ({"interests": []}, {"$or": [{"interests": {"$size": 0}}, {"interests": {"$exists": False}}]}),
    ({"plan": "", "beta": None}, {"$and": [{"$or": [{"plan": ""}, {"plan": {"$exists": False}}]}, {"beta": None}]}),
])
def test_segment_conditions(segment: dict[str, Any], condition: dict[str, Any]) -> None:
    assert segment_condition(segment) == condition
