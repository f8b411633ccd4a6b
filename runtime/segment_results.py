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
from dataclasses import dataclass
from typing import Any

import numpy as np

from expc.compiler.plan import Plan, PlanMetric

from .decide import MetricLooks, compare
from .stats import corrections, fixed
from .stats.corrections import Method
from .stats.moments import Moments
from .stats.segments import SegmentMoments, heterogeneity
from .stats.srm import srm as srm_test


def _num(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class SegmentTests:
    """One metric's per-segment comparisons, adjusted within each family: arrays ``(..., S, t)``.

    The leading axes are free: one look gives ``(S, t)``, a simulation
    ``(R, K, S, t)``; the adjustment runs across the segments ``S`` of each
    treatment.
    """

    looks: MetricLooks
    p_value: np.ndarray
    adjusted: np.ndarray
    significant: np.ndarray
    harmed: np.ndarray
    """What a ``segment_harm`` rule acts on: the adjusted p-value below :func:`harm_level` in the metric's bad
    direction (guardrails: beyond the margin too); always false for a metric neither primary nor a guardrail."""


def harm_families(plan: Plan) -> int:
    """How many families a ``segment_harm`` rule watches: primary and guardrail metrics × attributes × treatments."""
    watched = sum(1 for m in plan.metrics if m.role in ("primary", "guardrail"))
    by = len(plan.analysis.segments.by) if plan.analysis.segments is not None else 0
    return max(1, watched * by * (len(plan.variants) - 1))


def harm_level(plan: Plan) -> float:
    """The level a segment's adjusted p-value must be below to count as harm: alpha over :func:`harm_families`.

    The correction within each family holds its false rejections at alpha
    when nothing differs; dividing alpha among the families (Bonferroni) holds
    the chance that the rule fires in an A/A test at alpha as well.
    """
    return plan.analysis.alpha / harm_families(plan)


def segment_tests(plan: Plan, metric: PlanMetric, m: Moments, correction: Method = "bh",
                  exact: bool = True) -> SegmentTests:
    """Compare every segment of one metric as the whole is compared, adjust across segments, and find harm.

    ``m`` has shape ``(..., S, arms)``, arms control-first. Group-sequential
    designs compare at the fixed-horizon level; Bayesian analyses adjust
    nothing (their ``adjusted`` is NaN, so no segment is significant).
    """
    a = plan.analysis
    kind: fixed.Kind = metric.kind
    looks = compare(plan.model_copy(update={"analysis": a.model_copy(update={"method": "fixed"})})
                    if a.method == "sequential" and plan.sequential is not None
                    and plan.sequential.type == "group" else plan, metric, m, kind, exact=exact)
    p = np.asarray(looks.p_value, dtype=np.float64)
    if a.method == "bayesian":
        adjusted = np.full(p.shape, np.nan)
    else:
        adjusted = np.swapaxes(corrections.adjust_rows(np.swapaxes(p, -1, -2), correction), -1, -2)
    significant = np.isfinite(adjusted) & (adjusted < a.alpha)
    lift, rel = np.asarray(looks.lift), np.asarray(looks.rel_lift)
    with np.errstate(invalid="ignore"):
        harmed = np.isfinite(adjusted) & (adjusted < harm_level(plan)) & np.isfinite(lift) & (metric.sign * lift < 0)
        if metric.role == "guardrail":
            harmed &= np.isfinite(rel) & (metric.sign * rel <= -float(metric.margin or 0.0))
    if metric.role not in ("primary", "guardrail"):
        harmed = np.zeros_like(harmed)
    return SegmentTests(looks, p, adjusted, significant, harmed)


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
        tests = segment_tests(plan, metric, m, correction)
        looks, p, adjusted = tests.looks, tests.p_value, tests.adjusted
        plain = fixed.compare(m, metric.kind, alpha=a.alpha)
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
                    "significant": bool(tests.significant[s, j]),
                    "harmed": bool(tests.harmed[s, j]),
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


def harmed_segments(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments in which the primary metric or a guardrail is harmed, from :func:`segment_results`' entries.

    Harmed (see :class:`SegmentTests`): the p-value adjusted across segments is
    below :func:`harm_level`, in the metric's bad direction; for a guardrail, also beyond its
    margin (the relative lift is worse than ``margin`` in the bad direction), so
    that a tolerated loss in one segment does not roll the experiment back. Each
    item names the metric, treatment, attribute, value, lifts and adjusted p-value.
    """
    return [{"metric": entry["metric"], "variant": t["variant"], "attribute": row["attribute"],
             "value": row["value"], "abs_lift": row["abs_lift"], "rel_lift": row["rel_lift"],
             "adjusted_p_value": row["adjusted_p_value"]}
            for entry in entries for t in entry["treatments"] for row in t["segments"] if row["harmed"]]
