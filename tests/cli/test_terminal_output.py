"""Nothing printed by the CLI carries a raw control, escape or bidi character (issue 14, terminal injection).

Hostile text reaches the terminal from spec values, file names, data files and
provider error bodies. Each path below feeds the same pieces (OSC 0 retitle,
CSI 2J clear, RLO, NUL, C1 CSI) and checks they come out as visible escapes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import BASE

from expc import cli
from expc.cli import main

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil\x00\x9b31m"
SHOWN = r"\x1b]0;pwned\x07\x1b[2J\u202eevil\x00\x9b31m"
RAW = ("\x1b", "\x07", "\u202e", "\x00", "\x9b")
#: The same pieces written as YAML double-quoted escapes.
YAML_HOSTILE = r"\e]0;pwned\a\e[2J\u202Eevil\0\x9b31m"
#: A file name can hold all of it but NUL.
NAME = HOSTILE.replace("\x00", "")


def run(*args: Any):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def assert_escaped(text: str) -> None:
    assert [c for c in RAW if c in text] == [], repr(text[-400:])


def hostile_spec(tmp_path: Path, name: str = "spec.yaml") -> Path:
    """A valid spec whose name, hypothesis and static content hold the hostile pieces."""
    text = BASE.replace("  id: demo\n", f'  id: demo\n  name: "{YAML_HOSTILE}"\n  hypothesis: "{YAML_HOSTILE}"\n')
    text = text.replace("    content: Welcome!\n", f'    content: "{YAML_HOSTILE}"\n')
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_escapes_a_hostile_file_name(tmp_path: Path):
    spec = tmp_path / f"{NAME}.yaml"
    spec.write_text("version: 1\nexperiment: {id: x}\nbogus: 1\n", encoding="utf-8")
    for fmt in ("text", "github", "json"):
        result = run("validate", spec, "--format", fmt)
        assert result.exit_code == 1
        assert_escaped(result.output)
    assert r"\x1b]0;pwned\x07" in run("validate", spec).output


def test_plan_shows_spec_values_escaped(tmp_path: Path):
    result = run("plan", hostile_spec(tmp_path))
    assert result.exit_code == 0, result.output
    assert_escaped(result.output)
    assert SHOWN in result.output


def test_compile_prints_json_that_means_the_same_without_raw_characters(tmp_path: Path):
    result = run("compile", hostile_spec(tmp_path))
    assert result.exit_code == 0, result.output
    assert_escaped(result.stdout)
    assert json.loads(result.stdout)["experiment"]["hypothesis"] == HOSTILE


def test_generate_json_lines_carry_content_escaped(tmp_path: Path):
    result = run("generate", hostile_spec(tmp_path), "--offline", "--quiet", "--store", tmp_path / "c.sqlite",
                 "--units", _units(tmp_path))
    assert result.exit_code == 0, result.output
    assert_escaped(result.stdout)
    assert json.loads(result.stdout.splitlines()[0])["content"] == HOSTILE


def _units(tmp_path: Path) -> Path:
    path = tmp_path / "units.csv"
    path.write_text("user_id,first_name,country,interests\nu1,Ann,US,a|b\n", encoding="utf-8")
    return path


def test_a_missing_spec_named_with_escapes_is_escaped(tmp_path: Path):
    result = run("validate", tmp_path / f"{NAME}.yaml")  # was: a usage error printing the name raw
    assert result.exit_code == 1
    assert_escaped(result.output)
    assert r"\x1b]0;pwned\x07" in result.output


def test_a_usage_error_quoting_a_path_is_escaped(tmp_path: Path):
    existing = tmp_path / f"{NAME}.yaml"
    existing.write_text("x", encoding="utf-8")
    result = run("init", existing)  # click prints the UsageError's message
    assert result.exit_code == 2
    assert_escaped(result.output)
    assert "already exists" in result.output


def test_a_missing_data_file_named_with_escapes_is_escaped(tmp_path: Path):
    result = run("run", hostile_spec(tmp_path), "--units", tmp_path / f"{NAME}.csv")
    assert result.exit_code == 1
    assert_escaped(result.output)


def test_a_data_error_naming_a_hostile_file_is_escaped(tmp_path: Path):
    units = tmp_path / f"{NAME}.csv"
    units.write_text("country\nUS\n", encoding="utf-8")  # no user_id column
    result = run("assign", hostile_spec(tmp_path), "--units", units)
    assert result.exit_code == 1
    assert_escaped(result.output)
    assert result.stderr.startswith("error: ")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("which", ["--units", "--exposures", "--events"])
def test_a_data_file_that_is_a_pipe_is_one_line_and_exit_1(tmp_path: Path, which: str):
    spec = hostile_spec(tmp_path)
    good = {"--exposures": tmp_path / "exposures.csv", "--events": tmp_path / "events.csv"}
    good["--exposures"].write_text("user_id,variant,timestamp\nu1,control,2026-01-01T00:00:00Z\n", encoding="utf-8")
    good["--events"].write_text("user_id,event,timestamp\nu1,activated,2026-01-02T00:00:00Z\n", encoding="utf-8")
    fifo = tmp_path / f"pipe{which}.csv"
    os.mkfifo(fifo)
    if which == "--units":
        result = run("assign", spec, "--units", fifo)
    else:
        files = dict(good, **{which: fifo})
        result = run("analyze", spec, "--exposures", files["--exposures"], "--events", files["--events"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {fifo}: is a named pipe (FIFO), not a data file; give the path of a regular file")
    assert "Traceback" not in result.output


def test_a_provider_error_body_is_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from expc.runtime.generate import runner

    def failing(*args: Any, **kwargs: Any) -> None:
        raise runner.ProviderFailed(f"openai/gpt-4o-mini failed: 500 {{\"error\": \"{HOSTILE}\"}}")

    monkeypatch.setattr(runner, "generate", failing)
    result = run("generate", hostile_spec(tmp_path), "--quiet", "--units", _units(tmp_path))
    assert result.exit_code == 3
    assert_escaped(result.output)
    assert SHOWN in result.stderr


def test_a_run_error_is_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from expc.runtime import run as run_module

    def failing(*args: Any, **kwargs: Any) -> None:
        raise run_module.RunError(f"provider said {HOSTILE}\n::error::forged", 3)

    monkeypatch.setattr(run_module, "execute", failing)
    result = run("run", hostile_spec(tmp_path), "--quiet", "--run-dir", tmp_path / "r")
    assert result.exit_code == 3
    assert_escaped(result.output)
    assert not any(line.startswith("::") for line in result.stderr.splitlines())


def test_an_internal_error_is_escaped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def broken() -> None:
        raise RuntimeError(HOSTILE)

    monkeypatch.setattr(cli, "main", broken)
    monkeypatch.delenv("EXPC_DEBUG", raising=False)
    with pytest.raises(SystemExit):
        cli.entry()
    err = capsys.readouterr().err
    assert_escaped(err)
    assert SHOWN in err


def test_progress_steps_are_escaped_and_take_no_markup(capsys: pytest.CaptureFixture[str]):
    from expc.run_progress import progress_for

    with progress_for(False) as progress:
        progress.step(f"reading units from {NAME}[bold red].csv")
    err = capsys.readouterr().err
    assert_escaped(err)
    assert "[bold red].csv" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_plan_that_is_a_pipe_is_one_line_and_exit_1(tmp_path: Path):
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    result = run("run", fifo, "--quiet", "--run-dir", tmp_path / "r")  # was: read_bytes() waited forever
    assert result.exit_code == 1, result.output
    assert "named pipe" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_plan_linked_to_dev_zero_is_one_line_and_exit_1(tmp_path: Path):
    link = tmp_path / "plan.json"
    link.symlink_to("/dev/zero")
    result = run("simulate", link)  # was: read_bytes() until MemoryError
    assert result.exit_code == 1, result.output
    assert "character device" in result.stderr
