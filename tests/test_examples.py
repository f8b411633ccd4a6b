"""The example specs in specs/ are valid as shipped, without a single warning, and compile."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from expc import compile_file
from expc.compiler.compile import plan_json
from expc.compiler.pipeline import check_file

EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))


def test_there_are_three_examples():
    assert {p.name for p in EXAMPLES} >= {"welcome-email.yaml", "product-descriptions.yaml", "push-notification.yaml"}


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid_without_warnings(spec: Path):
    result = check_file(spec)
    assert result.diagnostics == [] and result.ok(strict=True)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_deterministically_with_a_plannable_design(spec: Path):
    first, second = plan_json(compile_file(spec)), plan_json(compile_file(spec))
    assert first == second
    plan = compile_file(spec)
    assert plan.sample_size is not None and plan.sample_size.per_variant > 0
    assert plan.stopping.max_days is not None
    assert plan.sample_size.estimated_days is not None and plan.sample_size.estimated_days <= plan.stopping.max_days
