"""report.md: the report as Markdown that fits a pull-request comment.

:func:`render_markdown` is pure (report dict in, text out). Order: a heading
with the decision (its first line says SIMULATED for a simulated run), the
reasons, one table per metric, the guardrails, the sample ratio, the
generation costs, then collapsed ``<details>`` blocks for the generation
failures, the per-look history and the content samples.

Content, reasons and names are untrusted text (LLM output, spec text): they
are HTML-escaped and Markdown-escaped (``@`` and ``#`` too, so that a sample
cannot mention a person or link an issue), and newlines are flattened. The
output stays under :data:`MAX_CHARS` (GitHub refuses comments over 65,536
characters): long samples are cut, and when still too long the collapsed
blocks are dropped, with a note that says so.
"""

from __future__ import annotations

import html
from typing import Any

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
)

__all__ = ["MAX_CHARS", "render_markdown"]

MAX_CHARS = 60_000
SAMPLES_PER_VARIANT = 5
SAMPLE_CHARS = 280
MAX_FAILURES = 20

_TONE_MARK = {"ship": "🟢", "rollback": "🔴", "neutral": "⚪"}
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"} | {"@": "&#64;", "#": "&#35;"})


# ================================================================== text


def md_text(value: Any, limit: int | None = None) -> str:
    """Untrusted text made inert in Markdown: escaped HTML and Markdown, one line, optionally cut."""
    s = "" if value is None else str(value)
    s = " ".join(s.split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return html.escape(s, quote=False).translate(_MD_SPECIAL)


def _code(value: Any) -> str:
    """An identifier in a code span (backticks removed so it cannot break out)."""
    s = " ".join(str(value).split()).replace("`", "'")
    return f"`{s}`" if s else NULL


def _with_ci(value: str, ci: str) -> str:
    """A value followed by its interval, or the value alone when the interval is missing."""
    return value if ci == NULL else f"{value} {ci}"


def _table(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] + ["---:"] * (len(headers) - 1)
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(c or " " for c in r) + " |" for r in rows]
    return out


# ================================================================== sections


def _heading(report: dict[str, Any]) -> list[str]:
    d = report.get("decision") or {}
    exp = report.get("experiment") or {}
    mark = _TONE_MARK[decision_tone(d.get("action"))]
    prefix = "SIMULATED · " if report.get("simulated") else ""
    ident = f"{_code(exp['id'])}: " if exp.get("id") else ""
    lines = [f"## {prefix}{ident}{mark} {md_text(decision_headline(d))}", ""]
    facts = [f"**Decision:** {_code(d.get('action') or 'continue')}"]
    if d.get("variant"):
        facts[0] += f" → **{md_text(d['variant'])}**"
    facts.append(f"rule {_code(d['rule'])}" if d.get("rule") else "no stopping rule holds")
    look = _look_phrase(report)
    if look:
        facts.append(look)
    lines.append(" · ".join(facts))
    reasons = d.get("reasons") or []
    if reasons:
        lines.append("")
        lines += [f"- {md_text(r)}" for r in reasons]
    lines.append("")
    if report.get("simulated"):
        seed = (report.get("run") or {}).get("seed")
        seed_text = f" (seed {seed})" if seed is not None else ""
        lines += [f"> **SIMULATED**: the outcomes were drawn from the spec's `simulation` block{seed_text}, "
                  "not measured on real users.", ""]
    return lines


def _look_phrase(report: dict[str, Any]) -> str:
    looks = (report.get("run") or {}).get("looks") or len(report.get("history") or []) or None
    parts = []
    if looks:
        parts.append(f"look {looks}")
    if report.get("day") is not None:
        parts.append(f"day {report['day']}")
    return ", ".join(parts)


def _context(report: dict[str, Any]) -> list[str]:
    exp = report.get("experiment") or {}
    lines = []
    if exp.get("name") or exp.get("hypothesis"):
        name = f"**{md_text(exp['name'])}**" if exp.get("name") else ""
        hyp = md_text(exp.get("hypothesis")) if exp.get("hypothesis") else ""
        lines.append(" — ".join(x for x in (name, hyp) if x))
    bits = [f"{md_text(report.get('method') or NULL)} analysis"]
    alpha = num(report.get("alpha"))
    if alpha is not None:
        bits.append(f"α = {alpha:g}")
    run = report.get("run") or {}
    if run.get("as_of"):
        bits.append(f"as of {md_text(run['as_of'])}")
    if exp.get("owner"):
        bits.append(f"owner {md_text(exp['owner'])}")
    if report.get("spec_sha256"):
        bits.append(f"spec {_code(str(report['spec_sha256'])[:12])}")
    lines.append("_" + " · ".join(bits) + "_")
    return lines + [""]


def _metric_table(report: dict[str, Any], metric: dict[str, Any]) -> list[str]:
    kind = metric.get("kind") or "mean"
    bayes = report.get("method") == "bayesian"
    level = level_label(report)
    headers = ["variant", "units", f"{'rate' if kind == 'proportion' else 'mean'} [{level}]",
               f"abs. lift [{level}]", f"rel. lift [{level}]", "chance to beat" if bayes else "p (adj.)", "result"]
    comparisons = {c.get("variant"): c for c in metric.get("comparisons") or []}
    rows = []
    variants = metric.get("variants") or []
    for i, v in enumerate(variants):
        est = _with_ci(fmt_estimate(v.get("mean"), kind), fmt_ci(v.get("ci"), lambda x: fmt_estimate(x, kind)))
        row = [f"**{md_text(v.get('id'))}**" if i == 0 else md_text(v.get("id")), fmt_int(v.get("units")), est]
        c = comparisons.get(v.get("id"))
        if c is None:
            row += ["baseline" if i == 0 else NULL, "", "", ""]
        else:
            row.append(_with_ci(fmt_abs(c.get("abs_lift"), kind), fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind))))
            row.append(_with_ci(fmt_rel(c.get("rel_lift")), fmt_ci(c.get("rel_ci"), fmt_rel)))
            row.append(fmt_prob(c.get("chance_to_beat")) if bayes else fmt_p(adjusted_p(c)))
            verdict = comparison_verdict(c)
            mark = {"good": "✅ ", "bad": "❌ "}.get(verdict.tone, "")
            row.append(mark + verdict.text + (" (CUPED)" if c.get("cuped") else ""))
        rows.append(row)
    align = ["---", "---:", "---:", "---:", "---:", "---:", "---"]
    return _table(headers, rows, align)


def _metrics(report: dict[str, Any]) -> list[str]:
    metrics = [m for m in report.get("metrics") or [] if m.get("role") != "guardrail"]
    if not metrics:
        return []
    lines = ["### Metrics", ""]
    for m in metrics:
        lines += [f"#### {_code(m.get('id'))} · {md_text(m.get('role'))} · {md_text(m.get('kind'))}, "
                  f"{md_text(m.get('direction'))} is good", ""]
        lines += _metric_table(report, m) + [""]
    return lines


def _guardrails(report: dict[str, Any]) -> list[str]:
    metrics = [m for m in report.get("metrics") or [] if m.get("role") == "guardrail"]
    if not metrics:
        return []
    level = level_label(report)
    lines = ["### Guardrails", ""]
    rows = []
    for m in metrics:
        kind = m.get("kind") or "mean"
        means = {v.get("id"): v for v in m.get("variants") or []}
        for c in m.get("comparisons") or []:
            g = c.get("guardrail") or {}
            state = guardrail_state(g)
            mark = {"good": "✅ ", "bad": "❌ "}.get(state.tone, "")
            margin = num(g.get("margin"))
            rows.append([
                _code(m.get("id")), md_text(c.get("variant")),
                fmt_estimate((means.get(c.get("baseline")) or {}).get("mean"), kind),
                fmt_estimate((means.get(c.get("variant")) or {}).get("mean"), kind),
                _with_ci(fmt_abs(c.get("abs_lift"), kind), fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind))),
                NULL if margin is None else f"{margin * 100:g}% ({md_text(m.get('direction'))} is good)",
                fmt_p(g.get("p_value")), mark + state.text,
            ])
    lines += _table(["metric", "variant", "control", "variant value", f"abs. lift [{level}]", "margin",
                     "p (non-inferiority)", "state"], rows,
                    ["---", "---", "---:", "---:", "---:", "---:", "---:", "---"])
    return lines + [""]


def _srm(report: dict[str, Any], ids: list[str]) -> list[str]:
    s = report.get("srm") or {}
    if not s:
        return []
    observed = s.get("observed") or []
    expected = s.get("expected") or []
    names = ids if len(ids) == len(observed) else [f"arm {i}" for i in range(len(observed))]
    flagged = bool(s.get("flagged"))
    head = "❌ **Sample ratio mismatch**" if flagged else "✅ Sample ratio as planned"
    thr = num(s.get("threshold"))
    lines = ["### Sample ratio", "",
             f"{head}: p = {fmt_p(s.get('p_value'))} (flagged below {NULL if thr is None else f'{thr:g}'})", ""]
    total_o = sum(num(x) or 0 for x in observed)
    total_e = sum(num(x) or 0 for x in expected)
    rows = []
    for i, name in enumerate(names):
        o = num(observed[i]) if i < len(observed) else None
        e = num(expected[i]) if i < len(expected) else None
        rows.append([md_text(name), fmt_int(o),
                     fmt_prob(o / total_o) if o is not None and total_o else NULL,
                     fmt_prob(e / total_e) if e is not None and total_e else NULL])
    if rows:
        lines += _table(["variant", "units", "observed share", "planned share"], rows) + [""]
    excluded = {k: v for k, v in (report.get("excluded") or {}).items() if v}
    if excluded:
        lines += ["Excluded: " + "; ".join(f"{md_text(k.replace('_', ' '))} {fmt_int(v)}"
                                             for k, v in excluded.items()), ""]
    return lines


def _generation(report: dict[str, Any]) -> list[str]:
    g = report.get("generation") or {}
    if not g:
        return []
    per = g.get("per_variant") or []
    failures = g.get("failures") or []
    n_fail = sum(int(num(p.get("failures")) or 0) for p in per) or len(failures)
    lines = ["### Generation", "",
             f"Spent **{fmt_money(g.get('spent'))}** · {fmt_int(g.get('calls'))} model calls · "
             f"{fmt_int(g.get('store_hits'))} from the content store · {fmt_int(n_fail)} "
             f"failure{'' if n_fail == 1 else 's'}", ""]
    if per:
        rows = [[md_text(p.get("variant")), fmt_int(p.get("items")), fmt_int(p.get("calls")),
                 fmt_int(p.get("store_hits")), fmt_int(p.get("failures")), fmt_int(p.get("tokens")),
                 fmt_money(p.get("cost"))] for p in per]
        lines += _table(["variant", "items", "calls", "store hits", "failures", "tokens", "cost"], rows,
                        ["---"] + ["---:"] * 6) + [""]
    return lines


def _failures(report: dict[str, Any]) -> list[str]:
    failures = (report.get("generation") or {}).get("failures") or []
    if not failures:
        return []
    shown = failures[:MAX_FAILURES]
    rows = [[md_text(f.get("variant")), md_text(f.get("key"), 80) or NULL, md_text(f.get("reason"), 200) or NULL]
            for f in shown]
    lines = [f"<details><summary>Generation failures ({len(failures)})</summary>", ""]
    lines += _table(["variant", "key", "reason"], rows, ["---", "---", "---"])
    if len(failures) > len(shown):
        lines += ["", f"_{len(failures) - len(shown)} more in report.json._"]
    return lines + ["", "</details>", ""]


def _history(report: dict[str, Any]) -> list[str]:
    history = report.get("history") or []
    if not history:
        return []
    primary = next((m for m in report.get("metrics") or [] if m.get("role") == "primary"), None)
    pid = primary.get("id") if primary else None
    kind = (primary or {}).get("kind") or "mean"
    treatments = [c.get("variant") for c in (primary or {}).get("comparisons") or []]
    headers = ["look", "day", "units"] + [f"{md_text(t)}: lift on {md_text(pid)}" for t in treatments] + \
        ["SRM p", "decision"]
    rows = []
    for look in history:
        units = sum(int(num(u) or 0) for u in (look.get("units") or {}).values())
        lm = next((m for m in look.get("metrics") or [] if m.get("id") == pid), {})
        comps = {c.get("variant"): c for c in lm.get("comparisons") or []}
        cells = []
        for t in treatments:
            c = comps.get(t) or {}
            ci = fmt_ci(c.get("abs_ci"), lambda x: fmt_abs(x, kind))
            cells.append(_with_ci(fmt_abs(c.get("abs_lift"), kind), ci))
        d = look.get("decision") or {}
        rows.append([str(look.get("look", NULL)), str(look.get("day", NULL) if look.get("day") is not None else NULL),
                     fmt_int(units), *cells, fmt_p((look.get("srm") or {}).get("p_value")),
                     _code(d.get("action") or "continue")])
    lines = [f"<details><summary>Looks ({len(history)})</summary>", ""]
    lines += _table(headers, rows, ["---:"] * (len(headers) - 1) + ["---"])
    return lines + ["", "</details>", ""]


def _samples(report: dict[str, Any]) -> list[str]:
    samples = report.get("content_samples") or {}
    if not any(samples.values()):
        return []
    count = sum(len(v or []) for v in samples.values())
    lines = [f"<details><summary>Content samples ({count})</summary>", ""]
    rows = []
    for variant, items in samples.items():
        for item in (items or [])[:SAMPLES_PER_VARIANT]:
            rows.append([md_text(variant), md_text(item.get("key"), 80) or "(all units)",
                         md_text(item.get("content"), SAMPLE_CHARS) or NULL])
        if len(items or []) > SAMPLES_PER_VARIANT:
            rows.append([md_text(variant), "…", f"_{len(items) - SAMPLES_PER_VARIANT} more in report.json_"])
    lines += _table(["variant", "key", "content"], rows, ["---", "---", "---"])
    return lines + ["", "</details>", ""]


# ================================================================== entry point


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown for a pull-request comment (see the module docs)."""
    from .format import variant_ids

    ids = variant_ids(report)
    core = _heading(report) + _context(report) + _metrics(report) + _guardrails(report) + \
        _srm(report, ids) + _generation(report)
    extras = [_failures(report), _history(report), _samples(report)]
    footer = ["<sub>Full report: report.html (plots) and report.json (every number).</sub>"]
    note: list[str] = []
    while True:
        text = "\n".join(core + [line for block in extras for line in block] + note + footer) + "\n"
        if len(text) <= MAX_CHARS or not any(extras):
            return text
        drop = max(i for i, block in enumerate(extras) if block)  # the last non-empty block goes first
        extras[drop] = []
        note = ["_Some collapsed sections were left out to fit a comment; see report.json._", ""]
