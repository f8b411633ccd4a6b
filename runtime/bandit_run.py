"""A simulated ``expc run`` of a bandit: units drawn day by day, each period split by the weights in force.

:func:`expc.runtime.run.run_simulated` hands a bandit's plan here. The steps
are those of any simulated run (units, content, outcomes, looks), but the
assignment depends on the looks, so they interleave:

1. :func:`~expc.runtime.synthetic.draw_units` draws every day's units and
   ``assign`` decides who is in the experiment (audience, layer, coverage) and
   each unit's hash bucket, as for any plan.
2. Outcomes are drawn once per arm for every unit in the experiment
   (:func:`~expc.runtime.synthetic.draw_outcomes` with every unit in arm ``a``:
   potential outcomes with common random numbers), so a unit's outcome does not
   depend on when or how the weights moved; a unit's events are those of the arm
   it is given.
3. Look by look: the units whose first exposure falls in the period that ends at
   the look get an arm by their bucket in the ranges of the weights in force
   (equal weights while exploring, then the last look's Thompson weights; the
   whole hash space is split, the units outside coverage having been left out in
   step 1). A unit keeps the arm it was first given (sticky: in a simulation each
   unit arrives once, so this only matters for real traffic, see
   :mod:`expc.runtime.export`). The look is evaluated on each period's reduction
   (:class:`expc.runtime.bandit.Periods`) and saved; the next weights come from
   it; the run stops when a rule does.
4. ``assignments.parquet`` records every unit's arm with ``period`` (the look
   that closed the period it entered in; -1 for units that entered after the
   run stopped); each look's JSON has the weights in force in every period so
   far (``bandit.weights``); the exposures and events files hold the units as
   they were assigned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

    from .run import Progress, RunOptions
    from .synthetic import SyntheticRun

__all__ = ["evaluate_logged_looks", "merged_run", "period_reducer", "run_simulated", "subset_run"]

DAY_US = 86_400_000_000


def subset_run(run: SyntheticRun, keep: np.ndarray) -> SyntheticRun:
    """The run with only the exposures where ``keep`` (exposure order) and their events."""
    index = np.cumsum(keep) - 1
    events = keep[run.event_unit]
    return replace(run, ids=run.ids[keep], rows=run.rows[keep], arm=run.arm[keep], exposure_ts=run.exposure_ts[keep],
                   event_unit=index[run.event_unit[events]], event_code=run.event_code[events],
                   event_value=run.event_value[events], event_ts=run.event_ts[events], _cache={})


def merged_run(runs: list[SyntheticRun], arm: np.ndarray) -> SyntheticRun:
    """One run from the per-arm runs: each exposure (exposure order) with the events of its ``arm``."""
    parts = [np.flatnonzero(arm[r.event_unit] == a) for a, r in enumerate(runs)]
    ts = np.concatenate([r.event_ts[p] for r, p in zip(runs, parts)])
    order = np.argsort(ts, kind="stable")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name)[p] for r, p in zip(runs, parts)])[order]

    return replace(runs[0], arm=arm.copy(), event_unit=cat("event_unit"), event_code=cat("event_code"),
                   event_value=cat("event_value"), event_ts=ts[order], _cache={})


def run_simulated(plan: Plan, options: RunOptions, seed: int, progress: Progress) -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """The bandit's simulated run (see the module docs): the evaluations of its looks and the generation summary."""
    from expc.compiler.buckets import bucket_ranges

    from .assign import assign, id_text
    from .bandit import Periods
    from .evaluate import evaluate
    from .hashing import choose_variations
    from .run import SIMULATED_ITEMS_PER_VARIANT, _generate, _iso, _subset, simulated_units
    from .rundir import is_done, mark_done, read_json, write_json_atomic
    from .synthetic import DEFAULT_START, draw_outcomes, look_reduction, write_files
    from .tables import write_assignments

    assert plan.simulation is not None
    run_dir = options.run_dir
    looks = plan.simulation.looks
    units, entry_day = simulated_units(plan, seed, progress)
    base = assign(plan, units)
    inside = base.variant >= 0
    generation = _generate(plan, _subset(units, inside), options, progress, SIMULATED_ITEMS_PER_VARIANT)
    progress.step("drawing outcomes")
    arms = len(plan.variants)
    runs = [draw_outcomes(plan, units, entry_day, np.where(inside, a, -1), seed, start=DEFAULT_START)
            for a in range(arms)]
    first = runs[0]
    bucket = base.bucket[first.rows]
    elapsed = first.exposure_ts - first.start_us  # µs since the start, exposure order
    arm = np.full(first.exposures, -1, dtype=np.int64)
    period = np.full(first.exposures, -1, dtype=np.int64)
    start = datetime.fromisoformat(DEFAULT_START)
    progress.step("evaluating looks")
    weights_in_force: list[np.ndarray] = []
    results: list[dict[str, Any]] = []
    w = np.full(arms, 1.0 / arms)
    previous = 0.0
    for k, look in enumerate(looks):
        end = look.seconds * 1_000_000
        entering = (elapsed >= previous * 1_000_000) & (elapsed < end) & (arm < 0)  # sticky: assigned units stay
        chosen = choose_variations(bucket[entering], bucket_ranges(arms, 1.0, [float(x) for x in w]))
        arm[entering] = np.where(chosen >= 0, chosen, arms - 1)  # a bucket at the very top of [0, 1)
        period[entering] = k
        weights_in_force.append(w.copy())
        current = merged_run(runs, np.maximum(arm, 0))
        reductions = [look_reduction(plan, subset_run(current, period == p), look.day) for p in range(k + 1)]
        as_of = _iso(start + timedelta(seconds=look.seconds))
        path = run_dir / "looks" / f"look-{look.index:03d}.json"
        saved = read_json(path) if path.exists() else None
        if saved is not None and saved.get("as_of") == as_of:
            result = saved
        else:
            periods = Periods(reductions, np.stack(weights_in_force), [x.day for x in looks[:k + 1]])
            result = evaluate(plan, look_reduction(plan, current, look.day), look, periods=periods).to_dict() | {
                "look": look.index, "as_of": as_of}
            write_json_atomic(path, result)
        results.append(result)
        progress.look(look.index, len(looks))
        if result["decision"]["action"] != "continue":
            break
        w = np.asarray([float(result["bandit"]["next_weights"][v.id]) for v in plan.variants])
        previous = look.seconds
    entered = arm >= 0
    final = subset_run(merged_run(runs, np.maximum(arm, 0)), entered)
    if not is_done(run_dir, "outcomes"):
        write_files(final, run_dir)
        mark_done(run_dir, "outcomes")
    if not is_done(run_dir, "assignments"):
        names = np.array([v.id for v in plan.variants] + [""], dtype=object)
        variant = np.full(len(units), -1, dtype=np.int64)
        variant[first.rows[entered]] = arm[entered]
        unit_period = np.full(len(units), -1, dtype=np.int64)
        unit_period[first.rows[entered]] = period[entered]
        unit = plan.assignment.unit
        write_assignments(run_dir / "assignments.parquet", {
            unit: id_text(units, unit).astype(object), "variant": names[variant], "bucket": base.bucket,
            "period": unit_period})
        mark_done(run_dir, "assignments")
    return results, generation


# ================================================================== logged data


def _with_period(exposures: Any, boundaries: list[str]) -> Any:
    """The exposures' ``SELECT`` with ``segment`` = ``p000``, ``p001``, ... : the period its timestamp falls in.

    Periods end at ``boundaries`` (UTC, ``YYYY-MM-DD HH:MM:SS``); a unit's
    segment is the least of its exposures' (the reduction's rule), so the
    zero-padded names make it the period of its first exposure.
    """
    from sqlglot import exp

    from expc.compiler.model import OPTIONAL_COLUMNS

    inner = exp.Subquery(this=exposures.copy(), alias=exp.TableAlias(this=exp.to_identifier("e")))
    standard = [exp.column(c, "e", quoted=True) for c in ("unit_id", "variant", "timestamp",
                                                          *OPTIONAL_COLUMNS["exposures"])]
    ts = exp.Cast(this=exp.column("timestamp", "e", quoted=True), to=exp.DataType.build("TIMESTAMP"))
    ifs = [exp.If(this=exp.LT(this=ts.copy(), expression=exp.Cast(this=exp.Literal.string(end),
                                                                    to=exp.DataType.build("TIMESTAMP"))),
                  true=exp.Literal.string(f"p{i:03d}")) for i, end in enumerate(boundaries[:-1])]
    last = exp.Literal.string(f"p{len(boundaries) - 1:03d}")
    case = exp.Case(ifs=ifs, default=last) if ifs else last
    return exp.select(*standard, exp.alias_(case, "segment", quoted=True)).from_(inner)


@contextmanager
def period_reducer(plan: Plan, exposures: Any, events: Any, engine: str = "duckdb") -> Iterator[
        Callable[[str, list[str]], list[Any]]]:
    """``periods_at(as_of, boundaries)``: each period's units and moments (plan variant order) at a cut-off.

    The same reduction as :func:`expc.runtime.stats.reduce.reducer`'s, grouped
    by the period of each unit's first exposure (periods ending at
    ``boundaries``) as segments are; a period without units has zeros. The data
    are read on an engine of their own (once, however many cut-offs follow).
    """
    from types import SimpleNamespace

    from expc.compiler.model import Segments

    from .engines import open_engine
    from .stats.reduce import _segments, as_source
    from .stats.reduction_sql import reduction_sql

    eng = open_engine(engine)
    sources = {"exposures": as_source(exposures), "events": as_source(events)}
    names = list(dict.fromkeys(e for m in plan.metrics for e, _ in m.uses()))
    value = any(measure == "value" for m in plan.metrics for _, measure in m.uses())
    by_period = plan.model_copy(update={"analysis": plan.analysis.model_copy(
        update={"segments": Segments(by=["expc_period"], min_units=0, top=1000)})})
    relations: dict[str, Any] = {}

    def periods_at(as_of: str, boundaries: list[str]) -> list[Any]:
        for what, source in sorted(sources.items(), key=lambda item: item[1].path is None):
            if what not in relations:
                relations[what] = eng.relation(what, source, unit=plan.assignment.unit, value=value, events=names,
                                               repeated=True, read=plan.data.dialect if plan.data else None)[0]
        inputs = {"exposures": _with_period(relations["exposures"], boundaries), "events": relations["events"]}
        columns, rows = eng.query(reduction_sql(by_period, eng.dialect, as_of, comments=False, inputs=inputs,
                                                segment="expc_period"))
        table = _segments(by_period, "expc_period", columns, rows)
        def row(j: int | None) -> Callable[[np.ndarray], np.ndarray]:
            return (lambda x: np.zeros(x.shape[-1])) if j is None else (lambda x: x[j])

        out = []
        for i in range(len(boundaries)):
            name = f"p{i:03d}"
            j = table.values.index(name) if name in table.values else None
            units = table.units[j] if j is not None else np.zeros(len(plan.variants))
            out.append(SimpleNamespace(units=units, metrics={k: m.map(row(j)) for k, m in table.metrics.items()}))
        return out

    try:
        yield periods_at
    finally:
        eng.close()


def evaluate_logged_looks(plan: Plan, run_dir: Any, looks: list[Any], start: datetime,
                          reduce_at: Callable[[str], Any], periods_at: Callable[[str, list[str]], list[Any]],
                          progress: Progress) -> list[dict[str, Any]]:
    """A bandit's looks on logged data: each look on its periods, with the weights the looks before it chose.

    Period 0 has equal weights (exploration), each later one the
    ``next_weights`` of the look that opened it (what ``expc export`` served);
    the sample-ratio check compares each period's units with them. Saved looks
    are read back, as :func:`expc.runtime.run.evaluate_looks` does.
    """
    from .bandit import Periods
    from .evaluate import evaluate
    from .run import _iso
    from .rundir import read_json, write_json_atomic

    arms = len(plan.variants)
    weights = [np.full(arms, 1.0 / arms)]
    results: list[dict[str, Any]] = []
    for k, look in enumerate(looks):
        as_of = _iso(start + timedelta(seconds=look.seconds))
        path = Path(run_dir) / "looks" / f"look-{look.index:03d}.json"
        saved = read_json(path) if path.exists() else None
        if saved is not None and saved.get("as_of") == as_of:
            result = saved
        else:
            ends = [(start + timedelta(seconds=x.seconds)).strftime("%Y-%m-%d %H:%M:%S") for x in looks[:k + 1]]
            periods = Periods(periods_at(as_of, ends), np.stack(weights), [x.day for x in looks[:k + 1]])
            result = evaluate(plan, reduce_at(as_of), look, periods=periods).to_dict() | {"look": look.index,
                                                                                           "as_of": as_of}
            write_json_atomic(path, result)
        results.append(result)
        progress.look(look.index, len(looks))
        if result["decision"]["action"] != "continue":
            break
        chosen = result["bandit"]["next_weights"]
        weights.append(np.asarray([float(chosen[v.id]) for v in plan.variants]))
    return results
