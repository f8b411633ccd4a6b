"""The Python API: what the command line does, as functions for notebooks and pipelines.

Each function takes a spec (a path to a ``.yaml`` file), a compiled plan file
(a ``.json`` path written by ``expc compile``) or a :class:`~expc.compiler.plan.Plan`,
and returns the result the matching command prints::

    import expc

    result = expc.run("specs/welcome-email.yaml")          # simulated, offline, as `expc run`
    print(result.report["decision"]["action"])
    expc.simulate("specs/welcome-email.yaml", truth="aa").to_dict()["false_positive_rate"]
    expc.analyze("spec.yaml", exposures="exposures.parquet", events="events.parquet").to_dict()

The command line is a thin layer over these functions. Failures raise the
exceptions the command line turns into one line and an exit code: a
:class:`~expc.SpecError` for a spec with errors, a
:class:`~expc.compiler.plan.PlanError` for a plan file that is not a valid
plan, :class:`~expc.runtime.tables.DataError` for a bad data file,
:class:`~expc.runtime.run.RunError` for a run that cannot go on, and
:class:`~expc.runtime.simulate.SimulationError` for a plan that cannot be
simulated. Heavy libraries (numpy, scipy, DuckDB, litellm) load only when a
function that needs them is called.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.plan import Plan
    from expc.runtime.evaluate import Evaluation
    from expc.runtime.run import Progress, RunResult
    from expc.runtime.simulate import SimulationResult
    from expc.runtime.stats.reduce import Reduction

__all__ = ["Analysis", "analyze", "load_plan", "run", "simulate"]


def load_plan(source: str | PathLike[str] | Plan) -> Plan:
    """The plan of ``source``: a Plan as it is, a ``.json`` plan file read and validated, or a spec compiled.

    Raises :class:`~expc.SpecError` (the spec has errors), :class:`~expc.compiler.plan.PlanError`
    (the plan file is not a valid plan) or ``FileNotFoundError``.
    """
    from expc.compiler.plan import Plan

    if isinstance(source, Plan):
        return source
    path = Path(source)
    if path.suffix == ".json":
        return Plan.from_json(path.read_bytes(), str(path))
    from expc import compile_file

    return compile_file(path)


def run(source: str | PathLike[str] | Plan, *, simulate: bool | None = None, run_dir: str | PathLike[str] | None = None,
        offline: bool | None = None, seed: int | None = None, units: str | PathLike[str] | None = None,
        exposures: str | PathLike[str] | None = None, events: str | PathLike[str] | None = None,
        fresh: bool = False, model: str | None = None, api_base: str | None = None,
        api_key_env: str | None = None, concurrency: int | None = None, max_cost: float | None = None,
        engine: str = "duckdb", progress: Progress | None = None) -> RunResult:
    """Run an experiment end to end, as ``expc run`` does; the result's ``report`` is report.json's content.

    Without data (``units``, ``exposures``, ``events``, or the spec's
    ``data`` section) the run is simulated from the spec's ``simulation``
    block; ``simulate=True`` insists on it. ``engine`` reduces the data.
    ``run_dir`` defaults to ``.expc/runs/<experiment-id>``; running again resumes.
    ``offline=True`` sends every prompt to the built-in offline model. The other keywords are ``expc run``'s options.
    """
    from expc.runtime.generate.runner import GenerateOptions
    from expc.runtime.run import RunOptions, default_run_dir, execute

    plan = load_plan(source)
    options = RunOptions(
        run_dir=Path(run_dir) if run_dir is not None else default_run_dir(plan),
        simulate=bool(simulate), seed=seed,
        units_path=_path(units), events_path=_path(events), exposures_path=_path(exposures), fresh=fresh,
        engine=engine, data_base=_base(source),
        generation=GenerateOptions(offline=bool(offline), model=model, api_base=api_base, api_key_env=api_key_env,
                                   concurrency=concurrency, max_cost=max_cost),
    )
    return execute(plan, options, progress)


def simulate(source: str | PathLike[str] | Plan, *, replications: int = 1000, truth: str = "spec",
             seed: int | None = None) -> SimulationResult:
    """The design's operating characteristics, as ``expc simulate``: ``.to_dict()`` is its ``--format json``.

    ``truth="aa"`` gives the false-positive rate (every variant as the
    control), ``truth="spec"`` the power at the spec's truth.
    """
    from expc.runtime.simulate import simulate as _simulate

    return _simulate(load_plan(source), replications, truth=truth, seed=seed)


@dataclass(frozen=True)
class Analysis:
    """One look at logged data, as ``expc analyze``: the plan, the reduction and the evaluation."""

    plan: Plan
    reduction: Reduction
    evaluation: Evaluation

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``expc analyze --format json``."""
        return self.evaluation.to_dict()


def analyze(source: str | PathLike[str] | Plan, *, exposures: str | PathLike[str] | None = None,
            events: str | PathLike[str] | None = None, as_of: str | None = None,
            engine: str = "duckdb", base: str | PathLike[str] | None = None,
            units: str | PathLike[str] | None = None) -> Analysis:
    """Evaluate the experiment on logged exposures and events at one moment (``as_of``, default: the data's end).

    ``exposures`` and ``events`` are files or folders; without them, the
    spec's ``data`` section says where the data is (paths relative to the
    spec's folder). ``units``, a units file (the unit id and attributes),
    is where the segment attributes are read from, joined by unit id (default:
    the exposures' columns), and the exposures are checked against expc's own
    assignment of its units (the JSON's ``assignment_check``). ``engine`` is where the reduction runs (``duckdb``,
    ``spark``, or one registered with :func:`expc.runtime.engines.register`).
    The look is numbered by the plan's schedule (the look in progress at
    ``as_of``), as ``expc run`` numbers its looks. ``base`` is the folder
    the data section's paths are relative to (default: the spec's). Raises
    :class:`~expc.runtime.tables.DataError` for bad data,
    :class:`~expc.runtime.engines.EngineError` for an engine that cannot run
    here and ``ValueError`` for an ``as_of`` that is not a timestamp.
    """
    plan = load_plan(source)
    from expc.runtime.data_sources import required, sources
    from expc.runtime.stats.reduce import reduce  # with numpy

    folder = Path(base) if base is not None else _base(source)
    found = required(sources(plan, folder, exposures=exposures, events=events))
    # The statistics import scipy (about 0.4 s): in a thread, while the engine (which releases the GIL) reduces.
    threading.Thread(target=__import__, args=("expc.runtime.evaluate",), name="expc-import-stats",
                     daemon=True).start()
    assigned = None
    if units is not None:  # expc's own assignment, to check the exposures against
        from expc.runtime.assign import assign
        from expc.runtime.tables import read_units

        table = read_units(units, plan.attributes, plan.assignment.unit)
        assigned = (table.columns[plan.assignment.unit], assign(plan, table, str(units)).variant)
    reduction = reduce(plan, found["exposures"], found["events"], as_of, engine=engine, units=units,
                       assigned=assigned)
    from expc.runtime.evaluate import evaluate  # waits for the thread's import to finish

    elapsed = reduction.elapsed_seconds()
    look = plan.schedule.look_at(elapsed) if elapsed is not None else None
    return Analysis(plan, reduction, evaluate(plan, reduction, look, elapsed))


def _base(source: str | PathLike[str] | Plan) -> Path:
    """The folder the paths of a spec's ``data`` section are relative to: the spec's (or plan file's) folder."""
    from expc.compiler.plan import Plan

    return Path.cwd() if isinstance(source, Plan) else Path(source).parent


def _path(p: str | PathLike[str] | None) -> Path | None:
    return Path(p) if p is not None else None
