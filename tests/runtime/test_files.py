"""expc.runtime.files: atomic writes that never replace a device, never follow a planted link, keep the umask."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from expc.runtime import files
from expc.runtime.files import OutputError, atomic_path, temp_owner, write_atomic


def device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device like /dev/full (minor 7) or /dev/null (minor 3): made in tmp_path as root.

    As root the test must not risk the real node (the old writer replaced it);
    without root the real one is used, which no write can replace.
    """
    if os.geteuid() != 0:
        return Path(f"/dev/{name}")
    path = tmp_path / name
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return path


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_users_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "plan.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "plan.json").st_mode) == mode


def test_a_file_is_replaced_whole_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old")
    write_atomic(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert os.listdir(tmp_path) == ["report.md"]


def test_a_full_device_is_one_error_naming_it_and_is_never_replaced(tmp_path: Path) -> None:
    full = device(tmp_path, "full", 7)
    with pytest.raises(OutputError, match="No space left on device") as caught:
        write_atomic(full, "x" * 100_000)
    assert str(caught.value).startswith(f"{full}: cannot write")
    assert "\n" not in str(caught.value)
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_null_device_is_written_to_and_stays_a_device(tmp_path: Path) -> None:
    null = device(tmp_path, "null", 3)
    write_atomic(null, "anything\n")
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert not [n for n in os.listdir(null.parent) if n.endswith(".tmp")]


def test_a_fifo_with_a_reader_receives_the_text_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        for _ in range(200):  # the writer refuses a FIFO nobody reads: wait for the reader to open it
            try:
                write_atomic(fifo, "hello\n")
                break
            except OutputError:
                threading.Event().wait(0.01)
    finally:
        reader.join(10)
    assert received == [b"hello\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_nobody_reads_is_refused_instead_of_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="no process is reading"):
        write_atomic(fifo, "hello\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_link_to_a_file_is_refused_and_neither_it_nor_its_target_changes(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    link = tmp_path / "plan.json"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        write_atomic(link, "{}")
    assert link.is_symlink() and target.read_text() == "precious"


def test_a_link_to_a_device_is_written_through(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(device(tmp_path, "null", 3))
    write_atomic(link, "x")
    assert link.is_symlink()


@pytest.mark.parametrize("parents", [False, True])
def test_a_path_under_a_regular_file_names_the_file_in_the_way(tmp_path: Path, parents: bool) -> None:
    (tmp_path / "notes").write_text("a file")
    with pytest.raises(OutputError, match=r"notes is a file, not a folder") as caught:
        write_atomic(tmp_path / "notes" / "sub" / "plan.json", "{}", parents=parents)
    assert str(caught.value).startswith(str(tmp_path / "notes" / "sub" / "plan.json"))


@pytest.mark.parametrize("path", ["/proc/expc-plan.json", "/proc/sys/kernel/hostname", "/sys/expc.json"])
def test_proc_and_sys_are_refused_with_one_line(path: str) -> None:
    before = Path("/proc/sys/kernel/hostname").read_text()
    with pytest.raises(OutputError, match=r"is in /(proc|sys), which holds kernel settings"):
        write_atomic(Path(path), "x")
    assert Path("/proc/sys/kernel/hostname").read_text() == before


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="it is a folder"):
        write_atomic(tmp_path, "x")


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EROFS, "Read-only file system"),
                                         (errno.EACCES, "Permission denied")])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   code: int, words: str) -> None:
    path = tmp_path / "state.json"
    path.write_text("saved")

    def fail(*args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "write", fail)
    with pytest.raises(OutputError, match=words) as caught:
        write_atomic(path, "new")
    monkeypatch.undo()
    assert str(caught.value) == f"{path}: cannot write: {words}"
    assert path.read_text() == "saved"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_folder_that_refuses_new_files_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def read_only(path: object, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        write_atomic(tmp_path / "report.html", "x")


def test_atomic_path_removes_its_temporary_file_when_the_writer_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "events.parquet") as tmp:
            tmp.write_text("half")
            raise RuntimeError("COPY failed")
    assert os.listdir(tmp_path) == []


def test_temporary_names_say_which_file_they_stand_for(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "report.md") as tmp:
        assert temp_owner(tmp.name) == "report.md"
    assert temp_owner(".report.md.a1b2c3d4.tmp") == "report.md"
    assert temp_owner(".look-002.json.ab_cd123.tmp") == "look-002.json"  # tempfile.mkstemp's names too
    assert temp_owner("report.md") is None and temp_owner(".notes.tmp") is None
