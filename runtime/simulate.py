"""Operating characteristics of a design before launch: thousands of simulated experiments at once.

:func:`simulate` answers "what will this design do?" for a compiled plan with
a ``simulation`` block: the share of replications that ship a treatment when
every variant is the same (the false-positive rate, ``truth="aa"``), the share
that ship the truly best variant under the spec's truth (the power,
``truth="spec"``), and the distributions of decisions, stopping days and units
used. Everything works on sufficient statistics, vectorised over replications
``R`` and looks ``K``: no Python loop runs per unit or per replication (only
over metrics, rules and blocks of replications).

The model
=========

Traffic and looks come from the plan: the looks are ``plan.simulation.looks``
(the schedule until ``simulation.days``, see :class:`~expc.compiler.plan.Schedule`:
the same looks a simulated ``expc run`` takes), and
``plan.simulation.entering_per_day`` units (``units_per_day × share ×
coverage``, where ``share`` is the width of the layer's range) enter per day.
``units_per_day`` counts units that already match the audience, so the
audience is not applied again. Between two looks the number entering is the
difference of the rounded cumulative counts (so totals are exact); they are
split between the arms by ``Multinomial(entering, weights)``.

Outcomes, drawn per arm and per look interval from the truth, exactly in
distribution for the unit-level model named (no per-unit loop):

* proportion: ``successes ~ Binomial(n, p)``.
* mean: units ``x ~ N(μ, σ²)`` i.i.d.; ``Σx ~ N(nμ, nσ²)`` and, independently,
  ``Σ(x - x̄)² ~ σ² χ²_{n-1}`` (Cochran), so ``Σx² = Σ(x - x̄)² + (Σx)²/n``.
* ratio (``Σx / Σy``): the truth's ``mean`` is the ratio ``r`` and its ``sd``
  the per-unit standard deviation of the delta-method linearisation
  ``(x - r y) / E y`` (what ``Moments.variance()`` estimates and what the
  compiler plans with). Units draw a denominator ``y ~ N(1, 1)`` and an
  independent residual ``e ~ N(0, σ²)``, and ``x = r y + e``; then
  ``E x / E y = r`` and the linearisation is exactly ``e``. The sums
  ``Σy, Σe`` are normal and the centred scatter matrix of ``(y, e)`` is
  ``Wishart(n - 1)``, drawn by Bartlett's decomposition; ``Σx, Σx², Σy²,
  Σxy`` follow. The delta-method test's behaviour depends on the denominator's
  spread only at second order, so this choice does not drive the results.

Outcomes are counted at the look at which a unit enters: metric windows and
conversion delays are not modelled (events are assumed complete at the look),
nor is the lag ``analysis.in_progress: exclude`` puts on a windowed metric's
units in a run (a unit counts once its window has ended), so the power of a
windowed primary metric is optimistic by about a window's worth of units at
each look. Sums are drawn, not units, so a metric's ``cap`` does not apply here
(simulated runs, :mod:`expc.runtime.synthetic`, apply both).
No pre-exposure covariate is drawn, so CUPED never applies: the figures are
those of the plain analysis (conservative for a design that uses CUPED).

Segments: with a ``segment_harm`` rule, the units entering are split between
the joint segments of ``analysis.segments`` (:func:`segments_of`: each
attribute's values with the shares its simulated distribution gives, pooled by
``min_units`` and ``top`` on the units expected at the horizon, attributes
independent) and the arms by one multinomial; outcomes are drawn per segment,
the whole is their sum, and each look's harm is found per attribute by
:func:`expc.runtime.segment_results.segment_tests`, the function a real look
uses. Every segment has its variant's truth (the effect is the same in each)
unless ``segment_truth`` changes it within some segments (a harm confined to
one country); under ``truth="aa"`` every rollback is false.

Truth: ``truth="spec"`` takes the plan's resolved truth table
(``plan.simulation.truth``: every variant × metric, see
:class:`~expc.compiler.plan.Simulation`); ``truth="aa"`` gives every variant
the control's row.

Evaluation
==========

Every look of every replication is decided by the decision kernel,
:func:`expc.runtime.decide.decide`, the same function that
:func:`expc.runtime.evaluate.evaluate` calls for one look, on arrays of shape
``(R, K, arms)`` (with ``exact=False``: Bayesian proportions take the kernel's
fast path, which gives the decision the exact computation would give). Only
the metrics that can change a decision are drawn and decided: the primary
metric, metrics named by ``primary_significant`` / ``futility`` rules,
guardrails when a ``guardrail_harm`` rule exists, and their correction
families.

Outputs
=======

``false_positive_rate`` (``truth="aa"``): the share of replications that
decide ``stop_ship_winner`` with a winner, i.e. ship some treatment although
none is better. ``power`` (``truth="spec"``): the share that ship the truly best
variant, the treatment whose true primary mean is best in the metric's good
direction (any of them on a tie), provided it is strictly better than the
control (``None`` when no treatment is: then every shipment is a false
positive, reported as ``false_positive_rate``). Each rate has its Monte Carlo
standard error ``√(p(1 - p)/R)``. Replications that no rule stops within the
horizon end ``continue`` (not stopped); their units and day are those of the
last look. The stopping-day quantiles are over the replications that stopped.

:meth:`SimulationResult.to_dict` (``expc simulate --format json``) has the keys
``experiment``, ``truth`` (``"aa"`` or ``"spec"``), ``false_positive_rate`` and
``false_positive_rate_se`` (with ``aa``, or ``spec`` without a true
improvement), ``false_rollback_rate`` and its ``_se`` (with ``aa`` when a rule
can roll back: every rollback of an A/A test is false), ``power``, ``power_se`` and ``best_variant`` (with ``spec``),
``replications``, ``seed``, ``design`` (method, alpha, correction, looks,
look_every, horizon_days, units_per_day entering, variants with their
weights, control, planned_per_variant, min_units_per_variant, rules),
``truth_values`` (variant → metric → mean, sd), ``decisions`` (action →
share, ``continue`` = not stopped), ``shipped`` (treatment → share),
``rules_fired`` (``"<index>:<when>"`` → share), ``stopping_day``
(``stopped`` share, ``quantiles`` p5/p25/p50/p75/p95, ``mean``,
``histogram`` of ``{day, share}`` with shares of all replications) and
``units_used`` (``quantiles``, ``mean``). It is a pure function of the plan,
the replications, the truth and the seed: the same inputs give the same JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from expc.compiler.errors import ExpcError
from expc.compiler.plan import DAY, Plan

from .decide import CONTINUE, Decisions, LookState, decide
from .segment_results import segment_tests
from .stats.moments import Moments
from .stats.reduce import EXCLUDED_KEYS, Reduction
from .stats.segments import group_segments
from .synthetic import attribute_shares

__all__ = [
    "CONTINUE",
    "Design",
    "Draws",
    "SimulationError",
    "SimulationResult",
    "Segments",
    "decide_draws",
    "design_of",
    "draw",
    "look_reduction",
    "segments_of",
    "simulate",
    "truth_values",
]

TRUTH_MODES = ("spec", "aa")
_BLOCK_ELEMENTS = 1_500_000  # replications × looks × arms per block (bounds memory)
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_CELLS = 4096
"""Joint segments (the product of the attributes' groups) a simulation may draw."""


class SimulationError(ExpcError, ValueError):
    """The plan cannot be simulated (no simulation block; exit 1)."""


# ================================================================== design and truth


@dataclass(frozen=True, eq=False)
class Design:
    """The plan's traffic and looks, arms in control-first order."""

    arm_ids: tuple[str, ...]  # control first
    weights: np.ndarray  # (arms,), normalised
    seconds: np.ndarray  # (K,) int: each look's time since the start
    last: np.ndarray  # (K,) bool: the schedule's last look (max_days reached)
    entering: np.ndarray  # (K,) int: units entering the experiment between looks
    per_day: float  # units entering per day (after layer share and coverage)

    @property
    def looks(self) -> int:
        """Number of looks ``K``."""
        return int(self.seconds.size)

    @property
    def look_days(self) -> np.ndarray:
        """``(K,)``: each look's day since the start."""
        return self.seconds / DAY

    @property
    def horizon_days(self) -> float:
        """The day of the last look."""
        return float(self.seconds[-1]) / DAY


def design_of(plan: Plan) -> Design:
    """Traffic and looks of a plan with a ``simulation`` block (raises :class:`SimulationError` without one)."""
    sim = plan.simulation
    if sim is None:
        raise SimulationError(f"the spec of {plan.experiment.id} has no `simulation` block; add one "
                              "(units_per_day and the true rates or means per variant) to simulate it")
    weights = np.asarray([plan.variants[i].weight for i in plan.arm_order])
    if weights.sum() <= 0:
        raise SimulationError("every variant has weight 0: no unit would enter")
    seconds = np.asarray([look.seconds for look in sim.looks], dtype=np.int64)
    last = np.asarray([plan.schedule.is_last(look) for look in sim.looks], dtype=bool)
    cumulative = np.rint(sim.entering_per_day * seconds / DAY).astype(np.int64)
    entering = np.diff(np.concatenate([[0], cumulative]))
    return Design(tuple(plan.arm_ids), weights / weights.sum(), seconds, last, entering, sim.entering_per_day)


def truth_values(plan: Plan, mode: str = "spec") -> dict[str, dict[str, tuple[float, float | None]]]:
    """True ``(mean, sd)`` per variant and metric: the plan's truth table, or its control row everywhere (``aa``)."""
    if mode not in TRUTH_MODES:
        raise ValueError(f"truth must be one of {TRUTH_MODES}, got {mode!r}")
    if plan.simulation is None:
        raise SimulationError(f"the spec of {plan.experiment.id} has no `simulation` block")
    table = plan.simulation.truth
    return {v.id: {mid: (t.mean, t.sd) for mid, t in table[plan.control if mode == "aa" else v.id].items()}
            for v in plan.variants}


@dataclass(frozen=True, eq=False)
class Segments:
    """The simulated population's segments: joint cells of the attributes' groups, and each attribute's groups.

    Attributes are independent (as :func:`~expc.runtime.synthetic.draw_units`
    draws them), so a cell's share is the product of its groups' shares.
    """

    shares: np.ndarray  # (C,) each cell's share of the units, summing to 1
    groups: dict[str, np.ndarray]  # attribute -> (C, S) 0/1: the attribute's group of each cell
    names: dict[str, list[str]]  # attribute -> its S group names
    truth: tuple[tuple[str, str, str, str, float], ...] = ()
    """Overrides of the truth within a segment: (attribute, group, variant, metric, mean), applied in order."""

    def cell_truth(self, metric: str, arm_ids: tuple[str, ...], values: np.ndarray) -> np.ndarray:
        """A metric's true means per cell and arm, ``(C, arms)``: ``values`` (per arm) with the overrides."""
        out = np.broadcast_to(np.asarray(values, dtype=np.float64), (self.shares.size, len(arm_ids))).copy()
        for attribute, group, variant, mid, mean in self.truth:
            if mid == metric:
                cells = self.groups[attribute][:, self.names[attribute].index(group)] > 0
                out[cells, arm_ids.index(variant)] = mean
        return out


def segments_of(plan: Plan, design: Design,
                segment_truth: dict[tuple[str, str], dict[str, dict[str, float]]] | None = None) -> Segments | None:
    """The segments a ``segment_harm`` rule looks at, pooled as the analysis pools them; ``None`` without one.

    Each attribute of ``analysis.segments`` takes its values' shares from the
    simulation's distributions (:func:`~expc.runtime.synthetic.attribute_shares`),
    and :func:`~expc.runtime.stats.segments.group_segments` pools them on the
    units expected at the horizon (``min_units``, ``top``), as the analysis pools
    the data it sees. Every segment has its variant's truth: the effect is the
    same in each. Raises :class:`SimulationError` for an attribute whose values
    are not a short discrete list, or when the joint cells exceed
    :data:`MAX_CELLS`. ``segment_truth`` (Python only, for now) changes the
    truth within segments: ``{(attribute, group): {variant: {metric: mean}}}``,
    such as a harm confined to one country; a mean metric keeps its sd.
    """
    if not any(rule.when == "segment_harm" for rule in plan.stopping.rules):
        return None
    config = plan.analysis.segments
    if config is None:
        raise SimulationError("a `segment_harm` rule needs `analysis.segments`")
    total = int(design.entering.sum())
    shares = np.ones(1)
    groups: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for attribute in config.by:
        values = attribute_shares(plan, attribute)
        if values is None:
            raise SimulationError(f"the segments of `{attribute}` cannot be simulated: its values are not a short "
                                  f"list; give `simulation.attributes.{attribute}.values` (with `weights`)")
        keys = list(values)
        share = np.asarray([values[k] for k in keys])
        pooled = group_segments(np.asarray(keys, dtype=object), np.rint(share * total).astype(np.int64),
                                min_units=config.min_units, top=config.top)
        order = list(dict.fromkeys(pooled[k] for k in keys))
        membership = np.zeros((len(keys), len(order)))
        membership[np.arange(len(keys)), [order.index(pooled[k]) for k in keys]] = 1.0
        group_share = share @ membership
        if shares.size * len(order) > MAX_CELLS:
            raise SimulationError(f"the segments of {', '.join(config.by)} make more than {MAX_CELLS:,} joint cells "
                                  "to simulate; lower `analysis.segments.top`")
        before = shares.size
        shares = np.outer(shares, group_share).ravel()
        for a in groups:
            groups[a] = np.repeat(groups[a], len(order), axis=0)
        groups[attribute] = np.tile(np.eye(len(order)), (before, 1))
        names[attribute] = order
    overrides = []
    for (attribute, group), rows in (segment_truth or {}).items():
        if group not in names.get(attribute, []):
            raise SimulationError(f"segment_truth: `{attribute} = {group}` is not a simulated segment "
                                  f"(the segments are {names})")
        for variant, means in rows.items():
            if variant not in design.arm_ids or not set(means) <= {m.id for m in plan.metrics}:
                raise SimulationError(f"segment_truth: unknown variant or metric in {variant}: {sorted(means)}")
            overrides += [(attribute, group, variant, mid, float(mean)) for mid, mean in means.items()]
    return Segments(shares, groups, names, tuple(overrides))


# ================================================================== drawing moments


@dataclass(frozen=True, eq=False)
class Draws:
    """Cumulative sufficient statistics at every look: arrays ``(R, K, arms)``, arms control-first."""

    design: Design
    units: np.ndarray
    metrics: dict[str, Moments]
    cells: dict[str, Moments] | None = None
    """With segments: every metric per joint cell, ``(R, K, C, arms)`` (``metrics`` is their sum over ``C``)."""


def _chi2(rng: np.random.Generator, df: np.ndarray) -> np.ndarray:
    """χ² draws that allow 0 degrees of freedom (giving 0)."""
    return rng.gamma(np.maximum(df, 0.0) / 2.0, 2.0)


def _draw_proportion(rng: np.random.Generator, n: np.ndarray, p: np.ndarray) -> Moments:
    x = rng.binomial(n, p).astype(np.float64)
    return Moments.proportion(n.astype(np.float64), x)


def _draw_mean(rng: np.random.Generator, n: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> Moments:
    nf = n.astype(np.float64)
    s = rng.normal(nf * mu, np.sqrt(nf) * sd)
    scatter = sd**2 * _chi2(rng, nf - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(nf > 0, scatter + s**2 / nf, 0.0)
    return Moments.of(nf, s, s2)


def _draw_ratio(rng: np.random.Generator, n: np.ndarray, r: np.ndarray, sd: np.ndarray,
                sd_y: float = 1.0) -> Moments:
    nf = n.astype(np.float64)
    sy = rng.normal(nf, np.sqrt(nf) * sd_y)
    se = rng.normal(0.0, np.sqrt(nf) * sd)
    nu = nf - 1.0  # Bartlett: A = [[a11, 0], [a21, a22]], A Aᵀ ~ Wishart(ν, I)
    a11 = np.sqrt(_chi2(rng, nu))
    a21 = np.where(nu >= 1, rng.standard_normal(nf.shape), 0.0)
    a22 = np.sqrt(_chi2(rng, nu - 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(nf > 0, 1.0 / nf, 0.0)
    syy = sd_y**2 * a11**2 + sy**2 * inv_n
    sye = sd_y * sd * a11 * a21 + sy * se * inv_n
    see = sd**2 * (a21**2 + a22**2) + se**2 * inv_n
    return Moments.of(nf, r * sy + se, r**2 * syy + 2 * r * sye + see, sy, syy, r * syy + sye)


def _cumulative(m: Moments) -> Moments:
    return m.map(lambda x: np.cumsum(x, axis=1))


def draw(plan: Plan, replications: int, truth: str = "spec", seed: int | None = None,
         metrics: list[str] | None = None, design: Design | None = None,
         rng: np.random.SeedSequence | None = None, segments: Segments | None = None) -> Draws:
    """Draw ``replications`` experiments: cumulative units and moments per look (see the module docs).

    ``metrics`` limits the metrics drawn (default: all). Each metric has its own
    random stream, so drawing fewer metrics leaves the others unchanged.
    ``seed`` defaults to ``simulation.seed``; ``rng`` (a ``SeedSequence``)
    overrides it. With ``segments``, units entering are split between the
    joint cells and the arms by one multinomial, outcomes are drawn per cell
    (each from its variant's truth) and the whole is their sum.
    """
    design = design or design_of(plan)
    values = truth_values(plan, truth)
    assert plan.simulation is not None
    ss = rng or np.random.SeedSequence(plan.simulation.seed if seed is None else int(seed))
    streams = ss.spawn(1 + len(plan.metrics))
    R, K = int(replications), design.looks
    gen = np.random.default_rng(streams[0])
    if segments is None:
        increments = gen.multinomial(design.entering, design.weights, size=(R, K))  # (R, K, arms)
    else:
        p = np.outer(segments.shares, design.weights).ravel()
        increments = gen.multinomial(design.entering, p / p.sum(), size=(R, K)).reshape(
            R, K, segments.shares.size, design.weights.size)  # (R, K, C, arms)
    out: dict[str, Moments] = {}
    for i, metric in enumerate(plan.metrics):
        if metrics is not None and metric.id not in metrics:
            continue
        g = np.random.default_rng(streams[1 + i])
        mean = np.asarray([values[a][metric.id][0] for a in design.arm_ids])
        if segments is not None and segments.truth:
            mean = segments.cell_truth(metric.id, design.arm_ids, mean)
        if metric.kind == "proportion":
            m = _draw_proportion(g, increments, mean)
        else:
            sd = np.asarray([values[a][metric.id][1] for a in design.arm_ids], dtype=np.float64)
            m = (_draw_mean if metric.kind == "mean" else _draw_ratio)(g, increments, mean, sd)
        out[metric.id] = _cumulative(m)
    units = np.cumsum(increments, axis=1)
    if segments is None:
        return Draws(design, units, out)
    return Draws(design, units.sum(axis=2), {k: m.map(lambda x: x.sum(axis=2)) for k, m in out.items()}, out)


def look_reduction(draws: Draws, plan: Plan, replication: int, look: int) -> Reduction:
    """The :class:`Reduction` that one replication has at one look (arms in the plan's order), for ``evaluate``."""
    inverse = np.argsort(plan.arm_order)

    metrics = {k: m.map(lambda x: np.asarray(x[replication, look])[inverse]) for k, m in draws.metrics.items()}
    units = np.asarray(draws.units[replication, look])[inverse].astype(np.int64)
    return Reduction(metrics=metrics, units=units, excluded={k: 0 for k in EXCLUDED_KEYS}, sql="")


# ================================================================== deciding


def needed_metrics(plan: Plan) -> list[str]:
    """Metrics that can change a decision (with their correction families)."""
    needed = {m.id for m in plan.metrics if m.role == "primary"}
    for rule in plan.stopping.rules:
        if rule.when in ("primary_significant", "futility") and rule.metric:
            needed.add(rule.metric)
        if rule.when in ("guardrail_harm", "segment_harm"):
            roles = ("guardrail",) if rule.when == "guardrail_harm" else ("primary", "guardrail")
            needed |= {m.id for m in plan.metrics if m.role in roles and (not rule.metric or m.id == rule.metric)}
    families = {plan.metric(mid).family for mid in needed}
    needed |= {m.id for m in plan.metrics if m.family in families}
    return [m.id for m in plan.metrics if m.id in needed]


def decide_draws(plan: Plan, draws: Draws, exact: bool = False, segments: Segments | None = None) -> Decisions:
    """Decide every look of every replication with the decision kernel (and its segments' harm, with them)."""
    design = draws.design
    looks = LookState(units=draws.units, seconds=design.seconds, last=design.last)
    harm = segment_harm(plan, draws, segments) if segments is not None else None
    return decide(plan, looks, {mid: (m, plan.metric(mid).kind) for mid, m in draws.metrics.items()}, exact,
                  segment_harm=harm)


def segment_harm(plan: Plan, draws: Draws, segments: Segments) -> dict[str, np.ndarray]:
    """Per metric, ``(R, K)``: some segment of some attribute is harmed (:func:`.segment_results.segment_tests`)."""
    assert draws.cells is not None and plan.analysis.segments is not None
    correction = plan.analysis.segments.correction
    harm: dict[str, np.ndarray] = {}
    for mid, cells in draws.cells.items():
        metric = plan.metric(mid)
        if metric.role not in ("primary", "guardrail"):
            continue
        hit = np.zeros(draws.units.shape[:-1], dtype=bool)
        for groups in segments.groups.values():
            m = _grouped(cells, groups)
            hit |= segment_tests(plan, metric, m, correction, exact=False).harmed.any(axis=(-1, -2))
        harm[mid] = hit
    return harm


def _grouped(cells: Moments, groups: np.ndarray) -> Moments:
    """Moments ``(R, K, C, arms)`` summed into an attribute's groups, ``(R, K, S, arms)``."""
    return cells.map(lambda x: np.einsum("rkca,cs->rksa", x, groups))


# ================================================================== many replications


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per-replication outcomes of a simulation and the design they came from."""

    plan: Plan
    design: Design
    truth_mode: str
    truth: dict[str, dict[str, tuple[float, float | None]]]
    seed: int
    actions: tuple[str, ...]
    action: np.ndarray  # (R,) index into actions; 0 = never stopped
    rule: np.ndarray  # (R,) rule index, -1 when never stopped
    winner: np.ndarray  # (R,) control-first arm index shipped, -1 for none
    stop_look: np.ndarray  # (R,) look index, -1 when never stopped
    units_used: np.ndarray  # (R,) total units at the stopping (or last) look

    @property
    def replications(self) -> int:
        """Number of replications."""
        return int(self.action.size)

    def best_arms(self) -> list[int]:
        """Control-first indexes of the truly best treatments (empty when none beats the control)."""
        primary = self.plan.primary
        if primary is None:
            return []
        values = [primary.sign * self.truth[a][primary.id][0] for a in self.design.arm_ids]
        top = max(values[1:]) if len(values) > 1 else -math.inf
        if not top > values[0]:
            return []
        return [i for i in range(1, len(values)) if values[i] == top]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``expc simulate --format json`` (keys described in the module docs)."""
        R = self.replications
        plan, design = self.plan, self.design
        shipped = self.winner >= 0

        def rate(x: np.ndarray) -> float | None:
            return float(np.mean(x)) if R else None

        def se(p: float | None) -> float | None:
            return None if p is None else math.sqrt(p * (1 - p) / R)

        best = self.best_arms()
        out: dict[str, Any] = {"experiment": plan.experiment.id, "truth": self.truth_mode}
        if self.truth_mode == "aa" or not best:
            fpr = rate(shipped)
            out["false_positive_rate"] = fpr
            out["false_positive_rate_se"] = se(fpr)
        if self.truth_mode == "aa" and "stop_rollback" in self.actions:
            rollback = rate(self.action == self.actions.index("stop_rollback"))
            out["false_rollback_rate"] = rollback
            out["false_rollback_rate_se"] = se(rollback)
        if self.truth_mode == "spec":
            power = rate(np.isin(self.winner, best)) if best else None
            out["power"] = power
            out["power_se"] = se(power)
            out["best_variant"] = [design.arm_ids[i] for i in best]
        out["replications"] = R
        out["seed"] = self.seed
        rules = plan.stopping.rules
        out["design"] = {
            "method": plan.analysis.method,
            "alpha": plan.analysis.alpha,
            "correction": plan.analysis.correction,
            "looks": design.looks,
            "look_every": plan.schedule.every,
            "look_days": [_day(d) for d in design.look_days],
            "horizon_days": _day(design.horizon_days),
            "units_per_day": design.per_day,
            "variants": {a: float(w) for a, w in zip(design.arm_ids, design.weights)},
            "control": design.arm_ids[0],
            "planned_per_variant": plan.planned_per_variant,
            "min_units_per_variant": plan.stopping.min_units_per_variant,
            "rules": [f"{r.when}{'(' + r.metric + ')' if r.metric else ''} -> {r.then}" for r in rules],
        }
        out["truth_values"] = {a: {k: {"mean": v[0], "sd": v[1]} for k, v in self.truth[a].items()}
                               for a in design.arm_ids}
        out["decisions"] = {name: float(np.mean(self.action == i)) for i, name in enumerate(self.actions)}
        out["shipped"] = {a: float(np.mean(self.winner == i)) for i, a in enumerate(design.arm_ids) if i > 0}
        out["rules_fired"] = {f"{i}:{r.when}": float(np.mean(self.rule == i)) for i, r in enumerate(rules)}
        stopped = self.stop_look >= 0
        days = design.look_days[self.stop_look[stopped]]
        values, counts = np.unique(days, return_counts=True)
        out["stopping_day"] = {
            "stopped": float(np.mean(stopped)) if R else 0.0,
            "quantiles": _quantiles(days),
            "mean": float(days.mean()) if days.size else None,
            "histogram": [{"day": _day(d), "share": float(c) / R} for d, c in zip(values, counts)],
        }
        out["units_used"] = {"quantiles": _quantiles(self.units_used),
                             "mean": float(self.units_used.mean()) if R else None}
        return out


def _day(d: float) -> int | float:
    """A day as JSON shows it: a whole number when it is one."""
    return int(d) if float(d).is_integer() else float(d)


def _quantiles(x: np.ndarray) -> dict[str, float | None]:
    if not np.asarray(x).size:
        return {f"p{int(q * 100)}": None for q in _QUANTILES}
    return {f"p{int(q * 100)}": float(v) for q, v in zip(_QUANTILES, np.quantile(x, _QUANTILES))}


def simulate(plan: Plan, replications: int, truth: str = "spec", seed: int | None = None,
             exact: bool = False,
             segment_truth: dict[tuple[str, str], dict[str, dict[str, float]]] | None = None) -> SimulationResult:
    """Simulate ``replications`` experiments of a plan and collect their decisions (see the module docs).

    Replications run in blocks (bounded memory); each block has its own
    random streams, derived from ``seed`` (default ``simulation.seed``), so the
    result is reproducible.
    """
    if replications < 1:
        raise ValueError("replications must be at least 1")
    from expc.compiler.candidates import design_selection

    plan = design_selection(plan)  # top_k: K candidates get traffic (the first K, before any judge has scored)
    if plan.analysis.method == "bandit":
        return _simulate_bandit(plan, replications, truth, seed)
    design = design_of(plan)
    segments = segments_of(plan, design, segment_truth if truth == "spec" else None)
    values = truth_values(plan, truth)
    assert plan.simulation is not None
    seed = plan.simulation.seed if seed is None else int(seed)
    needed = needed_metrics(plan)
    arms = len(design.arm_ids)
    cells = 1 if segments is None else segments.shares.size
    block = max(1, min(replications, _BLOCK_ELEMENTS // max(1, design.looks * arms * cells)))
    n_blocks = math.ceil(replications / block)
    parts: list[tuple[np.ndarray, ...]] = []
    actions: tuple[str, ...] = ()
    for b, ss in enumerate(np.random.SeedSequence(seed).spawn(n_blocks)):
        size = min(block, replications - b * block)
        d = draw(plan, size, truth, metrics=needed, design=design, rng=ss, segments=segments)
        looks = decide_draws(plan, d, exact=exact, segments=segments)
        actions = looks.actions
        stops = looks.stops()
        any_stop = stops.any(axis=1)
        k = np.where(any_stop, np.argmax(stops, axis=1), design.looks - 1)
        r = np.arange(size)
        shipped = np.where(looks.variant > 0, looks.variant, -1)
        parts.append((
            np.where(any_stop, looks.action[r, k], 0),
            np.where(any_stop, looks.rule[r, k], -1),
            np.where(any_stop, shipped[r, k], -1),
            np.where(any_stop, k, -1),
            d.units[r, k].sum(axis=-1),
        ))
    cat = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    return SimulationResult(plan, design, truth, values, seed, actions, *cat)


@dataclass(frozen=True, eq=False)
class BanditSimulationResult(SimulationResult):
    """A bandit's simulation: the usual outcomes plus the ``bandit`` block (see the module docs)."""

    bandit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON of :class:`SimulationResult` with the ``bandit`` block."""
        return super().to_dict() | {"bandit": self.bandit}


def _simulate_bandit(plan: Plan, replications: int, truth: str, seed: int | None) -> BanditSimulationResult:
    """A bandit's simulation (:func:`expc.runtime.bandit.simulate_bandit`), and a fixed equal split to compare."""
    from .bandit import simulate_bandit, summary

    design = design_of(plan)
    if segments_of(plan, design) is not None:
        raise SimulationError("a bandit with a `segment_harm` rule cannot be simulated yet")
    values = truth_values(plan, truth)
    assert plan.simulation is not None
    seed = plan.simulation.seed if seed is None else int(seed)
    runs = simulate_bandit(plan, replications, truth, seed)
    equal = simulate_bandit(plan, replications, truth, seed, equal_split=True)
    block = summary(plan, runs, equal, truth, values, design.look_days)
    return BanditSimulationResult(plan, design, truth, values, seed, runs.actions, runs.action, runs.rule,
                                  runs.winner, runs.stop_look, runs.units_used, bandit=block)
