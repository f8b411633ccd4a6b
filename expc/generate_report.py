"""What ``expc generate`` shows a person: a table per variant after its progress bar, or a review sheet.

The table is the generation table of the run's reports
(:func:`expc.runtime.report.rows.generation_table`): the same columns and
number formats, variant ids escaped, every cell plain text (no rich markup).

The review sheet (``--format md`` for a pull-request comment, ``--format
html`` for a page) shows every variant's copy (per segment; for copy written
per unit, a sample of :data:`UNIT_SAMPLE` units by id), its check verdict,
model, cost and content hash (what ``expc approve`` records). Personal values
are redacted from the copy shown (the hash is of the copy as generated);
everything rendered is escaped, so a copy can inject no link, HTML, heading or
table break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expc.runtime.report.format import cut, fmt_money
from expc.runtime.report.rows import UNKNOWN_PRICE, deployment_line, generation_table

if TYPE_CHECKING:
    from expc.compiler.plan import Plan


def variant_table(rows: list[dict[str, Any]], spent: float, deployments: list[dict[str, Any]] | None = None) -> None:
    """Print the per-variant summary: items, calls made, store hits, failures, tokens, cost (and per deployment)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    shared = generation_table(rows)
    table = Table(title=None, show_edge=False, pad_edge=False)
    for name, numeric in zip(shared.headers, shared.numeric):
        table.add_column(name, justify="right" if numeric else "left")
    for cells in shared.rows:
        table.add_row(*(Text(c) for c in cells))
    console = Console(stderr=True, highlight=False, markup=False, emoji=False)
    console.print(table)
    console.print(Text(f"spent in this run: {fmt_money(spent)}"))
    if deployments and deployment_line(deployments):
        console.print(Text(deployment_line(deployments).strip()))
    if any(not row.get("cost_known", True) for row in rows):
        console.print(UNKNOWN_PRICE)


# ====================================================================== the review sheet (--format md|html)

SHEET_MARKER = "<!-- expc-review: {id} -->"  # the last line: a CI job finds and updates its one comment by it
MAX_ROWS_PER_VARIANT = 50  # segments shown per variant (the rest counted)
UNIT_SAMPLE = 10  # units shown per variant written per unit (identified by id)
COPY_CHARS = 1_000  # copy shown per item (the hash covers all of it)
REASON_CHARS = 200
MAX_SHEET_CHARS = 60_000  # GitHub refuses comments over 65,536 characters

_VERDICTS = {"ok": "passed", "static": "static (no checks)", "failed": "failed", "skipped": "skipped",
             "use_control": "failed: shows the control's copy"}


@dataclass(frozen=True)
class _Row:
    scope: str
    copy: str | None
    verdict: str
    model: str | None
    cost: float
    sha256: str | None


@dataclass(frozen=True)
class _Section:
    variant: str
    per: str
    items: int
    cost: float
    models: tuple[str, ...]
    rows: tuple[_Row, ...]
    hidden: int  # items not shown (the sample's bound)


def _scope_label(key: Any) -> str:
    if key is None:
        return "everyone"
    if isinstance(key, dict):
        return ", ".join(f"{k}={'[' + ', '.join(map(str, v)) + ']' if isinstance(v, list) else v}"
                         for k, v in key.items())
    return f"unit {key}"


def _sections(plan: Plan, items: list[Any]) -> list[_Section]:
    """Per variant, in the plan's order: its totals and the rows shown (bounded; personal values redacted)."""
    from expc.runtime.approvals import content_sha256
    from expc.runtime.generate.personal import redact

    out = []
    for variant in plan.variants:
        mine = [i for i in items if i.variant == variant.id]
        if not mine:
            continue
        per = "static" if variant.prompt is None else (variant.generate.per if variant.generate else "once")
        shown = mine[:UNIT_SAMPLE] if per == "unit" else mine[:MAX_ROWS_PER_VARIANT]
        rows = []
        for item in shown:
            verdict = _VERDICTS.get(item.status, item.status)
            if getattr(item, "score", None) is not None:  # a judge's score (a prompt with a `judge` check)
                verdict += f" (judge {item.score:.2f})"
            if item.reason:
                verdict += f": {cut(item.reason, REASON_CHARS)}"
            copy = redact(item.content, item.personal)
            rows.append(_Row(_scope_label(item.key), None if copy is None else cut(copy, COPY_CHARS), verdict,
                             item.model, item.cost,
                             None if item.content is None else content_sha256(item.content)))
        models = tuple(dict.fromkeys(i.model for i in mine if i.model))
        out.append(_Section(variant.id, per, len(mine), sum(i.cost for i in mine), models, tuple(rows),
                            len(mine) - len(shown)))
    return out


_HOW = {"static": "Static copy from the spec", "once": "Generated once for everyone",
        "segment": "Generated per segment", "unit": f"Generated per unit (a sample of at most {UNIT_SAMPLE} units)"}


def _summary(section: _Section, models: str, cost: str) -> str:
    noun = "item" if section.items == 1 else "items"
    return f"{_HOW.get(section.per, section.per)}: {section.items:,} {noun}, model {models}, {cost}."


def _hidden_note(section: _Section) -> str:
    what = "units" if section.per == "unit" else "items"
    return f"{section.hidden:,} more {what} not shown (every one is in the JSON Lines output)"


def review_markdown(plan: Plan, items: list[Any], spec: str) -> str:
    """The review sheet as Markdown for a pull-request comment: every string escaped, under 60,000 characters."""
    from expc.runtime.report.markdown import md_text

    sections = _sections(plan, items)
    spent = sum(s.cost for s in sections)
    head = [f"## Content review: {md_text(plan.experiment.id)}", "",
            f"{len(items):,} items of {len(sections)} variants, {fmt_money(spent)} in model calls. "
            f"Approve them with `expc approve` on {md_text(spec)}; personal values in copy are shown as "
            "[attribute].", ""]
    body: list[str] = []
    budget = MAX_SHEET_CHARS - sum(len(x) + 1 for x in head) - 200
    cut_off = 0
    for section in sections:
        models = ", ".join(md_text(m) for m in section.models) or "none"
        lines = [f"### Variant {md_text(section.variant)}", "",
                 _summary(section, models, fmt_money(section.cost)), "",
                 "| scope | copy | checks | model | cost | sha256 |", "| --- | --- | --- | --- | ---: | --- |"]
        budget -= sum(len(x) + 1 for x in lines)
        for row in section.rows:
            line = (f"| {md_text(row.scope)} | {md_text(row.copy) if row.copy is not None else '—'} | "
                    f"{md_text(row.verdict)} | {md_text(row.model) if row.model else '—'} | {fmt_money(row.cost)} | "
                    f"{'`' + row.sha256 + '`' if row.sha256 else '—'} |")
            if len(line) + 1 > budget:
                cut_off += 1
                continue
            budget -= len(line) + 1
            lines.append(line)
        if section.hidden:
            lines += ["", f"_{_hidden_note(section)}_"]
            budget -= len(lines[-1]) + 2
        lines.append("")
        body += lines
    if cut_off:
        body.append(f"_{cut_off:,} rows left out to fit a comment: see the JSON Lines output._")
    marker = SHEET_MARKER.format(id=re.sub(r"[^A-Za-z0-9._-]", "_", plan.experiment.id))
    return "\n".join(head + body).rstrip("\n") + "\n\n" + marker + "\n"


def review_html(plan: Plan, items: list[Any], spec: str) -> str:
    """The review sheet as a standalone HTML page (no script): every string HTML-escaped, controls visible."""
    from html import escape

    from expc.runtime.report.format import visible

    def e(value: Any, lines: bool = False) -> str:
        return escape(visible(value, lines=lines), quote=True)

    sections = _sections(plan, items)
    spent = sum(s.cost for s in sections)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Content review: {e(plan.experiment.id)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
             "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;"
             "vertical-align:top;text-align:left}td.copy{white-space:pre-wrap}code{font-size:.85em}"
             ".num{text-align:right}</style></head><body>",
             f"<h1>Content review: {e(plan.experiment.id)}</h1>",
             f"<p>{len(items):,} items of {len(sections)} variants, {e(fmt_money(spent))} in model calls. "
             f"Approve them with <code>expc approve {e(spec)}</code>; personal values in copy are shown as "
             "[attribute].</p>"]
    for section in sections:
        parts.append(f"<h2>Variant {e(section.variant)}</h2>")
        parts.append(f"<p>{_summary(section, e(', '.join(section.models) or 'none'), e(fmt_money(section.cost)))}</p>")
        parts.append("<table><thead><tr><th>scope</th><th>copy</th><th>checks</th><th>model</th>"
                     "<th>cost</th><th>sha256</th></tr></thead><tbody>")
        for row in section.rows:
            parts.append(f"<tr><td>{e(row.scope)}</td><td class=\"copy\">{e(row.copy, lines=True) or '—'}</td>"
                         f"<td>{e(row.verdict)}</td><td>{e(row.model) or '—'}</td>"
                         f"<td class=\"num\">{e(fmt_money(row.cost))}</td>"
                         f"<td><code>{e(row.sha256) or '—'}</code></td></tr>")
        parts.append("</tbody></table>")
        if section.hidden:
            parts.append(f"<p><em>{e(_hidden_note(section))}</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
