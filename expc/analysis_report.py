"""Render one look at an experiment (the dict of :meth:`Evaluation.to_dict`) as text or Markdown.

Pure functions, no I/O: :func:`render_text` gives plain-text tables for a
terminal, :func:`render_markdown` Markdown tables that fit a pull-request
comment. Both show, per metric, each variant's units and estimate (a rate for
proportions, a mean or ratio otherwise) and, per treatment, the absolute and
relative lift with their intervals, the adjusted p-value (or, under
``bayesian``, the chance to beat the control) and whether the comparison is
significant after the correction; then the sample-ratio check, the excluded
counts and the decision with its reasons. Missing numbers (``None`` in the
dict: NaN or infinite) show as ``n/a``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_markdown", "render_text"]

NA = "n/a"


# ================================================================== numbers


def _fmt_estimate(x: float | None, kind: str) -> str:
    if x is None:
        return NA
    return f"{x * 100:.2f}%" if kind == "proportion" else f"{x:.4g}"


def _fmt_abs(x: float | None, kind: str) -> str:
    if x is None:
        return NA
    return f"{x * 100:+.2f} pp" if kind == "proportion" else f"{x:+.4g}"


def _fmt_rel(x: float | None) -> str:
    return NA if x is None else f"{x * 100:+.1f}%"


def _fmt_ci(ci: list[float | None], one) -> str:
    lo, hi = (ci + [None, None])[:2]
    if lo is None and hi is None:
        return ""
    return f"[{one(lo)}, {one(hi)}]"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return NA
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_prob(p: float | None) -> str:
    return NA if p is None else f"{p * 100:.1f}%"


def _level(alpha: float | None) -> str:
    return "CI" if alpha is None else f"{(1 - alpha) * 100:g}% CI"


# ================================================================== shared content


def _headers(result: dict[str, Any], kind: str) -> list[str]:
    bayes = result.get("method") == "bayesian"
    level = _level(result.get("alpha"))
    return ["variant", "units", "rate" if kind == "proportion" else "mean",
            f"abs. lift [{level}]", f"rel. lift [{level}]",
            "chance to beat control" if bayes else "p (adjusted)", "significant"]


def _rows(result: dict[str, Any], metric: dict[str, Any]) -> list[list[str]]:
    """One row per variant (control first), the comparison's cells empty for the control."""
    kind = metric["kind"]
    bayes = result.get("method") == "bayesian"
    comparisons = {c["variant"]: c for c in metric.get("comparisons", [])}
    rows = []
    for v in metric.get("variants", []):
        row = [v["id"], f"{v['units']:,}", _fmt_estimate(v.get("mean"), kind)]
        c = comparisons.get(v["id"])
        if c is None:
            row += ["(control)" if v is metric["variants"][0] else "", "", "", ""]
        else:
            row.append(f"{_fmt_abs(c['abs_lift'], kind)} {_fmt_ci(c['abs_ci'], lambda x: _fmt_abs(x, kind))}".strip())
            row.append(f"{_fmt_rel(c['rel_lift'])} {_fmt_ci(c['rel_ci'], _fmt_rel)}".strip())
            row.append(_fmt_prob(c.get("chance_to_beat")) if bayes else _fmt_p(c.get("adjusted_p_value")))
            sig = "no"
            if c["significant"]:
                sig = "yes, better" if c["better"] else "yes, worse"
            if not c.get("trustworthy", True):
                sig += " (untrusted: SRM)"
            row.append(sig)
        rows.append(row)
    return rows


def _guardrail_notes(metric: dict[str, Any]) -> list[str]:
    notes = []
    for c in metric.get("comparisons", []):
        g = c.get("guardrail")
        if not g:
            continue
        margin = NA if g["margin"] is None else f"{g['margin']:g}"
        state = "HARM" if g["harm"] else ("non-inferior" if g["non_inferior"] else "non-inferiority not shown")
        notes.append(f"guardrail, {c['variant']}: {state} (margin {margin}, p = {_fmt_p(g['p_value'])})")
    return notes


def _cuped_notes(metric: dict[str, Any]) -> list[str]:
    """One line per CUPED-adjusted comparison: lifts and tests use pre-exposure-adjusted values."""
    notes = []
    for c in metric.get("comparisons", []):
        if c.get("cuped"):
            vr = c.get("variance_reduction")
            gain = NA if vr is None else f"{vr * 100:.1f}%"
            notes.append(f"CUPED, {c['variant']}: lift and test adjusted for the pre-exposure value "
                         f"(variance reduced by {gain}); the {'rate' if metric['kind'] == 'proportion' else 'mean'}"
                         " column is unadjusted")
    return notes


def _metric_title(metric: dict[str, Any]) -> str:
    return f"{metric['id']} ({metric['role']}, {metric['kind']}, {metric['direction']} is good)"


def _srm_line(result: dict[str, Any]) -> str:
    s = result["srm"]
    names = [v["id"] for v in result["metrics"][0]["variants"]] if result.get("metrics") else []
    observed = s.get("observed", [])
    expected = s.get("expected", [])
    if len(names) != len(observed):
        names = [f"arm {i}" for i in range(len(observed))]
    units = ", ".join(f"{n} {o:,}" + ("" if e is None else f" (expected {e:,.1f})".replace(".0)", ")"))
                      for n, o, e in zip(names, observed, expected + [None] * len(observed)))
    verdict = "MISMATCH" if s["flagged"] else "ok"
    threshold = NA if s.get("threshold") is None else f"{s['threshold']:g}"
    p = NA if s.get("p_value") is None else f"{s['p_value']:.3g}"
    return f"sample ratio: {verdict} (p = {p}, threshold {threshold}); units: {units or 'none'}"


def _excluded_line(result: dict[str, Any]) -> str:
    items = [f"{k.replace('_', ' ')} {v:,}" for k, v in (result.get("excluded") or {}).items() if v]
    return "excluded: " + ("; ".join(items) if items else "none")


def _decision_line(result: dict[str, Any]) -> str:
    d = result["decision"]
    text = d["action"]
    if d.get("variant"):
        text += f" ({'ship' if d['action'] == 'stop_ship_winner' else 'serve'} {d['variant']})"
    text += f", by rule {d['rule']}" if d.get("rule") else ", no rule holds"
    return text


def _look_line(result: dict[str, Any]) -> str:
    alpha = NA if result.get("alpha") is None else f"{result['alpha']:g}"
    day = NA if result.get("day") is None else str(result["day"])
    return f"method {result.get('method')}, alpha {alpha}, day {day}"


# ================================================================== text


def _text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])]
        out.append(cells[-1].ljust(widths[-1]))
        return "  ".join(out).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def render_text(result: dict[str, Any], experiment_id: str | None = None) -> str:
    """Plain-text report: a table per metric, the SRM line, exclusions and the decision."""
    head = f"{experiment_id}: " if experiment_id else ""
    lines = [f"{head}{_decision_line(result)}", _look_line(result), ""]
    for metric in result.get("metrics", []):
        lines.append(_metric_title(metric))
        lines += ["  " + row for row in _text_table(_headers(result, metric["kind"]), _rows(result, metric))]
        lines += ["  " + note for note in _guardrail_notes(metric) + _cuped_notes(metric)]
        lines.append("")
    lines.append(_srm_line(result))
    lines.append(_excluded_line(result))
    lines.append(f"decision: {_decision_line(result)}")
    lines += [f"  - {r}" for r in result["decision"].get("reasons", [])]
    return "\n".join(lines) + "\n"


# ================================================================== markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(headers) - 2) + ["---"]
    return ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in [headers]] + \
        ["| " + " | ".join(align) + " |"] + \
        ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]


def render_markdown(result: dict[str, Any], experiment_id: str | None = None) -> str:
    """Markdown report for a pull-request comment: heading with the id and decision, then the tables."""
    d = result["decision"]
    title = f"`{experiment_id}`: " if experiment_id else ""
    lines = [f"### {title}{d['action']}" + (f" → **{d['variant']}**" if d.get("variant") else ""), ""]
    lines.append(f"Decision: {_decision_line(result)}.")
    lines += [f"- {_md_cell(r)}" for r in d.get("reasons", [])]
    lines += ["", f"_{_look_line(result)}_", ""]
    for metric in result.get("metrics", []):
        lines += [f"#### {_metric_title(metric)}", ""]
        lines += _md_table(_headers(result, metric["kind"]), _rows(result, metric))
        notes = _guardrail_notes(metric) + _cuped_notes(metric)
        if notes:
            lines += [""] + [f"- {_md_cell(n)}" for n in notes]
        lines.append("")
    lines += [f"- {_srm_line(result)}", f"- {_excluded_line(result)}"]
    return "\n".join(lines) + "\n"
