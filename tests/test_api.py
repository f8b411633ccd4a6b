"""expc's Python API mirrors the command line: the same plan, report, simulation and analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

import expc
from expc.cli import main
from expc.compiler.plan import Plan, PlanError

WELCOME = ROOT / "specs" / "welcome-email.yaml"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_three_lines_run_the_example_and_give_report_json(tmp_path: Path):
    result = expc.run(WELCOME, run_dir=tmp_path / "run")
    assert result.report["decision"]["action"] == "stop_ship_winner"
    assert result.report == json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))


def test_load_plan_reads_a_spec_a_plan_file_or_a_plan(tmp_path: Path):
    plan = expc.load_plan(WELCOME)
    assert isinstance(plan, Plan) and expc.load_plan(plan) is plan
    path = tmp_path / "plan.json"
    path.write_text(cli("compile", str(WELCOME)), encoding="utf-8")
    assert expc.load_plan(path) == plan
    path.write_text(json.dumps(plan.to_dict() | {"plan_version": 1}), encoding="utf-8")
    with pytest.raises(PlanError, match="plan_version"):
        expc.load_plan(path)


def test_a_spec_with_errors_raises_spec_error(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(WELCOME.read_text(encoding="utf-8").replace("prompt: subject_line", "prompt: subjekt_line"))
    with pytest.raises(expc.SpecError) as info:
        expc.run(bad, run_dir=tmp_path / "run")
    assert info.value.exit_code == 1 and [d.code for d in info.value.diagnostics] == ["E034"]
    assert not (tmp_path / "run").exists()


def test_simulate_to_dict_is_the_commands_json():
    api = expc.simulate(WELCOME, replications=200, truth="aa", seed=3).to_dict()
    assert api == json.loads(cli("simulate", str(WELCOME), "-n", "200", "--truth", "aa", "--seed", "3",
                                 "--format", "json"))


def test_analyze_to_dict_is_the_commands_json(tmp_path: Path):
    run = expc.run(WELCOME, run_dir=tmp_path / "run")  # a simulated run writes exposures and events files
    files = {"exposures": tmp_path / "run" / "exposures.parquet", "events": tmp_path / "run" / "events.parquet"}
    as_of = run.report["run"]["as_of"]
    api = expc.analyze(WELCOME, as_of=as_of, **files)
    assert api.to_dict() == json.loads(cli("analyze", str(WELCOME), "--exposures", str(files["exposures"]),
                                           "--events", str(files["events"]), "--as-of", as_of, "--format", "json"))
    assert api.to_dict()["decision"] == run.report["decision"]
    assert api.to_dict()["day"] == run.report["day"]
