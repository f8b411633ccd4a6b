"""Every command leaves with the exit code the README promises, and says why in one line (never a traceback)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from expc.cli import main

SPEC = str(ROOT / "specs" / "welcome-email.yaml")
MISSING = "/nonexistent/spec.yaml"

#: each command with the arguments it needs besides the spec
COMMANDS = {
    "validate": [],
    "compile": [],
    "plan": [],
    "run": [],
    "simulate": [],
    "generate": [],
    "assign": ["--units", "units.csv"],
    "export": ["--to", "growthbook"],
    "analyze": ["--exposures", "exposures.csv", "--events", "events.csv"],
}


def readme_codes() -> dict[int, str]:
    """The README's table of exit codes: code -> meaning."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d) \| (.+?) \|$", text, re.MULTILINE)}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line(result) -> str:
    """The line that says what is wrong (validate prints its findings on stdout, the others on stderr)."""
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = [line for line in result.output.splitlines() if "error" in line and "checked:" not in line]
    assert len(lines) == 1, result.output
    return lines[0]


def test_the_readme_promises_these_codes():
    codes = readme_codes()
    assert set(codes) == {0, 1, 2, 3}
    assert "invalid spec" in codes[1] and "missing" in codes[1]
    assert "usage" in codes[2]
    assert "state is saved" in codes[3]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_spec_is_exit_1_naming_it(command: str):
    result = invoke(command, MISSING, *COMMANDS[command])
    assert result.exit_code == 1, result.output
    assert MISSING in one_line(result)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_option_is_a_usage_error_exit_2(command: str):
    result = invoke(command, SPEC, *COMMANDS[command], "--no-such-option")
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(("command", "args"), [
    ("assign", ["--units", "/nonexistent/units.csv"]),
    ("generate", ["--units", "/nonexistent/units.csv"]),
    ("run", ["--units", "/nonexistent/units.csv"]),
    ("run", ["--exposures", "/nonexistent/exposures.csv", "--events", "/nonexistent/events.csv"]),
    ("analyze", ["--exposures", "/nonexistent/exposures.csv", "--events", "/nonexistent/events.csv"]),
])
def test_a_missing_data_file_is_exit_1_naming_it(command: str, args: list[str], tmp_path: Path):
    extra = ["--run-dir", str(tmp_path / "run")] if command == "run" else []
    result = invoke(command, SPEC, *args, *extra)
    assert result.exit_code == 1, result.output
    assert "/nonexistent/" in one_line(result)


def test_a_missing_plan_file_is_exit_1(tmp_path: Path):
    result = invoke("run", str(tmp_path / "plan.json"))
    assert result.exit_code == 1 and "plan.json: no such file" in one_line(result)


def test_a_glob_that_matches_nothing_is_exit_1():
    result = invoke("validate", "/nonexistent/*.yaml")
    assert result.exit_code == 1 and "no file matches" in one_line(result)
