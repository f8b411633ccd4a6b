"""Writing files so that a reader, or a run killed half-way, never sees half of one, and nothing else is harmed.

Every file expc writes for a person or a later run (plans, reports, run state,
generated content, data files) goes through this module:

* **Atomic.** The bytes land in a temporary file of ours in the same folder
  (``.<name>.<8 hex digits>.tmp``, see :func:`temp_owner`) and are moved into
  place with :func:`os.replace`, so there is always either the old file or the
  new one. A temporary file left by a killed process is removed by the next
  run in the same run directory.
* **Never over what is not a file.** An existing device, FIFO or terminal
  (``/dev/null``, ``/dev/stdout``, a named pipe) is written to directly and
  never replaced; a block device, a socket or a folder is refused. A FIFO that
  nobody reads is refused instead of waited on.
* **Never through a link.** A symbolic link at the target is not followed to a
  file (a checkout can hold such a link, pointing anywhere): refused with one
  line, unless it leads to a device, FIFO or terminal (``/dev/stdout``).
* **Never in /proc or /sys**, which hold kernel settings, not files.
* **The user's umask**: new files get ``0o666`` less the umask, as with any tool.

A file that cannot be written raises :class:`OutputError`: one line naming the
path and the reason (disk full, read-only file system, permission denied, a
part of the path that is a file...). Standard library only: the commands that
only read specs use it too.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from expc.compiler.errors import EXIT_INVALID, ExpcError

__all__ = ["OutputError", "atomic_path", "ensure_folder", "open_output", "output_error", "reason", "system_tree",
           "temp_owner", "write_atomic"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-z_]{8}\.tmp$")
_SYSTEM_TREES = ("/proc", "/sys")
_REASONS = {  # where the system's own words (strerror) would not say what to do
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "no such folder",
    errno.EISDIR: "it is a folder",
    errno.ENXIO: "it is a FIFO that no process is reading",
    errno.ELOOP: "it is a symbolic link",
}


class OutputError(ExpcError):
    """A file expc could not write; the message, one line for a person, names the path and why.

    Commands report it as one line and exit 1, like a data file that cannot be
    read; a run's state saved before it stays valid, and the same command resumes.
    """

    def __init__(self, message: str, path: str | os.PathLike[str]) -> None:
        super().__init__(message, EXIT_INVALID)
        self.path = str(path)


def reason(exc: OSError) -> str:
    """Why an operating-system call failed, in words (``No space left on device``)."""
    return _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)


def output_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The :class:`OutputError` for ``exc``, raised while writing ``path`` (names a file in the way of a folder)."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(Path(path))
        if blocker is not None:
            return OutputError(f"{path}: cannot write: {blocker} is a file, not a folder", path)
    return OutputError(f"{path}: cannot write: {reason(exc)}", path)


def _file_in_the_way(path: Path) -> Path | None:
    """The first part of ``path``'s folder that exists and is not a folder, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def temp_owner(name: str) -> str | None:
    """The file a temporary file of this module stands for (``.report.md.1a2b3c4d.tmp`` -> ``report.md``)."""
    match = _TEMP.match(name)
    return match.group("name") if match else None


def ensure_folder(path: str | os.PathLike[str]) -> None:
    """Create the folder that will hold ``path`` (and its parents); :class:`OutputError` when it cannot be."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None


def system_tree(path: str | os.PathLike[str]) -> str | None:
    """``/proc`` or ``/sys`` when ``path`` (as written, or its folder as resolved) is in one."""
    path = Path(path)
    places = (os.path.abspath(path), os.path.realpath(os.path.abspath(path.parent)))
    return next((tree for tree in _SYSTEM_TREES for p in places if p == tree or p.startswith(tree + "/")), None)


def _kind(path: Path) -> str:
    """``"new"``, ``"file"`` (replaced atomically) or ``"stream"`` (written to in place); refuses anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(path, exc) from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            target = os.stat(path)
        except OSError:
            target = None
        system_link = os.path.abspath(path).startswith("/dev/")  # /dev/stdout, /dev/fd/1: an open stream
        if target is not None and (_is_stream(target.st_mode) or (system_link and stat.S_ISREG(target.st_mode))):
            return "stream"
        raise OutputError(f"{path}: is a symbolic link; expc does not write through links to files "
                          "(give the path of the file itself)", path)
    if st is not None and _is_stream(st.st_mode):
        return "stream"
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: cannot write: it is a folder", path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path}: is not a regular file (a socket or block device); expc does not write to it",
                          path)
    tree = system_tree(path)
    if tree:
        raise OutputError(f"{path}: is in {tree}, which holds kernel settings, not files; write somewhere else", path)
    if st is None and os.path.abspath(path).startswith("/dev/"):
        raise OutputError(f"{path}: no such device; in /dev expc writes only to an existing device", path)
    return "file" if st is not None else "new"


def _is_stream(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _create_temp(path: Path) -> Path:
    """A new, empty temporary file of ours next to ``path`` (mode ``0o666`` less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(path, exc) from None
        return tmp
    raise OutputError(f"{path}: cannot write: no free temporary name in {path.parent}", path)


def _open_stream(path: Path) -> int:
    """Open an existing device, FIFO or terminal for writing (a FIFO nobody reads: ENXIO, not a hang)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
        fd = os.open(path, flags | (os.O_NONBLOCK if fifo else 0))
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        if fifo:
            os.set_blocking(fd, True)
    except OSError as exc:
        os.close(fd)
        raise output_error(path, exc) from None
    return fd


def _write_stream(path: Path, data: bytes) -> None:
    """Write ``data`` into an existing device, FIFO or terminal (never replacing it)."""
    fd = _open_stream(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file to fill in place of ``path``; on success it becomes ``path``, on failure it goes.

    For a regular (or new) ``path`` the temporary file is next to it and is
    moved over it with :func:`os.replace`. For a device, FIFO or terminal it
    is a private file whose bytes are then written into ``path``, which is
    never replaced. Raises :class:`OutputError` when ``path`` cannot be written
    (an ``OSError`` raised by the caller's writing counts as such).
    """
    path = Path(path)
    kind = _kind(path)
    if kind == "stream":
        fd, name = tempfile.mkstemp(prefix="expc-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            _write_stream(path, tmp.read_bytes())
        except OSError as exc:
            raise output_error(path, exc) from None
        finally:
            tmp.unlink(missing_ok=True)
        return
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: there was no temporary file to remove


@contextmanager
def open_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s bytes into piece by piece, under this module's rules.

    A regular (or new) ``path`` gets a temporary file next to it, which
    replaces it only when the block ends without an exception (otherwise it
    goes): the file appears complete or not at all. A device, FIFO or terminal
    is opened and written into as the bytes come, never replaced. Raises
    :class:`OutputError` when ``path`` cannot be written.
    """
    path = Path(path)
    if _kind(path) == "stream":
        try:
            with os.fdopen(_open_stream(path), "wb") as stream:
                yield stream
        except OSError as exc:
            raise output_error(path, exc) from None
        return
    with atomic_path(path) as tmp:  # an OSError in the block becomes an OutputError there
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike[str], text: str, *, parents: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that it appears complete or not at all.

    ``parents=True`` creates the folders above ``path`` first. A device, FIFO
    or terminal is written to, never replaced (see the module's rules).
    Raises :class:`OutputError`, naming ``path``, when it cannot be written.
    """
    path = Path(path)
    if parents:
        ensure_folder(path)
    data = text.encode("utf-8")
    if _kind(path) == "stream":
        _write_stream(path, data)
        return
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

