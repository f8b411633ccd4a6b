"""`expc simulate --max-fpr X --min-power Y`: CI gates on a design, their figures, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import BASE, ROOT

from expc.cli import main
from expc.simulate_gates import wilson
from expc.simulate_report import MARK, highlight

WELCOME = ROOT / "specs" / "welcome-email.yaml"
N = 200


def run(*args: Any, color: bool = False):
    result = CliRunner().invoke(main, [str(a) for a in args], color=color)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def peeking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The welcome spec with a fixed-horizon test checked at each of its 28 daily looks: an inflated FPR."""
    text = WELCOME.read_text(encoding="utf-8").replace("method: sequential", "method: fixed")
    path = tmp_path_factory.mktemp("gates") / "peeking.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def no_better(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The welcome spec whose truth gives the treatment the control's rate: no power to measure."""
    original = WELCOME.read_text(encoding="utf-8")
    text = original.replace("personalized: {activated: 0.106", "personalized: {activated: 0.10")
    assert text != original
    path = tmp_path_factory.mktemp("gates") / "no-better.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_passing_gates_exit_0_and_json_gives_each_figure_threshold_and_verdict():
    result = run("simulate", WELCOME, "-n", N, "--max-fpr", 0.05, "--min-power", 0.5, "--format", "json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert set(d["gates"]) == {"max_fpr", "min_power"}
    fpr, power = d["gates"]["max_fpr"], d["gates"]["min_power"]
    assert fpr["threshold"] == 0.05 and fpr["passed"] is True and fpr["truth"] == "aa"
    assert power["threshold"] == 0.5 and power["passed"] is True and power["truth"] == "spec"
    assert power["figure"] == d["power"]  # the command's own run (spec truth) measures the power
    for gate in (fpr, power):
        assert gate["replications"] == N and gate["seed"] == d["seed"]
        low, high = gate["interval"]
        assert low <= gate["figure"] <= high and gate["se"] >= 0


def test_the_fpr_comes_from_an_aa_run_with_the_same_seed_and_replications():
    gated = json.loads(run("simulate", WELCOME, "-n", N, "--seed", 5, "--max-fpr", 0.5, "--format", "json").output)
    aa = json.loads(run("simulate", WELCOME, "-n", N, "--seed", 5, "--truth", "aa", "--format", "json").output)
    assert gated["truth"] == "spec"
    assert gated["gates"]["max_fpr"]["figure"] == aa["false_positive_rate"]


def test_the_power_comes_from_the_spec_truth_when_the_command_runs_aa():
    gated = json.loads(run("simulate", WELCOME, "-n", N, "--truth", "aa", "--min-power", 0.1,
                           "--format", "json").output)
    spec = json.loads(run("simulate", WELCOME, "-n", N, "--format", "json").output)
    assert gated["truth"] == "aa" and "power" not in gated
    assert gated["gates"]["min_power"]["figure"] == spec["power"]


def test_a_missed_power_gate_exits_1_with_its_figure():
    result = run("simulate", WELCOME, "-n", N, "--min-power", 0.99)
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith(f"{MARK}Power: "))
    assert "gate at least 99.0%: FAIL" in line and "Monte Carlo SE" in line and "95% interval" in line
    assert "Gates: 0 of 1 passed (exit 1)" in result.output


def test_a_peeking_design_fails_the_fpr_gate_and_its_rate_above_alpha_is_marked(peeking: Path):
    result = run("simulate", peeking, "-n", N, "--truth", "aa", "--max-fpr", 0.05)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    headline = next(x for x in lines if "False-positive rate: " in x and "nominal alpha" in x)
    assert headline.startswith(MARK) and headline.endswith("ABOVE alpha 0.05")
    gate = next(x for x in lines if x.startswith(f"{MARK}False-positive rate: ") and "gate at most" in x)
    assert gate.endswith("gate at most 5.0%: FAIL")
    assert "\x1b[" not in result.output  # no colour when the output is not a terminal


def test_a_rate_within_alpha_is_not_marked_and_json_has_no_gates_without_flags():
    text = run("simulate", WELCOME, "-n", N, "--truth", "aa").output
    assert any(x.startswith("False-positive rate: ") for x in text.splitlines())
    assert MARK + "False" not in text and "ABOVE" not in text and "Gates:" not in text
    d = json.loads(run("simulate", WELCOME, "-n", N, "--format", "json").output)
    assert "gates" not in d


def test_marked_lines_are_coloured_on_a_terminal_only(peeking: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    result = run("simulate", peeking, "-n", N, "--truth", "aa", color=True)
    coloured = [x for x in result.output.splitlines() if "\x1b[" in x]
    assert len(coloured) == 1 and click.unstyle(coloured[0]).startswith(MARK + "False-positive rate")
    monkeypatch.setenv("NO_COLOR", "1")
    assert highlight(f"{MARK}x\ny") == f"{MARK}x\ny"


def test_highlight_styles_only_marked_lines(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = highlight(f"plain\n{MARK}bad\n")
    first, second, last = out.split("\n")
    assert first == "plain" and last == ""
    assert second != f"{MARK}bad" and click.unstyle(second) == f"{MARK}bad"


def test_no_true_improvement_fails_the_power_gate_and_says_why(no_better: Path):
    result = run("simulate", no_better, "-n", N, "--min-power", 0.5, "--format", "json")
    assert result.exit_code == 1
    gate = json.loads(result.output)["gates"]["min_power"]
    assert gate["figure"] is None and gate["passed"] is False and "no treatment is truly better" in gate["reason"]
    text = run("simulate", no_better, "-n", N, "--min-power", 0.5).output
    assert f"{MARK}Power: n/a, gate at least 50.0%: FAIL: no treatment is truly better" in text


def test_a_gate_inside_the_monte_carlo_interval_says_to_raise_replications():
    d = json.loads(run("simulate", WELCOME, "-n", N, "--format", "json").output)
    power = d["power"]
    result = run("simulate", WELCOME, "-n", N, "--min-power", round(power - 0.01, 3), "--format", "json")
    assert result.exit_code == 0 and json.loads(result.output)["gates"]["min_power"]["close"] is True
    text = run("simulate", WELCOME, "-n", N, "--min-power", round(power - 0.01, 3)).output
    assert "raise --replications" in text


@pytest.mark.parametrize("flag", ["--max-fpr", "--min-power"])
def test_a_gate_outside_0_1_is_a_usage_error(flag: str):
    assert run("simulate", WELCOME, "-n", 10, flag, 1.5).exit_code == 2
    assert run("simulate", WELCOME, "-n", 10, flag, "many").exit_code == 2


def test_wilson_interval_contains_the_share_and_is_not_degenerate_at_zero():
    low, high = wilson(0.0, 100)
    assert low == 0.0 and 0.03 < high < 0.04  # z²/(n + z²) = 3.7%
    low, high = wilson(0.5, 400)
    assert low < 0.5 < high and high - low == pytest.approx(2 * 1.96 * 0.025, rel=0.01)


# ------------------------------------------------------------------ expc validate --min-power


def test_validate_min_power_fails_a_spec_below_it_and_passes_one_above():
    assert run("validate", WELCOME).exit_code == 0  # 84% analytic power at max_days: above the default 80%
    result = run("validate", WELCOME, "--min-power", 0.9)
    assert result.exit_code == 1
    assert "warning[W021]" in result.output and "below the minimum of 90.0%" in result.output
    assert run("validate", WELCOME, "--min-power", 0.8).exit_code == 0


def test_validate_min_power_fails_when_the_power_cannot_be_computed(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.replace("    baseline: 0.1\n", ""), encoding="utf-8")
    assert run("validate", spec).exit_code == 0  # W002 is a warning
    result = run("validate", spec, "--min-power", 0.5)
    assert result.exit_code == 1 and "W002" in result.output


def test_validate_min_power_json_lists_w021(tmp_path: Path):
    result = run("validate", WELCOME, "--min-power", 0.95, "--format", "json")
    assert result.exit_code == 1
    [d] = json.loads(result.output)
    assert d["code"] == "W021" and d["severity"] == "warning" and "84.4%" in d["message"]


@pytest.mark.parametrize("value", ["0", "1", "1.2", "x"])
def test_validate_min_power_outside_0_1_is_a_usage_error(value: str):
    assert run("validate", WELCOME, "--min-power", value).exit_code == 2
