"""Bandits (``analysis.method: bandit``): each look's weights and decision, and thousands of simulated bandits.

A bandit's traffic changes at every look, so its data come in *periods* (the
intervals between looks, each with the weights in force during it); the
statistics are in :mod:`expc.runtime.stats.bandit` (period weighting, the
posterior, the probability of being best, Thompson weights, the sample-ratio
check per period).

A look (:func:`decide_periods`): every metric is compared on its
period-weighted effective moments by the decision kernel
(:func:`expc.runtime.decide.decide`, the fixed-horizon test: lifts, intervals,
guardrail non-inferiority), the primary metric's posterior gives each arm's
probability of being best (the ``best_arm`` rule and the winner), and the
sample-ratio check compares each period's units with the weights in force then.
The next period's weights (:func:`next_weights`) are equal while the period
starts within ``analysis.bandit.explore_days`` of the start, then Thompson
weights from the probabilities of being best with ``min_weight`` per arm.

Simulation (:func:`simulate_bandit`, what ``expc simulate`` runs for a bandit)
follows :mod:`expc.runtime.simulate`'s model (the plan's traffic and looks,
outcomes drawn exactly in distribution from sufficient statistics), but looks
are taken in order, because each period's units are split by the weights the
previous look chose (a multinomial per replication), vectorised over
replications. It reports, besides the usual rates:

* ``pick``: the arm the bandit recommends, the winner of its ``best_arm`` rule
  where it stopped on it, the control where it rolled back, else the arm most
  likely to be best at its stopping (or last) look; ``pick_rate``: the share of
  replications whose pick is a truly best arm (the control included when no
  treatment beats it);
* ``regret``: the expected outcomes lost to worse arms over the horizon, ``Σ
  n_{p,a} (μ* - μ_a)`` in the primary metric's good direction, the bandit's
  allocation running to the horizon (units after a stop are counted under the
  same weights, so a bandit and a fixed split are compared on the same traffic);
* the same two for a fixed equal split of the same traffic, analysed and
  stopped by the same rules, and the weights over time (mean over
  replications).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from expc.compiler.model import MAX_BANDIT_LOOKS, Bandit
from expc.compiler.plan import DAY, Plan

from .decide import BanditLooks, Decisions, LookState, decide
from .stats import bandit as stats
from .stats.fixed import Kind
from .stats.moments import Moments

__all__ = ["BanditRuns", "CurrentWeights", "Periods", "current_weights", "decide_periods", "look_inputs",
           "next_weights", "settings", "simulate_bandit", "stack_periods"]

_BLOCK = 2000  # replications per block at most ...
_BLOCK_ELEMENTS = 20_000_000  # ... and R × arms² × grid numbers (the probability of being best) per block


def settings(plan: Plan) -> Bandit:
    """The plan's bandit settings (the defaults when the plan has none)."""
    return plan.analysis.bandit or Bandit()


def stack_periods(periods: list[Moments]) -> Moments:
    """Per-period moments ``S + (arms,)`` stacked into ``S + (P, arms)``."""
    first = periods[0]
    fields = {name: np.stack([getattr(m, name) for m in periods], axis=-2)
              for name in ("n", "sum", "sum_sq", "den_sum", "den_sum_sq", "cross")
              if getattr(first, name) is not None}
    return Moments(**fields)


def probability_best(plan: Plan, primary: Moments, exact: bool = False) -> np.ndarray:
    """``S + (arms,)``: each arm's posterior probability of being best on the primary metric (``S + (P, arms)``)."""
    metric = plan.primary
    assert metric is not None
    mean, sd, ab = stats.posterior(primary, metric.kind)
    return stats.probability_best(mean, sd, ab, sign=metric.sign, exact=exact)


def exploring(plan: Plan, seconds: float) -> bool:
    """A period that starts ``seconds`` after the start is in the exploration period (equal weights)."""
    return seconds < settings(plan).explore_days * DAY


def next_weights(plan: Plan, best: np.ndarray, start_seconds: float) -> np.ndarray:
    """``S + (arms,)``: the weights of the period starting at ``start_seconds``, given the last look's ``best``."""
    arms = np.shape(best)[-1]
    if exploring(plan, start_seconds):
        return np.full(np.shape(best), 1.0 / arms)
    return stats.thompson_weights(best, settings(plan).min_weight)


def decide_periods(plan: Plan, looks: LookState, periods: dict[str, Moments], period_units: np.ndarray,
                   period_weights: np.ndarray, exact: bool = False) -> tuple[Decisions, np.ndarray]:
    """Decide looks of a bandit from per-period moments ``S + (P, arms)`` (see the module docs).

    ``periods`` maps metric ids to their per-period moments (the primary among
    them), ``period_units`` and ``period_weights`` are ``S + (P, arms)``.
    Returns the decisions and the probabilities of being best.
    """
    primary = plan.primary
    assert primary is not None and primary.id in periods
    moments: dict[str, tuple[Moments, Kind]] = {
        mid: (stats.effective_moments(m, plan.metric(mid).kind), "mean") for mid, m in periods.items()}
    best = probability_best(plan, periods[primary.id], exact)
    srm = stats.srm_by_period(period_units, period_weights, plan.analysis.srm_threshold)
    state = BanditLooks(best=best, srm=srm, threshold=settings(plan).threshold)
    return decide(plan, looks, moments, exact=exact, bandit=state), best


# ================================================================== one look of a run


@dataclass(frozen=True, eq=False)
class Periods:
    """A bandit look's data by period, arms in the plan's variant order."""

    reductions: list[Any]
    """Each period's :class:`~expc.runtime.stats.reduce.Reduction`: the units that entered during it, with their
    events up to the look."""
    weights: np.ndarray
    """``(P, arms)``: the weights in force in each period."""
    days: list[float]
    """The day each period ended (its look's)."""


@dataclass(frozen=True, eq=False)
class LookInputs:
    """What :func:`expc.runtime.evaluate.evaluate` needs for a bandit's look (arms control-first)."""

    inputs: dict[str, tuple[Moments, Kind]]
    state: BanditLooks
    means: dict[str, np.ndarray]
    summary: dict[str, Any]


def _day_of(d: float) -> int | float:
    return int(d) if float(d).is_integer() else float(d)


def look_inputs(plan: Plan, reduction: Any, periods: Periods | None, look: Any) -> LookInputs:
    """A bandit look's period-weighted inputs, its :class:`BanditLooks` and the ``bandit`` block of the evaluation.

    Without ``periods`` the data are one period at the plan's weights.
    """
    order = plan.arm_order
    ids = plan.arm_ids
    single = periods is None
    if periods is None:
        day = float(look.day) if look is not None else 0.0
        periods = Periods([reduction], np.asarray([[v.weight for v in plan.variants]]), [day])
    weights = np.asarray(periods.weights, dtype=np.float64)[:, order]
    units = np.stack([np.asarray(r.units, dtype=np.float64)[order] for r in periods.reductions])
    stacked = {m.id: stack_periods([r.metrics[m.id].map(lambda x: np.asarray(x, dtype=np.float64)[order])
                                    for r in periods.reductions]).map(lambda x: x[None]) for m in plan.metrics}
    d_inputs: dict[str, tuple[Moments, Kind]] = {
        mid: (stats.effective_moments(m, plan.metric(mid).kind), "mean") for mid, m in stacked.items()}
    means = {mid: stats.period_weighted(m, plan.metric(mid).kind)[0][0] for mid, m in stacked.items()}
    primary = plan.primary
    assert primary is not None
    best = probability_best(plan, stacked[primary.id], exact=True)
    srm = stats.srm_by_period(units[None], weights[None], plan.analysis.srm_threshold)
    state = BanditLooks(best=best, srm=srm, threshold=settings(plan).threshold)
    seconds = float(look.seconds) if look is not None else 0.0
    after = next_weights(plan, best, seconds)[0]
    summary = {
        "probability_best": {a: float(p) for a, p in zip(ids, best[0])},
        "weights": [{"until_day": _day_of(day), "weights": {a: float(w) for a, w in zip(ids, row)}}
                    for day, row in zip(periods.days, weights)],
        "next_weights": {a: float(w) for a, w in zip(ids, after)},
    }
    if single:
        summary["note"] = ("one period at the plan's weights: these data carry no periods (expc run with the "
                           "exposures and events analyses a bandit by period)")
    return LookInputs(d_inputs, state, means, summary)


@dataclass(frozen=True)
class CurrentWeights:
    """The weights a bandit serves now: plan variant order, and the look that chose them (None: exploration)."""

    weights: list[float]
    look: int | None


def current_weights(plan: Plan, run_dir: Any) -> CurrentWeights:
    """The ``next_weights`` of the last look saved in ``run_dir/looks`` (equal weights when there is none).

    A look file that is not a bandit look of this plan's variants (unreadable,
    other ids, weights that are not shares summing to 1) is passed over.
    """
    import json
    from pathlib import Path

    ids = [v.id for v in plan.variants]
    folder = Path(run_dir) / "looks"
    files = sorted(folder.glob("look-*.json")) if folder.is_dir() and not folder.is_symlink() else []
    for path in reversed(files):
        try:
            chosen = json.loads(path.read_text(encoding="utf-8"))["bandit"]["next_weights"]
            weights = [float(chosen[i]) for i in ids]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if all(math.isfinite(w) and w >= 0 for w in weights) and abs(sum(weights) - 1.0) < 1e-4:
            return CurrentWeights(weights, int(path.stem.split("-")[1]))
    return CurrentWeights([1.0 / len(ids)] * len(ids), None)


# ================================================================== simulation


@dataclass(frozen=True, eq=False)
class BanditRuns:
    """Replications of one allocation (the bandit's, or a fixed equal split): arrays ``(R,)`` unless noted."""

    actions: tuple[str, ...]
    action: np.ndarray
    rule: np.ndarray
    winner: np.ndarray  # the shipped treatment (control-first index), -1 for none
    stop_look: np.ndarray  # -1 when never stopped
    units_used: np.ndarray
    pick: np.ndarray  # the recommended arm (see the module docs)
    regret: np.ndarray  # expected outcomes lost over the horizon
    weights: np.ndarray  # (K, arms): mean weights in force in each period
    final_means: np.ndarray  # (R, arms): the primary's period-weighted means at the last look
    pooled_means: np.ndarray  # (R, arms): the primary's pooled means at the last look (for comparison)


def _needed(plan: Plan) -> list[str]:
    from .simulate import needed_metrics

    return needed_metrics(plan)


def simulate_bandit(plan: Plan, replications: int, truth: str = "spec", seed: int | None = None,
                    equal_split: bool = False, means: np.ndarray | None = None) -> BanditRuns:
    """Simulate ``replications`` bandits (or, with ``equal_split``, fixed equal splits) of a plan.

    ``means`` (``(K, arms)``, control first) overrides the primary metric's
    true means period by period (a drifting base rate); the other metrics keep
    the truth. Reproducible: blocks of replications have their own streams
    derived from ``seed`` (default ``simulation.seed``).
    """
    from .simulate import design_of, truth_values

    if replications < 1:
        raise ValueError("replications must be at least 1")
    design = design_of(plan)
    if design.looks > MAX_BANDIT_LOOKS:
        from .simulate import SimulationError

        raise SimulationError(f"a bandit is simulated at most {MAX_BANDIT_LOOKS:,} looks, this one has "
                              f"{design.looks:,}: look less often")
    values = truth_values(plan, truth)
    assert plan.simulation is not None and plan.primary is not None
    seed = plan.simulation.seed if seed is None else int(seed)
    K = design.looks
    primary = plan.primary
    if means is None:
        means = np.tile([values[a][primary.id][0] for a in design.arm_ids], (K, 1))
    means = np.asarray(means, dtype=np.float64)
    block = max(1, min(_BLOCK, _BLOCK_ELEMENTS // (len(design.arm_ids) ** 2 * stats.GRID_POINTS)))
    n_blocks = math.ceil(replications / block)
    parts: list[BanditRuns] = []
    for b, ss in enumerate(np.random.SeedSequence(seed).spawn(n_blocks)):
        size = min(block, replications - b * block)
        parts.append(_block(plan, design, values, means, size, ss, equal_split))
    cat = {name: np.concatenate([getattr(p, name) for p in parts]) for name in
           ("action", "rule", "winner", "stop_look", "units_used", "pick", "regret", "final_means", "pooled_means")}
    weights = np.sum([p.weights * p.action.size for p in parts], axis=0) / replications
    return BanditRuns(parts[0].actions, cat["action"], cat["rule"], cat["winner"], cat["stop_look"],
                      cat["units_used"], cat["pick"], cat["regret"], weights, cat["final_means"], cat["pooled_means"])


def _block(plan: Plan, design: Any, values: dict[str, dict[str, tuple[float, float | None]]], means: np.ndarray,
           R: int, ss: np.random.SeedSequence, equal_split: bool) -> BanditRuns:
    from .simulate import _draw_mean, _draw_proportion, _draw_ratio

    primary = plan.primary
    assert primary is not None
    K, arms = design.looks, len(design.arm_ids)
    needed = _needed(plan)
    streams = ss.spawn(1 + len(needed))
    gen = np.random.default_rng(streams[0])
    metric_rngs = {mid: np.random.default_rng(s) for mid, s in zip(needed, streams[1:])}
    periods: dict[str, list[Moments]] = {mid: [] for mid in needed}
    period_units: list[np.ndarray] = []
    period_weights: list[np.ndarray] = []
    w = np.full((R, arms), 1.0 / arms)
    sign = primary.sign
    action = np.zeros(R, dtype=np.int64)
    rule = np.full(R, -1, dtype=np.int64)
    winner = np.full(R, -1, dtype=np.int64)
    stop_look = np.full(R, -1, dtype=np.int64)
    pick = np.full(R, -1, dtype=np.int64)
    units_used = np.zeros(R, dtype=np.int64)
    regret = np.zeros(R)
    mean_weights = np.zeros((K, arms))
    actions: tuple[str, ...] = ()
    best = np.full((R, arms), 1.0 / arms)
    cumulative = np.zeros((R, arms), dtype=np.int64)
    for k in range(K):
        start = float(design.seconds[k - 1]) if k else 0.0
        if not equal_split:
            w = next_weights(plan, best, start)
        inc = gen.multinomial(int(design.entering[k]), w)  # (R, arms): each replication's own weights
        cumulative = cumulative + inc
        mean_weights[k] = w.mean(axis=0)
        period_units.append(inc)
        period_weights.append(w)
        mu = means[k]
        regret += (inc * (np.max(sign * mu) - sign * mu)).sum(axis=-1)
        for mid in needed:
            metric = plan.metric(mid)
            g = metric_rngs[mid]
            mean = mu if mid == primary.id else np.asarray([values[a][mid][0] for a in design.arm_ids])
            if metric.kind == "proportion":
                m = _draw_proportion(g, inc, mean)
            else:
                sd = np.asarray([values[a][mid][1] for a in design.arm_ids], dtype=np.float64)
                m = (_draw_mean if metric.kind == "mean" else _draw_ratio)(g, inc, mean, sd)
            periods[mid].append(m)
        looks = LookState(units=cumulative, seconds=np.full(R, design.seconds[k]), last=np.full(R, design.last[k]))
        stacked = {mid: stack_periods(ms) for mid, ms in periods.items()}
        d, best = decide_periods(plan, looks, stacked, np.stack(period_units, axis=-2),
                                 np.stack(period_weights, axis=-2))
        actions = d.actions
        new = (stop_look < 0) & d.stops()
        action[new], rule[new], stop_look[new] = d.action[new], d.rule[new], k
        shipped = np.where(d.variant > 0, d.variant, -1)
        winner[new] = shipped[new]
        rollback = d.actions.index("stop_rollback") if "stop_rollback" in d.actions else -2
        recommended = np.where(d.action == rollback, 0, np.where(d.variant >= 0, d.variant, np.argmax(best, axis=-1)))
        pick[new] = recommended[new]
        units_used[new] = cumulative[new].sum(axis=-1)
        if k == K - 1:
            rest = stop_look < 0
            pick[rest] = recommended[rest]
            units_used[rest] = cumulative[rest].sum(axis=-1)
            stacked_primary = stacked[primary.id]
            final_means, _ = stats.period_weighted(stacked_primary, primary.kind)
            with np.errstate(divide="ignore", invalid="ignore"):
                pooled = stacked_primary.sum.sum(axis=-2) / stacked_primary.n.sum(axis=-2)
    return BanditRuns(actions, action, rule, winner, stop_look, units_used, pick, regret, mean_weights,
                      final_means, pooled)


# ================================================================== expc simulate


def best_arms(plan: Plan, truth: dict[str, dict[str, tuple[float, float | None]]]) -> list[int]:
    """Control-first indexes of the arms whose true primary mean is best (every arm when they are all equal)."""
    primary = plan.primary
    assert primary is not None
    values = [primary.sign * truth[a][primary.id][0] for a in plan.arm_ids]
    return [i for i, v in enumerate(values) if v == max(values)]


def _rate(x: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(x))
    return p, math.sqrt(p * (1 - p) / x.size)


def _mean(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0


def summary(plan: Plan, runs: BanditRuns, equal: BanditRuns, truth_mode: str,
            truth: dict[str, dict[str, tuple[float, float | None]]], look_days: np.ndarray) -> dict[str, Any]:
    """The ``bandit`` block of ``expc simulate --format json`` (see :mod:`expc.runtime.simulate`)."""
    b = settings(plan)
    best = best_arms(plan, truth)
    all_equal = len(best) == len(plan.arm_ids)

    def part(r: BanditRuns) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not all_equal:
            out["pick_rate"], out["pick_rate_se"] = _rate(np.isin(r.pick, best))
        better = np.isin(r.winner, best) & (0 not in best)  # a shipped treatment truly better than the control
        out["false_ship_rate"], out["false_ship_rate_se"] = _rate((r.winner > 0) & ~better)
        out["regret"], out["regret_se"] = _mean(r.regret)
        return out

    ids = plan.arm_ids
    return {
        "explore_days": b.explore_days, "min_weight": b.min_weight, "threshold": b.threshold,
        "best": [ids[i] for i in best] if not all_equal else [],
        **part(runs),
        "equal_split": part(equal),
        "weights": [{"until_day": _day_of(d), "weights": {a: round(float(w), 4) for a, w in zip(ids, row)}}
                    for d, row in zip(look_days, runs.weights)],
    }

