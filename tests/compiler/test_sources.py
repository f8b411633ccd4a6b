"""Opening input files: only regular files, never a blocking open, never past the size limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expc.compiler import sources
from expc.compiler.sources import (
    NotRegularFile,
    TooLarge,
    file_kind,
    open_regular,
    read_regular,
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")


@needs_fifo
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile) as caught:
        read_regular(fifo, 100)  # an open() of a pipe without a writer would block forever
    assert caught.value.kind == "a named pipe (FIFO)"


@needs_dev_zero
def test_a_device_is_refused_before_reading():
    with pytest.raises(NotRegularFile) as caught:
        read_regular("/dev/zero", 100)
    assert caught.value.kind == "a character device"


def test_a_folder_is_refused(tmp_path: Path):
    with pytest.raises(NotRegularFile) as caught:
        open_regular(tmp_path)
    assert caught.value.kind == "a folder"


@needs_fifo
def test_a_link_to_a_pipe_is_refused_and_a_link_to_a_file_is_read(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "file").write_bytes(b"abc")
    (tmp_path / "to-pipe").symlink_to(tmp_path / "pipe")
    (tmp_path / "to-file").symlink_to(tmp_path / "file")
    with pytest.raises(NotRegularFile):
        read_regular(tmp_path / "to-pipe", 10)
    assert read_regular(tmp_path / "to-file", 10) == b"abc"


def test_a_missing_file_is_the_usual_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "nope", 10)


def test_the_limit_is_exact(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular(path, 10) == b"x" * 10
    with pytest.raises(TooLarge) as caught:
        read_regular(path, 9)
    assert caught.value.size == 10


def test_the_limit_holds_while_reading_when_the_size_lies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A file that reports a small size (or grows) is still cut at the limit plus one byte."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    class Small:
        def __init__(self, st: os.stat_result):
            self.st_mode, self.st_size = st.st_mode, 0

    monkeypatch.setattr(sources.os, "fstat", lambda fd: Small(real_fstat(fd)))
    reads: list[int] = []
    real_fdopen = os.fdopen

    def counting_fdopen(fd: int, mode: str):
        f = real_fdopen(fd, mode)
        read = f.read
        f = _Reader(f, read, reads)
        return f

    monkeypatch.setattr(sources.os, "fdopen", counting_fdopen)
    with pytest.raises(TooLarge) as caught:
        read_regular(path, 100)
    assert caught.value.size is None
    assert reads == [101]  # one read of limit + 1 bytes, never the whole file


class _Reader:
    """A file object that records how many bytes each read asked for."""

    def __init__(self, f, read, reads: list[int]):
        self._f, self._read, self._reads = f, read, reads

    def read(self, n: int = -1) -> bytes:
        self._reads.append(n)
        return self._read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def test_file_kind_names_each_kind():
    import stat

    assert file_kind(stat.S_IFREG) is None
    assert file_kind(stat.S_IFDIR) == "a folder"
    assert file_kind(stat.S_IFIFO) == "a named pipe (FIFO)"
    assert file_kind(stat.S_IFCHR) == "a character device"
    assert file_kind(stat.S_IFBLK) == "a block device"
    assert file_kind(stat.S_IFSOCK) == "a socket"
