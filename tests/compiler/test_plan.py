"""compiler/plan.py: the typed plan, its schedule, its truth table, its schema and what a plan file may hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, check_text, codes, plan_of_text

from expc import compile_file
from expc.compiler.plan import PLAN_SCHEMA_FILE, Plan, PlanError, looks_between, plan_schema_json

EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))
DAY = 86400


def small(stopping: str = "looks: daily\n  max_days: 10", simulation: str = "units_per_day: 100",
          truth: str = "control: {m: 0.1}", metric: str = "{id: m, kind: proportion, event: e, role: primary}") -> str:
    return f"""\
version: 1
experiment: {{id: p, unit: user_id}}
attributes: {{user_id: string}}
variants:
  - {{id: control, content: A}}
  - {{id: b, content: B}}
metrics:
  - {metric}
stopping:
  {stopping}
simulation:
  {simulation}
  truth:
    {truth}
"""


# ================================================================== the schedule


@pytest.mark.parametrize(("every", "horizon", "days"), [
    ("daily", 3, [1, 2, 3]),
    ("3d", 10, [3, 6, 9, 10]),
    ("2d", 7, [2, 4, 6, 7]),
    ("weekly", 10, [7, 10]),
    ("12h", 2, [0.5, 1, 1.5, 2]),
])
def test_the_schedule_looks_every_interval_and_last_at_max_days(every: str, horizon: int, days: list[float]):
    plan = plan_of_text(small(f"looks: {every}\n  max_days: {horizon}"))
    assert [look.day for look in plan.schedule.looks] == days
    assert [look.index for look in plan.schedule.looks] == list(range(1, len(days) + 1))
    assert plan.schedule.bounded and plan.schedule.is_last(plan.schedule.looks[-1])
    assert not any(plan.schedule.is_last(look) for look in plan.schedule.looks[:-1])


def test_data_that_ends_early_is_looked_at_until_it_ends_and_never_past_max_days():
    plan = plan_of_text(small("looks: 3d\n  max_days: 10"))
    assert [look.day for look in plan.schedule.until(7 * DAY)] == [3, 6, 7]
    assert [look.day for look in plan.schedule.until(40 * DAY)] == [3, 6, 9, 10]
    assert plan.schedule.look_at(9.3 * DAY).day == 10 and plan.schedule.look_at(100 * DAY).day == 10
    assert (plan.schedule.look_at(0).index, plan.schedule.look_at(0).day) == (1, 3)  # the look in progress
    assert plan.schedule.look_at(3 * DAY).day == 3 and plan.schedule.look_at(3 * DAY + 1).day == 6


def test_without_max_days_real_data_is_looked_at_for_as_long_as_it_lasts():
    plan = plan_of_text(small("looks: weekly", simulation="units_per_day: 100\n  days: 9"))
    assert not plan.schedule.bounded and plan.schedule.horizon_days == 9
    assert [look.day for look in plan.simulation.looks] == [7, 9]
    assert [look.day for look in plan.schedule.until(30 * DAY)] == [7, 14, 21, 28, 30]
    assert not plan.schedule.is_last(plan.schedule.until(30 * DAY)[-1])


def test_looks_between_has_one_look_at_least():
    assert [look.seconds for look in looks_between(DAY, 0, None)] == [1]


# ================================================================== the truth table


def test_shorthand_truth_resolves_once_in_the_plan():
    metric = "{id: m, kind: mean, event: e, role: primary, sd: 3}"
    plan = plan_of_text(small(metric=metric, truth="control: {m: {mean: 10, sd: 5}}\n    b: {m: 11}"))
    truth = plan.simulation.truth
    assert (truth["control"]["m"].mean, truth["control"]["m"].sd) == (10, 5)
    assert (truth["b"]["m"].mean, truth["b"]["m"].sd) == (11, 5)  # a bare number keeps the control's sd
    plan = plan_of_text(small(metric="{id: m, kind: mean, event: e, role: primary, baseline: 4, sd: 2}",
                              truth="b: {m: {mean: 5, sd: 7}}"))
    truth = plan.simulation.truth
    assert (truth["control"]["m"].mean, truth["control"]["m"].sd) == (4, 2)  # the metric's baseline and sd
    assert (truth["b"]["m"].mean, truth["b"]["m"].sd) == (5, 7)


def test_a_truth_that_cannot_be_resolved_is_a_located_error():
    result = check_text(small(truth="b: {m: 0.2}"))  # no control value and no baseline
    assert "E060" in codes(result)
    d = next(d for d in result.diagnostics if d.code == "E060")
    assert "no true value for the control" in d.message and d.line > 1
    result = check_text(small(metric="{id: m, kind: mean, event: e, role: primary}", truth="control: {m: 3}"))
    assert "E060" in codes(result) and "needs a per-unit sd" in str(result.diagnostics)


# ================================================================== defaults, families, JSON


def test_every_default_is_resolved_in_the_plan():
    plan = plan_of_text(small())
    a = plan.analysis
    assert (a.method, a.alpha, a.correction, a.family, a.srm_threshold) == ("fixed", 0.05, "holm", "per_metric", 0.001)
    assert plan.metrics[0].family == "metric:m" and plan.metrics[0].family_size == 1
    assert plan.arm_ids == ["control", "b"] and plan.control == "control"


def test_a_primary_family_counts_every_primary_comparison():
    text = small().replace("  - {id: control, content: A}",
                           "  - {id: c, content: C}\n  - {id: control, content: A, control: true}")
    text = text.replace("metrics:\n", "analysis: {family: primary}\nmetrics:\n")
    plan = plan_of_text(text)
    assert plan.arm_ids == ["control", "c", "b"] and plan.arm_order == [1, 0, 2]
    assert plan.metrics[0].family == "primary" and plan.metrics[0].family_size == 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_plan_round_trips_and_validates_against_the_committed_schema(path: Path):
    plan = compile_file(path)
    text = plan.to_json()
    assert Plan.from_json(text).to_json() == text
    schema = json.loads((ROOT / PLAN_SCHEMA_FILE).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(text))


def test_the_committed_plan_schema_is_up_to_date():
    assert (ROOT / PLAN_SCHEMA_FILE).read_text(encoding="utf-8") == plan_schema_json(), \
        "run `expc schema --plan > schemas/expc-plan.schema.json` and commit it"


def test_compile_is_byte_identical_across_processes():
    code = "from expc import compile_file; import sys; sys.stdout.write(compile_file(sys.argv[1]).to_json())"
    runs = {subprocess.run([sys.executable, "-c", code, str(EXAMPLES[0])], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(runs) == 1


# ================================================================== a plan file is input too


def _data() -> dict:
    return compile_file(ROOT / "specs" / "product-descriptions.yaml").to_dict()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["experiment"].update(id="../../../somewhere"), "experiment.id"),
    (lambda d: d.update(plan_version=1), "plan_version 1 is not supported"),
    (lambda d: d.update(surprise=True), "surprise"),
    (lambda d: d["variants"][0].update(id="a/b"), "variants.0.id"),
    (lambda d: d.update(control="nobody"), "the control `nobody` is not a variant"),
    (lambda d: d["analysis"].update(alpha=2), "analysis.alpha"),
    (lambda d: d.update(arm_order=[0, 0]), "arm_order"),
    (lambda d: d["simulation"].update(units_per_day=10), "entering_per_day"),
    (lambda d: d["schedule"]["looks"].pop(), "schedule.looks"),
    (lambda d: d["simulation"].update(days=3), "simulation.looks"),
    (lambda d: d["variants"][0].update(bucket_range=[0.0, 0.9]), "bucket ranges"),
    (lambda d: d["metrics"][0].update(family_size=7), "correction family"),
    (lambda d: d["variants"][1].update(generate=None), "how often it is generated"),
    (lambda d: d["schedule"].update(every_seconds=1), "more than 5,000 looks"),
    (lambda d: d["simulation"].update(units_per_day=10**12), "simulation.units_per_day"),
    (lambda d: d["simulation"].update(units_per_day=10**8, entering_per_day=10.0**8),
     "more than 5,000,000 units"),
    (lambda d: d["metrics"][0].update(event=None), "metric `revenue_per_visitor` has no event"),
    (lambda d: d["metrics"][0].update(kind="ratio", event=None, numerator={"event": "purchase"}),
     "the ratio metric `revenue_per_visitor` lacks a numerator or a denominator"),
])
def test_a_hand_edited_plan_is_refused_with_one_line(edit, message: str):
    data = _data()
    edit(data)
    with pytest.raises(PlanError) as info:
        Plan.from_dict(data, "plan.json")
    assert message in str(info.value) and str(info.value).startswith("plan.json: ")
    assert "\n" not in str(info.value)


def test_a_plan_file_that_is_not_json_is_refused():
    with pytest.raises(PlanError, match="not a JSON document"):
        Plan.from_json(b"\xff{", "plan.json")
    with pytest.raises(PlanError, match="a JSON object is expected"):
        Plan.from_json("[1]", "plan.json")
