"""How a report writes numbers and untrusted text, for every renderer (pure functions, no I/O).

Numbers: every formatter takes anything (a report may come from a hand-edited
file) and writes a missing number (None, NaN, ±inf, not a number) as an em
dash, :data:`NULL`, so that no renderer prints ``None``, ``nan`` or
``[null, null]``. Rates are in percent, absolute lifts of proportions in
percentage points, relative lifts in percent, p-values with three decimals.
An interval writes the unit once, after the estimate: ``+0.70 pp [+0.00,
+1.39]``, ``10.66% [10.35, 10.98]``.

Text: :func:`visible` makes text from a spec, a data file or a provider safe
to show anywhere: control characters (C0, DEL, C1: ANSI and OSC escape
sequences start with one), bidi controls, zero-width and other invisible
characters become visible ``\\x1b``-style escapes, and GitHub Actions
workflow commands are defused, so that a hostile value can neither drive a
terminal or a CI log nor reorder what is read around it. (The same rules as
``compiler/textsafe.py``'s ``terminal_safe``, which was not yet in the
repository when this was written.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from expc.compiler.textsafe import terminal_safe

__all__ = [
    "NULL",
    "fmt_abs",
    "fmt_estimate",
    "fmt_int",
    "fmt_interval",
    "fmt_money",
    "fmt_p",
    "fmt_prob",
    "fmt_rel",
    "fmt_share",
    "num",
    "visible",
]

NULL = "—"

# ================================================================== text


def visible(value: Any, *, lines: bool = False) -> str:
    """Text that cannot drive a terminal or a CI log: every control or invisible character as a visible escape.

    ``None`` is the empty string. By default whitespace runs (newlines and tabs
    too) become one space, so the text stays on one line; with ``lines=True``
    newlines and tabs are kept (content samples shown as written). A ``::``
    that starts a line becomes ``\\x3a:`` and ``##[`` becomes ``#\\x23[``
    (GitHub Actions workflow commands). Printable text, emoji sequences
    included, comes back unchanged.
    """
    if value is None:
        return ""
    text = str(value) if lines else " ".join(str(value).split())
    return terminal_safe(text, multiline=lines)


# ================================================================== numbers


def cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when it was longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def num(x: Any) -> float | None:
    """A finite float, or None for None, NaN, ±inf and anything that is not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def fmt_int(x: Any) -> str:
    """A count with thousands separators (``36,012``)."""
    f = num(x)
    return NULL if f is None else f"{int(round(f)):,}"


def fmt_estimate(x: Any, kind: str, unit: bool = True) -> str:
    """A variant's estimate: a rate in percent for proportions (``unit=False``: no ``%``), else 4 digits."""
    f = num(x)
    if f is None:
        return NULL
    return f"{f * 100:.2f}" + ("%" if unit else "") if kind == "proportion" else f"{f:.4g}"


def fmt_abs(x: Any, kind: str, unit: bool = True) -> str:
    """An absolute lift: percentage points for proportions (``unit=False`` leaves out `` pp``), else signed."""
    f = num(x)
    if f is None:
        return NULL
    if kind == "proportion":
        return f"{f * 100:+.2f}" + (" pp" if unit else "")
    return f"{f:+.4g}"


def fmt_rel(x: Any, unit: bool = True) -> str:
    """A relative lift in percent (``+7.0%``; ``unit=False``: ``+7.0``)."""
    f = num(x)
    return NULL if f is None else f"{f * 100:+.1f}" + ("%" if unit else "")


def fmt_interval(ci: Any, one: Callable[[Any], str]) -> str | None:
    """An interval ``[lo, hi]``, each end written by ``one`` (a missing end is ``—``); None when both are missing."""
    if not isinstance(ci, (list, tuple)):
        return None
    lo, hi = (list(ci) + [None, None])[:2]
    if num(lo) is None and num(hi) is None:
        return None
    return f"[{one(lo)}, {one(hi)}]"


def fmt_p(p: Any) -> str:
    """A p-value with three decimals, ``<0.001`` below that."""
    f = num(p)
    if f is None:
        return NULL
    return "<0.001" if f < 0.001 else f"{f:.3f}"


def fmt_prob(p: Any) -> str:
    """A probability in percent (``59.3%``); ``>99.9%`` / ``<0.1%`` when rounding would say certain."""
    f = num(p)
    if f is None:
        return NULL
    if 0.999 < f < 1:
        return ">99.9%"
    if 0 < f < 0.001:
        return "<0.1%"
    return f"{f * 100:.1f}%"


def fmt_share(part: Any, whole: float) -> str:
    """``part / whole`` in percent, or ``—`` when either is missing or the whole is 0."""
    f = num(part)
    return NULL if f is None or not whole else fmt_prob(f / whole)


def fmt_money(x: Any) -> str:
    """A cost in US dollars: four decimals under a dollar (LLM calls are cheap), two above."""
    f = num(x)
    if f is None:
        return NULL
    if f == 0:
        return "$0.00"
    return f"${f:,.4f}" if abs(f) < 1 else f"${f:,.2f}"
