"""report.html: the report as one self-contained page (inline CSS and SVG, no script, no network).

:func:`render_html` is pure (report dict in, text out). From the top: the
decision banner (coloured by what it means: green ship, red roll back, grey
for continue / inconclusive / futility; a SIMULATED strip inside it for a
simulated run), the key figures, one section per primary and secondary metric
(the cumulative lift of each treatment with its band across looks, each
variant's rate or mean, a table), the guardrails, the sample ratio per look,
generation costs and failures, content samples, the per-look table, and the
provenance.

A report without history (``expc analyze``) shows the one look as points with
intervals instead of lines. Every string from the report is HTML-escaped:
content samples are untrusted model output, and names, reasons and keys come
from specs and data. Missing numbers show as an em dash.
"""

from __future__ import annotations

import html
from typing import Any

from . import plots
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
    fmt_rel,
    guardrail_state,
    level_label,
    num,
    variant_ids,
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


# ================================================================== reading the history


def _x_axis(history: list[dict[str, Any]]) -> tuple[list[float], str]:
    """The looks' days when every look has one, else the look numbers."""
    days = [h.get("day") for h in history]
    if all(num(d) is not None for d in days):
        return [float(d) for d in days], "day"
    return [float(num(h.get("look")) or i + 1) for i, h in enumerate(history)], "look"


def _look_metric(look: dict[str, Any], metric_id: str) -> dict[str, Any]:
    return next((m for m in look.get("metrics") or [] if m.get("id") == metric_id), {})


def _lift_series(history: list[dict[str, Any]], metric_id: str, treatments: list[str]) -> dict[str, tuple]:
    out = {}
    for t in treatments:
        y, lo, hi = [], [], []
        for look in history:
            c = next((c for c in _look_metric(look, metric_id).get("comparisons") or [] if c.get("variant") == t), {})
            ci = c.get("abs_ci") or [None, None]
            y.append(c.get("abs_lift"))
            lo.append(ci[0] if len(ci) > 0 else None)
            hi.append(ci[1] if len(ci) > 1 else None)
        out[t] = (y, lo, hi)
    return out


def _estimate_series(history: list[dict[str, Any]], metric_id: str, ids: list[str]) -> dict[str, tuple]:
    out = {}
    for vid in ids:
        y, lo, hi, any_ci = [], [], [], False
        for look in history:
            v = next((v for v in _look_metric(look, metric_id).get("variants") or [] if v.get("id") == vid), {})
            ci = v.get("ci")
            any_ci = any_ci or ci is not None
            ci = ci or [None, None]
            y.append(v.get("mean"))
            lo.append(ci[0])
            hi.append(ci[1] if len(ci) > 1 else None)
        out[vid] = (y, lo if any_ci else None, hi if any_ci else None)
    return out


# ================================================================== sections


def _banner(report: dict[str, Any]) -> str:
    d = report.get("decision") or {}
    tone = decision_tone(d.get("action"))
    run = report.get("run") or {}
    sim = ""
    if report.get("simulated"):
        seed = f" with seed {e(run['seed'])}" if run.get("seed") is not None else ""
        sim = (f'<div class="sim"><strong>SIMULATED</strong> — outcomes were drawn from the spec\'s '
               f"<code>simulation</code> block{seed}, not measured on real users.</div>")
    looks = run.get("looks") or len(report.get("history") or []) or None
    kick = ["Decision"]
    if looks:
        kick.append(f"look {e(looks)}")
    if report.get("day") is not None:
        kick.append(f"day {e(report['day'])}")
    rule = (f"rule <code>{e(d['rule'])}</code> → <code>{e(d.get('action'))}</code>" if d.get("rule")
            else f"no stopping rule holds → <code>{e(d.get('action') or 'continue')}</code>")
    reasons = "".join(f"<li>{e(r)}</li>" for r in d.get("reasons") or [])
    return (f'<header class="banner {tone}" id="decision">{sim}<div class="banner-body">'
            f'<div class="kicker">{" · ".join(kick)}</div><h1>{e(decision_headline(d))}</h1>'
            f'<p class="rule">{rule}</p>' + (f"<ul>{reasons}</ul>" if reasons else "") + "</div></header>")


def _meta(report: dict[str, Any]) -> str:
    exp = report.get("experiment") or {}
    run = report.get("run") or {}
    facts = []
    if exp.get("id"):
        facts.append(f"experiment <code>{e(exp['id'])}</code>")
    if exp.get("owner"):
        facts.append(f"owner {e(exp['owner'])}")
    facts.append(f"{e(report.get('method') or NULL)} analysis")
    if num(report.get("alpha")) is not None:
        facts.append(f"α = {num(report['alpha']):g}")
    if run.get("as_of"):
        facts.append(f"as of {e(run['as_of'])}")
    name = f'<p class="name">{e(exp["name"])}</p>' if exp.get("name") else ""
    hyp = f"<p>{e(exp['hypothesis'])}</p>" if exp.get("hypothesis") else ""
    return f'<div class="meta">{name}{hyp}<div class="facts">{"".join(f"<span>{f}</span>" for f in facts)}</div></div>'


def _card(label: str, value: str, note: str, tone: str) -> str:
    return (f'<div class="card {tone}"><div class="label">{label}</div><div class="value">{value}</div>'
            f'<div class="note">{note}</div></div>')


def _cards(report: dict[str, Any], ids: list[str]) -> str:
    cards = []
    primary = next((m for m in report.get("metrics") or [] if m.get("role") == "primary"), None)
    if primary:
        kind = primary.get("kind") or "mean"
        comps = primary.get("comparisons") or []
        best = comps[0] if len(comps) == 1 else _winner(report, comps)
        if best is not None:
            v = comparison_verdict(best)
            ci = fmt_ci(best.get("abs_ci"), lambda x: fmt_abs(x, kind))
            cards.append(_card(f"{e(primary.get('id'))}: {e(best.get('variant'))}",
                               e(fmt_abs(best.get("abs_lift"), kind)),
                               f"{e(ci)} · {e(fmt_rel(best.get('rel_lift')))} · {e(v.text)}", v.tone))
    s = report.get("srm") or {}
    observed = s.get("observed") or []
    if observed:
        total = sum(int(num(x) or 0) for x in observed)
        cards.append(_card("Units", e(fmt_int(total)), f"{len(observed)} arms", "none"))
    if s:
        flagged = bool(s.get("flagged"))
        cards.append(_card("Sample ratio", "mismatch" if flagged else "as planned",
                           f"SRM p = {e(fmt_p(s.get('p_value')))}", "bad" if flagged else "good"))
    g = report.get("generation") or {}
    if g:
        per = g.get("per_variant") or []
        fails = sum(int(num(p.get("failures")) or 0) for p in per) or len(g.get("failures") or [])
        cards.append(_card("Generation", e(fmt_money(g.get("spent"))),
                           f"{e(fmt_int(g.get('calls')))} calls · {fails} failure{'' if fails == 1 else 's'}",
                           "warn" if fails else "none"))
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _winner(report: dict[str, Any], comps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The comparison to headline: the decision's variant, else the largest lift."""
    d = report.get("decision") or {}
    for c in comps:
        if c.get("variant") == d.get("variant"):
            return c
    scored = [c for c in comps if num(c.get("abs_lift")) is not None]
    return max(scored, key=lambda c: num(c["abs_lift"])) if scored else (comps[0] if comps else None)


def _swatch(vid: str, colors: dict[str, str]) -> str:
    return f'<span class="sw" style="background:{colors.get(vid, plots.CONTROL_COLOR)}"></span>{e(vid)}'


def _value_ci(value: str, ci: str) -> str:
    return e(value) if ci == NULL else f'{e(value)}<span class="ci">{e(ci)}</span>'


def _metric_table(report: dict[str, Any], metric: dict[str, Any], colors: dict[str, str]) -> str:
    kind = metric.get("kind") or "mean"
    bayes = report.get("method") == "bayesian"
    level = level_label(report)
    head = ["variant", "units", f"{'rate' if kind == 'proportion' else 'mean'} [{level}]",
            f"abs. lift [{level}]", f"rel. lift [{level}]", "chance to beat control" if bayes else "p (adjusted)",
            "result"]
    comps = {c.get("variant"): c for c in metric.get("comparisons") or []}
    rows = []
    for i, v in enumerate(metric.get("variants") or []):
        est = _value_ci(fmt_estimate(v.get("mean"), kind), fmt_ci(v.get("ci"), lambda x: fmt_estimate(x, kind)))
        cells = [_swatch(v.get("id"), colors), e(fmt_int(v.get("units"))), est]
        c = comps.get(v.get("id"))
        if c is None:
            cells += ['<span class="pill">baseline</span>' if i == 0 else NULL, "", "", ""]
        else:
            verdict = comparison_verdict(c)
            cells += [_value_ci(fmt_abs(c.get("abs_lift"), kind), fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind))),
                      _value_ci(fmt_rel(c.get("rel_lift")), fmt_ci(c.get("rel_ci"), fmt_rel)),
                      e(fmt_prob(c.get("chance_to_beat")) if bayes else fmt_p(adjusted_p(c))),
                      f'<span class="pill {verdict.tone}">{e(verdict.text)}</span>' + _cuped_note(c)]
        rows.append(cells)
    return _table(head, rows)


def _cuped_note(c: dict[str, Any]) -> str:
    """A small line under the result when the comparison used CUPED, with its variance reduction."""
    if not c.get("cuped"):
        return ""
    vr = num(c.get("variance_reduction"))
    return '<span class="ci">CUPED' + ("" if vr is None else f", variance −{vr * 100:.0f}%") + "</span>"


def _table(head: list[str], rows: list[list[str]], text_cols: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    th = "".join(f'<th{" class=text" if i in text_cols else ""}>{e(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=wrap" if i in text_cols else ""}>{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="tablewrap"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


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
        cap_l, cap_r = "Cumulative lift vs control, by look", (
            f"Each variant's {'rate' if kind == 'proportion' else 'mean'}, by look")
    else:
        comps = {c.get("variant"): c for c in metric.get("comparisons") or []}
        lifts = {t: (comps[t].get("abs_lift"), *((comps[t].get("abs_ci") or [None, None]) + [None, None])[:2])
                 for t in treatments}
        ests = {v.get("id"): (v.get("mean"), *((v.get("ci") or [None, None]) + [None, None])[:2])
                for v in metric.get("variants") or []}
        if not lifts and not ests:
            return ""
        control = (metric.get("variants") or [{}])[0].get("mean")
        lift = plots.lift_at_look(lifts, colors, kind, direction, level, prefix + "a",
                                  margin=_margin_lift(metric, control)) if lifts else ""
        est = plots.estimates_at_look(ests, colors, kind, prefix + "b") if ests else ""
        cap_l, cap_r = "Lift vs control", f"Each variant's {'rate' if kind == 'proportion' else 'mean'}"
    return (f'<div class="figs"><figure><figcaption>{cap_l}</figcaption>{lift}</figure>'
            f"<figure><figcaption>{cap_r}</figcaption>{est}</figure></div>")


def _metric_section(report: dict[str, Any], metric: dict[str, Any], colors: dict[str, str], n: int) -> str:
    role = metric.get("role") or ""
    sub = f"{e(metric.get('kind'))} · {e(metric.get('direction') or 'increase')} is better"
    return (f'<section id="metric-{e(metric.get("id"))}"><h2>{e(metric.get("id"))}'
            f' <span class="badge {e(role)}">{e(role)}</span></h2><p class="sub">{sub}</p>'
            + _metric_figures(report, metric, colors, n) + _metric_table(report, metric, colors) + "</section>")


def _guardrails(report: dict[str, Any], colors: dict[str, str], n0: int) -> str:
    metrics = [m for m in report.get("metrics") or [] if m.get("role") == "guardrail"]
    if not metrics:
        return ""
    level = level_label(report)
    parts = ['<section id="guardrails"><h2>Guardrails <span class="badge guardrail">guardrail</span></h2>'
             '<p class="sub">Each treatment must not be worse than the control by more than the margin '
             "(a one-sided non-inferiority test). Harm: not shown non-inferior and moving the wrong way.</p>"]
    for k, m in enumerate(metrics):
        kind = m.get("kind") or "mean"
        means = {v.get("id"): v for v in m.get("variants") or []}
        rows = []
        for c in m.get("comparisons") or []:
            g = c.get("guardrail") or {}
            state = guardrail_state(g)
            margin = num(g.get("margin"))
            rows.append([
                _swatch(c.get("variant"), colors),
                e(fmt_estimate((means.get(c.get("baseline")) or {}).get("mean"), kind)),
                e(fmt_estimate((means.get(c.get("variant")) or {}).get("mean"), kind)),
                _value_ci(fmt_abs(c.get("abs_lift"), kind), fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind))),
                e(NULL if margin is None else f"{margin * 100:g}% relative"),
                e(fmt_p(g.get("p_value"))),
                f'<span class="pill {state.tone}">{e(state.text)}</span>',
            ])
        parts.append(f"<h3>{e(m.get('id'))} <span class=\"sub\">· {e(kind)}, "
                     f"{e(m.get('direction') or 'increase')} is better</span></h3>")
        parts.append(_metric_figures(report, m, colors, n0 + k))
        parts.append(_table(["variant", "control", "variant value", f"abs. lift [{level}]", "margin",
                             "p (non-inferiority)", "state"], rows))
    return "".join(parts) + "</section>"


def _srm(report: dict[str, Any], ids: list[str], colors: dict[str, str]) -> str:
    s = report.get("srm") or {}
    if not s:
        return ""
    observed = [num(x) for x in s.get("observed") or []]
    expected = [num(x) for x in s.get("expected") or []]
    names = ids[: len(observed)] if len(ids) >= len(observed) else [f"arm {i}" for i in range(len(observed))]
    total_e = sum(x or 0 for x in expected)
    planned = {n: (expected[i] / total_e if i < len(expected) and expected[i] is not None and total_e else None)
               for i, n in enumerate(names)}
    flagged = bool(s.get("flagged"))
    thr = num(s.get("threshold"))
    thr_text = NULL if thr is None else f"{thr:g}"
    status = (f'<div class="status {"bad" if flagged else "good"}"><strong>'
              f'{"Sample ratio mismatch" if flagged else "Sample ratio as planned"}</strong>: '
              f"p = {e(fmt_p(s.get('p_value')))} at the last look (a mismatch is flagged below p = {e(thr_text)})."
              + (" The split is broken: results are not trustworthy and no winner can ship." if flagged else "")
              + "</div>")
    history = report.get("history") or []
    fig = ""
    if len(history) >= 2:
        x, x_label = _x_axis(history)
        shares = {}
        for vid in names:
            ys = []
            for look in history:
                u = look.get("units") or {}
                tot = sum(num(v) or 0 for v in u.values())
                ys.append((num(u.get(vid)) or 0) / tot if tot else None)
            shares[vid] = ys
        pvals = [(look.get("srm") or {}).get("p_value") for look in history]
        svg = plots.sample_ratio(x, shares, planned, pvals, thr, colors, "srm", x_label)
        fig = (f'<div class="figs one"><figure><figcaption>Observed share of units per arm (solid) vs planned '
               f"(dashed), and the SRM p-value, by look</figcaption>{svg}</figure></div>")
    total_o = sum(x or 0 for x in observed)
    rows = [[_swatch(n, colors), e(fmt_int(observed[i])),
             e(fmt_prob(observed[i] / total_o) if observed[i] is not None and total_o else NULL),
             e(fmt_prob(planned.get(n))), e(fmt_int(expected[i]) if i < len(expected) else NULL)]
            for i, n in enumerate(names)]
    excluded = {k: v for k, v in (report.get("excluded") or {}).items() if num(v)}
    ex = ""
    if excluded:
        ex = ('<p class="sub" style="margin-top:10px">Excluded from the analysis: '
              + "; ".join(f"{e(k.replace('_', ' '))} {e(fmt_int(v))}" for k, v in excluded.items()) + ".</p>")
    return ('<section id="srm"><h2>Sample ratio</h2><p class="sub">Do the arms receive the share of units the '
            "design planned? A mismatch means assignment or logging is broken.</p>" + status + fig
            + _table(["variant", "units", "observed share", "planned share", "expected units"], rows) + ex
            + "</section>")


def _generation(report: dict[str, Any], colors: dict[str, str]) -> str:
    g = report.get("generation") or {}
    if not g:
        return ""
    per = g.get("per_variant") or []
    failures = g.get("failures") or []
    parts = ['<section id="generation"><h2>Generation</h2>',
             f'<p class="sub">Spent <strong>{e(fmt_money(g.get("spent")))}</strong> on '
             f"{e(fmt_int(g.get('calls')))} model calls; {e(fmt_int(g.get('store_hits')))} items came from the "
             "content store.</p>"]
    if per:
        rows = [[_swatch(p.get("variant"), colors), e(fmt_int(p.get("items"))), e(fmt_int(p.get("calls"))),
                 e(fmt_int(p.get("store_hits"))),
                 (f'<span class="pill warn">{e(fmt_int(p.get("failures")))}</span>' if num(p.get("failures"))
                  else e(fmt_int(p.get("failures")))),
                 e(fmt_int(p.get("tokens"))), e(fmt_money(p.get("cost")))] for p in per]
        parts.append(_table(["variant", "items", "calls", "store hits", "failures", "tokens", "cost"], rows))
    if failures:
        shown = failures[:MAX_FAILURES]
        rows = [[_swatch(f.get("variant"), colors), f'<span class="mono">{e(f.get("key") or NULL)}</span>',
                 e(f.get("reason") or NULL)] for f in shown]
        parts.append(f"<h3>Failures ({len(failures)})</h3>")
        parts.append(_table(["variant", "key", "reason"], rows, text_cols=(1, 2)))
        if len(failures) > len(shown):
            parts.append(f'<p class="more">{len(failures) - len(shown)} more in report.json.</p>')
    return "".join(parts) + "</section>"


def _samples(report: dict[str, Any], colors: dict[str, str]) -> str:
    samples = report.get("content_samples") or {}
    if not any(samples.values()):
        return ""
    boxes = []
    for vid, items in samples.items():
        items = items or []
        lis = []
        for it in items[:SAMPLES_PER_VARIANT]:
            text = str(it.get("content") if it.get("content") is not None else NULL)
            if len(text) > SAMPLE_CHARS:
                text = text[: SAMPLE_CHARS - 1] + "…"
            key = it.get("key")
            lis.append(f'<li><div class="key mono">{e(key) if key else "all units"}</div>'
                       f'<div class="content">{e(text)}</div></li>')
        more = (f'<p class="more" style="padding:0 14px">{len(items) - SAMPLES_PER_VARIANT} more in report.json</p>'
                if len(items) > SAMPLES_PER_VARIANT else "")
        boxes.append(f'<div class="variant-box"><h3>{_swatch(vid, colors)} <span class="key">· {len(items)} '
                     f'sample{"" if len(items) == 1 else "s"}</span></h3><ol>{"".join(lis)}</ol>{more}</div>')
    return ('<section id="samples"><h2>Content samples</h2><p class="sub">What each variant showed, as generated '
            "(keys name the segment or unit the content was made for).</p>"
            f'<div class="samples">{"".join(boxes)}</div></section>')


def _looks(report: dict[str, Any]) -> str:
    history = report.get("history") or []
    if not history:
        return ""
    primary = next((m for m in report.get("metrics") or [] if m.get("role") == "primary"), {})
    kind = primary.get("kind") or "mean"
    treatments = [c.get("variant") for c in primary.get("comparisons") or []]
    head = ["look", "day", "as of", "units"] + [f"{t}: lift" for t in treatments] + ["SRM p", "decision"]
    rows = []
    for look in history:
        lm = _look_metric(look, primary.get("id"))
        comps = {c.get("variant"): c for c in lm.get("comparisons") or []}
        units = sum(int(num(v) or 0) for v in (look.get("units") or {}).values())
        cells = [e(look.get("look", NULL)), e(look.get("day") if look.get("day") is not None else NULL),
                 e(look.get("as_of") or NULL), e(fmt_int(units))]
        for t in treatments:
            c = comps.get(t) or {}
            cells.append(_value_ci(fmt_abs(c.get("abs_lift"), kind), fmt_ci(c.get("abs_ci"),
                                                                              lambda x: fmt_abs(x, kind))))
        d = look.get("decision") or {}
        cells += [e(fmt_p((look.get("srm") or {}).get("p_value"))), f"<code>{e(d.get('action') or 'continue')}</code>"]
        rows.append(cells)
    title = f"on {e(primary.get('id'))}" if primary else ""
    return (f'<section id="looks"><details><summary>Every look ({len(history)}) {title}</summary>'
            + _table(head, rows) + "</details></section>")


def _footer(report: dict[str, Any]) -> str:
    bits = [f"report_version {e(report.get('report_version', NULL))}"]
    if report.get("spec_sha256"):
        bits.append(f'spec sha256 <span class="mono">{e(report["spec_sha256"])}</span>')
    run = report.get("run") or {}
    if run.get("run_dir"):
        bits.append(f'run directory <span class="mono">{e(run["run_dir"])}</span>')
    outputs = report.get("outputs") or {}
    files = " · ".join(f'<span class="mono">{e(v)}</span>' for v in outputs.values() if v)
    return ("<footer><p>" + " · ".join(bits) + "</p>" + (f"<p>Files: {files}</p>" if files else "")
            + "<p>Made by expc. Every number is in report.json.</p></footer>")


# ================================================================== entry point


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page (see the module docs)."""
    ids = variant_ids(report)
    colors = plots.variant_colors(ids)
    d = report.get("decision") or {}
    exp = report.get("experiment") or {}
    sim = "SIMULATED · " if report.get("simulated") else ""
    title = f"{sim}{decision_headline(d)}" + (f" · {exp['id']}" if exp.get("id") else "")
    metrics = report.get("metrics") or []
    body = [_banner(report), _meta(report), _cards(report, ids)]
    n = 0
    for m in metrics:
        if m.get("role") != "guardrail":
            body.append(_metric_section(report, m, colors, n))
            n += 1
    body += [_guardrails(report, colors, n), _srm(report, ids, colors), _generation(report, colors),
             _samples(report, colors), _looks(report), _footer(report)]
    first = "<!DOCTYPE html>" + ("<!-- SIMULATED: outcomes are simulated, not measured -->" if sim else "")
    return (f'{first}\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(b for b in body if b) + "\n</main></body></html>\n")
