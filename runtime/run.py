"""One experiment end to end: the run directory, its steps, and how a run resumes.

``expc run`` joins the other stages into the main job::

    plan -> units -> assignments -> content -> exposures/events -> looks -> report

A run lives in a directory (``.expc/runs/<experiment-id>/`` by default);
:mod:`expc.runtime.rundir` lists its files and keeps the run inside it (what
``--fresh`` may delete, no write through a link, one run at a time).
Every file is written atomically, so a run killed at any moment leaves only
complete files; the next invocation skips what is done and does the rest.
Steps that are cheap and deterministic (drawing simulated units, assigning
them) are simply done again; the expensive one (generation) resumes from its
store, which never pays for a call twice. A directory made from another spec,
mode or seed is refused rather than mixed; ``fresh=True`` clears the run's
own files first, keeping the content store (it is keyed by what was asked, so
it cannot mix).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.plan import Look, Plan
    from expc.runtime.generate.runner import GenerationResult

from expc.compiler.model import MAX_LOOKS

from .rundir import (
    STATE_VERSION,
    STORE_NAME,
    RunError,
    default_run_dir,
    open_run_dir,
    release_run_dir,
    write_json_atomic,
)
from .rundir import is_done as _is_done
from .rundir import mark_done as _mark_done
from .rundir import read_json as _read_json

__all__ = ["STORE_NAME", "Progress", "RunError", "RunOptions", "RunResult", "build_report", "default_run_dir",
           "evaluate_looks", "execute", "generation_summary", "run_identity", "run_on_data", "run_simulated"]

CONTENT_SAMPLES = 3  # content examples per variant in the report
SIMULATED_ITEMS_PER_VARIANT = 200  # per-unit content generated for at most this many simulated units per variant


@dataclass(frozen=True)
class RunOptions:
    """What ``expc run`` was asked to do (everything but the plan)."""

    run_dir: Path
    simulate: bool = False
    seed: int | None = None
    units_path: Path | None = None
    events_path: Path | None = None
    exposures_path: Path | None = None
    fresh: bool = False
    generation: Any = None  # GenerateOptions; None = defaults
    engine: str = "duckdb"  # where exposures and events are reduced
    data_base: Path | None = None  # the folder of the spec, which its data section's paths are relative to
    approvals: Path | None = None  # a lock file: refuse content it does not approve (--require-approval)

    def data(self, plan: Plan) -> dict[str, Any]:
        """The exposures and events to read (DataSource or None each): the flags', else the spec's ``data``."""
        from expc.runtime.data_sources import sources

        if self.simulate:
            return {"exposures": None, "events": None}
        return sources(plan, self.data_base, exposures=self.exposures_path, events=self.events_path)


@dataclass
class Progress:
    """Hooks the command line uses to show progress; every one may be left as a no-op."""

    step: Callable[[str], None] = lambda message: None
    generation: Callable[[int, int, int, float], None] | None = None
    look: Callable[[int, int], None] = lambda done, total: None


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced: the report (as written) and the paths of its files."""

    report: dict[str, Any]
    outputs: dict[str, Path]
    resumed: bool = False


# ====================================================================== the run directory


def run_identity(plan: Plan, options: RunOptions, simulated: bool, seed: int) -> dict[str, Any]:
    """What makes two invocations the same run: the plan's digest, the mode, the seed and the inputs.

    The digest is of what the spec means (:func:`expc.compiler.diff.plan_digest`): comments, key order,
    formatting, names, descriptions and generation limits do not make another run.
    """
    from expc.compiler.diff import plan_digest

    inputs: dict[str, Any] = {"units": str(Path(options.units_path).resolve()) if options.units_path else None}
    for name, source in options.data(plan).items():
        inputs[name] = None if source is None else (
            str(Path(source.path).resolve()) if source.path is not None else source.model_dump(exclude_defaults=True))
    return {"state_version": STATE_VERSION, "plan_digest": plan_digest(plan), "spec_sha256": plan.spec_sha256,
            "experiment": plan.experiment.id, "simulated": simulated, "seed": seed, "inputs": inputs}


# ====================================================================== the steps


def _history_entry(look: int, day: int, as_of: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """The per-look summary kept in the report's history."""
    units: dict[str, int] = {}
    if evaluation["metrics"]:  # the exposed units (a metric's own may leave out units in progress)
        ids = [v["id"] for v in evaluation["metrics"][0]["variants"]]
        units = dict(zip(ids, evaluation["srm"]["observed"]))
    return {
        "look": look, "day": day, "as_of": as_of,
        "units": units,
        "srm": {"p_value": evaluation["srm"]["p_value"], "flagged": evaluation["srm"]["flagged"]},
        "decision": {k: evaluation["decision"].get(k) for k in ("action", "variant", "rule")},
        **({"bandit": evaluation["bandit"]} if "bandit" in evaluation else {}),
        "metrics": [
            {"id": m["id"], "variants": m["variants"],
             "comparisons": [{k: c.get(k) for k in ("variant", "abs_lift", "abs_ci", "rel_lift", "rel_ci",
                                                     "p_value", "significant", "chance_to_beat")}
                             for c in m["comparisons"]]}
            for m in evaluation["metrics"]
        ],
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluate_looks(plan: Plan, run_dir: Path, looks: list[Look], start: datetime,
                   reduction_at: Callable[[Look, str], Any], progress: Progress) -> list[dict[str, Any]]:
    """Evaluate each look in order until a stopping rule ends the experiment; each look is saved as it is done.

    ``reduction_at(look, as_of)`` gives the look's :class:`Reduction`. A look
    already on disk (from an interrupted run) is read back, not recomputed.
    Returns the evaluations (``Evaluation.to_dict()`` plus ``look`` and ``as_of``).
    """
    from expc.runtime.evaluate import evaluate

    results = []
    for look in looks:
        path = run_dir / "looks" / f"look-{look.index:03d}.json"
        saved = _read_json(path) if path.exists() else None
        as_of = _iso(start + timedelta(seconds=look.seconds))
        if saved is not None and saved.get("as_of") == as_of:
            result = saved
        else:
            result = evaluate(plan, reduction_at(look, as_of), look).to_dict() | {"look": look.index, "as_of": as_of}
            write_json_atomic(path, result)
        results.append(result)
        progress.look(look.index, len(looks))
        if result["decision"]["action"] != "continue":
            break
    return results


def generation_summary(result: GenerationResult) -> dict[str, Any]:
    """The report's ``generation`` block and content samples from a GenerationResult.

    ``calls`` and ``spent`` are the run's totals: every call behind its content,
    whichever invocation paid for it (the content store keeps them all), so a
    resumed or repeated run never reports $0 for calls paid earlier;
    ``this_invocation`` says what this invocation added. A sample generated
    from personal values shows ``[first_name]`` where the value was: reports
    hold no personal value (only content.jsonl, the generated copy, may).
    """
    from expc.runtime.generate.personal import redact

    per_variant = result.per_variant()
    failures = [{"variant": i.variant, "key": _key_text(i.key), "reason": i.reason}
                for i in result.items if i.status in ("failed", "skipped", "use_control")]
    samples: dict[str, list[dict[str, Any]]] = {}
    for item in result.items:
        if item.content is None:
            continue
        bucket = samples.setdefault(item.variant, [])
        if len(bucket) < CONTENT_SAMPLES:
            bucket.append({"key": _key_text(item.key), "content": redact(item.content, item.personal)}
                          | ({"score": item.score} if item.score is not None else {}))
    return {
        "generation": {
            "spent": round(result.spent_total, 6),
            "calls": int(sum(v["calls"] for v in per_variant)),
            "store_hits": int(sum(v["store_hits"] for v in per_variant)),
            "this_invocation": {"calls": int(sum(v["calls_now"] for v in per_variant)),
                                "spent": round(float(result.spent), 6)},
            "per_variant": per_variant,
            "per_deployment": result.per_deployment(),
            "failures": failures,
        },
        "content_samples": samples,
    }


def _key_text(key: Any) -> str | None:
    if key is None:
        return None
    if isinstance(key, dict):
        return ", ".join(f"{k}={v}" for k, v in key.items())
    return str(key)


def _report_head(plan: Plan, simulated: bool) -> dict[str, Any]:
    """The keys every report starts with."""
    experiment = plan.experiment
    return {"report_version": 1, "simulated": simulated,
            "experiment": {k: getattr(experiment, k) for k in ("id", "name", "hypothesis", "owner")},
            "spec_sha256": plan.spec_sha256}


def build_report(plan: Plan, looks: list[dict[str, Any]], generation: dict[str, Any],
                 simulated: bool, seed: int, run_dir: Path) -> dict[str, Any]:
    """The report: the final look (the same keys as ``expc analyze --format json``) plus the run's history."""
    final = looks[-1]
    report: dict[str, Any] = {
        **_report_head(plan, simulated),
        "run": {"seed": seed, "looks": len(looks), "as_of": final.get("as_of"), "run_dir": str(run_dir)},
    }
    report.update({k: v for k, v in final.items() if k not in ("look", "as_of")})
    report["history"] = [_history_entry(r["look"], r["day"], r["as_of"], r) for r in looks]
    copies = generation.get(SEGMENT_COPY) or {}
    report.update({k: v for k, v in generation.items() if k != SEGMENT_COPY})
    for metric in report.get("metrics") or []:  # each segment's copy beside its result
        for comparison in metric.get("comparisons") or []:
            for row in comparison.get("segments") or []:
                shown = copies.get(row.get("attribute"), {}).get(str(row.get("value")))
                if shown:
                    row["content"] = shown
    return report


# ====================================================================== the two modes


def _generate(plan: Plan, units: Any, options: RunOptions, progress: Progress,
              items_per_variant: int | None = None) -> dict[str, Any]:
    """Generate every variant's content (resuming from the store) and summarise it for the report."""
    from dataclasses import replace

    from expc.runtime.generate.jobs import per_unit_variants
    from expc.runtime.generate.runner import GenerateOptions, GenerationError, generate

    gen_options = options.generation or GenerateOptions()
    if items_per_variant is not None and gen_options.max_items_per_variant is None:
        gen_options = replace(gen_options, max_items_per_variant=items_per_variant)
    notes = []
    if units is None:  # analysing logged data only: copy written per unit needs the units
        per_unit = per_unit_variants(plan)
        if per_unit:
            kept = gen_options.variants if gen_options.variants is not None else [v.id for v in plan.variants]
            gen_options = replace(gen_options, variants=tuple(v for v in kept if v not in per_unit))
            notes.append(f"not generated: {', '.join(per_unit)} (its copy is written per unit; give --units)")
    progress.step("generating content")
    try:
        result = generate(plan, units, options.run_dir / STORE_NAME, gen_options, progress=progress.generation)
    except GenerationError as exc:
        code = exc.exit_code
        resume = (f"\nThe run's state is saved in {options.run_dir}; run the same command again to resume."
                  if code == 3 else "")
        raise RunError(f"{exc}{resume}", code) from None
    from expc.runtime.files import write_atomic

    write_atomic(options.run_dir / "content.jsonl", result.jsonl())
    rejection = result.rejection()
    if rejection:
        raise RunError(f"{rejection}. Every item is in {options.run_dir / 'content.jsonl'}; change the prompt or "
                       "its checks (or on_fail) and run again: stored calls are not repeated")
    if options.approvals is not None:  # before any unit is shown the content
        from expc.runtime.approvals import require_approved

        require_approved(plan.experiment.id, result.items, options.approvals)
    summary = generation_summary(result)
    summary["generation"]["notes"] = notes
    summary[SEGMENT_COPY] = segment_copy(plan, result)
    return summary


SEGMENT_COPY = "_segment_copy"  # the generation summary's key for build_report (not written to the report)


def segment_copy(plan: Plan, result: GenerationResult) -> dict[str, dict[str, dict[str, str]]]:
    """``{attribute: {value: {variant: copy}}}``: what each segment was shown, for the segment tables.

    A variant written ``per: segment`` by one attribute has a copy per value of
    it; a variant with static content shows the same copy to every segment.
    Variants written per unit, or per segment of several attributes, have no
    single copy per segment and are left out.
    """
    from expc.runtime.generate.personal import redact

    if plan.analysis.segments is None:
        return {}
    out: dict[str, dict[str, dict[str, str]]] = {a: {} for a in plan.analysis.segments.by}
    static_copy = {v.id: v.content for v in plan.variants if v.content is not None}
    by_variant = {v.id: v.generate for v in plan.variants}
    for item in result.items:
        gen = by_variant.get(item.variant)
        if (item.content is None or gen is None or gen.per != "segment" or len(gen.segment_by) != 1
                or gen.segment_by[0] not in out or not isinstance(item.key, dict)):
            continue
        attribute = gen.segment_by[0]
        text = redact(item.content, item.personal)
        if text is not None:
            out[attribute].setdefault(str(item.key.get(attribute)), {})[item.variant] = text
    for values in out.values():
        for copies in values.values():
            copies.update({k: v for k, v in static_copy.items() if k not in copies})
    return {a: values for a, values in out.items() if values}


def _write_assignments(plan: Plan, units: Any, assignment: Any, path: Path) -> None:
    import numpy as np

    from expc.runtime.assign import id_text
    from expc.runtime.tables import write_assignments

    names = np.array([v.id for v in plan.variants] + [""], dtype=object)
    unit = plan.assignment.unit
    write_assignments(path, {unit: id_text(units, unit).astype(object), "variant": names[assignment.variant],
                             "bucket": assignment.bucket})


def simulated_units(plan: Plan, seed: int, progress: Progress) -> tuple[Any, Any]:
    """A simulated run's population: the units of every day up to its last look, and the day each arrives."""
    from expc.runtime.synthetic import draw_units

    assert plan.simulation is not None
    days = max(1, math.ceil(plan.simulation.looks[-1].day))
    progress.step(f"drawing {days} days of simulated units")
    return draw_units(plan, days, seed)


def run_simulated(plan: Plan, options: RunOptions, seed: int, progress: Progress) -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """Draw units day by day, assign them, generate content, draw outcomes and evaluate every look.

    The looks are the plan's simulated looks (``plan.simulation.looks``), the
    ones ``expc simulate`` takes; units are drawn for the days those looks span.
    A bandit's looks choose its weights: :mod:`expc.runtime.bandit_run`.
    """
    if plan.analysis.method == "bandit":
        from expc.runtime.bandit_run import run_simulated as run_bandit

        return run_bandit(plan, options, seed, progress)
    from expc.runtime.assign import assign
    from expc.runtime.synthetic import DEFAULT_START, draw_outcomes, look_reduction, write_files

    assert plan.simulation is not None
    run_dir = options.run_dir
    looks = plan.simulation.looks
    units, entry_day = simulated_units(plan, seed, progress)
    assignment = assign(plan, units)
    if not _is_done(run_dir, "assignments"):
        _write_assignments(plan, units, assignment, run_dir / "assignments.parquet")
        _mark_done(run_dir, "assignments")
    in_experiment = assignment.variant >= 0
    generation = _generate(plan, _subset(units, in_experiment), options, progress,
                           SIMULATED_ITEMS_PER_VARIANT)
    progress.step("drawing outcomes")
    data = draw_outcomes(plan, units, entry_day, assignment.variant, seed, start=DEFAULT_START)
    if not _is_done(run_dir, "outcomes"):
        write_files(data, run_dir)
        _mark_done(run_dir, "outcomes")
    progress.step("evaluating looks")
    start = datetime.fromisoformat(DEFAULT_START)
    results = evaluate_looks(plan, run_dir, looks, start,
                             lambda look, as_of: look_reduction(plan, data, look.day), progress)
    return results, generation


def _subset(units: Any, mask: Any) -> Any:
    from expc.runtime.units import Units

    return Units({k: v[mask] for k, v in units.columns.items()}, units.types)


def run_on_data(plan: Plan, options: RunOptions, progress: Progress) -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """Real data: assign the units (when given), generate, then evaluate each look of the exposures and events.

    The looks are the plan's schedule from the first exposure until the look
    that holds the last exposure (:meth:`~expc.compiler.plan.Schedule.look_at`,
    the rule ``expc analyze`` numbers its look by), never past ``max_days``.
    """
    from expc.runtime.stats.reduce import reducer

    run_dir = options.run_dir
    units = None
    assigned = None
    if options.units_path is not None:
        from expc.runtime.assign import assign
        from expc.runtime.tables import read_units

        progress.step(f"reading units from {options.units_path}")
        units = read_units(options.units_path, plan.attributes, plan.assignment.unit)
        assignment = assign(plan, units, str(options.units_path))
        assigned = (units.columns[plan.assignment.unit], assignment.variant)
        if not _is_done(run_dir, "assignments"):
            _write_assignments(plan, units, assignment, run_dir / "assignments.parquet")
            _mark_done(run_dir, "assignments")
        units = _subset(units, assignment.variant >= 0)
    generation = _generate(plan, units, options, progress)
    data = options.data(plan)
    if data["events"] is None:
        return [], generation
    if data["exposures"] is None:
        raise RunError("--events needs --exposures: a file with each unit's id, `variant` and `timestamp` "
                       "(for example the exposures your GrowthBook SDK logged)", 2)
    exposures = data["exposures"].path or "the exposures"
    progress.step("reading exposures and events")
    with reducer(plan, data["exposures"], data["events"], engine=options.engine, repeated=True,
                 units=options.units_path, assigned=assigned) as reduce_at:  # the data is read once
        whole = reduce_at(None)
        if whole.first_exposure is None:
            raise RunError(f"{exposures}: no unit was exposed to a variant of this experiment", 1)
        start = datetime.fromisoformat(whole.first_exposure)
        end = plan.schedule.look_at(whole.elapsed_seconds() or 0.0)
        if end.index > MAX_LOOKS:  # a schedule without max_days follows the data, which may span years
            raise RunError(f"{exposures}: the exposures span {end.day:,.0f} days, which makes {end.index:,} looks "
                           f"(one every {plan.schedule.every}); the limit is {MAX_LOOKS:,}: set `stopping.max_days` "
                           "or look less often", 1)
        progress.step("evaluating looks")
        if plan.analysis.method == "bandit":  # each look by period, with the weights the looks before it chose
            from expc.runtime.bandit_run import evaluate_logged_looks, period_reducer

            with period_reducer(plan, data["exposures"], data["events"], options.engine) as periods_at:
                looks = evaluate_logged_looks(plan, run_dir, plan.schedule.until(end.seconds), start, reduce_at,
                                              periods_at, progress)
            return looks, generation
        looks = evaluate_looks(plan, run_dir, plan.schedule.until(end.seconds), start,
                               lambda look, as_of: reduce_at(as_of), progress)
    return looks, generation


def execute(plan: Plan, options: RunOptions, progress: Progress | None = None) -> RunResult:
    """Run the experiment of ``plan`` as ``options`` say, resuming an earlier run in the same directory.

    The run directory is locked while the run works (:func:`~expc.runtime.rundir.open_run_dir`).
    Raises :class:`RunError` for what stops a run (exit code on the error);
    data problems surface as ``DataError`` from the readers.
    """
    try:
        return _execute(plan, options, progress)
    finally:
        release_run_dir(options.run_dir)


def _execute(plan: Plan, options: RunOptions, progress: Progress | None = None) -> RunResult:
    """Run the experiment of ``plan`` as ``options`` say, resuming an earlier run in the same directory.

    Raises :class:`RunError` for what stops a run (exit code on the error);
    data problems surface as ``DataError`` from the readers.
    """
    from expc.runtime.report import render_all, report_paths

    progress = progress or Progress()
    has_data = options.units_path is not None or options.events_path is not None
    simulated = options.simulate or not (has_data or options.data(plan)["events"] is not None)
    if simulated and plan.simulation is None:
        raise RunError("this spec has no `simulation` block, so there is nothing to simulate; give real data "
                       "(--units, --events and --exposures) or add a simulation block", 2)
    if simulated and has_data:
        raise RunError("--simulate draws its own units and outcomes; leave out --units, --events and --exposures", 2)
    from expc.runtime.tables import check_input

    for path, what in ((options.units_path, "units"), (options.exposures_path, "exposures"),
                       (options.events_path, "events")):
        if path is not None:
            check_input(path, what)  # before any work (and any paid call) is done
    seed = options.seed if options.seed is not None else (plan.simulation.seed if plan.simulation else 0)
    identity = run_identity(plan, options, simulated, seed)
    resumed = open_run_dir(plan, options.run_dir, identity, fresh=options.fresh)
    if not resumed and plan.prompts:
        from expc.runtime.generate.runner import preload_litellm

        preload_litellm(plan, options.generation)
    from expc.runtime.selection import select_candidates

    plan = select_candidates(plan, options, progress)  # top_k: the kept candidates only, from here on
    if simulated:
        looks, generation = run_simulated(plan, options, seed, progress)
    else:
        looks, generation = run_on_data(plan, options, progress)
    if not looks:
        report = {**_report_head(plan, False),
                  "decision": {"action": "continue", "variant": None, "rule": None,
                               "reasons": ["units assigned and content generated; no outcomes yet: give "
                                           "--exposures and --events to evaluate the experiment"]},
                  "history": []} | generation
    else:
        report = build_report(plan, looks, generation, simulated, seed, options.run_dir)
    from expc.runtime.selection import candidates_report

    report.update(candidates_report(options.run_dir))  # top_k: every candidate's score and copy, kept or not
    progress.step("writing the reports")
    report["outputs"] = {key: path.name for key, path in report_paths(options.run_dir).items()}  # in run.run_dir
    outputs = render_all(report, options.run_dir)
    _mark_done(options.run_dir, "report")
    return RunResult(report=report, outputs=outputs, resumed=resumed)
