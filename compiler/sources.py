"""Opening input files without trusting them: regular files only, never blocking, never past a size.

A path given to expc may name a named pipe (``open`` waits for a writer
forever), a device (``/dev/zero`` never ends, ``/dev/tty`` waits for a
keyboard), a socket or a folder. :func:`open_regular` refuses anything but a
regular file before reading a byte: it looks at the path (``stat``, following
links), opens it without blocking (``O_NONBLOCK``: a pipe swapped in after the
check cannot hang the open) and looks again at what it opened (``fstat``).
:func:`read_regular` then reads at most one byte more than its limit, so a
file that grows or lies about its size is still refused without being loaded.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotRegularFile", "TooLarge", "file_kind", "open_regular", "read_regular"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path names a folder, pipe, device or socket; ``kind`` says which ("a named pipe (FIFO)")."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(f"{os.fspath(path)} is {kind}, not a regular file")
        self.kind = kind


class TooLarge(OSError):
    """The file holds more than the limit; ``size`` is its size when known before reading."""

    def __init__(self, path: str | os.PathLike[str], limit: int, size: int | None) -> None:
        super().__init__(f"{os.fspath(path)} is larger than {limit:,} bytes")
        self.limit, self.size = limit, size


def file_kind(mode: int) -> str | None:
    """What a ``st_mode`` describes, for a message ("a folder", "a character device"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open a regular file for reading and return its descriptor (the caller closes it).

    Raises :class:`NotRegularFile` for anything else (checked before opening and
    again on what was opened), and the usual ``OSError`` (``FileNotFoundError``,
    ``PermissionError``) when it cannot be opened.
    """
    kind = file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegularFile(path, kind)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(path, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises :class:`NotRegularFile` (see :func:`open_regular`), :class:`TooLarge`
    (from its size, or after reading ``limit + 1`` bytes: nothing larger is
    ever held) or ``OSError``.
    """
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise TooLarge(path, limit, size)
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(path, limit, None)
    return raw
