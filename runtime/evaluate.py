"""One look at an experiment: a plan and a reduction become results and a stopping decision.

:func:`evaluate` is a pure function (no I/O, no clock: the caller passes the ``look``).
It compares every treatment with the plan's control on every metric with the
plan's ``analysis.method``, corrects the p-values for multiple testing, tests
guardrails for non-inferiority, checks the sample ratio and then applies
``stopping.rules`` in order. :meth:`Evaluation.to_dict` gives the stable JSON
shape (NaN and ±inf written as ``null``).

Methods
=======

* ``fixed``: :func:`~expc.runtime.stats.fixed.compare` (two-sided, level
  ``alpha``; z for proportions and ratios, Welch t for means).
* ``sequential`` with ``analysis.sequential: group``: the Wald z statistic against
  this look's two-sided Lan-DeMets boundary (``plan.sequential``, the schedule's
  looks; see :func:`expc.runtime.decide.group_boundaries`), at ``alpha`` divided by
  the family size unless ``correction: none`` (Bonferroni: the boundary already
  controls the familywise rate, so no p-value correction follows). ``abs_ci`` is
  the repeated confidence interval ``Δ̂ ± c_k se`` and ``rel_ci`` the same ``c_k``
  on the log ratio; ``p_value`` is the nominal fixed-horizon p (information only)
  and ``adjusted_p_value`` is null.
* ``sequential`` (``always_valid``, the default): :func:`~expc.runtime.stats.sequential.always_valid` with
  ``planned_n = plan.sample_size.per_variant`` (when the plan has no
  sample size, the largest arm's current units, so the mixing variance is tuned
  for the present look): a confidence sequence for the absolute lift, and for
  the relative lift the same radius in standard errors on the log ratio
  (:func:`~expc.runtime.stats.sequential.relative_interval`).
* ``bayesian``: :func:`~expc.runtime.stats.bayesian.beta_binomial` for
  proportions, :func:`~expc.runtime.stats.bayesian.normal_means` otherwise,
  credible level ``1 - alpha``; ``p_value`` is null and no correction applies.

CUPED: for a metric with CUPED on (the plan entry's ``cuped``, else
``analysis.cuped``) whose moments carry the pre-exposure covariate,
:func:`~expc.runtime.stats.cuped.adjust` gives the moments of the adjusted
values and the method above (and the guardrail test) runs on them as on a
mean (Welch t; the normal model under ``bayesian``). The comparison then has
``cuped = True`` and its ``variance_reduction``. Without covariate variance the
plain analysis runs (``cuped = False``). Variant means stay unadjusted.

``chance_to_beat`` is the posterior probability that the treatment is better
than the control *in the metric's good direction* (``P(T > C)`` when an
increase is good, ``P(T < C)`` when a decrease is good); null outside
``bayesian``.

Decisions
=========

Significance (corrections within each metric's family), the final look,
guardrail harm (interim: significantly worse by the method's own test; final:
non-inferiority not shown), futility, the sample-ratio check, the stopping
rules in order and the winner are decided by the decision kernel,
:func:`expc.runtime.decide.decide`, the same function ``expc simulate`` runs
over thousands of replications (its module documentation states each rule).
This module runs it on one look (``exact=True``: Bayesian probabilities are
computed exactly) and turns its arrays into the results above and the
decision's reasons. ``significant`` says nothing about direction; ``better``
says the estimate moves in the metric's good direction; decisions only use
``significant and better``. ``Decision.variant`` is the winner for
``stop_ship_winner`` (None, with a reason, when there is none), the control for
``stop_rollback``, otherwise None; ``Decision.rule`` is the rule's ``when``.

``bandit`` (``method: bandit``): the look's data by period
(:class:`expc.runtime.bandit.Periods`); every metric is compared on its
period-weighted estimates (the variant means shown are those estimates), the
decision uses the bandit's probabilities of being best and sample-ratio check
(:func:`expc.runtime.bandit.look_inputs`), and the JSON has a ``bandit`` block:
``probability_best``, the ``weights`` in force in each period and the
``next_weights``. Without periods a bandit's data are one period at the
plan's weights.

A look is placed by the plan's schedule (``look``); ``max_days`` is reached at
its last look once the data covers it (``elapsed``, :func:`look_state`).

Units: each metric is tested on its own units (``Moments.n``), which leave out
the units whose window is still in progress (``analysis.in_progress:
exclude``, see :mod:`expc.runtime.stats.reduce`); such a metric's JSON has
``units_in_progress`` (the units left out, all arms). The sample-ratio check,
``min_units_per_variant``, ``max_units`` and the group-sequential information
use the exposed units. A capped metric's JSON has ``cap``: the spec's
``quantile`` or ``value`` and ``at``, the value its units were capped at in
this look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from expc.compiler.model import Cap
from expc.compiler.plan import Look, Plan

from .decide import CONTINUE, Decisions, LookState, decide
from .report.format import cut
from .segment_results import harmed_segments, segment_results
from .stats import bayesian, cuped
from .stats.fixed import Kind
from .stats.moments import Moments
from .stats.reduce import Reduction
from .stats.segments import SegmentMoments

SEGMENT_CHARS = 60
"""A segment value (from a data file) in a decision's reasons: cut to this many characters."""

__all__ = [
    "ComparisonResult",
    "Decision",
    "Evaluation",
    "GuardrailResult",
    "MetricResult",
    "SRMResult",
    "VariantSummary",
    "evaluate",
]


# ================================================================== results


@dataclass(frozen=True)
class VariantSummary:
    """One arm of one metric: units counted and the estimate (rate, mean or ratio)."""

    id: str
    units: int
    mean: float


@dataclass(frozen=True)
class GuardrailResult:
    """Non-inferiority of one treatment on a guardrail metric."""

    margin: float
    p_value: float
    non_inferior: bool
    harm: bool
    #: what ``harm`` was judged on: "non_inferiority" (final look) or "significantly_worse" (interim look)
    basis: str = "non_inferiority"


@dataclass(frozen=True)
class ComparisonResult:
    """One treatment against the control on one metric."""

    variant: str
    baseline: str
    abs_lift: float
    abs_ci: tuple[float, float]
    rel_lift: float
    rel_ci: tuple[float, float]
    p_value: float  # raw; NaN under bayesian
    adjusted_p_value: float  # after the correction; NaN under bayesian
    significant: bool  # after correction, either direction
    better: bool  # the estimate moves in the metric's good direction
    chance_to_beat: float  # bayesian only (good direction), else NaN
    trustworthy: bool  # False when the SRM check is flagged
    guardrail: GuardrailResult | None = None
    cuped: bool = False  # compared on CUPED-adjusted values (see stats/cuped.py)
    variance_reduction: float = math.nan  # CUPED: 1 - Var_adjusted / Var of the difference; NaN without CUPED
    segments: list[dict[str, Any]] = field(default_factory=list)  # per (attribute, value): see segment_results
    heterogeneity: list[dict[str, Any]] = field(default_factory=list)  # per attribute: Cochran's Q


@dataclass(frozen=True)
class MetricResult:
    id: str
    role: str
    kind: str
    direction: str
    variants: list[VariantSummary]
    comparisons: list[ComparisonResult]
    cap: Cap | None = None  # the metric's cap (the spec's), None when uncapped ...
    cap_value: float | None = None  # ... and the value it capped at in this look (None: no unit counted)
    units_in_progress: int | None = None  # units left out while their window runs (in_progress: exclude)


@dataclass(frozen=True)
class SRMResult:
    p_value: float
    flagged: bool
    statistic: float
    threshold: float
    observed: list[int]
    expected: list[float]


@dataclass(frozen=True)
class Decision:
    """What the look decides: ``action`` is a rule's ``then`` or ``continue``."""

    action: str
    variant: str | None
    rule: str | None
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    method: str
    alpha: float
    day: int | float | None
    metrics: list[MetricResult]
    srm: SRMResult
    decision: Decision
    excluded: dict[str, int]
    segment_attributes: list[str] = field(default_factory=list)
    bandit: dict[str, Any] | None = None
    """A bandit's look: probability of being best, weights per period, next weights (see the module docs)."""
    assignment: dict[str, Any] | None = None
    """With the units file: the exposed units' variants against expc's assignment (see assignment_check)."""

    def metric(self, metric_id: str) -> MetricResult:
        """The result of one metric by id (KeyError when absent)."""
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape; NaN and ±inf become ``None`` (``json.dumps(..., allow_nan=False)`` works)."""
        return {
            "method": self.method,
            "alpha": _num(self.alpha),
            "day": self.day,
            "metrics": [
                {
                    "id": m.id,
                    "role": m.role,
                    "kind": m.kind,
                    "direction": m.direction,
                    "variants": [{"id": v.id, "units": int(v.units), "mean": _num(v.mean)} for v in m.variants],
                    "comparisons": [_comparison_dict(c) for c in m.comparisons],
                    **_metric_extras(m),
                }
                for m in self.metrics
            ],
            "srm": {
                "p_value": _num(self.srm.p_value),
                "flagged": bool(self.srm.flagged),
                "statistic": _num(self.srm.statistic),
                "threshold": _num(self.srm.threshold),
                "observed": [int(x) for x in self.srm.observed],
                "expected": [_num(x) for x in self.srm.expected],
            },
            "decision": {
                "action": self.decision.action,
                "variant": self.decision.variant,
                "rule": self.decision.rule,
                "reasons": list(self.decision.reasons),
            },
            "excluded": {k: int(v) for k, v in self.excluded.items()},
            **({"segment_attributes": list(self.segment_attributes)} if self.segment_attributes else {}),
            **({"bandit": self.bandit} if self.bandit is not None else {}),
            **({"assignment_check": dict(self.assignment)} if self.assignment is not None else {}),
        }


def _num(x: Any) -> float | None:
    """A finite float, or None for NaN / ±inf / None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _metric_extras(m: MetricResult) -> dict[str, Any]:
    """``cap`` (capped metrics) and ``units_in_progress`` (metrics whose units in progress wait), when they apply."""
    out: dict[str, Any] = {}
    if m.cap is not None:
        out["cap"] = {"quantile": _num(m.cap.quantile), "value": _num(m.cap.value), "at": _num(m.cap_value)}
    if m.units_in_progress is not None:
        out["units_in_progress"] = int(m.units_in_progress)
    return out


def _comparison_dict(c: ComparisonResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "variant": c.variant,
        "baseline": c.baseline,
        "abs_lift": _num(c.abs_lift),
        "abs_ci": [_num(c.abs_ci[0]), _num(c.abs_ci[1])],
        "rel_lift": _num(c.rel_lift),
        "rel_ci": [_num(c.rel_ci[0]), _num(c.rel_ci[1])],
        "p_value": _num(c.p_value),
        "adjusted_p_value": _num(c.adjusted_p_value),
        "significant": bool(c.significant),
        "better": bool(c.better),
        "chance_to_beat": _num(c.chance_to_beat),
        "trustworthy": bool(c.trustworthy),
        "cuped": bool(c.cuped),
        "variance_reduction": _num(c.variance_reduction),
    }
    if c.segments or c.heterogeneity:
        out["segments"] = c.segments
        out["heterogeneity"] = c.heterogeneity
    if c.guardrail is not None:
        g = c.guardrail
        out["guardrail"] = {
            "margin": _num(g.margin),
            "p_value": _num(g.p_value),
            "non_inferior": bool(g.non_inferior),
            "harm": bool(g.harm),
            "basis": g.basis,
        }
    return out


# ================================================================== evaluation


def _reorder(m: Moments, order: list[int]) -> Moments:
    """The same moments with arms permuted (control first), covariate sums included."""
    return m.map(lambda x: np.asarray(x, dtype=np.float64)[..., order])


def look_state(plan: Plan, units: np.ndarray, look: Look | None, elapsed: float | None = None) -> LookState:
    """The kernel's view of one look (leading shape ``(1,)``).

    ``max_days`` is reached at the schedule's last look once its time has
    passed: ``elapsed`` (the data's time since the first exposure, when known)
    is at least the look's. A look still in progress (``expc analyze --as-of``
    in the middle of the last day) has not reached it. Without a look (an
    analysis that cannot be placed in the schedule), the look is taken at the
    schedule's horizon for the group-sequential fractions, and ``max_days`` is
    not reached.
    """
    seconds = look.seconds if look is not None else plan.schedule.horizon_seconds
    last = look is not None and plan.schedule.is_last(look) and (elapsed is None or elapsed >= look.seconds)
    return LookState(units=units[None, :], seconds=np.asarray([seconds]), last=np.asarray([last]))


def evaluate(plan: Plan, reduction: Reduction, look: Look | None = None, elapsed: float | None = None,
             segments: Sequence[SegmentMoments] | None = None, periods: Any = None) -> Evaluation:
    """Evaluate one look: per-metric results, SRM and the stopping decision (see the module docs).

    ``look`` places the reduction in the plan's schedule; ``elapsed`` is the
    time the data covers since the start, when the look is still in progress
    (``expc analyze --as-of``; default: the look's own time). ``segments``
    (one per attribute of ``analysis.segments``, arms in the plan's variant
    order; default: the reduction's) add each comparison's per-segment rows
    and heterogeneity tests. ``periods``: a bandit's data by period (see the
    module docs).
    """
    segments = reduction.segments if segments is None else segments
    a = plan.analysis
    order = plan.arm_order
    arm_ids = plan.arm_ids
    units = np.asarray(reduction.units, dtype=np.float64)[order]

    moments: dict[str, Moments] = {}
    inputs: dict[str, tuple[Moments, Kind]] = {}
    by_cuped: dict[str, cuped.Adjustment] = {}  # CUPED, where enabled and the covariate is usable
    for metric in plan.metrics:
        m = _reorder(reduction.metrics[metric.id], order)
        moments[metric.id] = m
        if metric.cuped and m.has_covariate:
            adjustment = cuped.adjust(m)
            if bool(np.all(adjustment.applied)):
                by_cuped[metric.id] = adjustment
        ca = by_cuped.get(metric.id)
        inputs[metric.id] = (_lead(ca.moments), "mean") if ca is not None else (_lead(m), metric.kind)

    tables = _segment_tables(plan, segments)
    harmed = harmed_segments(tables)
    harm = {mid: np.asarray([any(h["metric"] == mid for h in harmed)]) for mid in {h["metric"] for h in harmed}}
    bandit_look = None
    if a.method == "bandit":
        from .bandit import look_inputs

        bandit_look = look_inputs(plan, reduction, periods, look)
        inputs = bandit_look.inputs
        by_cuped.clear()  # a bandit compares period-weighted estimates, without CUPED
    d = decide(plan, look_state(plan, units, look, elapsed), inputs, exact=True, segment_harm=harm,
               bandit=bandit_look.state if bandit_look is not None else None)
    trustworthy = not bool(np.asarray(d.srm.flagged).reshape(-1)[0])
    final = bool(d.final[0])

    results: list[MetricResult] = []
    for metric in plan.metrics:
        ml = d.metrics[metric.id]
        m = moments[metric.id]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = m.mean() if bandit_look is None else bandit_look.means[metric.id]
        summaries = [VariantSummary(v, int(n), float(x)) for v, n, x in zip(arm_ids, np.asarray(m.n), means)]
        ca = by_cuped.get(metric.id)
        abs_ci, rel_lift, rel_ci = ml.abs_ci[0], ml.rel_lift[0], ml.rel_ci[0]
        if a.method == "bayesian":  # credible intervals, for the report only
            test_m = ca.moments if ca is not None else m
            b = (bayesian.beta_binomial(test_m, level=1 - a.alpha) if ml.kind == "proportion"
                 else bayesian.normal_means(test_m, level=1 - a.alpha))
            abs_ci, rel_lift, rel_ci = np.asarray(b.abs_ci), np.asarray(b.rel_lift), np.asarray(b.rel_ci)
        adjusted = ml.adjusted_p[0] if ml.adjusted_p is not None else np.full(len(arm_ids) - 1, np.nan)
        comps = []
        for j, variant in enumerate(arm_ids[1:]):
            g = None
            if ml.non_inferiority is not None and ml.harm is not None:
                gp = float(np.asarray(ml.non_inferiority.p_value)[0][j])
                g = GuardrailResult(margin=float(ml.non_inferiority.margin), p_value=gp,
                                    non_inferior=bool(np.isfinite(gp) and gp < a.alpha),
                                    harm=bool(ml.harm[0][j]),
                                    basis="non_inferiority" if final else "significantly_worse")
            assert ml.significant is not None
            comps.append(ComparisonResult(
                variant=variant,
                baseline=plan.control,
                abs_lift=float(ml.lift[0][j]),
                abs_ci=(float(abs_ci[j][0]), float(abs_ci[j][1])),
                rel_lift=float(rel_lift[j]),
                rel_ci=(float(rel_ci[j][0]), float(rel_ci[j][1])),
                p_value=float(ml.p_value[0][j]),
                adjusted_p_value=float(adjusted[j]),
                significant=bool(ml.significant[0][j]),
                better=bool(ml.better[0][j]),
                chance_to_beat=float(ml.chance_to_beat[0][j]),
                trustworthy=trustworthy,
                guardrail=g,
                cuped=ca is not None,
                variance_reduction=float(ca.variance_reduction[j]) if ca is not None else math.nan,
            ))
        results.append(MetricResult(metric.id, metric.role, metric.kind, metric.direction, summaries, comps,
                                    cap=metric.cap, cap_value=reduction.caps.get(metric.id),
                                    units_in_progress=reduction.in_progress.get(metric.id)))

    s = d.srm
    srm_res = SRMResult(
        p_value=float(np.asarray(s.p_value).reshape(-1)[0]),
        flagged=not trustworthy,
        statistic=float(np.asarray(s.statistic).reshape(-1)[0]),
        threshold=float(s.threshold),
        observed=[int(u) for u in units],
        expected=[float(e) for e in np.asarray(s.expected).reshape(-1)],
    )
    results = _with_segments(results, tables)
    decision = _decision(plan, d, results, srm_res, units, look, harmed)
    check = reduction.assignment
    if check is not None and check.reason() is not None:
        decision = replace(decision, reasons=[*decision.reasons, str(check.reason())])
    return Evaluation(method=a.method, alpha=a.alpha, day=_day(look), metrics=results, srm=srm_res,
                      decision=decision, excluded=dict(reduction.excluded),
                      segment_attributes=[s.attribute for s in segments],
                      bandit=bandit_look.summary if bandit_look is not None else None,
                      assignment=check.to_dict() if check is not None else None)


def _segment_tables(plan: Plan, segments: Sequence[SegmentMoments]) -> list[dict[str, Any]]:
    """:func:`.segment_results.segment_results` of every attribute's segments (arms put control first)."""
    if not segments or plan.analysis.segments is None:
        return []
    correction = plan.analysis.segments.correction
    return [entry for table in segments
            for entry in segment_results(plan, table.reordered(plan.arm_order), correction)]


def _with_segments(results: list[MetricResult], tables: list[dict[str, Any]]) -> list[MetricResult]:
    """Each comparison with its per-segment rows and heterogeneity tests."""
    if not tables:
        return results
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    tests: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in tables:
        for t in entry["treatments"]:
            key = (entry["metric"], t["variant"])
            rows.setdefault(key, []).extend(t["segments"])
            tests.setdefault(key, []).append({"attribute": entry["attribute"], **t["heterogeneity"]})
    return [replace(m, comparisons=[replace(c, segments=rows.get((m.id, c.variant), []),
                                            heterogeneity=tests.get((m.id, c.variant), []))
                                    for c in m.comparisons]) for m in results]


def _lead(m: Moments) -> Moments:
    """The moments with a leading axis of one look."""
    return m.map(lambda x: np.asarray(x)[None, ...])


def _day(look: Look | None) -> int | float | None:
    if look is None:
        return None
    return int(look.day) if look.day.is_integer() else look.day


# ================================================================== the decision and its reasons


def _decision(plan: Plan, d: Decisions, results: list[MetricResult], srm_res: SRMResult, units: np.ndarray,
              look: Look | None, harmed: list[dict[str, Any]] | None = None) -> Decision:
    """The kernel's decision of the look, with the reasons a person reads."""
    rule_index = int(d.rule[0])
    if rule_index < 0:
        min_units = plan.stopping.min_units_per_variant
        why = [] if bool(d.enough[0]) else [f"fewer than {min_units} units in some variant"]
        return Decision(action=CONTINUE, variant=None, rule=None, reasons=why)
    rule = plan.stopping.rules[rule_index]
    if rule.when == "segment_harm":
        reasons = [f"{h['metric']}: {h['variant']} is significantly worse than {plan.control} for "
                   f"{h['attribute']} = {cut(str(h['value']), SEGMENT_CHARS)} (lift {h['abs_lift']:.4g}, "
                   f"adjusted p = {h['adjusted_p_value']:.3g})"
                   for h in harmed or [] if not rule.metric or h["metric"] == rule.metric]
    else:
        reasons = _reasons(plan, rule.when, rule.metric, d, results, srm_res, units, look)
    action = d.actions[int(d.action[0])]
    variant = None
    if action == "stop_ship_winner":
        primary = plan.primary
        if int(d.variant[0]) > 0 and primary is not None:
            variant = plan.arm_ids[int(d.variant[0])]
            reasons.append(f"winner: {variant} on {primary.id}")
        elif rule.when == "best_arm" and int(d.variant[0]) == 0:
            variant = plan.control
            reasons.append(f"the control {plan.control} is the best arm: keep it")
        else:
            reasons.append("no significant improvement on the primary metric to ship")
    elif action == "stop_rollback":
        variant = plan.control
    return Decision(action=action, variant=variant, rule=rule.when, reasons=reasons)


def _reasons(plan: Plan, when: str, target: str | None, d: Decisions, results: list[MetricResult],
             srm_res: SRMResult, units: np.ndarray, look: Look | None) -> list[str]:
    if when == "srm":
        return [f"sample ratio mismatch: p = {srm_res.p_value:.3g} < {srm_res.threshold:g} (units {srm_res.observed})"]
    if when == "guardrail_harm":
        out = []
        for m in results:
            if m.role != "guardrail" or (target and m.id != target):
                continue
            for c in m.comparisons:
                if c.guardrail is None or not c.guardrail.harm:
                    continue
                if c.guardrail.basis == "significantly_worse":
                    out.append(f"guardrail {m.id}: {c.variant} is significantly worse than {c.baseline} at this "
                               f"interim look (lift {c.abs_lift:.4g})")
                else:
                    out.append(f"guardrail {m.id}: non-inferiority of {c.variant} at margin {c.guardrail.margin:g} "
                               f"is not shown at the final look (lift {c.abs_lift:.4g}, p = {c.guardrail.p_value:.3g})")
        return out
    primary = plan.primary
    metric = next((m for m in results if m.id == (target or (primary.id if primary else None))), None)
    if when == "primary_significant" and metric is not None:
        return [f"{metric.id}: {c.variant} is a significant improvement over {c.baseline} (lift {c.abs_lift:.4g}"
                + (f", adjusted p = {c.adjusted_p_value:.3g})" if math.isfinite(c.adjusted_p_value)
                   else f", chance to beat {c.chance_to_beat:.3g})" if math.isfinite(c.chance_to_beat)
                   else ", beyond this look's group-sequential boundary)")
                for c in metric.comparisons if c.significant and c.better]
    if when == "futility" and metric is not None:
        pm = plan.metric(metric.id)
        threshold = float(pm.mde or 0.0) * abs(float(d.metrics[metric.id].control_mean[0]))
        return [f"{metric.id}: {c.variant}'s interval rules out an improvement of the MDE "
                f"({float(pm.mde or 0.0):g} relative = {threshold:.4g} absolute)" for c in metric.comparisons]
    if when == "max_days":
        if bool(d.complete[0]) and not (look is not None and plan.schedule.is_last(look)) or look is None:
            return [f"the group-sequential design is complete: the planned "
                    f"{plan.planned_per_variant:,} units per variant are reached, and all alpha is spent"]
        return [f"day {_day(look)} >= max_days {plan.stopping.max_days}"]
    if when == "max_units":
        return [f"{int(units.sum())} units >= max_units {plan.stopping.max_units}"]
    if when == "best_arm" and d.winner[0] >= 0:
        from .bandit import settings

        arm = int(d.winner[0])
        best = float(d.best[0][arm]) if d.best is not None else math.nan
        return [f"{plan.arm_ids[arm]} is the best arm with probability {best:.3g} >= {settings(plan).threshold:g}"]
    return []
