"""One look at an experiment: a plan and a reduction become results and a stopping decision.

:func:`evaluate` is a pure function (no I/O, no clock: the caller passes ``day``).
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
  this look's two-sided Lan-DeMets boundary (``plan["sequential"]``: planned looks,
  spending, alpha; see :func:`_group_boundary`), at ``alpha`` divided by the family
  size unless ``correction: none`` (Bonferroni: the boundary already controls the
  familywise rate, so no p-value correction follows). ``abs_ci`` is the repeated
  confidence interval ``Δ̂ ± c_k se``; ``p_value`` is the nominal fixed-horizon p
  (information only) and ``adjusted_p_value`` is null.
* ``sequential`` (``always_valid``, the default): :func:`~expc.runtime.stats.sequential.always_valid` with
  ``planned_n = plan["sample_size"]["per_variant"]`` (when the plan has no
  sample size, the largest arm's current units, so the mixing variance is tuned
  for the present look). It gives the absolute lift and a confidence sequence
  only: ``rel_lift`` is ``abs_lift / control mean`` and ``rel_ci`` is null.
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

Significance
============

* fixed / sequential: the adjusted p-value is below ``alpha``. Corrections
  (``analysis.correction``: none, bonferroni, holm, bh) are applied within
  families (``analysis.family``): ``per_metric`` makes each metric's treatment
  comparisons one family; ``primary`` makes all primary comparisons one family
  (every other metric keeps its own per-metric family). Guardrail
  non-inferiority p-values are not corrected.
* bayesian: the equal-tailed ``1 - alpha`` credible interval excludes 0, i.e.
  ``max(P(better), P(worse)) >= 1 - alpha / 2``.

``significant`` says nothing about direction; ``better`` says the estimate
moves in the metric's good direction. Decisions only use
``significant and better`` ("a significant improvement").

Guardrails
==========

Each guardrail metric (``role: guardrail``) gets
:func:`~expc.runtime.stats.fixed.non_inferiority` with its ``margin`` (0 when
the spec gives none) and ``direction``, whatever the analysis method. What
**harm** means depends on the look (``guardrail.basis`` says which applied):

* final look (every arm has reached the plan's ``sample_size.per_variant``, or
  ``day >= stopping.max_days``; also any look that cannot be placed, without a
  planned size and without a day): harm = non-inferiority is not shown
  (one-sided p-value ``>= alpha``, or NaN). Basis ``non_inferiority``.
* interim look (anything earlier): harm = the guardrail is *significantly
  worse* than the control by the method's own test at this look, uncorrected:
  the fixed test's p < alpha, the always-valid p < alpha (``sequential``),
  the look's boundary crossed (``sequential: group``), or the credible
  interval excluding 0 on the bad side (``bayesian``), with the estimate in
  the bad direction. Basis ``significantly_worse``. Why: early, with few
  units, non-inferiority is almost never shown yet, so the final rule would
  roll back nearly every experiment at its first look.

A comparison that cannot be computed (NaN lift) is never harm.

Sample ratio mismatch
=====================

:func:`~expc.runtime.stats.srm.srm` over ``reduction.units`` (exposed units
per arm) against the plan's variant weights at ``analysis.srm_threshold``. When
flagged, every comparison gets ``trustworthy: false`` and the
``primary_significant`` and ``futility`` conditions cannot hold (a broken split
must not ship a winner); ``srm``, ``guardrail_harm`` and the limits still apply.

Stopping rules
==============

``plan["stopping"]["rules"]`` are tried in order; the first whose condition
holds decides (its ``then``, including ``continue``, which shadows later rules).
None holding gives ``continue`` with ``rule = None``. Conditions:

* ``srm``: the SRM check is flagged.
* ``guardrail_harm``: some treatment harms some guardrail (only the rule's
  ``metric`` when it names one; gated by ``min_units_per_variant``).
* ``primary_significant``: some treatment is a significant improvement on the
  primary metric (gated by ``min_units_per_variant`` and SRM).
* ``futility``: for every treatment, the primary metric's interval (confidence
  interval, confidence sequence or credible interval at ``1 - alpha``,
  uncorrected) excludes an improvement as large as the MDE, i.e. its good-side
  bound is below ``mde × |control mean|`` in the good direction. Never holds
  without an ``mde`` or with a NaN bound (gated by ``min_units_per_variant``
  and SRM).
* ``max_days``: ``day`` is given and ``day >= stopping.max_days``.
* ``max_units``: total exposed units ``>= stopping.max_units``.

``min_units_per_variant`` gates: every arm (``reduction.units``) has at least
that many units. ``Decision.variant`` is the variant to serve afterwards: the
winner for ``stop_ship_winner`` (the significant improvement with the largest
absolute lift in the good direction on the primary metric; when none exists,
e.g. a ``max_days`` rule that says ``stop_ship_winner``, ``None`` and a reason
says so), the control for ``stop_rollback``, otherwise ``None``.
``Decision.rule`` is the rule's ``when`` (``None`` for the default continue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from .stats import bayesian, corrections, cuped, fixed, sequential
from .stats.moments import Moments
from .stats.reduce import Reduction
from .stats.srm import srm as srm_test

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


@dataclass(frozen=True)
class MetricResult:
    id: str
    role: str
    kind: str
    direction: str
    variants: list[VariantSummary]
    comparisons: list[ComparisonResult]


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
    day: int | None
    metrics: list[MetricResult]
    srm: SRMResult
    decision: Decision
    excluded: dict[str, int]

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
        }


def _num(x: Any) -> float | None:
    """A finite float, or None for NaN / ±inf / None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _comparison_dict(c: ComparisonResult) -> dict[str, Any]:
    out = {
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
    from dataclasses import fields

    pick = lambda x: None if x is None else np.asarray(x, dtype=np.float64)[..., order]  # noqa: E731
    return Moments(**{f.name: pick(getattr(m, f.name)) for f in fields(m)})


@dataclass
class _Raw:
    """Per-metric arrays (treatments in control-first order) before correction."""

    metric: dict[str, Any]
    abs_lift: np.ndarray
    abs_ci: np.ndarray
    rel_lift: np.ndarray
    rel_ci: np.ndarray
    p_value: np.ndarray
    chance: np.ndarray  # P(better), bayesian only
    control_mean: float
    reject: np.ndarray | None = None  # group-sequential: |z| crossed this look's boundary


def _good(direction: str) -> float:
    return 1.0 if direction == "increase" else -1.0


def _compare(m: Moments, metric: dict[str, Any], method: str, alpha: float, planned_n: Any,
             kind: str | None = None, boundary: float | None = None) -> _Raw:
    kind = kind or metric["kind"]  # "mean" for CUPED-adjusted values of any kind
    sign = _good(metric.get("direction") or "increase")
    t = int(np.asarray(m.n).shape[-1]) - 1
    nan_t = np.full(t, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        control_mean = float(m.mean()[0])
    if method == "fixed":
        c = fixed.compare(m, kind, alpha=alpha)
        return _Raw(metric, c.abs_lift, c.abs_ci, c.rel_lift, c.rel_ci, c.p_value, nan_t, control_mean)
    if method == "sequential" and boundary is not None:  # group sequential: this look's z boundary
        _, _, diff, var = sequential._difference(m, kind)  # Wald for a proportion
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(var)
            z = diff / se
            ok = np.isfinite(z)
            reject = ok & (np.abs(z) >= boundary)
            p = np.where(ok, 2.0 * special.ndtr(-np.abs(z)), np.nan)  # nominal, for information only
            ci = np.stack([diff - boundary * se, diff + boundary * se], axis=-1)  # repeated CI
            rel = np.where(control_mean != 0, diff / control_mean, np.nan)
        return _Raw(metric, diff, ci, rel, np.full((t, 2), np.nan), p, nan_t, control_mean, reject=reject)
    if method == "sequential":
        n_plan = planned_n if planned_n else max(float(np.max(m.n)), 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sequential.always_valid(m, planned_n=n_plan, alpha=alpha, kind=kind)
            cm = np.asarray(r.control_mean, dtype=np.float64)
            rel = np.where(cm != 0, r.abs_lift / cm, np.nan)
        # a comparison without a usable variance gets p = 1 from always_valid; report it as NaN (no evidence)
        ok = np.isfinite(r.abs_lift) & np.isfinite(r.se) & (r.se > 0)
        p = np.where(ok, r.p_value, np.nan)
        rel_ci = np.full((t, 2), np.nan)
        return _Raw(metric, r.abs_lift, r.abs_ci, rel, rel_ci, p, nan_t, control_mean)
    if method == "bayesian":
        if kind == "proportion":
            b = bayesian.beta_binomial(m, level=1 - alpha)
        else:
            b = bayesian.normal_means(m, level=1 - alpha)
        ctb = np.asarray(b.chance_to_beat_control, dtype=np.float64)
        chance = ctb if sign > 0 else 1.0 - ctb
        return _Raw(metric, b.abs_lift, b.abs_ci, b.rel_lift, b.rel_ci, nan_t, chance, control_mean)
    raise ValueError(f"analysis.method must be fixed, sequential or bayesian, got {method!r}")


def evaluate(plan: dict[str, Any], reduction: Reduction, day: int | None = None) -> Evaluation:
    """Evaluate one look: per-metric results, SRM and the stopping decision (see the module docs)."""
    analysis = plan.get("analysis") or {}
    method = analysis.get("method", "fixed")
    alpha = float(analysis.get("alpha", 0.05))
    correction = analysis.get("correction", "holm")
    family = analysis.get("family", "per_metric")
    srm_threshold = float(analysis.get("srm_threshold", 0.001))
    stopping = plan.get("stopping") or {}

    ids = [v["id"] for v in plan["variants"]]
    control_id = plan.get("control") or ids[0]
    ci = ids.index(control_id)
    order = [ci] + [i for i in range(len(ids)) if i != ci]
    arm_ids = [ids[i] for i in order]
    treatments = arm_ids[1:]

    units = np.asarray(reduction.units, dtype=np.float64)[order]
    weights = np.asarray([float(plan["variants"][i].get("weight", 1.0)) for i in order])

    s = srm_test(units, weights, threshold=srm_threshold)
    srm_res = SRMResult(
        p_value=float(s.p_value),
        flagged=bool(s.flagged),
        statistic=float(s.statistic),
        threshold=float(s.threshold),
        observed=[int(u) for u in units],
        expected=[float(e) for e in np.asarray(s.expected)],
    )
    trustworthy = not srm_res.flagged

    planned_n = (plan.get("sample_size") or {}).get("per_variant")
    final = _final_look(planned_n, units, stopping.get("max_days"), day)
    design = plan.get("sequential") or {}
    group = method == "sequential" and design.get("type") == "group"
    n_primary = sum(1 for mt in plan["metrics"] if mt.get("role") == "primary")

    def boundary(metric: dict[str, Any]) -> float | None:
        """This look's two-sided z boundary for ``sequential: group`` (Bonferroni over the family)."""
        if not group:
            return None
        size = len(treatments) * (n_primary if family == "primary" and metric.get("role") == "primary" else 1)
        a = alpha / size if correction != "none" else alpha
        return _group_boundary(design, units, planned_n, stopping.get("max_days"), day, a)

    # ---- raw comparisons
    raws: list[_Raw] = []
    moments: dict[str, Moments] = {}
    by_cuped: dict[str, cuped.Adjustment] = {}  # CUPED, where enabled and the covariate is usable
    for metric in plan["metrics"]:
        m = _reorder(reduction.metrics[metric["id"]], order)
        moments[metric["id"]] = m
        if cuped.enabled(metric, plan) and m.has_covariate:
            ca = cuped.adjust(m)
            if bool(np.all(ca.applied)):
                by_cuped[metric["id"]] = ca
        if metric["id"] in by_cuped:
            raws.append(_compare(by_cuped[metric["id"]].moments, metric, method, alpha, planned_n, kind="mean",
                                 boundary=boundary(metric)))
        else:
            raws.append(_compare(m, metric, method, alpha, planned_n, boundary=boundary(metric)))

    # ---- multiple-testing correction within families
    adjusted: list[np.ndarray] = [np.full(len(treatments), np.nan) for _ in raws]
    if method != "bayesian" and raws:
        flat_p = np.concatenate([r.p_value for r in raws])
        labels = []
        for r in raws:
            is_primary = family == "primary" and r.metric.get("role") == "primary"
            labels += ["__primary__" if is_primary else f"metric:{r.metric['id']}"] * len(treatments)
        adj = corrections.adjust_within(flat_p, np.asarray(labels), correction)
        k = len(treatments)
        adjusted = [adj[i * k:(i + 1) * k] if r.reject is None else np.full(k, np.nan) for i, r in enumerate(raws)]

    # ---- per-metric results
    results: list[MetricResult] = []
    for r, adj in zip(raws, adjusted):
        metric = r.metric
        direction = metric.get("direction") or "increase"
        sign = _good(direction)
        m = moments[metric["id"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = m.mean()
        summaries = [VariantSummary(v, int(n), float(x)) for v, n, x in zip(arm_ids, np.asarray(m.n), means)]

        ca = by_cuped.get(metric["id"])
        guard = None
        if metric.get("role") == "guardrail":
            margin = float(metric.get("margin") or 0.0)
            gm, gkind = (ca.moments, "mean") if ca is not None else (m, metric["kind"])
            guard = fixed.non_inferiority(gm, gkind, margin, direction)

        comps = []
        for j, variant in enumerate(treatments):
            lift = float(r.abs_lift[j])
            better = bool(np.isfinite(lift) and sign * lift > 0)
            worse = bool(np.isfinite(lift) and sign * lift < 0)
            if method == "bayesian":
                pb = float(r.chance[j])
                significant = bool(np.isfinite(pb) and max(pb, 1.0 - pb) >= 1.0 - alpha / 2)
            elif r.reject is not None:  # sequential: group (the boundary already splits alpha over the family)
                significant = bool(r.reject[j])
            else:
                pa = float(adj[j])
                significant = bool(np.isfinite(pa) and pa < alpha)
            g = None
            if guard is not None:
                gp = float(guard.p_value[j])
                non_inferior = bool(np.isfinite(gp) and gp < alpha)
                if final:  # planned size or max_days reached: harm unless non-inferiority is shown
                    harm, basis = (not non_inferior) and np.isfinite(lift), "non_inferiority"
                else:  # interim: only a significant worsening by the method's own (peeking-safe) test
                    harm, basis = worse and _significant_raw(r, j, method, alpha), "significantly_worse"
                g = GuardrailResult(margin=float(guard.margin), p_value=gp, non_inferior=non_inferior,
                                    harm=bool(harm), basis=basis)
            comps.append(ComparisonResult(
                variant=variant,
                baseline=control_id,
                abs_lift=lift,
                abs_ci=(float(r.abs_ci[j][0]), float(r.abs_ci[j][1])),
                rel_lift=float(r.rel_lift[j]),
                rel_ci=(float(r.rel_ci[j][0]), float(r.rel_ci[j][1])),
                p_value=float(r.p_value[j]),
                adjusted_p_value=float(adj[j]),
                significant=significant,
                better=better,
                chance_to_beat=float(r.chance[j]),
                trustworthy=trustworthy,
                guardrail=g,
                cuped=ca is not None,
                variance_reduction=float(ca.variance_reduction[j]) if ca is not None else math.nan,
            ))
        results.append(MetricResult(metric["id"], metric.get("role", "secondary"), metric["kind"], direction,
                                    summaries, comps))

    decision = _decide(plan, stopping, results, raws, srm_res, units, arm_ids, control_id, day)
    return Evaluation(method=method, alpha=alpha, day=day, metrics=results, srm=srm_res, decision=decision,
                      excluded=dict(reduction.excluded))


_BOUNDARIES: dict[tuple[tuple[float, ...], float, str], float] = {}


def _group_boundary(design: dict[str, Any], units: np.ndarray, planned_n: Any, max_days: Any, day: int | None,
                    alpha: float) -> float:
    """The two-sided z boundary of the current look of a group-sequential design (Lan-DeMets spending).

    Information fraction ``t = units so far / planned units`` (all arms; capped at 1). The look's index
    ``k`` comes from ``day`` and the look interval (else ``round(t K)``); earlier looks are taken at
    ``t j / k`` (linear accrual). The last planned look (``k = K``, ``t = 1`` or ``day >= max_days``)
    is put at ``t = 1`` so it spends all that is left of alpha. Spec ``obrien_fleming`` is the per-side
    convention of gsDesign / ldbounds (K = 5: 4.877, 3.357, 2.680, 2.290, 2.031).
    """
    looks = int(design.get("looks") or 0)
    n_plan = design.get("planned_per_variant") or planned_n
    total = float(units.sum())
    frac = min(1.0, total / (float(n_plan) * units.size)) if n_plan else 1.0
    if looks <= 0:  # no max_days: one look per day so far, the fraction as measured
        looks = max(1, int(day) if day else 1)
    if day is not None and design.get("look_seconds"):
        k = min(looks, max(1, -(-int(day) * 86400 // int(design["look_seconds"]))))
    else:
        k = min(looks, max(1, round(frac * looks)))
    last = k >= looks or frac >= 1.0 or (max_days is not None and day is not None and day >= max_days)
    t_k = 1.0 if last else max(frac, 1e-6)
    fractions = tuple(t_k * j / k for j in range(1, k + 1))
    spending = "obrien_fleming_per_side" if design.get("spending", "obrien_fleming") == "obrien_fleming" else "pocock"
    key = (tuple(round(f, 12) for f in fractions), alpha, spending)
    if key not in _BOUNDARIES:
        _BOUNDARIES[key] = float(sequential.group_sequential_boundaries(fractions, alpha, spending)[-1])
    return _BOUNDARIES[key]


def _final_look(planned_n: Any, units: np.ndarray, max_days: Any, day: int | None) -> bool:
    """Is this the final look? The planned units per variant reached in every arm, or ``day >= max_days``.

    Without a planned sample size and without a day to compare with ``max_days``
    the look cannot be placed, and it is treated as final (the stricter
    non-inferiority rule for guardrails).
    """
    if planned_n and units.size and float(units.min()) >= float(planned_n):
        return True
    if max_days is not None and day is not None and day >= max_days:
        return True
    return not planned_n and (day is None or max_days is None)


def _significant_raw(r: _Raw, j: int, method: str, alpha: float) -> bool:
    """The method's own uncorrected test at this look: raw p < alpha, a crossed boundary, or P(better) ≤ alpha/2
    (bayesian, where ``chance`` is in the good direction: the credible interval excludes 0 on the bad side)."""
    if r.reject is not None:
        return bool(r.reject[j])
    if method == "bayesian":
        pb = float(r.chance[j])
        return bool(np.isfinite(pb) and pb <= alpha / 2)
    p = float(r.p_value[j])
    return bool(np.isfinite(p) and p < alpha)


# ================================================================== stopping


def _winner(primary: MetricResult | None) -> ComparisonResult | None:
    """The significant improvement with the largest lift in the good direction."""
    if primary is None:
        return None
    sign = _good(primary.direction)
    wins = [c for c in primary.comparisons if c.significant and c.better]
    return max(wins, key=lambda c: sign * c.abs_lift) if wins else None


def _decide(plan, stopping, results, raws, srm_res, units, arm_ids, control_id, day) -> Decision:
    rules = stopping.get("rules") or []
    min_units = int(stopping.get("min_units_per_variant") or 0)
    enough = bool(np.all(units >= min_units))
    primary = next((m for m in results if m.role == "primary"), None)

    def holds(rule: dict[str, Any]) -> tuple[bool, list[str]]:
        when = rule["when"]
        target = rule.get("metric")
        if when == "srm":
            if srm_res.flagged:
                return True, [f"sample ratio mismatch: p = {srm_res.p_value:.3g} < {srm_res.threshold:g} "
                              f"(units {srm_res.observed})"]
            return False, []
        if when == "guardrail_harm":
            if not enough:  # a handful of units cannot show harm, and an early naive peek would cry wolf
                return False, []
            reasons = []
            for m in results:
                if m.role != "guardrail" or (target and m.id != target):
                    continue
                for c in m.comparisons:
                    if c.guardrail is not None and c.guardrail.harm:
                        if c.guardrail.basis == "significantly_worse":
                            reasons.append(f"guardrail {m.id}: {c.variant} is significantly worse than "
                                           f"{c.baseline} at this interim look (lift {c.abs_lift:.4g})")
                        else:
                            reasons.append(f"guardrail {m.id}: non-inferiority of {c.variant} at margin "
                                           f"{c.guardrail.margin:g} is not shown at the final look "
                                           f"(lift {c.abs_lift:.4g}, p = {c.guardrail.p_value:.3g})")
            return bool(reasons), reasons
        if when in ("primary_significant", "futility"):
            metric = primary if not target else next((m for m in results if m.id == target), None)
            if metric is None:
                return False, []
            if not enough:
                return False, []
            if srm_res.flagged:
                return False, []
            if when == "primary_significant":
                wins = [c for c in metric.comparisons if c.significant and c.better]
                return bool(wins), [f"{metric.id}: {c.variant} is a significant improvement over {c.baseline} "
                                    f"(lift {c.abs_lift:.4g}"
                                    + (f", adjusted p = {c.adjusted_p_value:.3g})" if math.isfinite(c.adjusted_p_value)
                                       else f", chance to beat {c.chance_to_beat:.3g})" if math.isfinite(c.chance_to_beat)
                                       else ", beyond this look's group-sequential boundary)")
                                    for c in wins]
            raw = next(r for r in raws if r.metric["id"] == metric.id)
            mde = raw.metric.get("mde")
            if not mde or not metric.comparisons:
                return False, []
            sign = _good(metric.direction)
            threshold = float(mde) * abs(raw.control_mean)
            reasons = []
            for c in metric.comparisons:
                good_bound = c.abs_ci[1] if sign > 0 else -c.abs_ci[0]  # the bound on the good side, signed
                if not (math.isfinite(good_bound) and good_bound < threshold):
                    return False, []
                reasons.append(f"{metric.id}: {c.variant}'s interval rules out an improvement of the MDE "
                               f"({float(mde):g} relative = {threshold:.4g} absolute)")
            return True, reasons
        if when == "max_days":
            limit = stopping.get("max_days")
            if limit is not None and day is not None and day >= limit:
                return True, [f"day {day} >= max_days {limit}"]
            return False, []
        if when == "max_units":
            limit = stopping.get("max_units")
            total = int(units.sum())
            if limit is not None and total >= limit:
                return True, [f"{total} units >= max_units {limit}"]
            return False, []
        raise ValueError(f"unknown stopping condition {when!r}")

    for rule in rules:
        ok, reasons = holds(rule)
        if not ok:
            continue
        action = rule["then"]
        variant = None
        if action == "stop_ship_winner":
            win = _winner(primary) if not srm_res.flagged else None
            if win is not None:
                variant = win.variant
                reasons = reasons + [f"winner: {win.variant} on {primary.id}"]
            else:
                reasons = reasons + ["no significant improvement on the primary metric to ship"]
        elif action == "stop_rollback":
            variant = control_id
        return Decision(action=action, variant=variant, rule=rule["when"], reasons=reasons)
    why = [] if enough else [f"fewer than {min_units} units in some variant"]
    return Decision(action="continue", variant=None, rule=None, reasons=why)
