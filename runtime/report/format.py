"""Shared reading and formatting of a report dict (docs/reports.md) for every renderer.

Pure functions, no I/O. A report may come from ``expc run`` (with the per-look
history, the generation costs and content samples) or from ``expc analyze``
(one look, none of those): every accessor here tolerates missing keys and
``None`` numbers, and every formatter writes a missing number as an em dash
(:data:`NULL`) so that no renderer prints ``None``, ``nan`` or a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "NULL",
    "Verdict",
    "comparison_verdict",
    "decision_headline",
    "decision_tone",
    "fmt_abs",
    "fmt_ci",
    "fmt_estimate",
    "fmt_int",
    "fmt_money",
    "fmt_p",
    "fmt_prob",
    "fmt_rel",
    "guardrail_state",
    "level_label",
    "num",
    "adjusted_p",
    "variant_ids",
]

NULL = "—"

_ACTIONS = {
    "stop_ship_winner": "Ship {variant}",
    "stop_rollback": "Roll back to {variant}",
    "stop_futility": "Stop: no effect worth having (futility)",
    "stop_inconclusive": "Stop: inconclusive",
    "continue": "Continue: keep collecting data",
}


# ================================================================== numbers


def num(x: Any) -> float | None:
    """A finite float, or None for None, NaN, ±inf and anything that is not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_int(x: Any) -> str:
    """A count with thousands separators (``36,012``)."""
    f = num(x)
    return NULL if f is None else f"{int(round(f)):,}"


def fmt_estimate(x: Any, kind: str) -> str:
    """A variant's estimate: a rate in percent for proportions, 4 significant digits otherwise."""
    f = num(x)
    if f is None:
        return NULL
    return f"{f * 100:.2f}%" if kind == "proportion" else f"{f:.4g}"


def fmt_abs(x: Any, kind: str) -> str:
    """An absolute lift: percentage points for proportions, a signed number otherwise."""
    f = num(x)
    if f is None:
        return NULL
    return f"{f * 100:+.2f} pp" if kind == "proportion" else f"{f:+.4g}"


def fmt_rel(x: Any) -> str:
    """A relative lift in percent (``+7.0%``)."""
    f = num(x)
    return NULL if f is None else f"{f * 100:+.1f}%"


def fmt_ci(ci: Any, one: Callable[[Any], str]) -> str:
    """An interval ``[lo, hi]`` with each end formatted by ``one``; ``—`` when both ends are missing."""
    if not isinstance(ci, (list, tuple)):
        return NULL
    lo, hi = (list(ci) + [None, None])[:2]
    if num(lo) is None and num(hi) is None:
        return NULL
    return f"[{one(lo)}, {one(hi)}]"


def fmt_p(p: Any) -> str:
    """A p-value with three decimals, ``<0.001`` below that."""
    f = num(p)
    if f is None:
        return NULL
    return "<0.001" if f < 0.001 else f"{f:.3f}"


def fmt_prob(p: Any) -> str:
    """A probability in percent (``59.3%``)."""
    f = num(p)
    return NULL if f is None else f"{f * 100:.1f}%"


def fmt_money(x: Any) -> str:
    """A cost in US dollars: four decimals under a dollar (LLM calls are cheap), two above."""
    f = num(x)
    if f is None:
        return NULL
    if f == 0:
        return "$0.00"
    return f"${f:,.4f}" if abs(f) < 1 else f"${f:,.2f}"


def level_label(report: dict[str, Any]) -> str:
    """The interval's name for table headers: ``95% CI`` (``95% CrI`` under bayesian)."""
    alpha = num(report.get("alpha"))
    name = "CrI" if report.get("method") == "bayesian" else "CI"
    return name if alpha is None else f"{(1 - alpha) * 100:g}% {name}"


# ================================================================== the report's parts


def variant_ids(report: dict[str, Any]) -> list[str]:
    """Every variant id, control first, in the order of the first metric (or of the history)."""
    ids: list[str] = []
    for m in report.get("metrics") or []:
        for v in m.get("variants") or []:
            if v.get("id") not in ids:
                ids.append(v.get("id"))
    for look in report.get("history") or []:
        for v in (look.get("units") or {}):
            if v not in ids:
                ids.append(v)
    for v in (report.get("content_samples") or {}):
        if v not in ids:
            ids.append(v)
    return ids


def adjusted_p(c: dict[str, Any]) -> Any:
    """The corrected p-value of a comparison (``adjusted_p_value``, or ``p_adjusted``), else the raw one."""
    for key in ("adjusted_p_value", "p_adjusted", "p_value"):
        if c.get(key) is not None:
            return c[key]
    return None


def decision_tone(action: str | None) -> str:
    """What the decision means for colour: ``ship`` (green), ``rollback`` (red) or ``neutral`` (grey)."""
    if action == "stop_ship_winner":
        return "ship"
    if action == "stop_rollback":
        return "rollback"
    return "neutral"


def decision_headline(decision: dict[str, Any] | None) -> str:
    """The decision in a few words for a person: ``Ship personalized``, ``Roll back to control``, ..."""
    decision = decision or {}
    action = decision.get("action") or "continue"
    variant = decision.get("variant")
    template = _ACTIONS.get(action, action)
    if "{variant}" in template:
        if variant:
            return template.format(variant=variant)
        return {"stop_ship_winner": "Stop: no winner to ship", "stop_rollback": "Roll back"}.get(action, action)
    return template


@dataclass(frozen=True)
class Verdict:
    """A comparison's outcome in words and tone (``good``, ``bad`` or ``none``)."""

    text: str
    tone: str


def comparison_verdict(c: dict[str, Any]) -> Verdict:
    """``better`` / ``worse`` when significant, ``not significant`` otherwise; SRM makes it untrusted."""
    if c.get("significant"):
        better = c.get("better")
        if better is None:  # a history entry may not carry ``better``
            v = Verdict("significant", "none")
        else:
            v = Verdict("better", "good") if better else Verdict("worse", "bad")
    else:
        v = Verdict("not significant", "none")
    if c.get("trustworthy") is False:
        v = Verdict(v.text + " (untrusted: SRM)", "bad")
    return v


def guardrail_state(g: dict[str, Any] | None) -> Verdict:
    """A guardrail comparison's state: harm, non-inferior, or not shown yet."""
    if not g:
        return Verdict(NULL, "none")
    if g.get("harm"):
        return Verdict("harm", "bad")
    if g.get("non_inferior"):
        return Verdict("non-inferior", "good")
    return Verdict("not shown yet", "none")
