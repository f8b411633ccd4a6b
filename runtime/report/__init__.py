"""Reports of a run or an analysis: report.json, report.md, report.html and the terminal summary.

The input is a report dict (its shape is documented in docs/reports.md).
:func:`render_all` writes the three files atomically; :mod:`.markdown`,
:mod:`.html` and :mod:`.terminal` render without I/O; :mod:`.plots` draws the
figures (matplotlib is imported only when a figure is drawn).
"""

from .write import render_all, report_paths

__all__ = ["render_all", "report_paths"]
