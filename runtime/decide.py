"""The decision kernel: what looks decide, element-wise over any number of them.

One implementation of every decision serves both :func:`expc.runtime.evaluate.evaluate`
(one look of one experiment: leading shape ``(1,)``) and
:func:`expc.runtime.simulate.simulate` (every look of thousands of replications:
leading shape ``(R, K)``), the way gbstats' simulation study calls its
production tests. Inputs are arrays with a leading shape ``S``; arms are in the
plan's control-first order (``plan.arm_order``); ``t`` is the number of
treatments.

For each metric (:func:`compare`): the method's comparison (fixed: z / Welch;
sequential always-valid: the mSPRT confidence sequence tuned to the planned
units; sequential group: the Wald z against the look's Lan-DeMets boundary;
bayesian: posterior probabilities), then (:func:`decide`):

* **significance**: fixed / always-valid: the p-value adjusted within the
  metric's correction family (``plan.metrics[i].family``) is below ``alpha``;
  group sequential: the boundary is crossed (the boundary splits alpha over the
  family, Bonferroni, unless ``correction: none``); bayesian: ``max(P(better),
  P(worse)) >= 1 - alpha/2``. ``better`` / ``worse``: the estimate's direction
  against the metric's good direction.
* **the final look** (:func:`final_look`): every arm has the planned units, or
  the schedule's last look (``max_days``), or a group-sequential design is
  complete; a look that cannot be placed (no planned units and no bounded
  horizon) counts as final.
* **guardrail harm**: at the final look, non-inferiority at the margin is not
  shown (one-sided p >= alpha); before it, the guardrail is significantly
  worse by the method's own uncorrected test (a bandit's, whose fixed-horizon
  test is read at every look, at alpha divided among its treatments and
  scheduled looks, so that an A/A bandit is rolled back at most alpha of the time).
* **futility**: every treatment's ``1 - alpha`` interval excludes an
  improvement as large as the MDE.
* **rules** in order, first that holds decides (its ``then``, ``continue``
  included, shadows later rules): ``srm`` (the sample-ratio check is flagged at
  ``analysis.srm_threshold``), ``guardrail_harm``, ``segment_harm`` (some
  segment of the primary metric or a guardrail is harmed, as the caller
  finds it: :func:`expc.runtime.segment_results.harmed_segments`; read at
  every look only with always-valid tests, else at the final look, where a
  fixed-horizon test holds its level),
  ``primary_significant`` (a
  significant improvement on the primary metric, or the rule's ``metric``),
  ``futility``, ``max_days`` (the schedule's last look, or a complete
  group-sequential design) and ``max_units`` (total units at least
  ``stopping.max_units``). An SRM flag disables ``primary_significant`` and
  ``futility``; ``min_units_per_variant`` gates everything but ``srm`` and the
  limits.
* **the winner**: the significant improvement with the largest lift in the good
  direction on the primary metric (none under an SRM flag).

Bandits (``method: bandit``, :mod:`expc.runtime.bandit`): the caller passes
:class:`BanditLooks` and period-weighted effective moments
(:func:`expc.runtime.stats.bandit.effective_moments`, compared as means by the
fixed-horizon test: lifts, intervals, guardrails). The sample-ratio check is
the bandit's (against the weights in force in each period); ``best_arm`` holds
where some arm's probability of being best reaches ``analysis.bandit.threshold``
(gated like ``primary_significant``), and that arm is the winner: the
control too (index 0, "keep the control").

Group-sequential designs (:func:`group_boundaries`): the information fraction
of a look is its total units over the planned total (``planned_per_variant ×
arms``), capped at 1; earlier looks are placed at fractions proportional to
their times (``t_j = t_k × seconds_j / seconds_k``, linear accrual: exact for
the simulation's constant traffic). The design ends at the first look whose
fraction reaches 1 or at the schedule's last look, whichever is first: that
look spends all alpha that is left, and any later look has an infinite
boundary (no alpha left), so the design's false-positive rate is at most alpha
whatever the traffic. At that look the ``max_days`` condition holds too (the
design is complete).

Two shortcuts keep Bayesian proportions fast without changing a decision
(``exact=False``, what simulations use): decisions compare posterior
probabilities with fixed levels, so a credible interval's end is only needed
on one side of a threshold, and the exact Beta-Binomial probability (a
quadrature, ~5 ms per comparison) is computed only where the normal
approximation of ``T - C`` lands within a band of the threshold (``0.02 + 3e``
in z units, ``e`` the Cornish-Fisher correction from the exact Beta cumulants)
or an arm has fewer than 10 successes or failures; elsewhere the
approximation is on the same side as the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy import special

from expc.compiler.plan import Plan, PlanMetric, Schedule

from .stats import bayesian, corrections, fixed, sequential
from .stats.moments import Moments
from .stats.srm import SRM
from .stats.srm import srm as srm_test

__all__ = ["CONTINUE", "BanditLooks", "Decisions", "LookState", "MetricLooks", "compare", "decide", "final_look",
           "group_boundaries"]

CONTINUE = "continue"
_EXACT_MIN_COUNT = 10.0  # Beta arms with fewer successes or failures are always computed exactly
_BAND_FLOOR = 0.02  # z units
_BAND_FACTOR = 3.0  # × the Cornish–Fisher correction


@dataclass(frozen=True, eq=False)
class LookState:
    """The looks being decided: leading shape ``S``."""

    units: np.ndarray
    """``S + (arms,)``: exposed units per arm, control first."""
    seconds: np.ndarray
    """``S``: each look's time since the start (the schedule's ``Look.seconds``)."""
    last: np.ndarray
    """``S``: the look is the schedule's last at a bounded horizon (``max_days`` reached)."""


@dataclass(frozen=True, eq=False)
class BanditLooks:
    """A bandit's view of the looks: leading shape ``S``."""

    best: np.ndarray
    """``S + (arms,)``: each arm's posterior probability of being best on the primary metric."""
    srm: SRM
    """The sample-ratio check against the weights in force in each period."""
    threshold: float
    """``analysis.bandit.threshold``."""


@dataclass(frozen=True, eq=False)
class MetricLooks:
    """One metric at every look: arrays ``S + (t,)`` (``control_mean``: ``S``)."""

    metric: PlanMetric
    kind: fixed.Kind
    """The kind the test ran as (``mean`` for CUPED-adjusted values)."""
    moments: Moments
    lift: np.ndarray
    p_value: np.ndarray
    """NaN under bayesian; nominal (information only) under group sequential."""
    control_mean: np.ndarray
    abs_ci: np.ndarray
    """``S + (t, 2)``: the method's interval (NaN where the kernel does not compute one: bayesian)."""
    rel_lift: np.ndarray
    rel_ci: np.ndarray
    chance_up: np.ndarray | None = None
    """Bayesian: ``P(T > C)``."""
    reject: np.ndarray | None = None
    """Group sequential: ``|z|`` crossed the look's boundary."""
    adjusted_p: np.ndarray | None = None
    significant: np.ndarray | None = None
    non_inferiority: fixed.NonInferiority | None = None
    """Guardrails: the non-inferiority test at the metric's margin."""
    harm: np.ndarray | None = None
    """Guardrails: harm at this look (see the module docs)."""

    @property
    def better(self) -> np.ndarray:
        """The estimate moves in the good direction."""
        return np.isfinite(self.lift) & (self.metric.sign * self.lift > 0)

    @property
    def worse(self) -> np.ndarray:
        """The estimate moves in the bad direction."""
        return np.isfinite(self.lift) & (self.metric.sign * self.lift < 0)

    @property
    def chance_to_beat(self) -> np.ndarray:
        """Bayesian: the posterior probability of being better in the good direction (NaN otherwise)."""
        if self.chance_up is None:
            return np.full(self.lift.shape, np.nan)
        return self.chance_up if self.metric.sign > 0 else 1.0 - self.chance_up


@dataclass(frozen=True, eq=False)
class Decisions:
    """What the looks decide: arrays of shape ``S``.

    ``action`` indexes ``actions`` (``continue`` first); ``rule`` is the index of
    the rule that decided (-1 for the default continue); ``variant`` the arm
    (control-first index) to serve afterwards: the winner of
    ``stop_ship_winner`` (-1 when there is none), the control (0) for
    ``stop_rollback``, else -1. ``holds[i]`` says where rule ``i``'s condition holds.
    """

    actions: tuple[str, ...]
    action: np.ndarray
    rule: np.ndarray
    variant: np.ndarray
    winner: np.ndarray
    """The primary metric's best significant improvement (control-first arm, -1 for none), whatever the rule."""
    holds: list[np.ndarray]
    metrics: dict[str, MetricLooks]
    srm: SRM
    enough: np.ndarray
    final: np.ndarray
    complete: np.ndarray
    """Group sequential: the design is complete at this look (or was earlier)."""
    futility: dict[str, np.ndarray] = field(default_factory=dict)
    """Per metric named by a futility rule: ``S + (t,)``, the interval rules out the MDE."""
    best: np.ndarray | None = None
    """Bandits: ``S + (arms,)``, each arm's probability of being best (None for the other methods)."""

    def stops(self) -> np.ndarray:
        """``S``: the look decides something other than ``continue``."""
        return self.action != 0


# ================================================================== group sequential


_BOUNDARIES: dict[tuple[tuple[float, ...], float, str], float] = {}


def _boundary(fractions: tuple[float, ...], alpha: float, spending: sequential.Spending) -> float:
    key = (tuple(round(f, 12) for f in fractions), alpha, spending)
    if key not in _BOUNDARIES:
        _BOUNDARIES[key] = float(sequential.group_sequential_boundaries(fractions, alpha, spending)[-1])
    return _BOUNDARIES[key]


def information(plan: Plan, units: np.ndarray) -> np.ndarray:
    """``S``: the information fraction of each look, total units over the planned total (capped at 1; 1 unplanned)."""
    n_plan = plan.sequential.planned_per_variant if plan.sequential else None
    if not n_plan:
        return np.ones(units.shape[:-1])
    return np.minimum(1.0, units.sum(axis=-1) / (float(n_plan) * units.shape[-1]))


def group_boundaries(plan: Plan, looks: LookState, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``S``: each look's two-sided z boundary at level ``alpha``, and whether the design is complete there.

    See the module docs. Spec ``obrien_fleming`` is the per-side convention of
    gsDesign / ldbounds (K = 5: 4.877, 3.357, 2.680, 2.290, 2.031).
    """
    design = plan.sequential
    assert design is not None and design.type == "group"
    spending: sequential.Spending = "obrien_fleming_per_side" if design.spending == "obrien_fleming" else "pocock"
    sched: Schedule = plan.schedule
    frac = information(plan, looks.units)
    keys = np.stack([frac, np.broadcast_to(looks.seconds, frac.shape).astype(np.float64),
                     np.broadcast_to(looks.last, frac.shape).astype(np.float64)], axis=-1).reshape(-1, 3)
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)  # the fractions repeat across replications
    values = np.empty(len(distinct))
    ends = np.zeros(len(distinct), dtype=bool)
    for i, (t_k, s_k, at_last) in enumerate(distinct):
        earlier = [look.seconds for look in sched.until(int(s_k)) if look.seconds < s_k]
        fractions = [min(1.0, t_k * s / s_k) for s in earlier]
        if fractions and fractions[-1] >= 1.0:  # the design ended at an earlier look: no alpha left
            values[i], ends[i] = np.inf, True
        else:
            ends[i] = bool(at_last) or t_k >= 1.0
            values[i] = _boundary(tuple(fractions) + (1.0 if ends[i] else max(t_k, 1e-6),), alpha, spending)
    inverse = inverse.reshape(-1)
    out, complete = values[inverse].reshape(frac.shape), ends[inverse].reshape(frac.shape)
    return out, complete


# ================================================================== one metric


def _beta_cumulants(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance, third and fourth cumulants of ``Beta(a, b)``."""
    s = a + b
    mean = a / s
    var = a * b / (s**2 * (s + 1))
    skew = 2 * (b - a) * np.sqrt(s + 1) / ((s + 2) * np.sqrt(a * b))
    exkurt = 6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
    return mean, var, skew * var**1.5, exkurt * var**2


def beta_probability(m: Moments, x: np.ndarray | float, upper: bool, z_star: float, exact: bool) -> np.ndarray:
    """``P(T - C > x)`` (``upper``) or ``P(T - C ≤ x)`` under Beta(1, 1) posteriors, ``S + (t,)``.

    Exact (``bayesian.beta_binomial_posterior``) wherever the decision could
    depend on it, or everywhere with ``exact``; see the module docs.
    """
    n, s = np.asarray(m.n, dtype=np.float64), np.asarray(m.sum, dtype=np.float64)
    a, b = 1.0 + s, 1.0 + n - s
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), n[..., 1:].shape)
    need: np.ndarray
    out: np.ndarray
    if exact:
        need = np.ones(x.shape, dtype=bool)
        out = np.full(x.shape, np.nan)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            mean, var, k3, k4 = _beta_cumulants(a, b)
            delta = mean[..., 1:] - mean[..., :1]
            s2 = var[..., 1:] + var[..., :1]
            sd = np.sqrt(s2)
            g1 = (k3[..., 1:] - k3[..., :1]) / sd**3
            g2 = (k4[..., 1:] + k4[..., :1]) / s2**2
            z = z_star
            cf = (np.abs(g1) * (z * z - 1) / 6 + np.abs(g2) * abs(z**3 - 3 * z) / 24
                  + g1**2 * abs(2 * z**3 - 5 * z) / 36)
            band = _BAND_FLOOR + _BAND_FACTOR * cf
            zx = (delta - x) / sd  # P(D > x) ≈ Φ(zx)
            out = special.ndtr(zx) if upper else special.ndtr(-zx)
        few = np.minimum(a, b) < _EXACT_MIN_COUNT
        need = (np.abs(np.abs(zx) - z_star) < band) | ~np.isfinite(zx) | few[..., :1] | few[..., 1:]
    rows, col = np.nonzero(need.reshape(-1, need.shape[-1]))
    if rows.size:  # exact values, one two-arm comparison (control, treatment) per element that needs one
        arms = n.shape[-1]
        n_rows, x_rows = n.reshape(-1, arms), s.reshape(-1, arms)
        sub = Moments.proportion(np.stack([n_rows[rows, 0], n_rows[rows, col + 1]], axis=-1),
                                 np.stack([x_rows[rows, 0], x_rows[rows, col + 1]], axis=-1))
        post = bayesian.beta_binomial_posterior(sub)
        xs = x.reshape(-1, need.shape[-1])[rows, col][:, None]
        vals = post.sf_abs(xs) if upper else post.cdf_abs(xs)
        out = np.array(out, dtype=np.float64)
        out.reshape(-1, need.shape[-1])[rows, col] = vals[:, 0]
    return out


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def compare(plan: Plan, metric: PlanMetric, m: Moments, kind: fixed.Kind, exact: bool,
            boundary: np.ndarray | None = None) -> MetricLooks:
    """The method's comparison of every treatment with the control (see the module docs)."""
    a = plan.analysis
    alpha, method = a.alpha, a.method
    with np.errstate(divide="ignore", invalid="ignore"):
        control_mean = np.asarray(m.mean(), dtype=np.float64)[..., 0]
    shape = np.asarray(m.n).shape[:-1] + (np.asarray(m.n).shape[-1] - 1,)
    nan, nan2 = np.full(shape, np.nan), np.full(shape + (2,), np.nan)

    def relative(lift: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(control_mean[..., None] != 0, lift / control_mean[..., None], np.nan)

    if method in ("fixed", "bandit"):  # a bandit's moments are period-weighted (see the module docs)
        c = fixed.compare(m, kind, alpha=alpha)
        return MetricLooks(metric, kind, m, c.abs_lift, c.p_value, control_mean, c.abs_ci, c.rel_lift, c.rel_ci)
    if method == "sequential" and boundary is not None:
        bound = np.asarray(boundary, dtype=np.float64)[..., None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            _, _, diff, var = sequential._difference(m, kind)  # Wald for a proportion
            se = np.sqrt(var)
            z = diff / se
            ok = np.isfinite(z)
            p = np.where(ok, 2.0 * special.ndtr(-np.abs(z)), np.nan)  # nominal, for information only
            ci = np.stack([diff - bound * se, diff + bound * se], axis=-1)  # the repeated confidence interval
        return MetricLooks(metric, kind, m, diff, p, control_mean, ci, relative(diff),
                           sequential.relative_interval(m, bound, kind), reject=ok & (np.abs(z) >= bound))
    if method == "sequential":
        planned = plan.planned_per_variant
        n_plan = planned if planned else np.maximum(np.max(m.n, axis=-1, keepdims=True), 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sequential.always_valid(m, planned_n=n_plan, alpha=alpha, kind=kind)
            k = (r.abs_ci[..., 1] - r.abs_lift) / r.se  # the confidence sequence's radius in standard errors
        ok = np.isfinite(r.abs_lift) & np.isfinite(r.se) & (r.se > 0)
        # a comparison without a usable variance gets p = 1 from always_valid; report it as NaN (no evidence)
        return MetricLooks(metric, kind, m, r.abs_lift, np.where(ok, r.p_value, np.nan), control_mean, r.abs_ci,
                           relative(r.abs_lift), sequential.relative_interval(m, k, kind))
    if method == "bayesian":
        post: bayesian.LiftPosterior
        if kind == "proportion":
            post = bayesian.beta_binomial_posterior(m)
            up = beta_probability(m, 0.0, True, _z(1 - alpha / 2), exact)
        else:
            post = bayesian.normal_posterior(m)
            up = post.chance_to_beat_control()
        lift = np.where(post.valid, post.mean_t - post.mean_c, np.nan)
        return MetricLooks(metric, kind, m, lift, nan, control_mean, nan2, relative(lift), nan2,
                           chance_up=np.asarray(up, dtype=np.float64))
    raise ValueError(f"analysis.method must be fixed, sequential or bayesian, got {method!r}")


def _significant_raw(ml: MetricLooks, method: str, alpha: float) -> np.ndarray:
    """The method's own uncorrected test on the bad side: raw p < alpha, a crossed boundary, or P(better) ≤ alpha/2."""
    if ml.reject is not None:
        return ml.worse & ml.reject
    if method == "bayesian":
        good = ml.chance_to_beat
        return ml.worse & np.isfinite(good) & (good <= alpha / 2)
    return ml.worse & np.isfinite(ml.p_value) & (ml.p_value < alpha)


def _futility(plan: Plan, ml: MetricLooks, exact: bool) -> np.ndarray:
    """``S + (t,)``: the good-side bound of the ``1 - alpha`` interval is finite and below ``mde × |control mean|``."""
    alpha, sign = plan.analysis.alpha, ml.metric.sign
    threshold = float(ml.metric.mde or 0.0) * np.abs(ml.control_mean)
    thr = np.broadcast_to(threshold[..., None], ml.lift.shape)
    if plan.analysis.method != "bayesian":
        ci = ml.abs_ci
    elif ml.kind != "proportion":
        post = bayesian.normal_posterior(ml.moments)
        ci = np.stack([post.abs_quantile(alpha / 2), post.abs_quantile(1 - alpha / 2)], axis=-1)
    else:  # q_{1-α/2} < t ⟺ F(t) > 1 - α/2;  -q_{α/2} < t ⟺ F(-t) < α/2
        valid = np.isfinite(ml.lift) & np.isfinite(thr)
        x = np.where(valid, sign * thr, 0.0)
        cdf = beta_probability(ml.moments, x, False, _z(1 - alpha / 2), exact)
        return valid & ((cdf > 1 - alpha / 2) if sign > 0 else (cdf < alpha / 2))
    bound = ci[..., 1] if sign > 0 else -ci[..., 0]
    return np.isfinite(bound) & (bound < thr)


# ================================================================== decisions


def final_look(plan: Plan, looks: LookState, complete: np.ndarray | None = None) -> np.ndarray:
    """``S``: the final look (see the module docs)."""
    shape = looks.units.shape[:-1]
    planned = plan.planned_per_variant
    final = np.broadcast_to(looks.last, shape).copy()
    if planned:
        final |= looks.units.min(axis=-1) >= float(planned)
    elif not plan.schedule.bounded:
        final[...] = True  # the look cannot be placed: the stricter non-inferiority rule for guardrails
    if complete is not None:
        final |= complete
    return final


def decide(plan: Plan, looks: LookState, moments: dict[str, tuple[Moments, fixed.Kind]],
           exact: bool = False, segment_harm: dict[str, np.ndarray] | None = None,
           bandit: BanditLooks | None = None) -> Decisions:
    """Decide every look: comparisons, corrections, guardrails, futility, the rules in order and the winner.

    ``moments`` maps the metrics to evaluate to their moments (``S + (arms,)``,
    control first) and the kind to test them as. Metrics that are left out
    cannot make a rule hold; a correction family counts only the metrics given.
    ``segment_harm`` maps a metric to whether some segment of it is harmed
    (shape ``S``; see :func:`expc.runtime.segment_results.harmed_segments`);
    without it the ``segment_harm`` rule never holds. ``bandit``: a bandit's
    probabilities of being best and sample-ratio check (see the module docs).
    """
    a = plan.analysis
    alpha, method = a.alpha, a.method
    units = np.asarray(looks.units, dtype=np.float64)
    shape = units.shape[:-1]
    weights = np.asarray([plan.variants[i].weight for i in plan.arm_order])
    srm = bandit.srm if bandit is not None else srm_test(units, weights, threshold=a.srm_threshold)
    flagged = np.broadcast_to(np.asarray(srm.flagged, dtype=bool), shape)
    enough = np.all(units >= plan.stopping.min_units_per_variant, axis=-1)

    group = method == "sequential" and plan.sequential is not None and plan.sequential.type == "group"
    complete = np.zeros(shape, dtype=bool)
    bounds: dict[float, np.ndarray] = {}
    out: dict[str, MetricLooks] = {}
    for mid, (m, kind) in moments.items():
        metric = plan.metric(mid)
        boundary = None
        if group:
            level = alpha / metric.family_size if a.correction != "none" and metric.family_size else alpha
            if level not in bounds:
                bounds[level], complete = group_boundaries(plan, looks, level)
            boundary = bounds[level]
        out[mid] = compare(plan, metric, m, kind, exact, boundary)

    # ---- significance: corrected p within families, the boundary, or the posterior's chance
    if method == "bayesian":
        for mid, ml in out.items():
            up = ml.chance_up
            assert up is not None
            out[mid] = _with(ml, significant=np.isfinite(up) & (np.maximum(up, 1 - up) >= 1 - alpha / 2))
    elif group:
        for mid, ml in out.items():
            out[mid] = _with(ml, significant=ml.reject)
    else:
        families: dict[str, list[str]] = {}
        for mid in out:
            families.setdefault(plan.metric(mid).family, []).append(mid)
        for members in families.values():
            adj = corrections.adjust_rows(np.concatenate([out[mid].p_value for mid in members], axis=-1),
                                          a.correction)
            t = out[members[0]].p_value.shape[-1]
            for i, mid in enumerate(members):
                part = adj[..., i * t:(i + 1) * t]
                out[mid] = _with(out[mid], adjusted_p=part, significant=np.isfinite(part) & (part < alpha))

    # ---- guardrails
    final = final_look(plan, looks, complete if group else None)
    for mid, ml in out.items():
        if ml.metric.role != "guardrail":
            continue
        ni = fixed.non_inferiority(ml.moments, ml.kind, float(ml.metric.margin or 0.0), ml.metric.direction)
        non_inferior = np.isfinite(ni.p_value) & (ni.p_value < alpha)
        at_final = ~non_inferior & np.isfinite(ml.lift)
        interim = alpha / (ml.lift.shape[-1] * max(1, len(plan.schedule.looks))) if method == "bandit" else alpha
        harm = np.where(final[..., None], at_final, _significant_raw(ml, method, interim))
        out[mid] = _with(ml, non_inferiority=ni, harm=harm)

    # ---- the rules
    primary = plan.primary
    false = np.zeros(shape, dtype=bool)
    true = np.ones(shape, dtype=bool)
    futility: dict[str, np.ndarray] = {}

    def holds(when: str, target: str | None) -> np.ndarray:
        if when == "srm":
            return flagged.copy()
        if when == "guardrail_harm":
            hit = false.copy()
            for mid, ml in out.items():
                if ml.metric.role == "guardrail" and ml.harm is not None and (not target or mid == target):
                    hit |= np.any(ml.harm, axis=-1)
            return hit & enough
        if when == "segment_harm":  # per segment, only always-valid tests may be read before the final look
            hit = false.copy()
            for mid, harmed in (segment_harm or {}).items():
                if not target or mid == target:
                    hit |= np.asarray(harmed, dtype=bool)
            return hit & enough & (true if method == "sequential" and not group else final)
        if when in ("primary_significant", "futility"):
            metric_id = target or (primary.id if primary else None)
            if metric_id is None or metric_id not in out:
                return false
            ml = out[metric_id]
            gate = enough & ~flagged
            if when == "primary_significant":
                assert ml.significant is not None
                return gate & np.any(ml.significant & ml.better, axis=-1)
            if not ml.metric.mde or ml.lift.shape[-1] == 0:
                return false
            if metric_id not in futility:
                futility[metric_id] = _futility(plan, ml, exact)
            return gate & np.all(futility[metric_id], axis=-1)
        if when == "max_days":
            reached = np.broadcast_to(looks.last, shape) if plan.stopping.max_days is not None else false
            return reached | complete if group else reached.copy()
        if when == "best_arm":
            if bandit is None:
                return false
            return enough & ~flagged & (np.max(bandit.best, axis=-1) >= bandit.threshold)
        if when == "max_units":
            limit = plan.stopping.max_units
            return false if limit is None else units.sum(axis=-1) >= limit
        raise ValueError(f"unknown stopping condition {when!r}")

    rules = plan.stopping.rules
    actions = (CONTINUE,) + tuple(sorted({r.then for r in rules} - {CONTINUE}))
    action = np.zeros(shape, dtype=np.int64)
    rule_index = np.full(shape, -1, dtype=np.int64)
    open_ = np.ones(shape, dtype=bool)  # no earlier rule has held
    held = []
    for i, rule in enumerate(rules):
        h = np.asarray(holds(rule.when, rule.metric), dtype=bool)
        held.append(h)
        fire = open_ & h
        action[fire] = actions.index(rule.then)
        rule_index[fire] = i
        open_ &= ~fire

    winner = np.full(shape, -1, dtype=np.int64)
    if primary is not None and primary.id in out:
        ml = out[primary.id]
        assert ml.significant is not None
        wins = ml.significant & ml.better
        score = np.where(wins, primary.sign * ml.lift, -np.inf)
        has = np.any(wins, axis=-1) & ~flagged
        winner = np.where(has, np.argmax(score, axis=-1) + 1, -1)
    if bandit is not None:
        found = ~flagged & (np.max(bandit.best, axis=-1) >= bandit.threshold)
        winner = np.where(found, np.argmax(bandit.best, axis=-1), -1)
    ship = action == actions.index("stop_ship_winner") if "stop_ship_winner" in actions else false
    rollback = action == actions.index("stop_rollback") if "stop_rollback" in actions else false
    variant = np.where(ship, winner, np.where(rollback, 0, -1))
    return Decisions(actions, action, rule_index, variant, winner, held, out, srm, enough, final,
                     complete if group else false, futility, bandit.best if bandit is not None else None)


def _with(ml: MetricLooks, **changes: object) -> MetricLooks:
    from dataclasses import replace

    return replace(ml, **changes)  # type: ignore[arg-type]
