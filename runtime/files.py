"""Writing files so that a reader, or a run killed half-way, never sees half of one.

Every file expc writes for a person or a later run (plans, reports, run state,
generated content) goes through :func:`write_atomic`: the text lands in a
temporary file in the same folder and is moved into place with
:func:`os.replace`, so there is always either the old file or the new one.
Standard library only: the commands that only read specs use it too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
