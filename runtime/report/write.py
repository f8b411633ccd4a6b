"""Write a run's reports (report.json, report.md, report.html) into its directory, atomically.

The only I/O of the report package. Each file is written to a temporary file in
the same directory and moved into place with :func:`os.replace`, so a reader (or
a run killed half-way) never sees a half-written report: there is either the old
file or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..files import write_atomic
from .html import render_html
from .markdown import render_markdown

__all__ = ["render_all", "report_json"]


def report_json(report: dict[str, Any]) -> str:
    """report.json's text: two-space indent, no NaN or infinity (they must already be ``null``)."""
    return json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def render_all(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Render the three reports and write them into ``directory``; returns their paths by key.

    Keys: ``report_json``, ``report_md``, ``report_html``. Everything is rendered
    before anything is written, so a rendering error leaves the previous reports
    untouched. Raises ``ValueError`` when the report holds NaN or infinity.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "report_json": ("report.json", report_json(report)),
        "report_md": ("report.md", render_markdown(report)),
        "report_html": ("report.html", render_html(report)),
    }
    paths = {}
    for key, (name, text) in texts.items():
        path = directory / name
        write_atomic(path, text)
        paths[key] = path
    return paths
