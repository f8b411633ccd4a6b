"""Write a run's reports (report.json, report.md, report.html) into its directory, atomically.

The only I/O of the report package. Each file is written to a temporary file in
the same directory and moved into place with :func:`os.replace`, so a reader (or
a run killed half-way) never sees a half-written report: there is either the old
file or the new one. A report that cannot be written (disk full, read-only
folder, a link planted at its name) raises
:class:`~expc.runtime.files.OutputError` naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..files import output_error, write_atomic
from .html import render_html
from .markdown import render_markdown

__all__ = ["render_all", "report_json", "report_paths"]

_FILES = {"report_json": "report.json", "report_md": "report.md", "report_html": "report.html"}


def report_paths(directory: Path) -> dict[str, Path]:
    """Where :func:`render_all` writes the reports in ``directory``, by key (a report's ``outputs``)."""
    return {key: Path(directory) / name for key, name in _FILES.items()}


def report_json(report: dict[str, Any]) -> str:
    """report.json's text: two-space indent, no NaN or infinity (they must already be ``null``)."""
    return json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def render_all(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Render the three reports and write them into ``directory``; returns their paths by key.

    Keys: ``report_json``, ``report_md``, ``report_html``. Everything is rendered
    before anything is written, so a rendering error leaves the previous reports
    untouched. Raises ``ValueError`` when the report holds NaN or infinity, and
    :class:`~expc.runtime.files.OutputError` when a file cannot be written.
    """
    paths = report_paths(directory)
    texts = {"report_json": report_json(report), "report_md": render_markdown(report),
             "report_html": render_html(report)}
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(paths["report_json"], exc) from None
    for key, text in texts.items():
        write_atomic(paths[key], text)
    return paths
