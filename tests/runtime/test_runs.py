"""Listing run directories and finding a run's report: hand-made folders of every kind, hostile files, bounds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from expc.runtime import runs
from expc.runtime.runs import (
    RunsError,
    browser_available,
    format_age,
    list_runs,
    open_report,
    read_entry,
    render_text,
    report_file,
    resolve_run,
)

REPORT = json.loads((ROOT / "tests" / "fixtures" / "reports" / "welcome-email.json").read_text(encoding="utf-8"))


def make_run(folder: Path, experiment: str = "exp", simulated: bool = True, looks: int = 2,
             finished: bool = True, mtime: float | None = None) -> Path:
    """A run directory as expc writes it: state.json, looks/look-NNN.json and, when finished, the reports."""
    (folder / "looks").mkdir(parents=True)
    state = {"identity": {"state_version": 1, "experiment": experiment, "simulated": simulated, "seed": 1},
             "done": ["assignments"] + (["report"] if finished else [])}
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    for i in range(1, looks + 1):
        look = {"look": i, "day": 7.0 * i, "as_of": f"2026-01-{i:02d}T00:00:00Z",
                "decision": {"action": "continue" if i < looks else "stop_ship_winner",
                             "variant": None if i < looks else "personalized"}}
        (folder / "looks" / f"look-{i:03d}.json").write_text(json.dumps(look), encoding="utf-8")
    if finished:
        (folder / "report.json").write_text(json.dumps(REPORT), encoding="utf-8")
        (folder / "report.html").write_text("<html>report</html>", encoding="utf-8")
    if mtime is not None:
        os.utime(folder / "looks", (mtime, mtime))
        os.utime(folder, (mtime, mtime))
    return folder


def test_a_finished_run_shows_its_experiment_mode_last_look_decision_and_spend(tmp_path: Path) -> None:
    make_run(tmp_path / "runs" / "exp", looks=3)
    [entry] = list_runs(tmp_path / "runs").runs
    assert (entry.kind, entry.experiment, entry.mode, entry.status) == ("run", "exp", "simulated", "finished")
    assert (entry.look, entry.day, entry.as_of) == (3, 21.0, "2026-01-03T00:00:00Z")
    assert (entry.decision, entry.variant) == (REPORT["decision"]["action"], REPORT["decision"]["variant"])
    assert entry.spent == REPORT["generation"]["spent"]
    assert entry.notes == ()


def test_an_unfinished_real_run_shows_its_last_look_and_says_it_is_not_finished(tmp_path: Path) -> None:
    make_run(tmp_path / "r", simulated=False, looks=12, finished=False)
    entry = read_entry(tmp_path / "r")
    assert (entry.mode, entry.status, entry.look, entry.decision, entry.spent) == (
        "real", "unfinished", 12, "stop_ship_winner", None)
    assert any("resume" in n for n in entry.notes)


def test_newest_first_and_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for i in range(5):
        make_run(root / f"run{i}", experiment=f"e{i}", mtime=1_000_000 + i * 100)
    listing = list_runs(root, limit=2)
    assert [e.name for e in listing.runs] == ["run4", "run3"]
    assert (listing.total, len(listing.runs)) == (5, 2)
    text = render_text(listing, now=1_000_400 + 7200)
    assert "2 of 5 shown, newest first; --limit N shows more" in text
    assert text.splitlines()[1].split()[-1] == "2h"


def test_every_kind_of_foreign_entry_is_listed_as_such(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root / "good")
    (root / "photos").mkdir()
    (root / "photos" / "cat.jpg").write_bytes(b"x")
    (root / "store").mkdir()
    (root / "store" / "content.sqlite").write_bytes(b"")
    (root / "notes.txt").write_text("hello", encoding="utf-8")
    os.symlink(root / "good", root / "alias")
    (root / "fake").mkdir()
    (root / "fake" / "state.json").write_text('{"identity": "no"}', encoding="utf-8")
    (root / "broken").mkdir()
    (root / "broken" / "state.json").write_text("{not json", encoding="utf-8")
    (root / "pipe").mkdir()
    os.mkfifo(root / "pipe" / "state.json")  # never opened: reading a FIFO would hang
    kinds = {e.name: (e.kind, e.notes) for e in list_runs(root).runs}
    assert kinds["good"][0] == "run"
    assert kinds["photos"] == ("not_a_run", ("not an expc run: no state.json",))
    assert kinds["store"][0] == "store"
    assert kinds["notes.txt"][0] == "file"
    assert kinds["alias"][0] == "link"
    assert kinds["fake"] == ("not_a_run", ("not an expc run: state.json is not the state of an expc run",))
    assert kinds["broken"] == ("not_a_run", ("not an expc run: state.json is not JSON",))
    assert kinds["pipe"] == ("not_a_run", ("not an expc run: state.json is not a regular file",))
    text = render_text(list_runs(root))
    assert "not a run" in text and "link" in text and "store only" in text


def test_hostile_values_in_a_runs_files_are_typed_and_cut(tmp_path: Path) -> None:
    folder = make_run(tmp_path / "r", looks=1)
    state = json.loads((folder / "state.json").read_text())
    state["identity"].update(experiment="x" * 10_000 + "\n\x1b[2J", simulated="yes")
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (folder / "looks" / "look-001.json").write_text(json.dumps(
        {"day": "soon", "as_of": ["a"], "decision": {"action": 5, "variant": {"x": 1}}}), encoding="utf-8")
    report = dict(REPORT, decision="ship!", generation={"spent": float("nan")})
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    entry = read_entry(folder)
    assert entry.mode is None and entry.day is None and entry.as_of is None and entry.spent is None
    assert entry.decision is None and entry.variant is None
    assert entry.experiment is not None and len(entry.experiment) == runs.TEXT_CHARS and "\n" not in entry.experiment
    json.dumps(entry.to_dict(0), allow_nan=False)  # JSON-ready, no NaN


def test_a_report_too_large_or_a_look_that_is_a_link_is_a_note_not_a_crash(tmp_path: Path, monkeypatch) -> None:
    folder = make_run(tmp_path / "r", looks=2)
    monkeypatch.setattr(runs, "REPORT_BYTES", 10)
    (folder / "looks" / "look-002.json").unlink()
    os.symlink("/etc/passwd", folder / "looks" / "look-002.json")
    entry = read_entry(folder)
    assert "look-002.json is not a regular file" in entry.notes
    assert any("report.json is unreadable" in n for n in entry.notes)


def test_the_root_scan_is_bounded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runs, "MAX_ENTRIES", 3)
    for i in range(6):
        (tmp_path / f"d{i}").mkdir()
    listing = list_runs(tmp_path, limit=50)
    assert listing.capped and listing.total == 3 and len(listing.runs) == 3
    assert "only 3 were examined" in render_text(listing)


def test_a_missing_root_is_no_run_yet_and_a_file_is_refused(tmp_path: Path) -> None:
    listing = list_runs(tmp_path / "nothing")
    assert listing.missing and "no runs yet" in render_text(listing)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunsError, match="is not a folder"):
        list_runs(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    assert render_text(list_runs(tmp_path / "empty")) == f"no runs in {tmp_path / 'empty'}\n"


def test_ages() -> None:
    assert [format_age(s) for s in (None, -5, 0, 59, 60, 3599, 3600, 86_399, 86_400 * 3)] == [
        "—", "0s", "0s", "59s", "1m", "59m", "1h", "23h", "3d"]


# ====================================================================== expc open


def test_a_run_is_found_by_name_under_the_root_or_by_its_path(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "runs"
    make_run(root / "exp")
    elsewhere = make_run(tmp_path / "elsewhere" / "mine")
    monkeypatch.chdir(tmp_path)
    assert resolve_run("exp", root) == root / "exp"
    assert resolve_run(str(root / "exp"), root) == root / "exp"
    assert resolve_run(str(elsewhere), root) == elsewhere  # an explicit run directory outside the root
    assert report_file(root / "exp") == (root / "exp" / "report.html").resolve()


@pytest.mark.parametrize("case", ["missing_name", "missing_path", "not_a_run", "link", "dotdot", "file"])
def test_what_is_not_a_run_is_refused(tmp_path: Path, monkeypatch, case: str) -> None:
    root = tmp_path / "runs"
    make_run(root / "exp")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "report.html").write_text("secret")
    os.symlink(root / "exp", root / "alias")
    monkeypatch.chdir(tmp_path)
    arg, message = {
        "missing_name": ("nope", "no run named 'nope'"),
        "missing_path": ("a/b", "no such folder"),
        "not_a_run": (str(tmp_path / "home"), "not an expc run directory"),
        "link": ("alias", "symbolic link"),
        "dotdot": ("..", "not an expc run directory"),
        "file": (str(tmp_path / "home" / "report.html"), "is not a folder"),
    }[case]
    with pytest.raises(RunsError, match=message):
        resolve_run(arg, root)


def test_a_report_that_is_missing_or_a_link_is_refused(tmp_path: Path) -> None:
    unfinished = make_run(tmp_path / "u", finished=False)
    with pytest.raises(RunsError, match="no report.html yet"):
        report_file(unfinished)
    planted = make_run(tmp_path / "p")
    (planted / "report.html").unlink()
    (tmp_path / "secret.html").write_text("x")
    os.symlink(tmp_path / "secret.html", planted / "report.html")
    with pytest.raises(RunsError, match="not a regular file of the run"):
        report_file(planted)


def test_the_browser_opens_the_report_only_where_there_is_one(tmp_path: Path) -> None:
    opened: list[str] = []
    page = tmp_path / "report.html"
    page.write_text("x")
    assert open_report(page, lambda uri: opened.append(uri) or True, {"DISPLAY": ":0"}) is True
    assert opened == [page.as_uri()]
    if sys.platform.startswith("linux"):  # no display: the path is printed instead
        assert open_report(page, lambda uri: opened.append(uri) or True, {}) is False
        assert len(opened) == 1
    assert open_report(page, lambda uri: False, {"DISPLAY": ":0"}) is False

    def broken(uri: str) -> bool:
        raise OSError("no browser")

    assert open_report(page, broken, {"BROWSER": "x"}) is False
    assert browser_available({}, "linux") is False
    assert browser_available({"DISPLAY": ":0", "CI": "true"}, "linux") is False
    assert browser_available({}, "darwin") is True
    assert browser_available({"BROWSER": "firefox"}, "linux") is True


def test_a_name_with_line_breaks_stays_on_its_row_and_a_long_one_is_cut(tmp_path: Path) -> None:
    make_run(tmp_path / "two\nlines\ttab", experiment="x")
    make_run(tmp_path / ("n" * 200), experiment="y")
    listing = list_runs(tmp_path)
    lines = render_text(listing).splitlines()
    assert len(lines) == 3  # the header and one row per run
    assert any(line.startswith("two\\nlines\\ttab ") for line in lines)
    assert any(line.startswith("n" * (runs.CELL_CHARS - 1) + "… ") for line in lines)
    assert {e.name for e in listing.runs} == {"two\nlines\ttab", "n" * 200}  # JSON keeps the name whole


def test_a_name_with_terminal_controls_keeps_the_columns_aligned(tmp_path: Path) -> None:
    # escaped when printed too, but the width must be that of the escaped text, or the row shifts
    make_run(tmp_path / "evil\x1b[31mred\x07", experiment="x")
    make_run(tmp_path / "plain", experiment="y")
    lines = render_text(list_runs(tmp_path)).splitlines()
    starts = {line.index(" x ") if " x " in line else line.index(" y ") for line in lines[1:]}
    assert len(starts) == 1 and all("\x1b" not in line for line in lines), lines
