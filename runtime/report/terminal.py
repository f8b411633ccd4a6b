"""The summary printed after a run: the decision, a compact table and the paths of the reports.

:func:`summary_rows` reads the report once into plain rows; :func:`summary_text`
lays them out as plain text (for pipes, files and CI logs: no colour, no box
characters), :func:`summary_renderable` as a rich panel and table for a
terminal. :func:`print_summary` picks one by whether the stream is a TTY.
A simulated run's summary says SIMULATED in its first line, in both forms.
The compact table has one row per treatment and metric: the control's and the
treatment's value, the absolute lift with its interval, the adjusted p-value
(under ``bayesian`` the chance to beat the control, headed ``P(better)``; for
guardrails ``NI`` and the non-inferiority p-value) and the result (``n.s.``:
not significant). It fits a 100-column terminal; the relative lifts are in
the reports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any, Mapping

from .format import (
    NULL,
    adjusted_p,
    comparison_verdict,
    decision_headline,
    decision_tone,
    fmt_abs,
    fmt_ci,
    fmt_estimate,
    fmt_int,
    fmt_money,
    fmt_p,
    fmt_prob,
    guardrail_state,
    level_label,
)

__all__ = ["HEADERS", "print_summary", "summary_renderable", "summary_rows", "summary_text"]

HEADERS = ["metric", "variant", "control → variant", "abs. lift", "p", "result"]
_SHORT = {"not significant": "n.s.", "not shown yet": "not shown"}
_LABELS = {"report_html": "html", "report_md": "markdown", "report_json": "json"}


def _first_line(report: dict[str, Any]) -> str:
    exp = report.get("experiment") or {}
    run = report.get("run") or {}
    parts = ["SIMULATED"] if report.get("simulated") else []
    if exp.get("id"):
        parts.append(str(exp["id"]))
    looks = run.get("looks") or len(report.get("history") or []) or None
    where = ", ".join(x for x in (f"look {looks}" if looks else "",
                                  f"day {report['day']}" if report.get("day") is not None else "") if x)
    if where:
        parts.append(where)
    return " · ".join(parts) or "expc report"


def _decision_line(report: dict[str, Any]) -> str:
    d = report.get("decision") or {}
    why = d.get("action") or "continue"
    why += f", rule {d['rule']}" if d.get("rule") else ", no stopping rule holds"
    return f"decision: {decision_headline(d)} ({why})"


def summary_rows(report: dict[str, Any]) -> list[tuple[list[str], str]]:
    """One row per metric and treatment (cells as text, HEADERS order) with its tone: good, bad or none."""
    bayes = report.get("method") == "bayesian"
    rows = []
    for m in report.get("metrics") or []:
        kind = m.get("kind") or "mean"
        means = {v.get("id"): v.get("mean") for v in m.get("variants") or []}
        guard = m.get("role") == "guardrail"
        for c in m.get("comparisons") or []:
            if guard:
                verdict = guardrail_state(c.get("guardrail"))
                p = "NI " + fmt_p((c.get("guardrail") or {}).get("p_value"))
            else:
                verdict = comparison_verdict(c)
                p = fmt_prob(c.get("chance_to_beat")) if bayes else fmt_p(adjusted_p(c))
            # the unit once, after the point estimate: "+0.70 pp [+0.00, +1.39]"
            ci = fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind).removesuffix(" pp"))
            lift = fmt_abs(c.get("abs_lift"), kind) + ("" if ci == NULL else f" {ci}")
            values = (f"{fmt_estimate(means.get(c.get('baseline')), kind)} → "
                      f"{fmt_estimate(means.get(c.get('variant')), kind)}")
            rows.append(([str(m.get("id")), str(c.get("variant")), values, lift, p,
                          _SHORT.get(verdict.text, verdict.text)], verdict.tone))
    return rows


def _headers(report: dict[str, Any]) -> list[str]:
    headers = list(HEADERS)
    headers[3] = f"abs. lift [{level_label(report)}]"
    if report.get("method") == "bayesian":
        headers[4] = "P(better)"
    return headers


def _tail_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    s = report.get("srm") or {}
    if s:
        state = "MISMATCH" if s.get("flagged") else "as planned"
        units = sum(int(x or 0) for x in s.get("observed") or [])
        lines.append(f"sample ratio: {state} (p = {fmt_p(s.get('p_value'))}); {fmt_int(units)} units")
    g = report.get("generation") or {}
    if g:
        fails = sum(int(p.get("failures") or 0) for p in g.get("per_variant") or []) or len(g.get("failures") or [])
        lines.append(f"generation: {fmt_money(g.get('spent'))}, {fmt_int(g.get('calls'))} calls, "
                     f"{fmt_int(g.get('store_hits'))} store hits, {fails} failure{'' if fails == 1 else 's'}")
    return lines


def _paths(paths: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(_LABELS.get(k, k), str(v)) for k, v in (paths or {}).items() if v]


def summary_text(report: dict[str, Any], paths: Mapping[str, Any] | None = None) -> str:
    """The summary as plain text (no colour, no box drawing): for pipes, files and CI logs."""
    lines = [_first_line(report), _decision_line(report)]
    lines += [f"  - {r}" for r in (report.get("decision") or {}).get("reasons") or []]
    rows = [r for r, _tone in summary_rows(report)]
    if rows:
        headers = _headers(report)
        widths = [max(len(x[i]) for x in [headers] + rows) for i in range(len(headers))]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        lines += ["", fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
    tail = _tail_lines(report)
    if tail:
        lines += [""] + tail
    ps = _paths(paths)
    if ps:
        lines += ["", "reports:"] + [f"  {label:<8}  {path}" for label, path in ps]
    return "\n".join(lines) + "\n"


def summary_renderable(report: dict[str, Any], paths: Mapping[str, Any] | None = None) -> Any:
    """The summary as a rich renderable: a panel coloured by the decision, the table, the paths."""
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    colour = {"ship": "green", "rollback": "red", "neutral": "bright_black"}[decision_tone(
        (report.get("decision") or {}).get("action"))]
    d = report.get("decision") or {}
    body = Text()
    if report.get("simulated"):
        body.append("SIMULATED", style="bold black on yellow")
        body.append("  outcomes drawn from the spec's simulation block\n", style="yellow")
    body.append(decision_headline(d), style=f"bold {colour}")
    rule = f"  {d.get('action') or 'continue'}" + (f" · rule {d['rule']}" if d.get("rule") else "")
    body.append(rule, style="dim")
    for r in d.get("reasons") or []:
        body.append(f"\n• {r}")
    title = _first_line(report)
    parts: list[Any] = [Panel(body, title=title, title_align="left", border_style=colour, expand=False)]

    rows = summary_rows(report)
    if rows:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for i, h in enumerate(_headers(report)):
            table.add_column(h, justify="right" if 2 <= i <= 4 else "left", no_wrap=True)
        for cells, tone in rows:
            style = {"good": "green", "bad": "red"}.get(tone, "")
            table.add_row(*cells[:-1], Text(cells[-1], style=style))
        parts.append(table)
    tail = _tail_lines(report)
    for line in tail:
        parts.append(Text(line, style="red" if "MISMATCH" in line else ""))
    ps = _paths(paths)
    if ps:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for label, path in ps:
            grid.add_row(label, Text(path, style="cyan"))
        parts += [Text(""), Text("reports", style="bold"), grid]
    return Group(*parts)


def print_summary(report: dict[str, Any], paths: Mapping[str, Any] | None = None, file: IO[str] | None = None,
                  force_rich: bool | None = None) -> None:
    """Print the summary: rich on a terminal, plain text otherwise (``force_rich`` overrides the check)."""
    file = file if file is not None else sys.stdout
    rich = force_rich if force_rich is not None else bool(getattr(file, "isatty", lambda: False)())
    if not rich:
        file.write(summary_text(report, paths))
        return
    from rich.console import Console

    Console(file=file, force_terminal=True, highlight=False, soft_wrap=False).print(
        summary_renderable(report, {k: str(Path(v)) for k, v in (paths or {}).items() if v}))
