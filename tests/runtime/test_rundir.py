"""expc.runtime.rundir: a run touches only its own files in its own folder, one run at a time."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import plan_of_text, static_run_spec

from expc.runtime import files, rundir
from expc.runtime.files import OutputError
from expc.runtime.generate.runner import GenerateOptions
from expc.runtime.run import RunOptions, execute
from expc.runtime.rundir import LOCK_NAME, RUN_FILES, RunError, default_run_dir, open_run_dir, release_run_dir


def plan_named(run_id: str) -> Any:
    """A stand-in for a plan: the run directory reads only its experiment id and writes its JSON form."""
    return SimpleNamespace(experiment=SimpleNamespace(id=run_id),
                           to_dict=lambda: {"experiment": {"id": run_id}, "spec_sha256": "abc"})


PLAN = plan_named("welcome")


def identity(seed: int = 1) -> dict:
    return {"state_version": rundir.STATE_VERSION, "spec_sha256": "abc", "experiment": "welcome",
            "simulated": True, "seed": seed, "inputs": {}}


def opened(run_dir: Path, fresh: bool = False, seed: int = 1) -> bool:
    """Open the run directory as a run does, and release it at once."""
    try:
        return open_run_dir(PLAN, run_dir, identity(seed), fresh=fresh)
    finally:
        release_run_dir(run_dir)


def a_run(tmp_path: Path) -> Path:
    """A run directory with every file a run writes (their content does not matter here)."""
    run_dir = tmp_path / "run"
    opened(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).exists():
            (run_dir / name).write_text("x")
    (run_dir / "content.sqlite").write_text("store")
    (run_dir / "looks" / "look-001.json").write_text("{}")
    return run_dir


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- --fresh and folders that are not runs


def test_fresh_on_a_folder_that_is_not_a_run_deletes_nothing(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "report.md").write_text("my own report")
    before = listing(mine)
    with pytest.raises(RunError, match="not an expc run directory.*nothing was changed") as caught:
        opened(mine, fresh=True)
    assert caught.value.exit_code == 1
    assert listing(mine) == before and (mine / "report.md").read_text() == "my own report"


def test_a_state_file_that_is_not_a_runs_is_not_a_run(tmp_path: Path) -> None:
    other = tmp_path / "app"
    other.mkdir()
    (other / "state.json").write_text('{"window": [0, 0, 800, 600]}')
    (other / "plan.json").write_text("{}")
    with pytest.raises(RunError, match="state.json is not the state of an expc run"):
        opened(other, fresh=True)
    assert listing(other) == ["plan.json", "state.json"]


def test_fresh_deletes_only_the_runs_own_files_and_keeps_the_store(tmp_path: Path) -> None:
    run_dir = a_run(tmp_path)
    (run_dir / "notes.txt").write_text("the user's")
    (run_dir / "looks" / "chart.png").write_text("the user's")
    (run_dir / "drafts").mkdir()
    assert opened(run_dir, fresh=True, seed=2) is False
    assert listing(run_dir) == [LOCK_NAME, "content.sqlite", "drafts", "looks", "looks/chart.png", "notes.txt",
                                "plan.json", "state.json"]
    assert json.loads((run_dir / "state.json").read_text())["identity"]["seed"] == 2


def test_a_folder_with_only_a_content_store_is_used(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "content.sqlite").write_text("made by expc generate")
    assert opened(run_dir) is False
    assert (run_dir / "state.json").is_file()


def test_another_run_is_refused_and_a_same_one_resumed(tmp_path: Path) -> None:
    run_dir = a_run(tmp_path)
    assert opened(run_dir) is True
    with pytest.raises(RunError, match="another --seed") as caught:
        opened(run_dir, seed=9)
    assert caught.value.exit_code == 1


# ---------------------------------------------------------------- links planted in a run directory


@pytest.mark.parametrize("name", ["looks", "content.sqlite", "report.html", "state.json", "plan.json",
                                  "assignments.parquet", "looks/look-001.json", LOCK_NAME])
def test_a_planted_link_is_refused_and_nothing_is_written_through_it(tmp_path: Path, name: str) -> None:
    run_dir = a_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    planted = run_dir / name
    if planted.is_dir():
        for child in planted.iterdir():
            child.unlink()
        planted.rmdir()
        planted.symlink_to(outside, target_is_directory=True)
    else:
        planted.unlink()
        planted.symlink_to(outside / "victim")
    with pytest.raises(RunError, match="is a symbolic link.*neither writes through it nor removes it") as caught:
        opened(run_dir, fresh=True)
    assert caught.value.exit_code == 1
    assert planted.is_symlink()
    assert listing(outside) == ["victim"] and (outside / "victim").read_text() == "precious"


def test_a_run_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    with pytest.raises(RunError, match="is a symbolic link"):
        opened(tmp_path / "run")
    assert list(real.iterdir()) == []


def test_the_default_location_is_never_reached_through_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".expc").symlink_to(elsewhere, target_is_directory=True)  # as a pull request could commit it
    monkeypatch.chdir(checkout)
    with pytest.raises(RunError, match=r"\.expc: is a symbolic link") as caught:
        default_run_dir(PLAN)
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("bad", ["../../../somewhere", "/etc", "..", "a/b", ".hidden", "", "x" * 200])
def test_an_experiment_id_that_is_not_a_plain_name_names_no_folder(bad: str) -> None:
    with pytest.raises(RunError, match="not a plain name") as caught:
        default_run_dir(plan_named(bad))
    assert caught.value.exit_code == 1


def test_a_plain_id_names_its_folder_under_expc_runs() -> None:
    assert default_run_dir(plan_named("welcome-email.v2")) == Path(".expc/runs/welcome-email.v2")


# ---------------------------------------------------------------- one run at a time


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    open_run_dir(PLAN, run_dir, identity())
    try:
        errors: list[BaseException] = []

        def second() -> None:
            try:
                opened(run_dir)
            except BaseException as exc:  # handed to the test
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], RunError)
        assert errors[0].exit_code == 3 and "another expc run is using" in str(errors[0])
    finally:
        release_run_dir(run_dir)
    assert opened(run_dir) is True  # released: the next run resumes


def test_a_run_held_by_another_process_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    opened(run_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                                "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"),
         str(run_dir / LOCK_NAME)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match="another expc run is using this run directory"):
            opened(run_dir)
    finally:
        holder.kill()
        holder.wait()
    assert opened(run_dir) is True


# ---------------------------------------------------------------- what a killed run leaves


def test_temporary_files_of_a_killed_run_are_removed_on_resume_and_nothing_else(tmp_path: Path) -> None:
    run_dir = a_run(tmp_path)
    ours = [run_dir / ".report.md.1a2b3c4d.tmp", run_dir / ".assignments.parquet.k2_9xq0a.tmp",
            run_dir / "looks" / ".look-002.json.00ff00ff.tmp"]
    theirs = [run_dir / ".notes.txt.1a2b3c4d.tmp", run_dir / "draft.tmp", run_dir / "looks" / ".chart.1a2b3c4d.tmp"]
    for path in ours + theirs:
        path.write_text("half")
    assert opened(run_dir) is True
    assert [p.exists() for p in ours] == [False] * len(ours)
    assert [p.exists() for p in theirs] == [True] * len(theirs)


# ---------------------------------------------------------------- write errors, with the run's state kept

SPEC = static_run_spec("rundir-run", 2, 50)


def test_a_full_disk_while_writing_the_reports_keeps_the_state_and_the_run_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of_text(SPEC)
    options = RunOptions(run_dir=tmp_path / "run", generation=GenerateOptions(offline=True))
    real_open = os.open

    def full_for_reports(path: object, flags: int, *args: object) -> int:
        if ".report." in os.fspath(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", full_for_reports)
    with pytest.raises(OutputError, match=r"report\.json: cannot write: No space left on device"):
        execute(plan, options)
    monkeypatch.undo()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert {"assignments", "outcomes"} <= set(state["done"])
    assert not (tmp_path / "run" / "report.json").exists()
    result = execute(plan, options)
    assert result.resumed and (tmp_path / "run" / "report.html").is_file()


def test_a_read_only_run_directory_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    opened(run_dir)
    real_open = os.open

    def read_only(path: object, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputError, match="Read-only file system") as caught:
        opened(run_dir)
    assert str(run_dir) in str(caught.value)


def test_a_run_directory_under_a_regular_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("a file")
    with pytest.raises(OutputError, match=r"notes is a file, not a folder"):
        opened(tmp_path / "notes" / "run")


@pytest.mark.parametrize("place", ["/proc/expc-run", "/sys/expc-run"])
def test_a_run_directory_in_proc_or_sys_is_refused(place: str) -> None:
    with pytest.raises(RunError, match=r"is in /(proc|sys)") as caught:
        opened(Path(place))
    assert caught.value.exit_code == 1
