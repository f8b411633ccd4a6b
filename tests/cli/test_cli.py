"""The command line: exit codes, output formats, and no tracebacks for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BASE, ROOT

from expc.cli import main
from expc.compiler.schema import schema_json

WELCOME = str(ROOT / "specs" / "welcome-email.yaml")


def run(*args: str, cwd: Path | None = None):
    runner = CliRunner()
    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        result = runner.invoke(main, list(args))
    finally:
        if cwd is not None:
            os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(BASE)
    (tmp_path / "bad.yaml").write_text(BASE.replace("prompt: subject", "prompt: subjekt"))
    (tmp_path / "warn.yaml").write_text(BASE.replace("    baseline: 0.1\n", ""))
    return tmp_path


def test_validate_exit_codes(specs):
    assert run("validate", str(specs / "good.yaml")).exit_code == 0
    assert run("validate", str(specs / "bad.yaml")).exit_code == 1
    assert run("validate", str(specs / "warn.yaml")).exit_code == 0
    assert run("validate", "--strict", str(specs / "warn.yaml")).exit_code == 1
    assert run("validate", str(specs / "missing.yaml")).exit_code == 1  # E001, like any spec that cannot be read
    assert run("validate").exit_code == 2
    assert run("validate", "--format", "xml", str(specs / "good.yaml")).exit_code == 2


def test_validate_text_output_is_file_line_col_code(specs):
    result = run("validate", str(specs / "bad.yaml"))
    lines = result.output.splitlines()
    # sorted by position: the now-unused prompt (line 20) comes before the broken reference (line 28)
    assert lines[0] == f"{specs / 'bad.yaml'}:20:3: warning[W003] prompt `subject` is not used by any variant"
    assert lines[1] == f"{specs / 'bad.yaml'}:28:13: error[E034] prompt `subjekt` is not defined"
    assert lines[2] == "  hint: did you mean `subject`?"
    assert lines[-1] == "1 file checked: 1 error, 1 warning"


def test_validate_json_output(specs):
    result = run("validate", "--format", "json", str(specs / "bad.yaml"), str(specs / "good.yaml"))
    findings = json.loads(result.output)
    assert all(set(f) == {"file", "line", "col", "severity", "code", "message", "hint"} for f in findings)
    assert [(f["code"], f["line"], f["col"], f["severity"]) for f in findings] == [
        ("W003", 20, 3, "warning"), ("E034", 28, 13, "error")]
    assert json.loads(run("validate", "--format", "json", str(specs / "good.yaml")).output) == []


def test_validate_github_output_is_escaped_workflow_commands(specs):
    result = run("validate", "--format", "github", str(specs / "bad.yaml"), str(specs / "warn.yaml"))
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith(f"::error file={specs / 'bad.yaml'},line=28,col=13,title=expc E034::")
    assert lines[1].endswith("::prompt `subjekt` is not defined (hint: did you mean `subject`?)")
    assert lines[0].startswith("::warning ") and lines[2].startswith("::warning ")


def test_validate_takes_folders_and_globs(specs):
    (specs / ".hidden").mkdir()
    (specs / ".hidden" / "x.yaml").write_text("not: a spec")
    assert "3 files checked" in run("validate", str(specs)).output
    assert "1 file checked" in run("validate", str(specs / "g*.yaml")).output
    assert run("validate", str(specs / "nothing*.yaml")).exit_code == 1  # no file: nothing valid to check


def test_compile_writes_the_plan_or_nothing(specs, tmp_path):
    out = tmp_path / "build" / "plan.json"
    assert run("compile", str(specs / "good.yaml"), "-o", str(out)).exit_code == 0
    plan = json.loads(out.read_text())
    assert plan["plan_version"] == 2 and plan["experiment"]["id"] == "demo"
    stdout = run("compile", str(specs / "good.yaml")).output
    assert json.loads(stdout) == plan
    bad_out = tmp_path / "bad.json"
    result = run("compile", str(specs / "bad.yaml"), "-o", str(bad_out))
    assert result.exit_code == 1 and not bad_out.exists()
    assert not list(tmp_path.glob(".*.tmp*"))


def test_plan_is_a_readable_dry_run():
    result = run("plan", WELCOME)
    assert result.exit_code == 0
    for expected in ("Experiment welcome-subject-2026q4", "new_north_america", "77,137 per variant",
                     "a fixed-horizon test would need 40,284 per variant",
                     "estimated duration", "personalized: prompt subject_line"):
        assert expected in result.output


def test_schema_prints_the_committed_schema():
    assert run("schema").output == schema_json()


def test_init_writes_a_valid_starter_and_never_overwrites(tmp_path):
    assert run("init", "new.yaml", cwd=tmp_path).exit_code == 0
    assert run("validate", "--strict", str(tmp_path / "new.yaml")).exit_code == 0
    assert run("init", "new.yaml", cwd=tmp_path).exit_code == 2
    assert run("init", "new.yaml", "--force", cwd=tmp_path).exit_code == 0


def test_init_points_the_modeline_at_the_repositorys_schema(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "expc-spec.schema.json").write_text("{}")
    run("init", "specs/a.yaml", cwd=tmp_path)
    first = (tmp_path / "specs" / "a.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/expc-spec.schema.json"


@pytest.mark.parametrize("command", ["validate", "compile", "plan", "schema", "init"])
def test_every_help_shows_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "expc " + command in result.output


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff\xfe\x00garbage", b"- just\n- a list\n", b"a: [unclosed\n", b"version: 1\nexperiment: 5\n",
     b"a: &a [1]\nb: *zz\n", b"\x00\x01\x02"],
)
def test_no_traceback_for_any_bad_file(tmp_path, content):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    for command in ("validate", "compile", "plan"):
        proc = subprocess.run([sys.executable, "-m", "expc", command, str(bad)], capture_output=True, text=True)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        assert f"{bad}:" in proc.stdout + proc.stderr


def test_github_format_escapes_what_workflow_commands_require():
    from expc.compiler.diagnostics import Diagnostic, format_github

    d = Diagnostic("a,b:c.yaml", 3, 4, "error", "E005", "100% broken\nsecond line", None)
    assert format_github([d]) == "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=expc E005::100%25 broken%0Asecond line"
