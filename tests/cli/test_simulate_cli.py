"""`expc simulate` on the command line: json and text, reproducible, bad input exits 1 or 2 without a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conftest import BASE, ROOT

from expc.cli import main

WELCOME = ROOT / "specs" / "welcome-email.yaml"


def run(*args: Any):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_json_with_aa_truth_gives_the_false_positive_rate():
    result = run("simulate", WELCOME, "--replications", 200, "--truth", "aa", "--format", "json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["truth"] == "aa" and d["replications"] == 200 and "power" not in d
    assert 0 <= d["false_positive_rate"] <= 1
    assert set(d["decisions"]) >= {"continue", "stop_ship_winner", "stop_rollback", "stop_inconclusive"}
    assert {"quantiles", "histogram", "stopped"} <= set(d["stopping_day"])
    assert {"p5", "p50", "p95"} <= set(d["units_used"]["quantiles"])


def test_json_with_spec_truth_gives_the_power_and_is_reproducible():
    args = ("simulate", WELCOME, "-n", 150, "--format", "json", "--seed", 3)
    first, second = run(*args), run(*args)
    assert first.exit_code == 0 and first.output == second.output
    d = json.loads(first.output)
    assert d["truth"] == "spec" and d["seed"] == 3 and 0 <= d["power"] <= 1
    other = run("simulate", WELCOME, "-n", 150, "--format", "json", "--seed", 4)
    assert json.loads(other.output) != d


def test_text_starts_with_the_design_and_gives_the_rate_with_its_error():
    result = run("simulate", WELCOME, "--replications", 100, "--truth", "aa")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("SIMULATION of welcome-subject-2026q4: 100 replications")
    assert lines[1].startswith("Design: sequential (always-valid), alpha 0.05, holm correction; 28 daily looks")
    assert any(line.startswith("False-positive rate: ") and "±" in line for line in lines)
    assert "Stopping day" in result.output and "Units used" in result.output


def test_a_spec_without_a_simulation_block_exits_1(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE, encoding="utf-8")
    result = run("simulate", spec, "-n", 10)
    assert result.exit_code == 1
    assert "no `simulation` block" in result.output


def test_usage_errors_exit_2(tmp_path: Path):
    assert run("simulate", WELCOME, "--replications", 0).exit_code == 2
    assert run("simulate", WELCOME, "--truth", "nope").exit_code == 2
    assert run("simulate", tmp_path / "missing.yaml").exit_code == 1  # a spec that cannot be read: E001


def test_an_invalid_spec_exits_1(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\nexperiment: {}\n", encoding="utf-8")
    assert run("simulate", spec, "-n", 10).exit_code == 1
