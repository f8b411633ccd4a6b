"""What a report says, built once from a report dict: the rows that every renderer lays out.

:func:`build` reads a report dict (report.json's content, or ``expc analyze``'s
result: they share the final look's keys, docs/reports.md) and returns
:class:`ReportRows`, frozen dataclasses whose strings are final: numbers
formatted (:mod:`.format`), words chosen, untrusted text made visible
(:func:`.format.visible`). The terminal summary, report.md and report.html
(:mod:`.terminal`, :mod:`.markdown`, :mod:`.html`) only lay these strings out
and escape them for their format, so one report says the same words in every
format. Every reader tolerates missing keys and ``None`` numbers.

The words:

* a treatment's ``result``: ``better`` or ``worse`` (significant after the
  correction, in the metric's good or bad direction), ``not significant``;
  ``better (winner)`` for the variant the decision ships; on a guardrail the
  state of its test instead (:func:`guardrail_state`); `` (untrusted: SRM)``
  added when the sample ratio is broken. The control's row says ``baseline``.
* a column header names an interval (``rate [95% CI]``) only when some row of
  the table has that interval; a row without it then shows ``[—]``.
* which treatment a metric's headline is about: :func:`best_comparison`
  (the decision's variant when it ships one, else by ``direction``).
* per segment (a comparison's ``segments``, one :class:`SegmentTable` per
  metric and attribute, a row per treatment and segment value): ``better`` or
  ``worse`` when significant after the adjustment across the attribute's
  segments, ``not significant``, ``—`` without a test (bayesian: the chance
  to beat the control says it); `` (untrusted: SRM)`` when the segment's own
  sample ratio is broken. A heterogeneity sentence per treatment: ``The effect
  of <variant> on <metric> differs by <attribute> (Cochran's Q = …)`` when
  the test flags it, ``No evidence that …`` when it does not. Segment values
  come from data files: made visible and cut to :data:`VALUE_CHARS`, the copy
  shown to a segment to :data:`COPY_CHARS`, at most :data:`MAX_SEGMENTS`
  values per treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .format import (
    NULL,
    cut,
    fmt_abs,
    fmt_estimate,
    fmt_int,
    fmt_interval,
    fmt_money,
    fmt_p,
    fmt_prob,
    fmt_rel,
    fmt_share,
    num,
    visible,
)

__all__ = [
    "DecisionRow",
    "Figure",
    "GenerationRows",
    "Lead",
    "MetricTable",
    "ReportRows",
    "SampleGroup",
    "SegmentRow",
    "SegmentTable",
    "SrmRows",
    "Table",
    "VariantRow",
    "best_comparison",
    "build",
    "generation_table",
    "guardrail_state",
    "heterogeneity_sentence",
    "level_label",
    "segment_attributes",
    "segment_label",
]

MISSING_INTERVAL = "[—]"
UNKNOWN_PRICE = "* a model without a known price: its calls are counted by tokens only, not in the cost."

_HEADLINES = {
    "stop_ship_winner": "Ship {variant}",
    "stop_rollback": "Roll back to {variant}",
    "stop_futility": "Stop: no effect worth having (futility)",
    "stop_inconclusive": "Stop: inconclusive",
    "continue": "Continue: keep collecting data",
}
_NO_VARIANT = {"stop_ship_winner": "Stop: no winner to ship", "stop_rollback": "Roll back"}
_TONE = {"stop_ship_winner": "ship", "stop_rollback": "rollback"}

VALUE_CHARS = 60  # a segment value (from a data file) as every format shows it
COPY_CHARS = 160  # the copy a segment was shown, on one line
MAX_SEGMENTS = 100  # segment values per treatment in one table (the rest: report.json)


# ================================================================== the rows


@dataclass(frozen=True)
class Figure:
    """A number as text and its interval: ``None`` when the column shows no interval, ``[—]`` when missing."""

    value: str
    interval: str | None = None

    @property
    def text(self) -> str:
        """The number followed by its interval, as every format shows it."""
        return self.value if self.interval is None else f"{self.value} {self.interval}"


@dataclass(frozen=True)
class VariantRow:
    """One variant of one metric: its estimate and, for a treatment, the comparison with the control."""

    variant: str
    is_control: bool
    units: str
    estimate: Figure
    abs_lift: Figure | None = None  # None for the control
    rel_lift: Figure | None = None
    score: str = ""  # the adjusted p-value, the chance to beat the control, or the non-inferiority p-value
    result: str = "baseline"
    tone: str = "none"  # good, bad or none
    winner: bool = False  # the variant the decision ships, on the primary metric

    def cells(self) -> tuple[str, ...]:
        """The row's cells in :attr:`MetricTable.headers` order (the control's comparison cells empty)."""
        return (self.variant, self.units, self.estimate.text, self.abs_lift.text if self.abs_lift else "",
                self.rel_lift.text if self.rel_lift else "", self.score, self.result)


@dataclass(frozen=True)
class SegmentRow:
    """One treatment in one segment: its comparison with the control within the segment."""

    value: str  # the segment value, visible and cut
    variant: str
    units: str  # "512 / 498": the treatment's units / the control's
    abs_lift: Figure
    rel_lift: Figure
    score: str  # the p-value adjusted across the attribute's segments, or the chance to beat the control
    result: str
    tone: str
    srm_p: str  # the segment's own sample-ratio p-value
    copy: str | None = None  # the treatment's copy for this segment; None when the table has no such column
    control_copy: str | None = None

    def cells(self) -> tuple[str, ...]:
        """The row's cells in :attr:`SegmentTable.headers` order."""
        copies = tuple(c for c in (self.copy, self.control_copy) if c is not None)
        return (self.value, self.variant, self.units, self.abs_lift.text, self.rel_lift.text, self.score,
                self.result, self.srm_p, *copies)


@dataclass(frozen=True)
class SegmentTable:
    """One metric by one attribute: a row per treatment and segment value, and the heterogeneity sentences."""

    metric: str
    attribute: str
    key: str  # the attribute as the report names it (not for display: figures read their numbers by it)
    title: str  # "activated by country"
    headers: tuple[str, ...]
    rows: tuple[SegmentRow, ...]
    numeric: tuple[bool, ...]  # right-aligned columns
    copy_columns: tuple[int, ...]  # indices of the copy columns (text that wraps)
    sentences: tuple[str, ...]  # one per treatment: does the effect differ across the segments?
    differs: tuple[bool, ...]  # per sentence: the heterogeneity test flags it
    notes: tuple[str, ...] = ()  # segments left out of the table


@dataclass(frozen=True)
class MetricTable:
    """One metric: its heading, its table (a row per variant, control first) and notes."""

    id: str
    role: str
    kind: str
    direction: str
    heading: str  # "primary · proportion, increase is good" (guardrails: "· margin 2% of the control")
    headers: tuple[str, ...]
    rows: tuple[VariantRow, ...]
    notes: tuple[str, ...] = ()  # CUPED
    segments: tuple[SegmentTable, ...] = ()  # one per segment attribute (analysis.segments)


@dataclass(frozen=True)
class Table:
    """A plain table: a title, headers, rows of text cells and which columns are numbers (right-aligned)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class DecisionRow:
    """The stopping decision for a person."""

    headline: str  # "Ship personalized"
    summary: str  # "stop_ship_winner, by rule primary_significant" / "continue, no stopping rule holds"
    tone: str  # ship, rollback or neutral
    action: str
    variant: str | None
    rule: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Lead:
    """The primary metric's headline comparison (:func:`best_comparison`), for a key figure."""

    metric: str
    row: VariantRow


@dataclass(frozen=True)
class SrmRows:
    """The sample-ratio check: a line, whether it is flagged, the units per arm."""

    line: str
    flagged: bool
    p: str  # the p-value, formatted
    units: str  # total units, formatted
    arms: int
    table: Table


@dataclass(frozen=True)
class GenerationRows:
    """Generation costs: a line, the per-variant table, the failures."""

    line: str
    spent: str
    calls: str
    failures: int
    table: Table | None
    failure_rows: tuple[tuple[str, str, str], ...]  # variant, key, reason (full text; renderers may cut)


@dataclass(frozen=True)
class SampleGroup:
    """What one variant showed: (key, content) pairs, content with its newlines."""

    variant: str
    samples: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReportRows:
    """Everything a report says, in the order renderers show it."""

    title: str  # "SIMULATED · welcome-subject-2026q4 · look 12, day 12"
    simulated: bool
    simulated_note: str
    experiment_id: str
    name: str
    hypothesis: str
    where: str  # "look 12, day 12"
    context: tuple[str, ...]  # "sequential analysis", "α = 0.05", ...
    decision: DecisionRow
    metrics: tuple[MetricTable, ...]
    guardrail_lines: tuple[str, ...]
    lead: Lead | None
    srm: SrmRows | None
    excluded: str
    generation: GenerationRows | None
    history: Table | None
    samples: tuple[SampleGroup, ...]
    variants: tuple[str, ...]  # every variant id, control first

    def lines(self) -> tuple[str, ...]:
        """The sentences every format shows besides the tables (what a test compares across formats)."""
        out = [self.decision.headline, self.decision.summary, *self.decision.reasons]
        out += [self.simulated_note] if self.simulated else []
        out += list(self.context)
        for m in self.metrics:
            out += [m.heading, *m.notes]
            for seg in m.segments:
                out += [*seg.sentences, *seg.notes]
        out += list(self.guardrail_lines)
        out += [self.srm.line] if self.srm else []
        out += [self.excluded] if self.excluded else []
        out += [self.generation.line] if self.generation else []
        return tuple(x for x in out if x)


# ================================================================== shared helpers


def _text(value: Any) -> str:
    return visible(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _sign(direction: Any) -> float:
    return -1.0 if direction == "decrease" else 1.0


def level_label(report: Mapping[str, Any]) -> str:
    """The interval's name for headers: ``95% CI`` (``95% CrI`` under bayesian)."""
    alpha = num(report.get("alpha"))
    name = "CrI" if report.get("method") == "bayesian" else "CI"
    return name if alpha is None else f"{(1 - alpha) * 100:g}% {name}"


def best_comparison(metric: Mapping[str, Any], decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The treatment a metric's headline is about, given the metric's ``direction``.

    The decision's ``variant`` when it is one of the metric's treatments (what
    the decision ships: not recomputed), else the significant improvement with
    the largest lift in the good direction, else the largest lift in the good
    direction (the leader so far), else the first comparison.
    """
    comps = [c for c in _list(metric.get("comparisons")) if isinstance(c, dict)]
    chosen = _dict(decision).get("variant")
    for c in comps:
        if chosen is not None and c.get("variant") == chosen:
            return c
    sign = _sign(metric.get("direction"))
    scored = [c for c in comps if num(c.get("abs_lift")) is not None]
    pool = [c for c in scored if c.get("significant") and c.get("better")] or scored
    if pool:
        return max(pool, key=lambda c: sign * (num(c.get("abs_lift")) or 0.0))
    return comps[0] if comps else None


def guardrail_state(g: Mapping[str, Any] | None) -> tuple[str, str]:
    """A guardrail comparison's state and tone, by the rule its look applied (``basis``).

    ``harm: significantly worse`` (an interim look), ``harm: non-inferiority not
    shown`` (the final look), ``non-inferior``, ``not shown yet`` (an interim
    look without harm), or ``—`` when there is no test. A report without
    ``basis`` says ``harm`` alone.
    """
    if not g:
        return NULL, "none"
    basis = g.get("basis")
    if g.get("harm"):
        text = {"significantly_worse": "harm: significantly worse",
                "non_inferiority": "harm: non-inferiority not shown"}.get(basis or "", "harm")
        return text, "bad"
    if g.get("non_inferior"):
        return "non-inferior", "good"
    if basis == "non_inferiority":  # final look, no harm, not shown: the lift could not be computed
        return "no estimate", "none"
    return "not shown yet", "none"


# ================================================================== decision and context


def _decision(report: Mapping[str, Any]) -> DecisionRow:
    d = _dict(report.get("decision"))
    action = _text(d.get("action")) or "continue"
    variant = _text(d.get("variant")) or None
    rule = _text(d.get("rule")) or None
    template = _HEADLINES.get(action, action)
    if "{variant}" in template:
        headline = template.format(variant=variant) if variant else _NO_VARIANT.get(action, action)
    else:
        headline = template
    summary = f"{action}, by rule {rule}" if rule else f"{action}, no stopping rule holds"
    reasons = tuple(_text(r) for r in _list(d.get("reasons")))
    return DecisionRow(headline=headline, summary=summary, tone=_TONE.get(action, "neutral"), action=action,
                       variant=variant, rule=rule, reasons=reasons)


def _where(report: Mapping[str, Any]) -> str:
    looks = _dict(report.get("run")).get("looks") or len(_list(report.get("history"))) or None
    parts = []
    if num(looks) is not None:
        parts.append(f"look {fmt_int(looks)}")
    if num(report.get("day")) is not None:
        parts.append(f"day {fmt_int(report.get('day'))}")
    return ", ".join(parts)


def _context(report: Mapping[str, Any]) -> tuple[str, ...]:
    exp = _dict(report.get("experiment"))
    run = _dict(report.get("run"))
    bits = [f"{_text(report.get('method')) or NULL} analysis"]
    alpha = num(report.get("alpha"))
    if alpha is not None:
        bits.append(f"α = {alpha:g}")
    if run.get("as_of"):
        bits.append(f"as of {_text(run['as_of'])}")
    if exp.get("owner"):
        bits.append(f"owner {_text(exp['owner'])}")
    if report.get("spec_sha256"):
        bits.append(f"spec {_text(report['spec_sha256'])[:12]}")
    return tuple(bits)


def variant_ids(report: Mapping[str, Any]) -> tuple[str, ...]:
    """Every variant id, control first, in the order of the first metric (then the history, the samples)."""
    ids: list[str] = []
    for m in _list(report.get("metrics")):
        for v in _list(_dict(m).get("variants")):
            ids.append(_text(_dict(v).get("id")))
    for look in _list(report.get("history")):
        ids += [_text(v) for v in _dict(_dict(look).get("units"))]
    ids += [_text(v) for v in _dict(report.get("content_samples"))]
    return tuple(dict.fromkeys(ids))


# ================================================================== metrics


def _interval(ci: Any, one: Callable[[Any], str], shown: bool) -> str | None:
    if not shown:
        return None
    return fmt_interval(ci, one) or MISSING_INTERVAL


def _has_interval(items: list[dict[str, Any]], key: str) -> bool:
    return any(fmt_interval(i.get(key), str) is not None for i in items)


def _result(c: dict[str, Any], guardrail: bool, winner: bool) -> tuple[str, str]:
    if guardrail:
        text, tone = guardrail_state(_dict(c.get("guardrail")))
    elif c.get("significant"):
        better = c.get("better")
        if better is None:  # a hand-made report may not say which way
            text, tone = "significant", "none"
        elif better:
            text, tone = ("better (winner)" if winner else "better"), "good"
        else:
            text, tone = "worse", "bad"
    else:
        text, tone = "not significant", "none"
    if c.get("trustworthy") is False:
        text, tone = text + " (untrusted: SRM)", "bad"
    return text, tone


def _score(report: Mapping[str, Any], c: dict[str, Any], guardrail: bool) -> str:
    if guardrail:
        return fmt_p(_dict(c.get("guardrail")).get("p_value"))
    if report.get("method") == "bayesian":
        return fmt_prob(c.get("chance_to_beat"))
    adjusted = c.get("adjusted_p_value")
    return fmt_p(adjusted if adjusted is not None else c.get("p_adjusted"))


def _headers(report: Mapping[str, Any], kind: str, guardrail: bool, est_ci: bool, abs_ci: bool,
             rel_ci: bool) -> tuple[str, ...]:
    level = f" [{level_label(report)}]"
    est = {"proportion": "rate", "ratio": "ratio"}.get(kind, "mean")
    if guardrail:
        score = "p (non-inferiority)"
    elif report.get("method") == "bayesian":
        score = "chance to beat control"
    else:
        score = "p (adjusted)"
    return ("variant", "units", est + (level if est_ci else ""), "abs. lift" + (level if abs_ci else ""),
            "rel. lift" + (level if rel_ci else ""), score, "result")


def _heading(m: dict[str, Any], kind: str) -> str:
    role = _text(m.get("role")) or NULL
    direction = _text(m.get("direction")) or "increase"
    text = f"{role} · {kind}, {direction} is good"
    margins = [num(_dict(c.get("guardrail")).get("margin")) for c in _list(m.get("comparisons")) if isinstance(c, dict)]
    margin = next((x for x in margins if x is not None), None)
    if m.get("role") == "guardrail" and margin is not None:
        text += f" · margin {margin * 100:g}% of the control"
    return text


def _cuped_note(c: dict[str, Any], kind: str) -> str:
    vr = num(c.get("variance_reduction"))
    gain = "" if vr is None else f" (variance −{vr * 100:.0f}%)"
    column = {"proportion": "rate", "ratio": "ratio"}.get(kind, "mean")
    return (f"CUPED: the lift and test of {_text(c.get('variant'))} use pre-exposure-adjusted values{gain}; "
            f"the {column} column is unadjusted")


def _cap_note(m: dict[str, Any], kind: str) -> str | None:
    """``Capped at X: ...`` for a capped metric (its ``cap``), None otherwise."""
    cap = m.get("cap")
    if not isinstance(cap, dict):
        return None
    at, q = num(cap.get("at")), num(cap.get("quantile"))
    what = "numerator" if kind == "ratio" else "value"
    if at is None:
        return f"Capped: no unit counted yet, so no cap value ({_text(m.get('id'))})"
    rule = (f"the {q * 100:g}th percentile of the units' {what}s, all variants pooled" if q is not None
            else "the spec's cap")
    return (f"Capped at {at:.6g}: each unit's {what} above {rule}, counts as {at:.6g} "
            "(the mean, lift and test use capped values)")


def _in_progress_note(m: dict[str, Any]) -> str | None:
    """How many units wait for their window to end (``units_in_progress``), None when none do."""
    waiting = num(m.get("units_in_progress"))
    if not waiting:
        return None
    return (f"{fmt_int(waiting)} exposed units are left out until their window ends "
            "(analysis.in_progress: exclude)")


def _metric(report: Mapping[str, Any], m: dict[str, Any], decision: DecisionRow) -> MetricTable:
    kind = _text(m.get("kind")) or "mean"
    guardrail = m.get("role") == "guardrail"
    variants = [v for v in _list(m.get("variants")) if isinstance(v, dict)]
    comps = [c for c in _list(m.get("comparisons")) if isinstance(c, dict)]
    by_variant = {c.get("variant"): c for c in comps}
    est_ci, abs_ci, rel_ci = (_has_interval(variants, "ci"), _has_interval(comps, "abs_ci"),
                              _has_interval(comps, "rel_ci"))
    ships = decision.action == "stop_ship_winner" and m.get("role") == "primary"

    def estimate(mean: Any, ci: Any) -> Figure:
        return Figure(fmt_estimate(mean, kind), _interval(ci, lambda x: fmt_estimate(x, kind, unit=False), est_ci))

    rows = []
    for i, v in enumerate(variants):
        c = by_variant.get(v.get("id"))
        vid = _text(v.get("id"))
        est = estimate(v.get("mean"), v.get("ci"))
        if c is None:
            rows.append(VariantRow(variant=vid, is_control=i == 0, units=fmt_int(v.get("units")), estimate=est,
                                   result="baseline" if i == 0 else NULL))
            continue
        winner = ships and decision.variant is not None and vid == decision.variant
        result, tone = _result(c, guardrail, winner)
        rows.append(VariantRow(
            variant=vid, is_control=False, units=fmt_int(v.get("units")), estimate=est,
            abs_lift=Figure(fmt_abs(c.get("abs_lift"), kind),
                            _interval(c.get("abs_ci"), lambda x: fmt_abs(x, kind, unit=False), abs_ci)),
            rel_lift=Figure(fmt_rel(c.get("rel_lift")),
                            _interval(c.get("rel_ci"), lambda x: fmt_rel(x, unit=False), rel_ci)),
            score=_score(report, c, guardrail), result=result, tone=tone, winner=winner))
    notes = tuple(n for n in (_cap_note(m, kind), _in_progress_note(m)) if n)
    notes += tuple(_cuped_note(c, kind) for c in comps if c.get("cuped"))
    control = variants[0].get("id") if variants else None
    return MetricTable(id=_text(m.get("id")), role=_text(m.get("role")), kind=kind,
                       direction=_text(m.get("direction")) or "increase", heading=_heading(m, kind),
                       headers=_headers(report, kind, guardrail, est_ci, abs_ci, rel_ci), rows=tuple(rows),
                       notes=notes, segments=_segment_tables(report, m, kind, comps, control))


# ================================================================== segments


def segment_label(value: Any) -> str:
    """A segment value as every format shows it: visible, on one line, cut to :data:`VALUE_CHARS`."""
    return cut(_text(value), VALUE_CHARS) or NULL


def segment_attributes(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The segment attributes, as the report names them: ``segment_attributes`` first, then any other a
    comparison's ``segments`` or ``heterogeneity`` names (in the order met)."""
    names: list[str] = [a for a in _list(report.get("segment_attributes")) if isinstance(a, str)]
    for m in _list(report.get("metrics")):
        for c in _list(_dict(m).get("comparisons")):
            for item in _list(_dict(c).get("segments")) + _list(_dict(c).get("heterogeneity")):
                attr = _dict(item).get("attribute")
                if isinstance(attr, str):
                    names.append(attr)
    return tuple(dict.fromkeys(names))


def _segment_result(s: dict[str, Any], sign: float) -> tuple[str, str]:
    lift = num(s.get("abs_lift"))
    if s.get("significant"):
        if lift is None or lift == 0:
            text, tone = "significant", "none"
        elif sign * lift > 0:
            text, tone = "better", "good"
        else:
            text, tone = "worse", "bad"
    elif num(s.get("adjusted_p_value")) is None and num(s.get("p_value")) is None:
        text, tone = NULL, "none"  # no test: bayesian (the chance to beat says it), or no estimate
    else:
        text, tone = "not significant", "none"
    if s.get("srm_flagged"):
        text, tone = text + " (untrusted: SRM)", "bad"
    return text, tone


def heterogeneity_sentence(variant: str, metric: str, attribute: str, h: Mapping[str, Any]) -> tuple[str, bool]:
    """Whether the effect of ``variant`` on ``metric`` differs across the segments of ``attribute``, in words.

    ``h`` is a comparison's ``heterogeneity`` entry; returns the sentence and
    whether the test flags a difference (its ``differs``).
    """
    q, p, i2 = num(h.get("q")), num(h.get("p_value")), num(h.get("i2"))
    stats = (f"Cochran's Q = {NULL if q is None else f'{q:.2f}'}, df = {fmt_int(h.get('df'))}, p = {fmt_p(p)}"
             + ("" if i2 is None else f", I² = {i2 * 100:.0f}%"))
    if h.get("differs") is True:
        return f"The effect of {variant} on {metric} differs by {attribute} ({stats}).", True
    if p is None:
        return (f"The effect of {variant} on {metric} was not tested for differences by {attribute} "
                f"(fewer than two segments with an estimate)."), False
    return f"No evidence that the effect of {variant} on {metric} differs by {attribute} ({stats}).", False


def _count(units: dict[str, Any], variant: Any) -> str:
    return fmt_int(units.get(variant) if isinstance(variant, str) else None)


def _copy(content: dict[str, Any], variant: Any, shown: bool) -> str | None:
    if not shown:
        return None
    text = content.get(variant) if isinstance(variant, str) else None
    return NULL if text is None else cut(visible(text), COPY_CHARS) or NULL


def _segment_tables(report: Mapping[str, Any], m: dict[str, Any], kind: str, comps: list[dict[str, Any]],
                    control: Any) -> tuple[SegmentTable, ...]:
    """One table per segment attribute that the metric's comparisons break down (none without segments)."""
    if not any(_list(c.get("segments")) or _list(c.get("heterogeneity")) for c in comps):
        return ()
    bayesian = report.get("method") == "bayesian"
    sign = _sign(m.get("direction"))
    metric = _text(m.get("id"))
    level = f" [{level_label(report)}]"
    tables = []
    for attr in segment_attributes(report):
        picked = [(c, [s for s in _list(c.get("segments")) if isinstance(s, dict) and s.get("attribute") == attr])
                  for c in comps]
        hets = [(c, h) for c in comps for h in _list(c.get("heterogeneity"))
                if isinstance(h, dict) and h.get("attribute") == attr]
        if not any(segs for _, segs in picked) and not hets:
            continue
        every = [s for _, segs in picked for s in segs[:MAX_SEGMENTS]]
        abs_ci, rel_ci = _has_interval(every, "abs_ci"), _has_interval(every, "rel_ci")
        copy_t = any(isinstance(c.get("variant"), str) and _dict(s.get("content")).get(c["variant"]) is not None
                     for c, segs in picked for s in segs[:MAX_SEGMENTS])
        copy_c = isinstance(control, str) and any(_dict(s.get("content")).get(control) is not None for s in every)
        rows, notes = [], []
        for c, segs in picked:
            vid = _text(c.get("variant"))
            for s in segs[:MAX_SEGMENTS]:
                units = _dict(s.get("units"))
                result, tone = _segment_result(s, sign)
                content = _dict(s.get("content"))
                score = fmt_prob(s.get("chance_to_beat")) if bayesian else fmt_p(s.get("adjusted_p_value"))
                rows.append(SegmentRow(
                    value=segment_label(s.get("value")), variant=vid,
                    units=f"{_count(units, c.get('variant'))} / {_count(units, control)}",
                    abs_lift=Figure(fmt_abs(s.get("abs_lift"), kind),
                                    _interval(s.get("abs_ci"), lambda x: fmt_abs(x, kind, unit=False), abs_ci)),
                    rel_lift=Figure(fmt_rel(s.get("rel_lift")),
                                    _interval(s.get("rel_ci"), lambda x: fmt_rel(x, unit=False), rel_ci)),
                    score=score, result=result, tone=tone, srm_p=fmt_p(s.get("srm_p_value")),
                    copy=_copy(content, c.get("variant"), copy_t), control_copy=_copy(content, control, copy_c)))
            if len(segs) > MAX_SEGMENTS:
                notes.append(f"{vid}: {len(segs) - MAX_SEGMENTS} more segments of {_text(attr)} in report.json.")
        sentences = [heterogeneity_sentence(_text(c.get("variant")), metric, _text(attr), h) for c, h in hets]
        copies = ("variant's copy",) * copy_t + ("control's copy",) * copy_c
        headers = (_text(attr) or NULL, "variant", "units (variant / control)",
                   "abs. lift" + (level if abs_ci else ""), "rel. lift" + (level if rel_ci else ""),
                   "chance to beat control" if bayesian else "p (adjusted)", "result", "SRM p", *copies)
        tables.append(SegmentTable(
            metric=metric, attribute=_text(attr), key=attr, title=f"{metric} by {_text(attr)}", headers=headers,
            rows=tuple(rows), numeric=(False, False, True, True, True, True, False, True) + (False,) * len(copies),
            copy_columns=tuple(range(8, 8 + len(copies))), sentences=tuple(x for x, _ in sentences),
            differs=tuple(d for _, d in sentences), notes=tuple(notes)))
    return tuple(tables)


def _guardrail_lines(report: Mapping[str, Any], metrics: list[dict[str, Any]]) -> tuple[str, ...]:
    """The rule that judged the guardrails (runtime/evaluate.py's), and which one this look applied."""
    guards = [m for m in metrics if m.get("role") == "guardrail"]
    if not guards:
        return ()
    alpha = num(report.get("alpha"))
    at = "" if alpha is None else f" at α = {alpha:g}"
    rule = ("Guardrails: at an interim look a treatment harms a guardrail when it is significantly worse than the "
            "control by the analysis's own test (uncorrected); at the final look (every arm at the planned sample "
            "size, or max_days reached) it harms unless non-inferiority within the margin is shown (one-sided "
            f"test{at}).")
    bases = {_dict(c.get("guardrail")).get("basis") for m in guards for c in _list(m.get("comparisons"))
             if isinstance(c, dict)}
    if bases == {"significantly_worse"}:
        return rule, "This look is an interim look: harm means significantly worse."
    if bases == {"non_inferiority"}:
        return rule, "This look is the final look: harm means non-inferiority not shown."
    return (rule,)


# ================================================================== sample ratio, costs, history, samples


def _srm(report: Mapping[str, Any], ids: tuple[str, ...]) -> SrmRows | None:
    s = _dict(report.get("srm"))
    if not s:
        return None
    observed = [num(x) for x in _list(s.get("observed"))]
    expected = [num(x) for x in _list(s.get("expected"))]
    first = next((m for m in _list(report.get("metrics")) if isinstance(m, dict)), {})
    names = [_text(_dict(v).get("id")) for v in _list(first.get("variants"))]
    if len(names) != len(observed):
        names = list(ids) if len(ids) == len(observed) else [f"arm {i}" for i in range(len(observed))]
    total_o = sum(x or 0 for x in observed)
    total_e = sum(x or 0 for x in expected)
    flagged = bool(s.get("flagged"))
    thr = num(s.get("threshold"))
    thr_text = NULL if thr is None else f"{thr:g}"
    units = fmt_int(total_o) if observed else NULL
    if flagged:
        line = (f"Sample ratio mismatch: p = {fmt_p(s.get('p_value'))} (flagged below {thr_text}); the split is "
                f"broken: results are not trustworthy and no winner can ship; {units} units.")
    else:
        line = (f"Sample ratio as planned: p = {fmt_p(s.get('p_value'))} (a mismatch is flagged below {thr_text}); "
                f"{units} units.")
    rows = []
    for i, name in enumerate(names):
        o = observed[i]
        e = expected[i] if i < len(expected) else None
        rows.append((name, fmt_int(o), fmt_share(o, total_o), fmt_share(e, total_e), fmt_int(e)))
    table = Table("Sample ratio", ("variant", "units", "observed share", "planned share", "expected units"),
                  tuple(rows), (False, True, True, True, True))
    return SrmRows(line=line, flagged=flagged, p=fmt_p(s.get("p_value")), units=units, arms=len(observed), table=table)


def _excluded(report: Mapping[str, Any]) -> str:
    if "excluded" not in report:
        return ""
    items = [f"{_text(k).replace('_', ' ')} {fmt_int(v)}" for k, v in _dict(report.get("excluded")).items()
             if num(v)]
    return "Excluded from the analysis: " + ("; ".join(items) if items else "none") + "."


def _generation(report: Mapping[str, Any]) -> GenerationRows | None:
    g = _dict(report.get("generation"))
    if not g:
        return None
    per = [p for p in _list(g.get("per_variant")) if isinstance(p, dict)]
    failures = [f for f in _list(g.get("failures")) if isinstance(f, dict)]
    n_fail = int(sum(num(p.get("failures")) or 0 for p in per)) or len(failures)
    spent, calls = fmt_money(g.get("spent")), fmt_int(g.get("calls"))
    line = (f"Generation: {spent} spent on {calls} model calls; {fmt_int(g.get('store_hits'))} items from the "
            f"content store; {n_fail} failure{'' if n_fail == 1 else 's'}.")
    line += deployment_line(_list(g.get("per_deployment")))
    if any(p.get("cost_known") is False for p in per):
        line += f" {UNKNOWN_PRICE}"
    table = generation_table(per) if per else None
    failure_rows = tuple((_text(f.get("variant")), _text(f.get("key")) or NULL, _text(f.get("reason")) or NULL)
                         for f in failures)
    return GenerationRows(line=line, spent=spent, calls=calls, failures=n_fail, table=table,
                          failure_rows=failure_rows)


def deployment_line(per_deployment: list[Any]) -> str:
    """`` By deployment: east $0.12 on 40 calls (10 calls now); ...`` when a prompt has deployments, else ``""``.

    Costs and calls are the run's totals, whichever invocation paid for them
    (``generation.per_deployment`` or ``GenerationResult.per_deployment()``).
    """
    rows = [d for d in per_deployment if isinstance(d, dict)]
    if not any(d.get("deployment") != d.get("model") for d in rows):
        return ""
    return " By deployment: " + "; ".join(
        f"{_text(d.get('deployment'))} {fmt_money(d.get('cost'))} on {fmt_int(d.get('calls'))} calls"
        + (f" ({fmt_int(d.get('calls_now'))} calls now)" if d.get("calls_now") != d.get("calls") else "")
        for d in rows) + "."


def _now(now: Any, total: Any, fmt: Callable[[Any], str]) -> str:
    """`` (N now)`` beside a total that earlier invocations of the run also paid for."""
    return f" ({fmt(now)} now)" if now is not None and now != total else ""


def generation_table(per_variant: list[dict[str, Any]]) -> Table:
    """The generation costs per variant (``generation.per_variant`` or ``GenerationResult.per_variant()``).

    Columns: variant, items, calls, store hits, failures, tokens, cost; calls and
    cost are the run's totals, with what this invocation made beside them when
    earlier ones made some (``12 (3 now)``); a cost whose model has no known
    price (``cost_known: false``) is marked ``*``.
    """
    rows = tuple((_text(p.get("variant")), fmt_int(p.get("items")),
                  fmt_int(p.get("calls")) + _now(p.get("calls_now"), p.get("calls"), fmt_int),
                  fmt_int(p.get("store_hits")), fmt_int(p.get("failures")), fmt_int(p.get("tokens")),
                  fmt_money(p.get("cost")) + _now(p.get("cost_now"), p.get("cost"), fmt_money)
                  + ("" if p.get("cost_known", True) else " *"))
                 for p in per_variant if isinstance(p, dict))
    return Table("Generation", ("variant", "items", "calls", "store hits", "failures", "tokens", "cost"), rows,
                 (False,) + (True,) * 6)


def _history(report: Mapping[str, Any]) -> Table | None:
    history = [h for h in _list(report.get("history")) if isinstance(h, dict)]
    if not history:
        return None
    primary = next((m for m in _list(report.get("metrics")) if isinstance(m, dict) and m.get("role") == "primary"),
                   {})
    pid, kind = primary.get("id"), _text(primary.get("kind")) or "mean"
    treatments = [c.get("variant") for c in _list(primary.get("comparisons")) if isinstance(c, dict)]
    bandit = any(isinstance(h.get("bandit"), dict) for h in history)  # a bandit: the weights in force, look by look
    headers = ("look", "day", "as of", "units", *(f"{_text(t)}: lift on {_text(pid)}" for t in treatments),
               *(("weights until the look", "P(best)") if bandit else ()), "SRM p", "decision")
    rows = []
    for look in history:
        lm = next((m for m in _list(look.get("metrics")) if isinstance(m, dict) and m.get("id") == pid), {})
        comps = {c.get("variant"): c for c in _list(lm.get("comparisons")) if isinstance(c, dict)}
        units = sum(num(u) or 0 for u in _dict(look.get("units")).values())
        lifts = []
        for t in treatments:
            c = comps.get(t) or {}
            lifts.append(Figure(fmt_abs(c.get("abs_lift"), kind),
                                fmt_interval(c.get("abs_ci"), lambda x: fmt_abs(x, kind, unit=False))).text)
        extra: tuple[str, ...] = ()
        if bandit:
            b = _dict(look.get("bandit"))
            periods = [p for p in _list(b.get("weights")) if isinstance(p, dict)]
            now = _dict(periods[-1].get("weights")) if periods else {}
            extra = (" · ".join(f"{_text(k)} {fmt_prob(v)}" for k, v in now.items()) or NULL,
                     " · ".join(f"{_text(k)} {fmt_prob(v)}" for k, v in _dict(b.get("probability_best")).items())
                     or NULL)
        rows.append((fmt_int(look.get("look")), fmt_int(look.get("day")), _text(look.get("as_of")) or NULL,
                     fmt_int(units), *lifts, *extra, fmt_p(_dict(look.get("srm")).get("p_value")),
                     _text(_dict(look.get("decision")).get("action")) or "continue"))
    return Table(f"Looks ({len(history)})", headers, tuple(rows), (True,) * (len(headers) - 1) + (False,))


def _samples(report: Mapping[str, Any]) -> tuple[SampleGroup, ...]:
    groups = []
    for vid, items in _dict(report.get("content_samples")).items():
        pairs = tuple((_sample_key(_dict(it)), visible(_dict(it).get("content"), lines=True)
                       if _dict(it).get("content") is not None else NULL) for it in _list(items))
        if pairs:
            groups.append(SampleGroup(_text(vid), pairs))
    candidates = _dict(report.get("candidates"))  # top_k: the candidates a judge did not keep, with their copy
    scores = _dict(candidates.get("scores"))
    for vid in _list(candidates.get("dropped")):
        items = _list(_dict(candidates.get("copy")).get(vid))
        pairs = tuple((_sample_key(_dict(it)), visible(_dict(it).get("content"), lines=True)
                       if _dict(it).get("content") is not None else NULL) for it in items)
        label = f"{_text(vid)} (not kept by top_k; judge mean {_judge_score(scores.get(vid))})"
        if pairs:
            groups.append(SampleGroup(label, pairs))
    return tuple(groups)


def _sample_key(item: Mapping[str, Any]) -> str:
    """A sample's label: its unit or segment, and the judge's score when there is one."""
    key = _text(item.get("key")) or "all units"
    return f"{key} · judge {_judge_score(item.get('score'))}" if isinstance(item.get("score"), (int, float)) else key


def _judge_score(x: Any) -> str:
    """A judge's score, two decimals."""
    return f"{x:.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else NULL


# ================================================================== entry point


def build(report: Mapping[str, Any]) -> ReportRows:
    """Everything a report says, read once from a report dict (see the module docs)."""
    report = _dict(report)
    exp = _dict(report.get("experiment"))
    run = _dict(report.get("run"))
    decision = _decision(report)
    metrics = [m for m in _list(report.get("metrics")) if isinstance(m, dict)]
    tables = tuple(_metric(report, m, decision) for m in metrics)
    simulated = bool(report.get("simulated"))
    seed = run.get("seed")
    seed_text = f" (seed {_text(seed)})" if seed is not None else ""
    where = _where(report)
    title = " · ".join(x for x in ("SIMULATED" if simulated else "", _text(exp.get("id")), where) if x)
    lead = None
    primary = next((i for i, m in enumerate(metrics) if m.get("role") == "primary"), None)
    if primary is not None:
        best = best_comparison(metrics[primary], report.get("decision"))
        row = next((r for r in tables[primary].rows if best is not None and r.variant == _text(best.get("variant"))
                    and not r.is_control), None)
        lead = Lead(tables[primary].id, row) if row is not None else None
    ids = variant_ids(report)
    return ReportRows(
        title=title or "expc report",
        simulated=simulated,
        simulated_note=(f"SIMULATED: the outcomes were drawn from the spec's simulation block{seed_text}, "
                        "not measured on real users."),
        experiment_id=_text(exp.get("id")),
        name=_text(exp.get("name")),
        hypothesis=_text(exp.get("hypothesis")),
        where=where,
        context=_context(report),
        decision=decision,
        metrics=tables,
        guardrail_lines=_guardrail_lines(report, metrics),
        lead=lead,
        srm=_srm(report, ids),
        excluded=_excluded(report),
        generation=_generation(report),
        history=_history(report),
        samples=_samples(report),
        variants=ids,
    )
