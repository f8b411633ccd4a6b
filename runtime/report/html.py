"""report.html: the report's rows (:mod:`.rows`) as one self-contained page (inline CSS and SVG, no script).

:func:`render_html` is pure (report dict in, text out). From the top: the
decision banner (coloured by what it means: green ship, red roll back, grey
for continue / inconclusive / futility; a SIMULATED strip inside it for a
simulated run), the key figures, one section per primary and secondary metric
(the cumulative lift of each treatment with its band across looks, each
variant's rate or mean, the table, then per segment attribute the
heterogeneity sentences, a forest plot and the segment table, with the copy
each segment was shown when the report has it), the guardrails with the rule that judged
them, the sample ratio per look, generation costs and failures, content
samples, the per-look table, and the provenance. The tables and sentences
are those of the terminal summary and report.md; only the figures read the
report dict directly (series of numbers, not words).

A report without history (``expc analyze``) shows the one look as points with
intervals instead of lines. Every string is HTML-escaped (content samples are
untrusted model output; names, reasons and keys come from specs and data) and
its control characters are shown as escapes. Missing numbers show as an em
dash.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from . import plots
from .format import NULL, num, visible
from .rows import (
    MAX_SEGMENTS,
    Figure,
    MetricTable,
    ReportRows,
    SegmentTable,
    Table,
    build,
    level_label,
    segment_label,
)

__all__ = ["render_html"]

SAMPLES_PER_VARIANT = 12
SAMPLE_CHARS = 1200
MAX_FAILURES = 100


def e(value: Any) -> str:
    """HTML-escaped text of any value (None becomes the empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


# ================================================================== style

CSS = """
:root { --ink:#1f2328; --muted:#57606a; --line:#d8dee4; --soft:#f6f8fa;
  --ship:#1a7f37; --ship-soft:#dafbe1; --bad:#cf222e; --bad-soft:#ffebe9; --neutral:#57606a;
  --neutral-soft:#eaeef2; --warn:#9a6700; --warn-soft:#fff8c5; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #fff; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
  "DejaVu Sans", sans-serif; font-variant-numeric: tabular-nums; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 28px 40px; }
h1, h2, h3 { line-height: 1.25; margin: 0; }
h2 { font-size: 20px; margin: 0 0 4px; display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
h3 { font-size: 15px; margin: 18px 0 8px; }
section { margin-top: 34px; padding-top: 22px; border-top: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 14px; font-size: 14px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono",
  monospace; font-size: 0.88em; }
.banner { border-radius: 12px; overflow: hidden; color: #fff; box-shadow: 0 1px 2px rgba(31,35,40,.12); }
.banner.ship { background: var(--ship); } .banner.rollback { background: var(--bad); }
.banner.neutral { background: var(--neutral); }
.sim { background: repeating-linear-gradient(135deg, #fff8c5 0 14px, #fdf0a8 14px 28px); color: #4d3800;
  padding: 8px 22px; font-size: 13.5px; border-bottom: 1px solid rgba(0,0,0,.12); }
.sim strong { letter-spacing: .08em; }
.banner-body { padding: 18px 22px 20px; }
.kicker { text-transform: uppercase; letter-spacing: .07em; font-size: 12px; opacity: .85; font-weight: 600; }
.banner h1 { font-size: 30px; margin: 4px 0 6px; }
.banner .rule { margin: 0 0 10px; opacity: .92; font-size: 14px; }
.banner .rule code { background: rgba(255,255,255,.16); padding: 1px 6px; border-radius: 5px; }
.banner ul { margin: 0; padding-left: 20px; } .banner li { margin: 2px 0; }
.meta { margin: 18px 2px 0; color: var(--muted); font-size: 14px; }
.meta .name { color: var(--ink); font-weight: 600; font-size: 16px; }
.meta p { margin: 2px 0; }
.facts { display: flex; flex-wrap: wrap; gap: 4px 18px; margin-top: 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin-top: 20px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; background: #fff; }
.card .label { color: var(--muted); font-size: 12.5px; text-transform: uppercase; letter-spacing: .05em; }
.card .value { font-size: 22px; font-weight: 650; margin-top: 2px; }
.card .note { color: var(--muted); font-size: 13px; }
.card.good { border-left: 4px solid var(--ship); } .card.bad { border-left: 4px solid var(--bad); }
.card.none { border-left: 4px solid var(--neutral); } .card.warn { border-left: 4px solid #d4a72c; }
.badge { font-size: 12px; font-weight: 600; padding: 2px 8px; border-radius: 999px; background: var(--neutral-soft);
  color: var(--ink); text-transform: uppercase; letter-spacing: .04em; }
.badge.primary { background: #ddf4ff; color: #0550ae; } .badge.guardrail { background: var(--warn-soft);
  color: var(--warn); }
.figs { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin: 8px 0 6px; }
.figs.one { grid-template-columns: 1fr; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 13px; margin: 0 0 2px 4px; font-weight: 600; }
svg.plot { width: 100%; height: auto; display: block; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin-top: 8px; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap;
  vertical-align: top; }
th { font-size: 12.5px; color: var(--muted); font-weight: 600; background: var(--soft); }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.wrap { white-space: normal; text-align: left; }
tbody tr:last-child td { border-bottom: 0; }
table { border: 1px solid var(--line); border-radius: 8px; border-collapse: separate; border-spacing: 0;
  overflow: hidden; }
.ci { color: var(--muted); font-size: 12.5px; display: block; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 7px;
  vertical-align: baseline; }
.pill { display: inline-block; font-size: 12.5px; font-weight: 600; padding: 1px 9px; border-radius: 999px;
  background: var(--neutral-soft); color: var(--muted); }
.pill.good { background: var(--ship-soft); color: var(--ship); } .pill.warn { background: var(--warn-soft);
  color: var(--warn); } .pill.bad { background: var(--bad-soft);
  color: var(--bad); }
.status { padding: 10px 14px; border-radius: 8px; margin: 6px 0 4px; font-size: 14px; }
.status.good { background: var(--ship-soft); color: #0f5323; } .status.bad { background: var(--bad-soft);
  color: #82071e; }
.samples { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 14px;
  align-items: start; }
.variant-box { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
.variant-box h3 { margin: 0; padding: 9px 14px; background: var(--soft); border-bottom: 1px solid var(--line);
  font-size: 14px; }
.variant-box ol { list-style: none; margin: 0; padding: 6px 14px 10px; }
.variant-box li { padding: 8px 0; border-bottom: 1px dashed var(--line); }
.variant-box li:last-child { border-bottom: 0; }
.key { color: var(--muted); font-size: 12px; }
.content { white-space: pre-wrap; overflow-wrap: anywhere; margin-top: 2px; }
.more { color: var(--muted); font-size: 13px; }
details { margin-top: 14px; } summary { cursor: pointer; color: var(--ink); font-weight: 600; }
footer { margin-top: 40px; padding-top: 14px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 12.5px; }
footer p { margin: 2px 0; }
@media (max-width: 760px) { .figs { grid-template-columns: 1fr; } main { padding: 16px; } }
@media print { .banner, .sim, .pill, .card { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


# ================================================================== figures (numbers read from the report)


def _x_axis(history: list[dict[str, Any]]) -> tuple[list[float], str]:
    """The looks' days when every look has one, else the look numbers."""
    days = [h.get("day") for h in history]
    if all(num(d) is not None for d in days):
        return [float(num(d) or 0.0) for d in days], "day"
    return [float(num(h.get("look")) or i + 1) for i, h in enumerate(history)], "look"


def _look_metric(look: dict[str, Any], metric_id: Any) -> dict[str, Any]:
    return next((m for m in look.get("metrics") or [] if m.get("id") == metric_id), {})


def _ends(ci: Any) -> list[Any]:
    return (list(ci) + [None, None])[:2] if isinstance(ci, (list, tuple)) else [None, None]


def _lift_series(history: list[dict[str, Any]], metric_id: Any, treatments: list[Any]) -> dict[str, tuple]:
    out = {}
    for t in treatments:
        y, lo, hi = [], [], []
        for look in history:
            c: dict[str, Any] = next(
                (c for c in _look_metric(look, metric_id).get("comparisons") or [] if c.get("variant") == t), {})
            a, b = _ends(c.get("abs_ci"))
            y.append(c.get("abs_lift"))
            lo.append(a)
            hi.append(b)
        out[visible(t)] = (y, lo, hi)
    return out


def _estimate_series(history: list[dict[str, Any]], metric_id: Any, ids: list[Any]) -> dict[str, tuple]:
    out = {}
    for vid in ids:
        y, lo, hi, any_ci = [], [], [], False
        for look in history:
            v: dict[str, Any] = next(
                (v for v in _look_metric(look, metric_id).get("variants") or [] if v.get("id") == vid), {})
            any_ci = any_ci or v.get("ci") is not None
            a, b = _ends(v.get("ci"))
            y.append(v.get("mean"))
            lo.append(a)
            hi.append(b)
        out[visible(vid)] = (y, lo if any_ci else None, hi if any_ci else None)
    return out


def _margin_lift(metric: dict[str, Any], control_mean: Any) -> float | None:
    """A guardrail's non-inferiority margin as an absolute lift (the harm side), or None."""
    margins = [num((c.get("guardrail") or {}).get("margin")) for c in metric.get("comparisons") or []]
    margin = next((m for m in margins if m is not None), None)
    cm = num(control_mean)
    if metric.get("role") != "guardrail" or margin is None or cm is None:
        return None
    return margin * abs(cm) * (1.0 if metric.get("direction") == "decrease" else -1.0)


def _metric_figures(report: dict[str, Any], metric: dict[str, Any], colors: dict[str, str], n: int) -> str:
    kind = metric.get("kind") or "mean"
    direction = metric.get("direction") or "increase"
    level = level_label(report)
    ids = [v.get("id") for v in metric.get("variants") or []]
    treatments = [c.get("variant") for c in metric.get("comparisons") or []]
    history = report.get("history") or []
    prefix = f"f{n}"
    noun = {"proportion": "rate", "ratio": "ratio"}.get(kind, "mean")
    if len(history) >= 2:
        x, x_label = _x_axis(history)
        margin = None
        if metric.get("role") == "guardrail" and ids:
            margin = [_margin_lift(metric, next((v.get("mean") for v in _look_metric(look, metric.get("id"))
                                                 .get("variants") or [] if v.get("id") == ids[0]), None))
                      for look in history]
        lift = plots.lift_over_looks(x, _lift_series(history, metric.get("id"), treatments), colors, kind, direction,
                                     level, prefix + "a", x_label, margin=margin)
        est = plots.estimates_over_looks(x, _estimate_series(history, metric.get("id"), ids), colors, kind,
                                         prefix + "b", x_label)
        cap_l, cap_r = "Cumulative lift vs control, by look", f"Each variant's {noun}, by look"
    else:
        comps = {c.get("variant"): c for c in metric.get("comparisons") or []}
        lifts = {visible(t): (comps[t].get("abs_lift"), *_ends(comps[t].get("abs_ci"))) for t in treatments}
        ests = {visible(v.get("id")): (v.get("mean"), *_ends(v.get("ci"))) for v in metric.get("variants") or []}
        if not lifts and not ests:
            return ""
        control = (metric.get("variants") or [{}])[0].get("mean")
        lift = plots.lift_at_look(lifts, colors, kind, direction, level, prefix + "a",
                                  margin=_margin_lift(metric, control)) if lifts else ""
        est = plots.estimates_at_look(ests, colors, kind, prefix + "b") if ests else ""
        cap_l, cap_r = "Lift vs control", f"Each variant's {noun}"
    return (f'<div class="figs"><figure><figcaption>{cap_l}</figcaption>{lift}</figure>'
            f"<figure><figcaption>{cap_r}</figcaption>{est}</figure></div>")


def _srm_figure(report: dict[str, Any], rows: ReportRows, colors: dict[str, str]) -> str:
    history = report.get("history") or []
    if len(history) < 2 or rows.srm is None:
        return ""
    x, x_label = _x_axis(history)
    names = [r[0] for r in rows.srm.table.rows]
    expected = [num(x) for x in (report.get("srm") or {}).get("expected") or []]
    total_e = sum(x or 0 for x in expected)
    planned: dict[str, float | None] = {}
    for i, n in enumerate(names):
        e = expected[i] if i < len(expected) else None
        planned[n] = e / total_e if e is not None and total_e else None
    shares = {}
    for vid in names:
        ys = []
        for look in history:
            u = {visible(k): v for k, v in (look.get("units") or {}).items()}
            tot = sum(num(v) or 0 for v in u.values())
            ys.append((num(u.get(vid)) or 0) / tot if tot else None)
        shares[vid] = ys
    pvals = [(look.get("srm") or {}).get("p_value") for look in history]
    svg = plots.sample_ratio(x, shares, planned, pvals, num((report.get("srm") or {}).get("threshold")), colors,
                             "srm", x_label)
    return (f'<div class="figs one"><figure><figcaption>Observed share of units per arm (solid) vs planned '
            f"(dashed), and the SRM p-value, by look</figcaption>{svg}</figure></div>")


def _segment_key(value: Any) -> tuple[str, str]:
    """A segment value as a dict key (values come from data files: not necessarily strings)."""
    return type(value).__name__, str(value)


def _forest_figure(report: dict[str, Any], metric: dict[str, Any], seg: SegmentTable, colors: dict[str, str],
                   prefix: str) -> str:
    """One metric by one attribute: each segment's lift per treatment, the overall lift, zero (a forest plot)."""
    comps = [c for c in metric.get("comparisons") or [] if isinstance(c, dict)]
    labels: dict[tuple[str, str], str] = {}
    flagged: dict[tuple[str, str], bool] = {}
    per: dict[str, dict[tuple[str, str], tuple[Any, Any, Any]]] = {}
    overall: dict[str, Any] = {}
    for c in comps:
        segs = [s for s in c.get("segments") or [] if isinstance(s, dict) and s.get("attribute") == seg.key]
        if not segs:
            continue
        vid = visible(c.get("variant"))
        overall[vid] = c.get("abs_lift")
        per[vid] = {}
        for s in segs[:MAX_SEGMENTS]:
            key = _segment_key(s.get("value"))
            labels.setdefault(key, segment_label(s.get("value")))
            flagged[key] = flagged.get(key, False) or bool(s.get("srm_flagged"))
            per[vid][key] = (s.get("abs_lift"), *_ends(s.get("abs_ci")))
    if not labels:
        return ""
    keys = list(labels)
    lifts = {vid: [values.get(k, (None, None, None)) for k in keys] for vid, values in per.items()}
    svg = plots.forest([labels[k] for k in keys], lifts, overall, colors, metric.get("kind") or "mean",
                       metric.get("direction") or "increase", level_label(report), prefix,
                       flagged=[flagged[k] for k in keys])
    return (f'<div class="figs one"><figure><figcaption>Lift vs control in each segment of {e(seg.attribute)} '
            f"(dashed: the overall lift)</figcaption>{svg}</figure></div>")


# ================================================================== sections (words from the rows)


def _swatch(vid: str, colors: dict[str, str]) -> str:
    return f'<span class="sw" style="background:{colors.get(vid, plots.CONTROL_COLOR)}"></span>{e(vid)}'


def _figure(f: Figure | None) -> str:
    """A number and, below it, its interval (separated by a space, so the text reads as in the other formats)."""
    if f is None:
        return ""
    return e(f.value) if f.interval is None else f'{e(f.value)} <span class="ci">{e(f.interval)}</span>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], text_cols: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    th = "".join(f'<th{" class=text" if i in text_cols else ""}>{e(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=wrap" if i in text_cols else ""}>{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="tablewrap"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _plain(table: Table, colors: dict[str, str], swatch: bool = True, text_cols: tuple[int, ...] = ()) -> str:
    rows = [[_swatch(r[0], colors) if swatch else e(r[0])] + [e(c) for c in r[1:]] for r in table.rows]
    return _table(table.headers, rows, text_cols)


def _banner(rows: ReportRows) -> str:
    d = rows.decision
    sim = ""
    if rows.simulated:
        sim = f'<div class="sim"><strong>SIMULATED:</strong> {e(rows.simulated_note.removeprefix("SIMULATED: "))}</div>'
    kick = " · ".join(["Decision"] + ([e(rows.where)] if rows.where else []))
    reasons = "".join(f"<li>{e(r)}</li>" for r in d.reasons)
    return (f'<header class="banner {d.tone}" id="decision">{sim}<div class="banner-body">'
            f'<div class="kicker">{kick}</div><h1>{e(d.headline)}</h1>'
            f'<p class="rule">{e(d.summary)}</p>' + (f"<ul>{reasons}</ul>" if reasons else "") + "</div></header>")


def _meta(rows: ReportRows) -> str:
    name = f'<p class="name">{e(rows.name)}</p>' if rows.name else ""
    hyp = f"<p>{e(rows.hypothesis)}</p>" if rows.hypothesis else ""
    ident = f"<span>experiment <code>{e(rows.experiment_id)}</code></span>" if rows.experiment_id else ""
    facts = f'<p class="facts-line">{e(" · ".join(rows.context))}</p>'
    return f'<div class="meta">{name}{hyp}<div class="facts">{ident}</div>{facts}</div>'


def _card(label: str, value: str, note: str, tone: str) -> str:
    return (f'<div class="card {tone}"><div class="label">{label}</div><div class="value">{value}</div>'
            f'<div class="note">{note}</div></div>')


def _cards(rows: ReportRows) -> str:
    cards = []
    if rows.lead is not None:
        r = rows.lead.row
        abs_lift = r.abs_lift or Figure(NULL)
        bits = [abs_lift.interval or "", r.rel_lift.value if r.rel_lift else "", r.result]
        cards.append(_card(f"{e(rows.lead.metric)}: {e(r.variant)}", e(abs_lift.value),
                           e(" · ".join(b for b in bits if b)), r.tone))
    if rows.srm is not None and rows.srm.arms:
        cards.append(_card("Units", e(rows.srm.units), f"{rows.srm.arms} arms", "none"))
    if rows.srm is not None:
        cards.append(_card("Sample ratio", "mismatch" if rows.srm.flagged else "as planned",
                           f"SRM p = {e(rows.srm.p)}", "bad" if rows.srm.flagged else "good"))
    g = rows.generation
    if g is not None:
        cards.append(_card("Generation", e(g.spent), f"{e(g.calls)} calls · {g.failures} "
                           f"failure{'' if g.failures == 1 else 's'}", "warn" if g.failures else "none"))
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _metric_table(table: MetricTable, colors: dict[str, str]) -> str:
    body = []
    for r in table.rows:
        result = f'<span class="pill {r.tone}">{e(r.result)}</span>' if r.result else ""
        body.append([_swatch(r.variant, colors), e(r.units), _figure(r.estimate), _figure(r.abs_lift),
                     _figure(r.rel_lift), e(r.score), result])
    notes = "".join(f'<p class="sub">{e(n)}</p>' for n in table.notes)
    return _table(table.headers, body) + notes


def _segment_table(seg: SegmentTable, colors: dict[str, str]) -> str:
    body = []
    for r in seg.rows:
        result = f'<span class="pill {r.tone}">{e(r.result)}</span>' if r.result else ""
        copies = [e(c) for c in (r.copy, r.control_copy) if c is not None]
        body.append([e(r.value), _swatch(r.variant, colors), e(r.units), _figure(r.abs_lift), _figure(r.rel_lift),
                     e(r.score), result, e(r.srm_p), *copies])
    return _table(seg.headers, body, seg.copy_columns)


def _segments(report: dict[str, Any], metric: dict[str, Any], table: MetricTable, colors: dict[str, str],
              n: int) -> str:
    """Each segment attribute of one metric: the heterogeneity sentences, a forest plot, the table."""
    parts = []
    for k, seg in enumerate(table.segments):
        sentences = "".join(f'<p class="sub"><span class="pill warn">differs</span> {e(x)}</p>' if differs
                            else f'<p class="sub">{e(x)}</p>' for x, differs in zip(seg.sentences, seg.differs))
        notes = "".join(f'<p class="more">{e(x)}</p>' for x in seg.notes)
        table_html = _segment_table(seg, colors) if seg.rows else ""
        parts.append(f"<h3>{e(seg.title)}</h3>{sentences}" + _forest_figure(report, metric, seg, colors, f"f{n}s{k}")
                     + table_html + notes)
    return "".join(parts)


def _metric_section(report: dict[str, Any], metric: dict[str, Any], table: MetricTable, colors: dict[str, str],
                    n: int) -> str:
    return (f'<section id="metric-{e(table.id)}"><h2>{e(table.id)}'
            f' <span class="badge {e(table.role)}">{e(table.role)}</span></h2><p class="sub">{e(table.heading)}</p>'
            + _metric_figures(report, metric, colors, n) + _metric_table(table, colors)
            + _segments(report, metric, table, colors, n) + "</section>")


def _guardrails(report: dict[str, Any], rows: ReportRows, colors: dict[str, str], n0: int) -> str:
    pairs = [(m, t) for m, t in zip(_metric_dicts(report), rows.metrics) if t.role == "guardrail"]
    if not pairs:
        return ""
    lines = "".join(f'<p class="sub">{e(x)}</p>' for x in rows.guardrail_lines)
    parts = [f'<section id="guardrails"><h2>Guardrails <span class="badge guardrail">guardrail</span></h2>{lines}']
    for k, (m, t) in enumerate(pairs):
        parts.append(f'<h3 id="metric-{e(t.id)}">{e(t.id)} <span class="sub">· {e(t.heading)}</span></h3>')
        parts.append(_metric_figures(report, m, colors, n0 + k))
        parts.append(_metric_table(t, colors))
        parts.append(_segments(report, m, t, colors, n0 + k))
    return "".join(parts) + "</section>"


def _srm(report: dict[str, Any], rows: ReportRows, colors: dict[str, str]) -> str:
    s = rows.srm
    excluded = f'<p class="sub" style="margin-top:10px">{e(rows.excluded)}</p>' if rows.excluded else ""
    if s is None:
        return f'<section id="excluded">{excluded}</section>' if excluded else ""
    status = f'<div class="status {"bad" if s.flagged else "good"}">{e(s.line)}</div>'
    return ('<section id="srm"><h2>Sample ratio</h2><p class="sub">Do the arms receive the share of units the '
            "design planned? A mismatch means assignment or logging is broken.</p>" + status
            + _srm_figure(report, rows, colors) + _plain(s.table, colors) + excluded + "</section>")


def _generation(rows: ReportRows, colors: dict[str, str]) -> str:
    g = rows.generation
    if g is None:
        return ""
    parts = ['<section id="generation"><h2>Generation</h2>', f'<p class="sub">{e(g.line)}</p>']
    if g.table is not None:
        parts.append(_plain(g.table, colors))
    if g.failure_rows:
        shown = Table("", ("variant", "key", "reason"), g.failure_rows[:MAX_FAILURES], (False,) * 3)
        parts.append(f"<h3>Failures ({len(g.failure_rows)})</h3>")
        parts.append(_plain(shown, colors, text_cols=(1, 2)))
        if len(g.failure_rows) > MAX_FAILURES:
            parts.append(f'<p class="more">{len(g.failure_rows) - MAX_FAILURES} more in report.json.</p>')
    return "".join(parts) + "</section>"


def _samples(rows: ReportRows, colors: dict[str, str]) -> str:
    if not rows.samples:
        return ""
    boxes = []
    for g in rows.samples:
        lis = []
        for key, content in g.samples[:SAMPLES_PER_VARIANT]:
            text = content if len(content) <= SAMPLE_CHARS else content[: SAMPLE_CHARS - 1] + "…"
            lis.append(f'<li><div class="key mono">{e(key)}</div><div class="content">{e(text)}</div></li>')
        n = len(g.samples)
        more = (f'<p class="more" style="padding:0 14px">{n - SAMPLES_PER_VARIANT} more in report.json</p>'
                if n > SAMPLES_PER_VARIANT else "")
        boxes.append(f'<div class="variant-box"><h3>{_swatch(g.variant, colors)} <span class="key">· {n} '
                     f'sample{"" if n == 1 else "s"}</span></h3><ol>{"".join(lis)}</ol>{more}</div>')
    return ('<section id="samples"><h2>Content samples</h2><p class="sub">What each variant showed, as generated '
            "(keys name the segment or unit the content was made for).</p>"
            f'<div class="samples">{"".join(boxes)}</div></section>')


def _looks(rows: ReportRows) -> str:
    if rows.history is None:
        return ""
    return (f'<section id="looks"><details><summary>{e(rows.history.title)}</summary>'
            + _plain(rows.history, {}, swatch=False) + "</details></section>")


def _footer(report: dict[str, Any]) -> str:
    bits = [f"report_version {e(visible(report.get('report_version', NULL)))}"]
    if report.get("spec_sha256"):
        bits.append(f'spec sha256 <span class="mono">{e(visible(report["spec_sha256"]))}</span>')
    run = report.get("run") or {}
    if run.get("run_dir"):
        bits.append(f'run directory <span class="mono">{e(visible(run["run_dir"]))}</span>')
    outputs = report.get("outputs") or {}
    files = " · ".join(f'<span class="mono">{e(visible(v))}</span>' for v in outputs.values() if v)
    return ("<footer><p>" + " · ".join(bits) + "</p>" + (f"<p>Files: {files}</p>" if files else "")
            + "<p>Made by expc. Every number is in report.json.</p></footer>")


def _metric_dicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's metrics as :func:`.rows.build` reads them (the same order as ``ReportRows.metrics``)."""
    metrics = report.get("metrics")
    return [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []


# ================================================================== entry point


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page (see the module docs)."""
    rows = build(report)
    colors = plots.variant_colors(list(rows.variants))
    title = " · ".join(x for x in ("SIMULATED" if rows.simulated else "", rows.decision.headline,
                                   rows.experiment_id) if x)
    body = [_banner(rows), _meta(rows), _cards(rows)]
    n = 0
    for m, t in zip(_metric_dicts(report), rows.metrics):
        if t.role != "guardrail":
            body.append(_metric_section(report, m, t, colors, n))
            n += 1
    body += [_guardrails(report, rows, colors, n), _srm(report, rows, colors), _generation(rows, colors),
             _samples(rows, colors), _looks(rows), _footer(report)]
    first = "<!DOCTYPE html>" + ("<!-- SIMULATED: outcomes are simulated, not measured -->" if rows.simulated else "")
    return (f'{first}\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(b for b in body if b) + "\n</main></body></html>\n")
