"""expc.runtime.run: a run end to end in process, its directory, resuming and refusing a foreign run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import edited, plan_of_text

from expc.compiler.plan import Plan
from expc.runtime.generate.runner import GenerateOptions
from expc.runtime.run import Progress, RunError, RunOptions, execute

SMALL = """\
version: 1
experiment:
  id: small-run
  unit: user_id
attributes:
  user_id: string
  country: string
  interests: list[string]
audiences:
  us:
    where:
      country: US
prompts:
  line:
    model: {model}
    max_tokens: 30
    template: "Write a line for someone who likes {{{{ user.interests | join(', ') }}}}."
variants:
  - id: control
    content: Hello!
  - id: treatment
    prompt: line
    generate: {generate}
allocation:
  audience: us
metrics:
  - id: clicked
    kind: proportion
    event: clicked
    window: 2d
    role: primary
    mde: 20%
analysis:
  method: sequential
stopping:
  looks: daily
  max_days: {days}
  rules:
    - {{when: primary_significant, then: stop_ship_winner}}
    - {{when: max_days, then: stop_inconclusive}}
simulation:
  units_per_day: {units_per_day}
  seed: 3
  attributes:
    country: {{values: [US, FR], weights: [0.9, 0.1]}}
    interests: {{values: [tea, jazz, chess], size: [1, 1]}}
  truth:
    control: {{clicked: 0.10}}
    treatment: {{clicked: {treatment}}}
"""


def small_plan(model: str = "offline/copywriter", per: str = "segment", days: int = 4,
               units_per_day: int = 300, treatment: float = 0.10) -> Plan:
    """The plan of a small simulated experiment (checked like any spec)."""
    generate = "{per: segment, segment_by: [interests]}" if per == "segment" else f"{{per: {per}}}"
    text = SMALL.format(model=model, generate=generate, days=days, units_per_day=units_per_day,
                        treatment=treatment)
    return plan_of_text(text, "small.yaml")


def run(plan: Plan, run_dir: Path, **kw) -> object:
    return execute(plan, RunOptions(run_dir=run_dir, generation=GenerateOptions(offline=True), **kw))


def test_a_simulated_run_writes_its_state_looks_and_three_reports(tmp_path: Path) -> None:
    result = run(small_plan(), tmp_path / "r")
    d = tmp_path / "r"
    for name in ("plan.json", "state.json", "assignments.parquet", "content.sqlite", "content.jsonl",
                 "exposures.parquet", "events.parquet", "report.json", "report.md", "report.html"):
        assert (d / name).is_file(), name
    report = json.loads((d / "report.json").read_text())
    assert report["simulated"] is True
    assert report["decision"]["action"] in ("stop_ship_winner", "stop_inconclusive")
    assert [h["look"] for h in report["history"]] == list(range(1, len(report["history"]) + 1))
    assert len(list((d / "looks").glob("look-*.json"))) == len(report["history"])
    assert report["content_samples"]["control"] == [{"key": None, "content": "Hello!"}]
    assert report["content_samples"]["treatment"][0]["content"].startswith("[offline]")
    assert (d / "report.md").read_text().splitlines()[0].upper().count("SIMULATED") == 1
    assert result.outputs["report_html"].name == "report.html"


def test_every_look_of_an_aa_run_continues_until_max_days(tmp_path: Path) -> None:
    report = run(small_plan(days=3), tmp_path / "r").report
    assert [h["day"] for h in report["history"]] == [1, 2, 3]
    assert report["decision"]["action"] == "stop_inconclusive"
    assert report["decision"]["rule"] == "max_days"


def test_a_second_invocation_resumes_and_makes_no_call(tmp_path: Path) -> None:
    plan = small_plan(per="unit")
    first = run(plan, tmp_path / "r").report
    assert first["generation"]["calls"] > 0
    second = execute(plan, RunOptions(run_dir=tmp_path / "r", generation=GenerateOptions(offline=True)))
    assert second.resumed
    assert second.report["generation"]["this_invocation"] == {"calls": 0, "spent": 0.0}
    # the run's totals still count the calls the first invocation paid for
    assert (second.report["generation"]["calls"], second.report["generation"]["spent"]) == (
        first["generation"]["calls"], first["generation"]["spent"])
    treatment = [row for row in second.report["generation"]["per_variant"] if row["variant"] == "treatment"][0]
    assert treatment["items"] > 0 and treatment["store_hits"] == treatment["items"]
    strip = lambda r: {k: v for k, v in r.items() if k != "generation"}
    assert strip(second.report) == strip(first)


def test_a_look_saved_by_an_interrupted_run_is_read_back_not_recomputed(tmp_path: Path) -> None:
    plan = small_plan(days=3)
    run(plan, tmp_path / "r")
    look = tmp_path / "r" / "looks" / "look-002.json"
    saved = json.loads(look.read_text())
    saved["srm"]["p_value"] = 0.123456  # a mark only a read-back can carry into the report
    look.write_text(json.dumps(saved))
    (tmp_path / "r" / "looks" / "look-003.json").unlink()  # as if killed before the last look
    report = run(plan, tmp_path / "r").report
    assert report["history"][1]["srm"]["p_value"] == 0.123456
    assert (tmp_path / "r" / "looks" / "look-003.json").is_file()


def test_a_run_dir_of_another_spec_is_refused_and_fresh_starts_over(tmp_path: Path) -> None:
    run(small_plan(), tmp_path / "r")
    other = small_plan(units_per_day=301)
    with pytest.raises(RunError, match="the spec changed") as info:
        run(other, tmp_path / "r")
    assert info.value.exit_code == 1
    result = run(other, tmp_path / "r", fresh=True)
    assert json.loads((tmp_path / "r" / "state.json").read_text())["identity"]["spec_sha256"] == other.spec_sha256
    assert result.report["spec_sha256"] == other.spec_sha256


def test_another_seed_is_another_run(tmp_path: Path) -> None:
    plan = small_plan()
    run(plan, tmp_path / "r", seed=1)
    with pytest.raises(RunError, match="another --seed"):
        run(plan, tmp_path / "r", seed=2)
    a = run(plan, tmp_path / "a", seed=1).report
    b = run(plan, tmp_path / "b", seed=2).report
    assert a["history"][0]["units"] != b["history"][0]["units"]


def test_a_folder_that_is_not_a_run_dir_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not an expc run directory"):
        run(small_plan(), tmp_path / "r")
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"


def test_fresh_keeps_the_content_store(tmp_path: Path) -> None:
    plan = small_plan(per="unit")
    first = run(plan, tmp_path / "r").report
    again = run(plan, tmp_path / "r", fresh=True).report
    assert first["generation"]["calls"] > 0
    assert again["generation"]["this_invocation"]["calls"] == 0
    assert again["generation"]["calls"] == first["generation"]["calls"]


def test_a_spec_without_simulation_and_without_data_is_a_usage_error(tmp_path: Path) -> None:
    plan = edited(small_plan(), lambda p: p.update(simulation=None))
    with pytest.raises(RunError, match="no `simulation` block") as info:
        run(plan, tmp_path / "r")
    assert info.value.exit_code == 2


def test_progress_hooks_see_every_step_and_look(tmp_path: Path) -> None:
    steps: list[str] = []
    looks: list[tuple[int, int]] = []
    execute(small_plan(days=2), RunOptions(run_dir=tmp_path / "r", generation=GenerateOptions(offline=True)),
            Progress(step=steps.append, look=lambda d, t: looks.append((d, t))))
    assert steps[0].startswith("drawing") and steps[-1] == "writing the reports"
    assert looks == [(1, 2), (2, 2)]


def test_content_that_fails_its_checks_with_on_fail_error_stops_the_run(tmp_path: Path) -> None:
    plan = edited(small_plan(), lambda p: p["prompts"]["line"]["checks"].update(
        forbid=["offline"], regenerate=0, on_fail="error"))
    with pytest.raises(RunError, match="failed their checks") as info:
        run(plan, tmp_path / "r")
    assert info.value.exit_code == 3
    assert (tmp_path / "r" / "content.jsonl").read_text().count('"failed"') >= 1
    assert not (tmp_path / "r" / "report.json").exists()


def test_data_spanning_more_looks_than_the_limit_is_refused_before_any_look(tmp_path: Path) -> None:
    """Without max_days the looks follow the data; a file spanning years must not make a loop of 100,000 looks."""
    text = SMALL.format(model="offline/x", generate="{per: unit}", days=10, units_per_day=10, treatment=0.1)
    text = text.replace("  looks: daily\n  max_days: 10\n", "  looks: hourly\n").replace(
        "    - {when: max_days, then: stop_inconclusive}\n", "")
    plan = plan_of_text(text, "small.yaml")
    exposures, events = tmp_path / "exposures.csv", tmp_path / "events.csv"
    exposures.write_text("user_id,variant,timestamp\nu1,control,2020-01-01T00:00:00Z\n"
                         "u2,treatment,2026-01-01T00:00:00Z\n", encoding="utf-8")
    events.write_text("user_id,event,timestamp\nu1,clicked,2020-01-02T00:00:00Z\n", encoding="utf-8")
    with pytest.raises(RunError, match=r"makes 52,6\d\d looks .* the limit is 5,000") as info:
        run(plan, tmp_path / "r", exposures_path=exposures, events_path=events)
    assert info.value.exit_code == 1
    assert not list((tmp_path / "r" / "looks").glob("look-*.json"))


def test_without_units_the_per_unit_variants_are_not_generated_and_the_report_says_so(tmp_path: Path) -> None:
    plan = small_plan(per="unit", days=2)
    exposures, events = tmp_path / "exposures.csv", tmp_path / "events.csv"
    exposures.write_text("user_id,variant,timestamp\nu1,control,2024-01-01T00:00:00Z\n"
                         "u2,treatment,2024-01-01T06:00:00Z\n", encoding="utf-8")
    events.write_text("user_id,event,timestamp\nu1,clicked,2024-01-01T12:00:00Z\n", encoding="utf-8")
    report = run(plan, tmp_path / "r", exposures_path=exposures, events_path=events).report
    assert report["generation"]["notes"] == [
        "not generated: treatment (its copy is written per unit; give --units)"]
    content = [json.loads(line) for line in (tmp_path / "r" / "content.jsonl").read_text().splitlines()]
    assert [c["variant"] for c in content] == ["control"]


# ---------------------------------------------------------------- resuming keyed on what the spec means


def small_text(**kw: object) -> str:
    """The text of :func:`small_plan`'s spec."""
    values = {"model": "offline/copywriter", "generate": "{per: segment, segment_by: [interests]}", "days": 4,
              "units_per_day": 300, "treatment": 0.10} | kw
    return SMALL.format(**values)


def test_a_run_resumes_after_an_edit_that_changes_no_meaning(tmp_path: Path) -> None:
    text = small_text()
    first = run(plan_of_text(text, "small.yaml"), tmp_path / "r")
    edited_text = ("# reviewed: the copy is fine\n"
                   + text.replace("  id: small-run\n", "  name: Small run  # shown in the report\n  id: small-run\n")
                   .replace("analysis:\n  method: sequential\n", "analysis: {method: sequential}\n")
                   + "generation:\n  max_cost_usd: 10\n")
    plan = plan_of_text(edited_text, "small.yaml")
    assert plan.spec_sha256 != first.report["spec_sha256"]
    second = execute(plan, RunOptions(run_dir=tmp_path / "r", generation=GenerateOptions(offline=True)))
    assert second.resumed
    assert second.report["generation"]["this_invocation"] == {"calls": 0, "spent": 0.0}
    assert second.report["history"] == first.report["history"]
    assert second.report["experiment"]["name"] == "Small run"


def test_a_change_that_matters_is_refused_naming_what_changed(tmp_path: Path) -> None:
    run(small_plan(), tmp_path / "r")
    mde = plan_of_text(small_text().replace("mde: 20%", "mde: 25%"), "small.yaml")
    with pytest.raises(RunError) as info:
        run(mde, tmp_path / "r")
    assert "(the spec changed: changes the analysis: metrics.clicked.mde 0.2 -> 0.25" in str(info.value)
    assert info.value.exit_code == 1 and "--fresh" in str(info.value) and "\n" not in str(info.value)
    weight = plan_of_text(small_text().replace("    content: Hello!\n", "    content: Hello!\n    weight: 3\n"),
                          "small.yaml")
    with pytest.raises(RunError, match=r"the spec changed: re-randomises: variants\.control\.weight 0\.5 -> 0\.75"):
        run(weight, tmp_path / "r")
    truth = plan_of_text(small_text(treatment=0.12), "small.yaml")  # another simulated world: not the same run
    with pytest.raises(RunError, match=r"the spec changed: simulation\.truth\.treatment\.clicked\.mean 0\.1 -> 0\.12"):
        run(truth, tmp_path / "r")


def test_a_state_of_an_older_expc_resumes_when_it_means_the_same_and_is_refused_in_one_line_otherwise(
        tmp_path: Path) -> None:
    plan = small_plan()
    run(plan, tmp_path / "r")
    state_path = tmp_path / "r" / "state.json"

    def as_version_1() -> None:
        state = json.loads(state_path.read_text())
        state["identity"] = {k: v for k, v in state["identity"].items() if k != "plan_digest"} | {"state_version": 1}
        state_path.write_text(json.dumps(state))

    as_version_1()
    assert execute(plan_of_text("# a comment\n" + small_text(), "small.yaml"),
                   RunOptions(run_dir=tmp_path / "r", generation=GenerateOptions(offline=True))).resumed
    assert json.loads(state_path.read_text())["identity"]["state_version"] == 2  # upgraded as it resumed
    as_version_1()
    with pytest.raises(RunError, match="the spec changed: changes the analysis: metrics.clicked.mde"):
        run(plan_of_text(small_text().replace("mde: 20%", "mde: 25%"), "small.yaml"), tmp_path / "r")
    state = json.loads(state_path.read_text())
    state["identity"]["state_version"] = 99
    state_path.write_text(json.dumps(state))
    with pytest.raises(RunError, match=r"\(another version of expc\); rerun with --fresh") as info:
        run(plan, tmp_path / "r")
    assert "\n" not in str(info.value)
