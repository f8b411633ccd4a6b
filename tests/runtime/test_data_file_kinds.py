"""Units files that are not files: refused with one line before a byte is read.

Exposures and events go through the same check (tests/cli/test_terminal_output.py runs `expc analyze` on a pipe).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expc.runtime.tables import DataError, read_units

TYPES = {"user_id": "string", "country": "string"}


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    path = tmp_path / "units.csv"
    os.mkfifo(path)
    return path


def test_a_named_pipe_is_refused_without_blocking(fifo: Path):
    with pytest.raises(DataError) as caught:
        read_units(fifo, TYPES, "user_id")  # was: open() waited for a writer forever
    message = str(caught.value)
    assert message == f"{fifo}: is a named pipe (FIFO), not a data file; give the path of a regular file"
    assert caught.value.path == str(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_is_refused(tmp_path: Path):
    link = tmp_path / "units.csv"
    link.symlink_to("/dev/zero")  # the extension is right, the file is endless
    with pytest.raises(DataError, match="is a character device, not a data file"):
        read_units(link, TYPES, "user_id")


def test_a_folder_is_refused(tmp_path: Path):
    folder = tmp_path / "units.csv"
    folder.mkdir()
    with pytest.raises(DataError, match="is a folder, not a data file"):
        read_units(folder, TYPES, "user_id")

