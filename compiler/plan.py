"""The compiled plan: the typed, versioned contract between the compiler and the runtime.

A :class:`Plan` is what :func:`expc.compiler.compile.compile_plan` makes of a
checked spec and the only thing the runtime reads. Every fact that more than
one stage needs is resolved here, once:

* every default (alpha, correction, family, SRM threshold, windows, CUPED);
* the variants with normalised weights and GrowthBook bucket ranges, and the
  **arm order** (control first) every statistic uses;
* each metric's **correction family** and its size;
* the **look schedule** (:class:`Schedule`): when the experiment is looked at,
  up to its horizon; ``run`` (on simulated and on real data), ``simulate``,
  ``evaluate`` and the group-sequential design all take their looks from it;
* the **truth table** of the simulation (:class:`Simulation`): the true value
  of every metric in every variant, shorthand resolved;
* the sample size, the sequential design and the generation jobs.

Plans are frozen pydantic models. :meth:`Plan.to_json` gives the canonical
text (byte-identical for the same spec); :meth:`Plan.from_json` validates a
plan file as strictly as a spec (unknown keys, ids, versions), so a
hand-edited ``plan.json`` given to ``expc run`` cannot smuggle in a path or
an id that a spec could not have. ``schemas/expc-plan.schema.json`` is the
committed JSON Schema of the plan, kept equal to :func:`plan_schema` by a test.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ExpcError
from .model import (
    MAX_CANDIDATES,
    MAX_DAYS,
    MAX_LOOKS,
    MAX_METRICS,
    MAX_RULES,
    MAX_SIMULATED_UNITS,
    MAX_UNITS_PER_DAY,
    MAX_VARIANTS,
    AttributeType,
    Bandit,
    Cap,
    Data,
    Distribution,
    Generate,
    Id,
    Measure,
    Name,
    Prompt,
    Rule,
    Segments,
)

PLAN_VERSION: Final = 2
PLAN_SCHEMA_FILE = "schemas/expc-plan.schema.json"
PLAN_SCHEMA_ID = "https://expc.dev/schemas/expc-plan.schema.json"
DAY = 86400
DEFAULT_HORIZON_DAYS = 28
"""The horizon of a schedule when the spec sets neither ``stopping.max_days`` nor ``simulation.days``."""

__all__ = [
    "Assignment", "GenerationJob", "Look", "Plan", "PlanAnalysis", "PlanError", "PlanMetric",
    "PlanVariant", "Schedule", "SequentialDesign", "Simulation", "TruthValue", "looks_between", "plan_schema",
]


class PlanError(ExpcError, ValueError):
    """A plan file that cannot be read: not JSON, another version, or not a valid plan (exit 1)."""


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True, allow_inf_nan=False)


# ================================================================== sections


class PlanExperiment(_Plan):
    """Who runs the experiment, on what unit, with which hashing seed."""

    id: Id
    name: str | None = None
    owner: str | None = None
    hypothesis: str | None = None
    description: str | None = None
    unit: Name
    seed: str
    status: Literal["draft", "running", "stopped"] = "draft"
    """The spec's ``experiment.status``: running experiments are the ones ``expc diff`` guards."""


class Namespace(_Plan):
    """A GrowthBook namespace (layer): units whose layer hash falls in ``[start, end)``."""

    id: Id
    start: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)

    @property
    def share(self) -> float:
        """The width of the range: the share of all units the layer gives this experiment."""
        return self.end - self.start


class Assignment(_Plan):
    """How units are hashed into variants, exactly as GrowthBook's SDKs do."""

    unit: Name
    seed: str
    hash_version: Literal[1, 2]
    coverage: float = Field(ge=0, le=1)
    audience: Id | None = None
    condition: dict[str, Any] = {}
    namespace: Namespace | None = None


class PlanVariant(_Plan):
    """One arm, with its normalised weight and bucket range."""

    id: Id
    index: int = Field(ge=0)
    control: bool
    weight: float = Field(ge=0, le=1)
    bucket_range: list[float] = Field(min_length=2, max_length=2)
    description: str | None = None
    content: str | None = None
    prompt: Id | None = None
    generate: Generate | None = None
    candidate_of: Id | None = Field(default=None, exclude_if=lambda v: v is None)
    """The spec's variant this arm is a candidate of (``candidates: N``; absent for other arms)."""
    candidate: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES, exclude_if=lambda v: v is None)
    """The candidate's number, 1 to N: its copy is generated with seed offset 1000 × (number − 1)."""
    top_k: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES, exclude_if=lambda v: v is None)
    """Only the K candidates of ``candidate_of`` the judge scores best get traffic (see docs/generation.md)."""


class PlanMetric(_Plan):
    """A metric with everything resolved: window in seconds, effective CUPED, correction family."""

    id: Id
    name: str | None = None
    description: str | None = None
    kind: Literal["proportion", "mean", "ratio"]
    event: str | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    window_seconds: int | None = Field(default=None, gt=0)
    role: Literal["primary", "secondary", "guardrail"]
    direction: Literal["increase", "decrease"]
    mde: float | None = None
    margin: float | None = None
    baseline: float | None = None
    sd: float | None = None
    cuped: bool
    cap: Cap | None = None
    ("""The cap on each unit's value (a mean's value, a ratio's numerator, and their CUPED covariates), """
     """from the metric or its numerator; null when uncapped.""")
    family: str
    ("""The correction family: ``primary`` (all primary comparisons, with ``analysis.family: primary``) """
     """or ``metric:<id>``.""")
    family_size: int = Field(ge=0)
    """Comparisons in the family: treatments × metrics in it."""

    @property
    def sign(self) -> float:
        """+1 when an increase is good, -1 when a decrease is."""
        return 1.0 if self.direction == "increase" else -1.0

    def single_event(self) -> str:
        """The event of a proportion or mean metric (in a consistent plan they have one)."""
        if self.event is None:
            raise ValueError(f"the {self.kind} metric `{self.id}` has no event")
        return self.event

    def uses(self) -> list[tuple[str, str]]:
        """``(event, measure)`` of what the metric sums: its event counted (proportion) or valued (mean),
        or a ratio's numerator and denominator."""
        if self.kind == "proportion":
            return [(self.single_event(), "count")]
        if self.kind == "mean":
            return [(self.single_event(), "value")]
        return [(d.event, d.measure) for d in self.ratio_measures()]

    def ratio_measures(self) -> tuple[Measure, Measure]:
        """A ratio metric's numerator and denominator (in a consistent plan it has both)."""
        if self.numerator is None or self.denominator is None:
            raise ValueError(f"the {self.kind} metric `{self.id}` lacks a numerator or a denominator")
        return self.numerator, self.denominator


class PlanAnalysis(_Plan):
    """How results are evaluated, every default resolved."""

    method: Literal["fixed", "sequential", "bayesian", "bandit"]
    alpha: float = Field(gt=0, lt=1)
    power: float = Field(gt=0, lt=1)
    correction: Literal["none", "bonferroni", "holm", "bh"]
    family: Literal["per_metric", "primary"]
    srm_threshold: float = Field(ge=0, le=1)
    cuped: bool
    cuped_lookback: int = Field(gt=0)
    sequential: Literal["always_valid", "group"]
    spending: Literal["obrien_fleming", "pocock"]
    in_progress: Literal["exclude", "include"] = "exclude"
    """Units whose metric window has not ended by the look's cut-off: left out of that metric, or counted."""
    segments: Segments | None = None
    """The attributes results are broken down by, and how small segments are pooled."""
    bandit: Bandit | None = Field(default=None, exclude_if=lambda value: value is None)
    """With method bandit only (absent otherwise, so other plans keep their bytes and digests): exploration days,
    minimum weight per arm, stopping threshold."""

    @model_validator(mode="before")
    @classmethod
    def _bandit_only_for_bandits(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") != "bandit" and "bandit" in data:
            data = {k: v for k, v in data.items() if k != "bandit"}
        return data


class PlanStopping(_Plan):
    """When the experiment ends: the rules in order and the limits they use."""

    min_units_per_variant: int = Field(ge=0)
    max_days: int | None = Field(default=None, gt=0)
    max_units: int | None = Field(default=None, gt=0)
    rules: list[Rule] = Field(default=[], max_length=MAX_RULES)


class Look(_Plan):
    """One look of the schedule: its number (from 1) and its time since the start."""

    index: int = Field(ge=1)
    seconds: int = Field(gt=0)

    @property
    def day(self) -> float:
        """Days since the start (``1.5`` for a look 36 hours in)."""
        return self.seconds / DAY


class Schedule(_Plan):
    """When the experiment is looked at.

    A look every ``every_seconds`` from the start, up to the horizon; when the
    horizon is not a multiple of the interval, the last look is at the horizon
    itself (``looks: 3d`` with ``max_days: 10`` looks at days 3, 6, 9 and 10). No
    look falls after ``max_days``. ``bounded`` says that the horizon is
    ``stopping.max_days``; otherwise it is ``simulation.days`` (or 28 days) and
    only bounds simulations: real data is looked at for as long as it lasts.
    ``looks`` is the schedule up to the horizon, as a simulated run and
    ``expc simulate`` execute it.
    """

    every_seconds: int = Field(gt=0)
    every: str
    horizon_seconds: int = Field(gt=0, le=MAX_DAYS * DAY)
    bounded: bool
    looks: list[Look] = Field(max_length=MAX_LOOKS)

    @property
    def horizon_days(self) -> float:
        """The horizon in days."""
        return self.horizon_seconds / DAY

    def until(self, end_seconds: int) -> list[Look]:
        """The looks of data that ends ``end_seconds`` after the start (see :func:`looks_between`)."""
        return looks_between(self.every_seconds, end_seconds, self.horizon_seconds if self.bounded else None)

    def look_at(self, seconds: float) -> Look:
        """The look whose interval holds ``seconds`` since the start: the first scheduled look at or after it.

        This is how a time is numbered everywhere (``expc analyze --as-of``, the
        end of a run's real data): 9.3 days into a daily schedule is look 10, day
        10. Capped at a bounded horizon.
        """
        k = max(1, -(-math.ceil(seconds) // self.every_seconds))
        at = k * self.every_seconds
        if self.bounded and at >= self.horizon_seconds:
            return self.looks[-1]
        return Look(index=k, seconds=at)

    def is_last(self, look: Look) -> bool:
        """True for the look at a bounded horizon (``max_days`` reached)."""
        return self.bounded and look.seconds >= self.horizon_seconds


def looks_between(every: int, end: int, horizon: int | None) -> list[Look]:
    """Every ``every`` seconds before ``end``, then one look at ``end`` itself.

    ``end`` is capped at ``horizon`` (when there is one), so no look falls after
    it; the result always has at least one look (``end`` below one second counts
    as one second).
    """
    stop = max(1, min(end, horizon) if horizon is not None else end)
    count = -(-stop // every)  # ceil: the last one is at `stop`
    return [Look(index=k, seconds=min(k * every, stop)) for k in range(1, count + 1)]


class SampleSize(_Plan):
    """The primary metric's planned units (see :mod:`expc.compiler.planning`)."""

    metric: str
    baseline: float
    mde: float
    alpha: float
    power: float
    per_variant: int = Field(gt=0)
    total: int = Field(gt=0)
    estimated_days: int | None = None
    method: str
    fixed_horizon_per_variant: int | None = None


class SequentialDesign(_Plan):
    """What a sequential analysis needs at every look.

    ``always_valid``: the planned units per variant tune the confidence
    sequence. ``group``: Lan-DeMets alpha spending over the schedule's looks; the
    design ends at the first look whose information fraction (units so far over
    planned units) reaches 1, or at the horizon, whichever comes first, and that
    look spends all alpha that is left (see :mod:`expc.runtime.decide`).
    """

    type: Literal["always_valid", "group"]
    alpha: float
    planned_per_variant: int | None = None
    spending: Literal["obrien_fleming", "pocock"] | None = None


class GenerationJob(_Plan):
    """One prompted variant: what is generated, by which model, how often."""

    variant: Id
    prompt: Id
    model: str
    per: Literal["once", "segment", "unit"]
    segment_by: list[Name] = []
    candidate_of: Id | None = Field(default=None, exclude_if=lambda v: v is None)
    """The spec's variant this job's arm is a candidate of (absent for other arms)."""
    seed_offset: int | None = Field(default=None, ge=0, le=1000 * MAX_CANDIDATES, exclude_if=lambda v: v is None)
    """Added to the generation seed for this candidate, so candidates are distinct requests (absent: 0)."""


class PlanGeneration(_Plan):
    """Limits on content generation and the jobs."""

    max_cost_usd: float | None = None
    concurrency: int = Field(gt=0)
    timeout: int = Field(gt=0)
    batch: bool = False
    """Make the calls through the provider's batch API (see docs/generation.md, Batch mode)."""
    jobs: list[GenerationJob] = []


class TruthValue(_Plan):
    """A metric's true value in a variant: a rate (proportion), or a mean and a per-unit sd."""

    mean: float
    sd: float | None = None


class Simulation(_Plan):
    """The simulated population and its truth, resolved.

    ``truth`` has every variant × metric. How the spec's shorthand resolves:
    a variant's value is the spec's ``simulation.truth.<variant>.<metric>``; a
    bare number (or ``{mean}`` without ``sd``) for a mean or ratio metric is that
    mean with the control's sd; anything left out is the control's value. The
    control's value is its own truth, else the metric's ``baseline`` (and
    ``sd``). ``expc simulate --truth aa`` gives every variant the control's row.
    """

    units_per_day: int = Field(gt=0, le=MAX_UNITS_PER_DAY)
    days: int = Field(gt=0, le=MAX_DAYS)
    """Days of simulated traffic: ``simulation.days``, else ``stopping.max_days``, else 28."""
    entering_per_day: float = Field(ge=0)
    """Units entering the experiment per day: ``units_per_day`` × layer share × coverage."""
    seed: int
    attributes: dict[Name, Distribution] = {}
    truth: dict[Id, dict[Id, TruthValue]]
    looks: list[Look]
    """The looks of a simulated run: the schedule until ``days``."""


class Plan(_Plan):
    """A compiled experiment (see the module documentation)."""

    plan_version: Literal[2]
    spec_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    experiment: PlanExperiment
    attributes: dict[Name, AttributeType]
    pii: list[Name] = []
    """The personal attributes (``pii: true``): sent only by prompts that list them, never written in plain text."""
    assignment: Assignment
    control: Id
    arm_order: list[int]
    """Variant indexes, control first: the order of every statistic's arms."""
    variants: list[PlanVariant] = Field(min_length=2, max_length=MAX_VARIANTS)
    prompts: dict[Id, Prompt] = {}
    metrics: list[PlanMetric] = Field(min_length=1, max_length=MAX_METRICS)
    analysis: PlanAnalysis
    stopping: PlanStopping
    schedule: Schedule
    sample_size: SampleSize | None = None
    sample_size_unavailable: str | None = None
    """Why no sample size could be planned (when ``sample_size`` is null)."""
    sequential: SequentialDesign | None = None
    generation: PlanGeneration
    simulation: Simulation | None = None
    data: Data | None = None
    """Where exposures and events live, as the spec says (paths relative to the spec's folder)."""

    # ---------------------------------------------------------------- views

    @property
    def arm_ids(self) -> list[str]:
        """Variant ids, control first."""
        return [self.variants[i].id for i in self.arm_order]

    @property
    def primary(self) -> PlanMetric | None:
        """The primary metric."""
        return next((m for m in self.metrics if m.role == "primary"), None)

    def metric(self, metric_id: str) -> PlanMetric:
        """The metric with this id (``KeyError`` when there is none)."""
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    def variant(self, variant_id: str) -> PlanVariant:
        """The variant with this id (``KeyError`` when there is none)."""
        for v in self.variants:
            if v.id == variant_id:
                return v
        raise KeyError(variant_id)

    @property
    def planned_per_variant(self) -> int | None:
        """The planned units per variant, when the sample size could be planned."""
        return self.sample_size.per_variant if self.sample_size else None

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The canonical JSON text: the same spec always gives the same bytes."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "plan") -> Plan:
        """Read a plan's JSON text; :class:`PlanError` (one line naming ``source``) when it is not a valid plan."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PlanError(f"{source}: not a JSON document ({exc})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> Plan:
        """Validate JSON-ready data as a plan (see :meth:`from_json`)."""
        if not isinstance(data, dict):
            raise PlanError(f"{source}: not a plan (a JSON object is expected)")
        version = data.get("plan_version")
        if version != PLAN_VERSION:
            raise PlanError(f"{source}: plan_version {version!r} is not supported (this expc reads version "
                            f"{PLAN_VERSION}); compile the spec again with this expc")
        try:
            plan = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise PlanError(f"{source}: not a valid plan at `{where}`: {first['msg']} "
                            f"({exc.error_count()} problem{'s' if exc.error_count() != 1 else ''} in all)") from None
        problems = plan.consistency()
        if problems:
            raise PlanError(f"{source}: not a valid plan: {problems[0]}")
        return plan

    def consistency(self) -> list[str]:
        """What a valid plan must satisfy beyond its types (ids agree, arm order is a permutation, ...)."""
        out = []
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            out.append("variant ids are not unique")
        if [v.index for v in self.variants] != list(range(len(ids))):
            out.append("variant indexes are not 0, 1, 2, ...")
        if self.control not in ids:
            out.append(f"the control `{self.control}` is not a variant")
        elif sorted(self.arm_order) != list(range(len(ids))) or ids[self.arm_order[0]] != self.control:
            out.append("arm_order is not a control-first order of the variants")
        if sum(1 for m in self.metrics if m.role == "primary") != 1:
            out.append("there must be exactly one primary metric")
        for m in self.metrics:
            if m.kind == "ratio" and (m.numerator is None or m.denominator is None):
                out.append(f"the ratio metric `{m.id}` lacks a numerator or a denominator")
            elif m.kind != "ratio" and m.event is None:
                out.append(f"the {m.kind} metric `{m.id}` has no event")
            if m.cap is not None and (m.kind == "proportion" or (m.cap.quantile is None) == (m.cap.value is None)):
                out.append(f"metric `{m.id}` has a cap that does not fit it (a mean or a ratio's numerator; "
                           "a quantile or a value)")
            if any(d is not None and d.cap is not None for d in (m.numerator, m.denominator)):
                out.append(f"the ratio metric `{m.id}` carries a cap in its numerator or denominator "
                           "(a plan carries it in the metric's `cap`)")
        if self.experiment.unit != self.assignment.unit or self.experiment.seed != self.assignment.seed:
            out.append("experiment and assignment disagree on the unit or the seed")
        for v in self.variants:
            if v.prompt is not None and v.prompt not in self.prompts:
                out.append(f"variant `{v.id}` uses the undefined prompt `{v.prompt}`")
            if (v.prompt is None) == (v.content is None) or (v.prompt is None) != (v.generate is None):
                out.append(f"variant `{v.id}` needs either content, or a prompt and how often it is generated")
            if (v.candidate_of is None) != (v.candidate is None) or (v.candidate is not None and v.prompt is None):
                out.append(f"variant `{v.id}` is a candidate without its variant, its number or a prompt")
        out += self._derived()
        if self.simulation is not None:
            metric_ids = {m.id for m in self.metrics}
            for vid in ids:
                if set(self.simulation.truth.get(vid, {})) != metric_ids:
                    out.append(f"simulation.truth.{vid} does not give every metric")
        return out

    def _derived(self) -> list[str]:
        """Facts the compiler derives from others, derived again: a hand edit must not make them disagree."""
        from .buckets import bucket_ranges

        out = []
        sched = self.schedule
        if -(-sched.horizon_seconds // sched.every_seconds) > MAX_LOOKS:
            return [f"the schedule makes more than {MAX_LOOKS:,} looks"]  # before building them
        if sched.looks != looks_between(sched.every_seconds, sched.horizon_seconds, sched.horizon_seconds):
            out.append("schedule.looks are not every schedule.every_seconds up to schedule.horizon_seconds")
        weights = [v.weight for v in self.variants]
        if abs(sum(weights) - 1.0) > 1e-9:
            out.append("the variants' weights do not add up to 1")
        elif [list(r) for r in bucket_ranges(len(weights), self.assignment.coverage, weights)] != \
                [v.bucket_range for v in self.variants]:
            out.append("the variants' bucket ranges do not follow their weights and the coverage")
        treatments = len(self.variants) - 1
        primaries = sum(1 for m in self.metrics if m.family == "primary")
        for m in self.metrics:
            size = treatments * (primaries if m.family == "primary" else 1)
            if m.family not in ("primary", f"metric:{m.id}") or m.family_size != size:
                out.append(f"metric `{m.id}` has the correction family {m.family!r} of size {m.family_size}")
        sim = self.simulation
        if sim is not None and sim.units_per_day * sim.days > MAX_SIMULATED_UNITS:
            out.append(f"a simulated run would draw more than {MAX_SIMULATED_UNITS:,} units")
        if sim is not None:
            if sim.looks != sched.until(sim.days * DAY):
                out.append("simulation.looks are not the schedule until simulation.days")
            share = self.assignment.namespace.share if self.assignment.namespace else 1.0
            if abs(sim.entering_per_day - sim.units_per_day * share * self.assignment.coverage) > 1e-9 * max(
                    1.0, sim.entering_per_day):
                out.append("simulation.entering_per_day is not units_per_day × the layer's share × coverage")
        return out


# ================================================================== schema


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a compiled plan (2020-12, as pydantic emits it; the plan is for tools, not editors)."""
    schema = Plan.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": PLAN_SCHEMA_ID, **schema}


def plan_schema_json() -> str:
    """The plan schema as committed: indented JSON with a trailing newline."""
    return json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"

