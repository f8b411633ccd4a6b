"""What gets generated: static items, segments (from units or the simulation block), units, caps, sharing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, edited
from gen_helpers import plan_of, spec_text, units_of

from expc import compile_file
from expc.compiler.plan import Plan
from expc.runtime.generate.jobs import per_unit_variants, pieces, segment_id
from expc.runtime.generate.runner import GenerateOptions, GenerationInputError, generate
from expc.runtime.units import Units


def _welcome() -> Plan:
    """The welcome-email plan."""
    return compile_file(ROOT / "specs" / "welcome-email.yaml")


def test_segments_from_the_simulation_block() -> None:
    made = pieces(_welcome(), None)
    assert made[0].static == "Welcome to Acme!" and made[0].prompt is None
    keys = [p.key for p in made[1:]]
    assert len(keys) == 15 and {"interests": ["cooking", "running"]} in keys  # sorted pairs
    assert "cooking, running" in dict(made[1 + keys.index({"interests": ["cooking", "running"]})].messages)["user"]


def test_segments_from_units_are_the_combinations_present_in_canonical_order() -> None:
    units = Units({"user_id": np.array(["a", "b", "c"], dtype=object),
                   "interests": np.array([("travel", "cooking"), ("cooking", "travel"), ("gaming",)], dtype=object)},
                  {"user_id": "string", "interests": "list[string]"})
    keys = [p.key for p in pieces(_welcome(), units)[1:]]
    assert keys == [{"interests": ["cooking", "travel"]}, {"interests": ["gaming"]}]
    assert segment_id({"interests": ["travel", "cooking"]}) == segment_id(keys[0])


def test_segments_need_values_or_units() -> None:
    plan = edited(_welcome(), lambda d: d["simulation"]["attributes"].pop("interests"))
    with pytest.raises(Exception, match="--units"):
        pieces(plan, None)


def test_per_unit_needs_units_and_caps(tmp_path: Path) -> None:
    plan = plan_of(spec_text())
    with pytest.raises(GenerationInputError, match="--units") as info:
        generate(plan, None, tmp_path / "s.sqlite")
    assert info.value.exit_code == 1
    result = generate(plan, units_of(10), tmp_path / "s.sqlite", GenerateOptions(max_items_per_variant=4))
    assert [i.key for i in result.items if i.variant == "treatment"] == ["u0", "u1", "u2", "u3"]


def test_identical_requests_share_one_call(tmp_path: Path) -> None:
    plan = plan_of(spec_text())
    units = Units({"user_id": np.array(["a", "b", "c"], dtype=object),
                   "first_name": np.array(["Ada", "Ada", "Bob"], dtype=object)},
                  {"user_id": "string", "first_name": "string"})
    result = generate(plan, units, tmp_path / "s.sqlite")
    made = [i for i in result.items if i.variant == "treatment"]
    assert result.calls == 2 and made[0].content == made[1].content != made[2].content
    assert made[0].tokens > 0 and made[1].tokens == 0  # counted once, so that sums add up
    assert result.per_variant()[1] | {} == {"variant": "treatment", "items": 3, "calls": 2, "store_hits": 0,
                                           "failures": 0, "tokens": made[0].tokens + made[2].tokens, "cost": 0.0,
                                           "cost_known": True, "calls_now": 2, "cost_now": 0.0}
    again = generate(plan, units, tmp_path / "s.sqlite").per_variant()[1]  # from the store: the totals stay
    assert (again["calls"], again["calls_now"], again["store_hits"]) == (2, 0, 3)


def test_a_new_seed_makes_new_candidates(tmp_path: Path) -> None:
    plan = plan_of(spec_text())
    one = generate(plan, units_of(3), tmp_path / "s.sqlite", GenerateOptions(seed=0))
    two = generate(plan, units_of(3), tmp_path / "s.sqlite", GenerateOptions(seed=1))
    assert two.calls == 3 and [i.content for i in one.items[1:]] != [i.content for i in two.items[1:]]


def test_secret_looking_params_are_refused(tmp_path: Path) -> None:
    # the spec checks refuse this too; a plan made by hand must not slip through
    plan = edited(plan_of(spec_text()), lambda d: d["prompts"]["hello"].update(params={"aws_secret_access_key": "x"}))
    with pytest.raises(GenerationInputError, match="params.aws_secret_access_key` is not allowed"):
        generate(plan, units_of(1), tmp_path / "s.sqlite")


def test_only_the_variants_asked_for_are_generated(tmp_path: Path) -> None:
    plan = plan_of(spec_text())
    assert per_unit_variants(plan) == ["treatment"]
    result = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions(variants=("control",)))
    assert [(i.variant, i.status, i.content) for i in result.items] == [("control", "static", "Hello!")]
    with pytest.raises(GenerationInputError, match="no variant `nope` in the plan"):
        generate(plan, None, tmp_path / "s.sqlite", GenerateOptions(variants=("control", "nope")))
