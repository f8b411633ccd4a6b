"""Per-segment results: every metric's comparison within each value of a segment attribute.

Input: for one attribute, the segments' moments with a leading segment axis
(:class:`SegmentMoments`: shape ``(S, arms)``, arms in the plan's
control-first order), as the reduction grouped by segment gives them. Output,
per metric and treatment (:func:`segment_results`):

* each segment's comparison, made by the plan's own method
  (:func:`expc.runtime.decide.compare`, the function the whole-population
  result uses, element-wise over the segments): units per arm, lift and
  interval, relative lift and interval, p-value;
* the p-values adjusted across the segments of the metric × attribute family
  (Benjamini-Hochberg by default; ``correction`` as the plan's corrections
  name them), and ``significant`` when the adjusted p-value is below alpha;
* a sample-ratio check per segment (against the variants' weights, at the
  plan's threshold): a segment defined by something the treatment changes
  shows up here;
* Cochran's Q test of whether the effect differs between segments
  (:func:`expc.runtime.stats.segments.heterogeneity`, on the fixed-horizon
  estimates and standard errors), flagged when its p-value is below alpha.

Group-sequential designs compare segments at the fixed-horizon level (their
boundary belongs to the whole population's looks); Bayesian analyses give
``chance_to_beat`` and no p-values, so nothing is adjusted. CUPED is not
applied within segments (the covariate's slope is estimated on the whole).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from expc.compiler.plan import Plan

from .decide import compare
from .stats import corrections, fixed
from .stats.corrections import Method
from .stats.segments import SegmentMoments, heterogeneity
from .stats.srm import srm as srm_test


def _num(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def segment_results(plan: Plan, segments: SegmentMoments, correction: Method = "bh") -> list[dict[str, Any]]:
    """Per metric: each treatment's per-segment comparisons, adjusted across segments, with Cochran's Q.

    Returns one entry per metric, ``{"metric", "attribute", "treatments": [{"variant",
    "heterogeneity", "segments": [...]}]}``; see the module documentation.
    """
    a = plan.analysis
    arm_ids = plan.arm_ids
    units = np.asarray(segments.units, dtype=np.float64)
    weights = np.asarray([plan.variants[i].weight for i in plan.arm_order])
    balance = srm_test(units, weights, threshold=a.srm_threshold)
    out = []
    for metric in plan.metrics:
        m = segments.metrics[metric.id]
        kind: fixed.Kind = metric.kind
        looks = compare(plan.model_copy(update={"analysis": a.model_copy(update={"method": "fixed"})})
                        if a.method == "sequential" and plan.sequential is not None
                        and plan.sequential.type == "group" else plan, metric, m, kind, exact=True)
        plain = fixed.compare(m, kind, alpha=a.alpha)
        p = np.asarray(looks.p_value, dtype=np.float64)  # (S, t)
        adjusted = corrections.adjust_rows(p.T, correction).T if a.method != "bayesian" else np.full(p.shape, np.nan)
        treatments = []
        for j, variant in enumerate(arm_ids[1:]):
            het = heterogeneity(np.asarray(plain.abs_lift)[:, j], np.asarray(plain.se)[:, j])
            rows = []
            for s, value in enumerate(segments.values):
                row: dict[str, Any] = {
                    "attribute": segments.attribute, "value": value,
                    "units": {arm: int(units[s, i]) for i, arm in enumerate(arm_ids)},
                    "abs_lift": _num(looks.lift[s, j]),
                    "abs_ci": [_num(looks.abs_ci[s, j, 0]), _num(looks.abs_ci[s, j, 1])],
                    "rel_lift": _num(looks.rel_lift[s, j]),
                    "rel_ci": [_num(looks.rel_ci[s, j, 0]), _num(looks.rel_ci[s, j, 1])],
                    "p_value": _num(p[s, j]),
                    "adjusted_p_value": _num(adjusted[s, j]),
                    "significant": bool(np.isfinite(adjusted[s, j]) and adjusted[s, j] < a.alpha),
                    "srm_p_value": _num(np.asarray(balance.p_value)[s]),
                    "srm_flagged": bool(np.asarray(balance.flagged)[s]),
                }
                if looks.chance_up is not None:
                    row["chance_to_beat"] = _num(looks.chance_up[s, j])
                rows.append(row)
            summary: dict[str, Any] = het.to_dict()
            summary["differs"] = bool(np.isfinite(het.p_value) and het.p_value < a.alpha)
            treatments.append({"variant": variant, "heterogeneity": summary, "segments": rows})
        out.append({"metric": metric.id, "attribute": segments.attribute, "correction": correction,
                    "treatments": treatments})
    return out


def harmed_segments(plan: Plan, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments in which the primary metric or a guardrail is harmed, from :func:`segment_results`' entries.

    Harmed: significant after the correction across segments, in the metric's
    bad direction; for a guardrail, also beyond its margin (the relative lift
    is worse than ``margin`` in the bad direction), so that a tolerated loss in
    one segment does not roll the experiment back. Each item names the metric,
    treatment, attribute, value, lifts and adjusted p-value.
    """
    out = []
    for entry in entries:
        metric = plan.metric(entry["metric"])
        if metric.role not in ("primary", "guardrail"):
            continue
        sign = 1.0 if metric.direction == "increase" else -1.0
        for t in entry["treatments"]:
            for row in t["segments"]:
                lift, rel = row["abs_lift"], row["rel_lift"]
                if not row["significant"] or lift is None or sign * lift >= 0:
                    continue
                if metric.role == "guardrail" and (rel is None or sign * rel > -float(metric.margin or 0.0)):
                    continue
                out.append({"metric": metric.id, "variant": t["variant"], "attribute": row["attribute"],
                            "value": row["value"], "abs_lift": lift, "rel_lift": rel,
                            "adjusted_p_value": row["adjusted_p_value"]})
    return out
