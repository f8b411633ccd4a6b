"""The summary printed by ``expc run`` and ``expc analyze``: the report's rows (:mod:`.rows`) on a terminal.

:func:`summary_text` lays them out as plain text (for pipes, files and CI
logs: no colour, no box characters), :func:`summary_renderable` as a rich
panel and tables for a terminal; :func:`print_summary` picks one by whether
the stream is a TTY. From the top: the title (SIMULATED first for a simulated
run), the decision and its reasons, the analysis, one table per metric (the
same rows and words as report.md and report.html), the guardrail rule, the
sample ratio, the exclusions, the generation costs and the reports' paths.
A metric broken down by segment (``analysis.segments``) is followed by a
compact table per attribute (a row per treatment and segment value, the copy
a segment was shown cut to :data:`COPY_CHARS`) and the heterogeneity
sentences.

Every string passes through :func:`.format.visible` before it is printed:
ids, reasons and paths come from specs, data files and providers, and a
control character, an ANSI or OSC escape sequence or a bidi control in them is
shown as an escape (``\\x1b``), never sent to the terminal. Rich's markup is
never parsed (every cell is a :class:`rich.text.Text`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

from .format import cut, visible
from .rows import Figure, MetricTable, ReportRows, SegmentTable, build

__all__ = ["print_summary", "summary_renderable", "summary_text"]

_LABELS = {"report_html": "html", "report_md": "markdown", "report_json": "json"}
_TONE_STYLE = {"good": "green", "bad": "red"}
_DECISION_COLOUR = {"ship": "green", "rollback": "red", "neutral": "bright_black"}
COPY_CHARS = 48  # the copy a segment was shown, in a terminal's segment table


def _paths(paths: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(visible(_LABELS.get(k, k)), visible(v)) for k, v in (paths or {}).items() if v]


def _numeric(i: int) -> bool:
    """Columns 1 to 5 of a metric table are numbers (right-aligned); the variant and result are words."""
    return 1 <= i <= 5


def _tail(rows: ReportRows) -> list[str]:
    lines = list(rows.guardrail_lines)
    lines += [rows.srm.line] if rows.srm else []
    lines += [rows.excluded] if rows.excluded else []
    lines += [rows.generation.line] if rows.generation else []
    return lines


def _plain_table(table: MetricTable) -> list[str]:
    return _grid([list(table.headers)] + [list(r.cells()) for r in table.rows],
                  [_numeric(i) for i in range(len(table.headers))])


def _grid(cells: list[list[str]], numeric: list[bool]) -> list[str]:
    """A header line, a line of dashes and the rows, columns two spaces apart (numbers right-aligned)."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(cells[0]).rstrip(), "  ".join("-" * w for w in widths), *(line(r).rstrip() for r in cells[1:])]


def _segment_cells(seg: SegmentTable) -> list[list[str]]:
    """The segment table's header and rows, the copy columns cut to :data:`COPY_CHARS`."""
    rows = [list(seg.headers)] + [list(r.cells()) for r in seg.rows]
    return [[cut(c, COPY_CHARS) if i in seg.copy_columns else c for i, c in enumerate(row)] for row in rows]


def _plain_segments(seg: SegmentTable) -> list[str]:
    lines = ["", seg.title]
    if seg.rows:
        lines += _grid(_segment_cells(seg), list(seg.numeric)) + [""]
    return lines + list(seg.notes) + list(seg.sentences)


def summary_text(report: dict[str, Any], paths: Mapping[str, Any] | None = None) -> str:
    """The summary as plain text (no colour, no box drawing): for pipes, files and CI logs."""
    rows = build(report)
    d = rows.decision
    lines = [rows.title, f"decision: {d.headline} ({d.summary})"]
    lines += [f"  - {r}" for r in d.reasons]
    lines += [rows.simulated_note] if rows.simulated else []
    lines.append(" · ".join(rows.context))
    for table in rows.metrics:
        lines += ["", f"{table.id} · {table.heading}", *_plain_table(table)]
        lines += [""] + list(table.notes) if table.notes else []
        for seg in table.segments:
            lines += _plain_segments(seg)
    tail = _tail(rows)
    lines += [""] + tail if tail else []
    ps = _paths(paths)
    if ps:
        lines += ["", "reports:"] + [f"  {label:<8}  {path}" for label, path in ps]
    return "\n".join(visible(line, lines=True) for line in lines) + "\n"


def summary_renderable(report: dict[str, Any], paths: Mapping[str, Any] | None = None) -> Any:
    """The summary as a rich renderable: a panel coloured by the decision, a table per metric, the paths."""
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    rows = build(report)
    d = rows.decision
    colour = _DECISION_COLOUR[d.tone]
    body = Text()
    if rows.simulated:
        body.append("SIMULATED", style="bold black on yellow")
        body.append("  " + rows.simulated_note.removeprefix("SIMULATED: ") + "\n", style="yellow")
    body.append(d.headline, style=f"bold {colour}")
    body.append(f"  {d.summary}", style="dim")
    for r in d.reasons:
        body.append(f"\n• {r}")
    parts: list[Any] = [Panel(body, title=Text(rows.title), title_align="left", border_style=colour, expand=False),
                        Text(" · ".join(rows.context), style="dim")]
    def figure(f: Figure | None) -> Text:  # the interval under the number, as in report.html
        if f is None:
            return Text("")
        return Text(f.value) if f.interval is None else Text.assemble(f.value, "\n", (f.interval, "dim"))

    for metric in rows.metrics:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold",
                      title=Text(f"{metric.id} · {metric.heading}", style="bold"), title_justify="left")
        for i, h in enumerate(metric.headers):
            table.add_column(Text(h.replace(" [", "\n[")), justify="right" if _numeric(i) else "left",
                             no_wrap=i == 0)
        for row in metric.rows:
            result = Text(row.result, style=_TONE_STYLE.get(row.tone, ""))
            table.add_row(Text(row.variant), Text(row.units), figure(row.estimate), figure(row.abs_lift),
                          figure(row.rel_lift), Text(row.score), result)
        parts += [Text(""), table]
        parts += [Text(note, style="dim") for note in metric.notes]
        for seg in metric.segments:
            parts += _rich_segments(seg)
    parts.append(Text(""))
    for line in _tail(rows):
        flagged = rows.srm is not None and rows.srm.flagged and line == rows.srm.line
        parts.append(Text(line, style="red" if flagged else ""))
    ps = _paths(paths)
    if ps:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for label, path in ps:
            grid.add_row(Text(label), Text(path, style="cyan"))
        parts += [Text(""), Text("reports", style="bold"), grid]
    return Group(*parts)


def _rich_segments(seg: SegmentTable) -> list[Any]:
    """A metric by one attribute on a terminal: a compact table, then the heterogeneity sentences."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text("")]
    if seg.rows:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold",
                      title=Text(seg.title, style="bold"), title_justify="left")
        for i, h in enumerate(seg.headers):
            table.add_column(Text(h.replace(" [", "\n[")), justify="right" if seg.numeric[i] else "left",
                             overflow="fold")
        for row, cells in zip(seg.rows, _segment_cells(seg)[1:]):
            table.add_row(*(Text(c, style=_TONE_STYLE.get(row.tone, "") if i == 6 else "")
                            for i, c in enumerate(cells)))
        parts.append(table)
    else:
        parts.append(Text(seg.title, style="bold"))
    parts += [Text(note, style="dim") for note in seg.notes]
    parts += [Text(s, style="yellow" if differs else "dim") for s, differs in zip(seg.sentences, seg.differs)]
    return parts


def print_summary(report: dict[str, Any], paths: Mapping[str, Any] | None = None, file: IO[str] | None = None,
                  force_rich: bool | None = None) -> None:
    """Print the summary: rich on a terminal, plain text otherwise (``force_rich`` overrides the check)."""
    file = file if file is not None else sys.stdout
    rich = force_rich if force_rich is not None else bool(getattr(file, "isatty", lambda: False)())
    if not rich:
        file.write(summary_text(report, paths))
        return
    from rich.console import Console

    Console(file=file, force_terminal=True, highlight=False, soft_wrap=False, markup=False, emoji=False).print(
        summary_renderable(report, {k: str(v) for k, v in (paths or {}).items() if v}))
