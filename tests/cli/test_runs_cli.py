"""`expc runs` and `expc open` as a user types them: a real run listed and opened, hostile names escaped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_run_cli import _environment, expc, write_spec  # noqa: F401 - the fixture applies here too

from expc.runtime import runs as runs_module


@pytest.fixture
def finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished simulated run in .expc/runs/run-cli under a fresh working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPC_RUN_DIR_ROOT", raising=False)
    spec = write_spec(tmp_path, model="offline/copywriter")
    done = expc("run", spec, "--quiet")
    assert done.exit_code == 0, done.stderr
    return tmp_path / ".expc" / "runs" / "run-cli"


def test_a_finished_run_is_listed_with_its_look_decision_and_spend(finished: Path) -> None:
    report = json.loads((finished / "report.json").read_text())
    listed = expc("runs", "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["runs"]
    assert entry["name"] == entry["experiment"] == "run-cli"
    assert (entry["kind"], entry["mode"], entry["status"]) == ("run", "simulated", "finished")
    assert entry["look"] == report["run"]["looks"] and entry["as_of"] == report["run"]["as_of"]
    assert entry["decision"] == report["decision"]["action"]
    assert entry["spent"] == report["generation"]["spent"]
    assert 0 <= entry["age_seconds"] < 600
    text = expc("runs")
    assert text.exit_code == 0
    header, row = text.stdout.splitlines()[:2]
    assert header.split()[:3] == ["RUN", "EXPERIMENT", "MODE"]
    assert row.split()[:4] == ["run-cli", "run-cli", "simulated", "finished"]


def test_open_prints_the_path_without_a_browser_and_opens_it_with_one(finished: Path, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("BROWSER", raising=False)
    monkeypatch.setattr(runs_module.sys, "platform", "linux")
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    page = (finished / "report.html").resolve()
    by_name = expc("open", "run-cli")
    assert by_name.exit_code == 0, by_name.stderr
    assert by_name.stdout == f"{page}\n" and opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("CI", raising=False)
    by_path = expc("open", finished)
    assert by_path.exit_code == 0 and by_path.stdout == f"{page}\n"
    assert opened == [page.as_uri()] and "opened in your browser" in by_path.stderr
    assert expc("open", "run-cli", "--print").exit_code == 0 and len(opened) == 1


def test_open_refuses_what_is_not_a_finished_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.html").write_text("not a run's")
    for args, message in ((["open", "nope"], "no run named 'nope'"), (["open", "docs"], "not an expc run directory"),
                          (["open", "/etc"], "not an expc run directory")):
        done = expc(*args)
        assert done.exit_code == 1 and message in done.stderr, done.stderr
        assert done.stdout == "" and done.stderr.count("\n") == 1


def test_hostile_names_and_values_are_escaped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / ".expc" / "runs"
    evil = root / "evil\x1b]0;pwned\x07"
    (evil / "looks").mkdir(parents=True)
    state = {"identity": {"experiment": "x\x1b[2J\u202e", "simulated": True}, "done": []}
    (evil / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (root / "plain").mkdir()
    for fmt in ("text", "json"):
        done = expc("runs", "--format", fmt)
        assert done.exit_code == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "\u202e" not in done.stdout
    text = expc("runs").stdout
    assert "not a run" in text and "plain" in text


def test_no_runs_and_a_bad_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = expc("runs")
    assert done.exit_code == 0 and "no runs yet" in done.stdout
    (tmp_path / "file").write_text("x")
    bad = expc("runs", "--run-dir-root", "file")
    assert bad.exit_code == 1 and "is not a folder" in bad.stderr
    assert expc("runs", "--limit", "0").exit_code == 2


def test_the_limit_and_the_root_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    for i in range(3):
        (root / f"d{i}").mkdir(parents=True)
        os.utime(root / f"d{i}", (1_000_000 + i, 1_000_000 + i))
    monkeypatch.setenv("EXPC_RUN_DIR_ROOT", str(root))
    listed = json.loads(expc("runs", "--limit", "2", "--format", "json").stdout)
    assert [r["name"] for r in listed["runs"]] == ["d2", "d1"] and listed["total"] == 3
    assert listed["root"] == str(root)
