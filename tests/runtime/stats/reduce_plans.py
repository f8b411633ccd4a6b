"""Plans for the reduce() tests: a checked plan with the variants, unit and metrics a test names."""

from __future__ import annotations

from typing import Any

from conftest import edited, plan_of_text

from expc.compiler.plan import Plan

_SPEC = """\
version: 1
experiment:
  id: reduce-test
  unit: {unit}
attributes:
  {unit}: string
variants:
{variants}metrics:
  - {{id: placeholder, kind: proportion, event: placeholder, role: primary}}
"""


#: A metric of every kind, with and without windows, sharing events (the reduce tests' usual set).
METRICS = [
    {"id": "bought", "kind": "proportion", "event": "buy", "window_seconds": 3600},
    {"id": "visited_ever", "kind": "proportion", "event": "visit", "window_seconds": None},
    {"id": "spend", "kind": "mean", "event": "buy", "window_seconds": 7200},
    {"id": "spend_per_visit", "kind": "ratio", "window_seconds": 5400,
     "numerator": {"event": "buy", "measure": "value"}, "denominator": {"event": "visit", "measure": "count"}},
    {"id": "clicks_per_visit", "kind": "ratio", "window_seconds": None,
     "numerator": {"event": "click", "measure": "count"}, "denominator": {"event": "visit", "measure": "count"}},
]


def plan_for(metrics: list[dict[str, Any]], variants: tuple[str, ...] = ("control", "a"), unit: str = "user_id",
             cuped: bool = False, lookback: int | None = None, in_progress: str = "exclude") -> Plan:
    """A plan with these variants (the first is the control), unit and metrics.

    ``metrics`` give the fields reduce() reads (id, kind, event or numerator and
    denominator, window_seconds, and optionally cuped); the first is the primary
    metric. A metric's ``cuped`` left out (or None) is ``cuped``, the analysis'
    setting, as the compiler resolves it; ``lookback`` is ``analysis.cuped_lookback``
    in seconds (default: the compiler's); ``in_progress`` is ``analysis.in_progress``.
    """
    listed = "".join(f"  - {{id: {v}, content: {v}}}\n" for v in variants)
    plan = plan_of_text(_SPEC.format(unit=unit, variants=listed), "reduce.yaml")

    def edit(p: dict[str, Any]) -> None:
        p["metrics"] = [_metric(m, i == 0, cuped, len(variants) - 1) for i, m in enumerate(metrics)]
        p["analysis"]["cuped"] = cuped
        p["analysis"]["in_progress"] = in_progress
        if lookback is not None:
            p["analysis"]["cuped_lookback"] = lookback

    return edited(plan, edit)


def _metric(m: dict[str, Any], primary: bool, cuped: bool, treatments: int) -> dict[str, Any]:
    own = m.get("cuped")
    return {"role": "primary" if primary else "secondary", "direction": "increase",
            "family": f"metric:{m['id']}", "family_size": treatments,
            **{k: v for k, v in m.items() if k != "cuped"}, "cuped": cuped if own is None else own}
