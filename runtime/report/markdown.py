"""report.md: the report's rows (:mod:`.rows`) as Markdown that fits a pull-request comment.

:func:`render_markdown` is pure (report dict in, text out). Order: a heading
with the decision (its first line says SIMULATED for a simulated run), the
reasons, the analysis, one table per metric (guardrails last, with the rule
that judged them) each followed by a table per segment attribute with its
heterogeneity sentences (a flagged one in bold), the sample ratio, the
generation costs, then collapsed ``<details>`` blocks for the generation
failures, the per-look history and the content samples. The words and
numbers are those of the terminal summary and report.html; a tone shows as
✅ / ❌ before a result.

Every string is untrusted (LLM output, spec text, data): it is HTML-escaped
and Markdown-escaped (``@`` and ``#`` too, so that a sample cannot mention a
person or link an issue), newlines are flattened and control characters shown
as escapes (``expc analyze --format md`` prints to a terminal). The output
stays under :data:`MAX_CHARS` (GitHub refuses comments over 65,536
characters): long samples and failures are cut, and when still too long the
collapsed blocks are dropped, last first, then the segment tables (their
sentences stay), with a note that says so.

The last line is a hidden marker, ``<!-- expc-report: <experiment id> -->``
(:func:`report_marker`), that a CI job finds to update one sticky comment per
experiment instead of posting a new one each run. The footer of a run's report
links report.html and report.json relatively: report.md sits beside them in the
run directory, so the links work in a repository view.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from .format import NULL, visible
from .rows import MetricTable, ReportRows, SegmentTable, Table, build

__all__ = ["MARKER_PREFIX", "MAX_CHARS", "md_text", "render_markdown", "report_marker"]

MAX_CHARS = 60_000
SAMPLES_PER_VARIANT = 5
SAMPLE_CHARS = 280
KEY_CHARS = 80
REASON_CHARS = 200
MAX_FAILURES = 20

TONE_MARK = {"good": "✅ ", "bad": "❌ "}
_DECISION_MARK = {"ship": "🟢", "rollback": "🔴", "neutral": "⚪"}
MARKER_PREFIX = "<!-- expc-report:"
_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"} | {"@": "&#64;", "#": "&#35;"})


def md_text(value: Any, limit: int | None = None) -> str:
    """Untrusted text made inert in Markdown: one line, controls visible, HTML and Markdown escaped, optionally cut."""
    s = visible(value)
    if limit is not None and len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return html.escape(s, quote=False).translate(_MD_SPECIAL)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> list[str]:
    """A Markdown table; cells are already escaped."""
    align = ["---:" if n else "---" for n in numeric]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    return out + ["| " + " | ".join(c or " " for c in r) + " |" for r in rows]


def _plain(table: Table, cut: dict[int, int] | None = None) -> list[str]:
    cut = cut or {}
    rows = [[md_text(c, cut.get(i)) or NULL for i, c in enumerate(r)] for r in table.rows]
    return _table([md_text(h) for h in table.headers], rows, table.numeric)


# ================================================================== sections


def _heading(rows: ReportRows) -> list[str]:
    d = rows.decision
    prefix = "SIMULATED · " if rows.simulated else ""
    ident = f"{md_text(rows.experiment_id)}: " if rows.experiment_id else ""
    lines = [f"## {prefix}{ident}{_DECISION_MARK[d.tone]} {md_text(d.headline)}", ""]
    facts = [f"**Decision:** {md_text(d.summary)}"] + ([md_text(rows.where)] if rows.where else [])
    lines.append(" · ".join(facts))
    if d.reasons:
        lines += [""] + [f"- {md_text(r)}" for r in d.reasons]
    lines.append("")
    if rows.simulated:
        lines += [f"> **{md_text(rows.simulated_note)}**", ""]
    if rows.name or rows.hypothesis:
        name = f"**{md_text(rows.name)}**" if rows.name else ""
        lines.append(" — ".join(x for x in (name, md_text(rows.hypothesis)) if x))
    lines += ["_" + md_text(" · ".join(rows.context)) + "_", ""]
    return lines


def _segments(seg: SegmentTable, with_table: bool) -> list[str]:
    """One metric by one attribute: the heterogeneity sentences and, unless left out for size, the table."""
    lines = [f"##### {md_text(seg.title)}", ""]
    for sentence, differs in zip(seg.sentences, seg.differs):
        lines += [f"**{md_text(sentence)}**" if differs else md_text(sentence), ""]
    if not with_table or not seg.rows:
        return lines
    body = []
    for r in seg.rows:
        cells = [md_text(c) for c in r.cells()]
        cells[6] = TONE_MARK.get(r.tone, "") + cells[6]
        body.append(cells)
    lines += _table([md_text(h) for h in seg.headers], body, seg.numeric)
    if seg.notes:
        lines += [""] + [f"- {md_text(n)}" for n in seg.notes]
    return lines + [""]


def _metric(table: MetricTable, segment_tables: bool = True) -> list[str]:
    body = []
    for r in table.rows:
        cells = [md_text(c) for c in r.cells()]
        cells[-1] = TONE_MARK.get(r.tone, "") + cells[-1] if cells[-1] else cells[-1]
        body.append(cells)
    lines = [f"#### {md_text(table.id)} · {md_text(table.heading)}", ""]
    lines += _table([md_text(h) for h in table.headers], body, [False] + [True] * 5 + [False])
    if table.notes:
        lines += [""] + [f"- {md_text(n)}" for n in table.notes]
    lines.append("")
    for seg in table.segments:
        lines += _segments(seg, segment_tables)
    return lines


def _metrics(rows: ReportRows, segment_tables: bool = True) -> list[str]:
    main = [t for t in rows.metrics if t.role != "guardrail"]
    guards = [t for t in rows.metrics if t.role == "guardrail"]
    lines: list[str] = []
    if main:
        lines += ["### Metrics", ""]
        for t in main:
            lines += _metric(t, segment_tables)
    if guards:
        lines += ["### Guardrails", ""]
        for t in guards:
            lines += _metric(t, segment_tables)
    for line in rows.guardrail_lines:
        lines += [md_text(line), ""]
    return lines


def _srm(rows: ReportRows) -> list[str]:
    excluded = [md_text(rows.excluded), ""] if rows.excluded else []
    if rows.srm is None:
        return excluded
    s = rows.srm
    lines = ["### Sample ratio", "", TONE_MARK["bad" if s.flagged else "good"] + md_text(s.line), ""]
    if s.table.rows:
        lines += _plain(s.table) + [""]
    return lines + excluded


def _generation(rows: ReportRows) -> list[str]:
    g = rows.generation
    if g is None:
        return []
    lines = ["### Generation", "", md_text(g.line), ""]
    if g.table is not None:
        lines += _plain(g.table) + [""]
    return lines


def _failures(rows: ReportRows) -> list[str]:
    failures = rows.generation.failure_rows if rows.generation else ()
    if not failures:
        return []
    shown = Table("", ("variant", "key", "reason"), failures[:MAX_FAILURES], (False, False, False))
    lines = [f"<details><summary>Generation failures ({len(failures)})</summary>", ""]
    lines += _plain(shown, {1: KEY_CHARS, 2: REASON_CHARS})
    if len(failures) > MAX_FAILURES:
        lines += ["", f"_{len(failures) - MAX_FAILURES} more in report.json._"]
    return lines + ["", "</details>", ""]


def _history(rows: ReportRows) -> list[str]:
    if rows.history is None:
        return []
    lines = [f"<details><summary>{md_text(rows.history.title)}</summary>", ""]
    return lines + _plain(rows.history) + ["", "</details>", ""]


def _samples(rows: ReportRows) -> list[str]:
    if not rows.samples:
        return []
    count = sum(len(g.samples) for g in rows.samples)
    body = []
    for g in rows.samples:
        for key, content in g.samples[:SAMPLES_PER_VARIANT]:
            body.append([md_text(g.variant), md_text(key, KEY_CHARS), md_text(content, SAMPLE_CHARS) or NULL])
        if len(g.samples) > SAMPLES_PER_VARIANT:
            body.append([md_text(g.variant), "…", f"_{len(g.samples) - SAMPLES_PER_VARIANT} more in report.json_"])
    lines = [f"<details><summary>Content samples ({count})</summary>", ""]
    return lines + _table(["variant", "key", "content"], body, [False] * 3) + ["", "</details>", ""]


# ================================================================== entry point


def report_marker(report: dict[str, Any]) -> str:
    """The hidden line a CI job looks for to update its sticky comment: ``<!-- expc-report: <experiment id> -->``.

    An id is a plain name (letters, digits, ``.``, ``_``, ``-``); any other
    character of a hand-edited report becomes ``_``, so the comment cannot be
    closed early or carry markup. A report without an id is marked ``unknown``.
    """
    experiment = report.get("experiment")
    ident = experiment.get("id") if isinstance(experiment, dict) else None
    safe = _MARKER_UNSAFE.sub("_", ident)[:128] if isinstance(ident, str) and ident else "unknown"
    return f"{MARKER_PREFIX} {safe} -->"



def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown for a pull-request comment (see the module docs)."""
    rows = build(report)
    extras = [_failures(rows), _history(rows), _samples(rows)]
    footer = (["<sub>Full report: [report.html](report.html) (plots) and [report.json](report.json) "
               "(every number).</sub>", ""] if report.get("outputs") else [])
    footer.append(report_marker(report))
    note: list[str] = []
    segment_tables = True
    while True:
        core = _heading(rows) + _metrics(rows, segment_tables) + _srm(rows) + _generation(rows)
        text = "\n".join(core + [line for block in extras for line in block] + note + footer) + "\n"
        if len(text) <= MAX_CHARS:
            return text
        if any(extras):
            drop = max(i for i, block in enumerate(extras) if block)  # the last non-empty block goes first
            extras[drop] = []
            note = ["_Some collapsed sections were left out to fit a comment; see report.json._", ""]
        elif segment_tables and any(t.segments for t in rows.metrics):
            segment_tables = False
            note += ["_The segment tables were left out to fit a comment; see report.html or report.json._", ""]
        else:
            return text
