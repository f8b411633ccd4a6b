"""The compiler's back half: a checked spec becomes the plan (the IR).

The plan (:class:`~expc.compiler.plan.Plan`) is what everything downstream
works from: every default resolved, weights normalised, bucket ranges computed
as GrowthBook computes them, the hashing seed and layer, each metric's
resolved definition and correction family, the look schedule, the simulation's
truth table, the planned sample size and the content-generation jobs. It
carries the spec's SHA-256, and the same spec always compiles to byte-identical
JSON (no times, no absolute paths, insertion-ordered keys, deterministic floats).
"""

from __future__ import annotations

import hashlib

from .buckets import bucket_ranges, normalise
from .candidates import expanded, parent_of, seed_offset
from .loader import Document
from .model import Distribution, Generate, Metric, Spec
from .plan import (
    DAY,
    DEFAULT_HORIZON_DAYS,
    PLAN_VERSION,
    Assignment,
    GenerationJob,
    Namespace,
    Plan,
    PlanAnalysis,
    PlanExperiment,
    PlanGeneration,
    PlanMetric,
    PlanStopping,
    PlanVariant,
    SampleSize,
    Schedule,
    SequentialDesign,
    Simulation,
    TruthValue,
    looks_between,
)
from .planning import sample_size
from .quantities import format_duration

_ONCE = Generate()  # a prompted variant without `generate` is generated once

__all__ = ["PLAN_VERSION", "compile_plan", "generation_jobs", "plan_json", "schedule", "truth_table"]


def compile_plan(doc: Document, spec: Spec) -> Plan:
    """Build the plan of a checked spec (call only when checks found no error).

    A variant's ``candidates`` are arms of their own (:mod:`expc.compiler.candidates`).
    """
    parents = parent_of(spec)
    jobs = generation_jobs(spec)
    planned, reason = sample_size(expanded(spec, kept_only=True))  # the arms that get traffic (top_k: K)
    spec = expanded(spec)
    control = spec.control
    assert control is not None, "a checked spec has variants"
    weights = normalise([v.weight for v in spec.variants])
    ranges = bucket_ranges(len(weights), spec.allocation.coverage, weights)
    layer = spec.allocation.layer
    seed = spec.experiment.seed or spec.experiment.id
    ci = spec.variants.index(control)
    treatments = len(spec.variants) - 1
    a = spec.analysis
    n_primary = sum(1 for m in spec.metrics if m.role == "primary")
    sched = schedule(spec)
    return Plan(
        plan_version=PLAN_VERSION,
        spec_sha256=hashlib.sha256(doc.text.encode("utf-8")).hexdigest(),
        experiment=PlanExperiment(**spec.experiment.model_dump(exclude={"seed"}), seed=seed),
        attributes={name: attr.type for name, attr in spec.attributes.items()},
        pii=[name for name, attr in spec.attributes.items() if attr.pii],
        assignment=Assignment(
            unit=spec.experiment.unit,
            seed=seed,
            hash_version=spec.allocation.hash_version,
            coverage=spec.allocation.coverage,
            audience=spec.allocation.audience,
            condition=spec.audiences[spec.allocation.audience].where if spec.allocation.audience else {},
            namespace=Namespace(id=layer.id, start=layer.range[0], end=layer.range[1]) if layer else None,
        ),
        control=control.id,
        arm_order=[ci] + [i for i in range(len(spec.variants)) if i != ci],
        variants=[
            PlanVariant(
                id=v.id, index=i, control=v is control, weight=weights[i], bucket_range=list(ranges[i]),
                description=v.description, content=v.content, prompt=v.prompt,
                generate=(v.generate or _ONCE) if v.prompt else None,
                candidate_of=parents[v.id][0] if v.id in parents else None,
                candidate=parents[v.id][1] if v.id in parents else None,
                top_k=v.top_k if v.id in parents else None,
            )
            for i, v in enumerate(spec.variants)
        ],
        prompts=dict(spec.prompts),
        metrics=[_metric(m, spec, treatments, n_primary) for m in spec.metrics],
        analysis=PlanAnalysis(**a.model_dump()),
        stopping=PlanStopping(**spec.stopping.model_dump(exclude={"looks"})),
        schedule=sched,
        sample_size=SampleSize(**{f: getattr(planned, f) for f in SampleSize.model_fields}) if planned else None,
        sample_size_unavailable=None if planned else reason,
        sequential=(
            SequentialDesign(type=a.sequential, alpha=a.alpha,
                             planned_per_variant=planned.per_variant if planned else None,
                             spending=a.spending if a.sequential == "group" else None)
            if a.method == "sequential" else None
        ),
        generation=PlanGeneration(**spec.generation.model_dump(), jobs=jobs),
        simulation=_simulation(spec, sched),
        data=spec.data,
    )


def schedule(spec: Spec) -> Schedule:
    """The look schedule: every ``stopping.looks`` up to the horizon (see :class:`~expc.compiler.plan.Schedule`)."""
    st = spec.stopping
    sim_days = spec.simulation.days if spec.simulation else None
    horizon_days = st.max_days or sim_days or DEFAULT_HORIZON_DAYS
    horizon = horizon_days * DAY
    return Schedule(every_seconds=st.looks, every=format_duration(st.looks), horizon_seconds=horizon,
                    bounded=st.max_days is not None, looks=looks_between(st.looks, horizon, horizon))


def truth_table(spec: Spec) -> tuple[dict[str, dict[str, TruthValue]], list[tuple[tuple, str]]]:
    """Every variant × metric's true value, and the problems that leave a value unknown (path, message).

    See :class:`~expc.compiler.plan.Simulation` for how shorthand resolves.
    """
    sim, control = spec.simulation, spec.control
    assert sim is not None and control is not None
    given = sim.truth
    table: dict[str, dict[str, TruthValue]] = {v.id: {} for v in spec.variants}
    problems: list[tuple[tuple, str]] = []
    for m in spec.metrics:
        base = given.get(control.id, {}).get(m.id)
        mean = base.mean if base is not None else m.baseline
        sd = (base.sd if base is not None and base.sd is not None else m.sd) if m.kind != "proportion" else None
        if mean is None:
            problems.append(((("simulation", "truth", control.id) if control.id in given else ("simulation",)),
                             f"metric `{m.id}` has no true value for the control `{control.id}`: give "
                             f"`simulation.truth.{control.id}.{m.id}` or the metric's `baseline`"))
            continue
        if m.kind != "proportion" and sd is None:
            problems.append(((("simulation", "truth", control.id, m.id) if base is not None else ("simulation",)),
                             f"metric `{m.id}` ({m.kind}) needs a per-unit sd: give "
                             f"`simulation.truth.{control.id}.{m.id}` as {{mean, sd}} or the metric's `sd`"))
            continue
        for v in spec.variants:
            value = given.get(v.id, {}).get(m.id)
            if value is None:
                table[v.id][m.id] = TruthValue(mean=mean, sd=sd)
            else:
                own_sd = None if m.kind == "proportion" else (value.sd if value.sd is not None else sd)
                table[v.id][m.id] = TruthValue(mean=value.mean, sd=own_sd)
    return table, problems


def _simulation(spec: Spec, sched: Schedule) -> Simulation | None:
    sim = spec.simulation
    if sim is None:
        return None
    table, problems = truth_table(spec)
    assert not problems, "a checked spec's truth resolves"
    layer = spec.allocation.layer
    share = (layer.range[1] - layer.range[0]) if layer else 1.0
    days = sim.days or spec.stopping.max_days or DEFAULT_HORIZON_DAYS
    return Simulation(
        units_per_day=sim.units_per_day, days=days,
        entering_per_day=sim.units_per_day * share * spec.allocation.coverage, seed=sim.seed,
        attributes=_distributions(spec), truth=table, looks=sched.until(days * DAY),
    )


def _distributions(spec: Spec) -> dict[str, Distribution]:
    """The simulation's declared distributions, a list attribute's ``size`` resolved: ``[1, min(3, values)]``.

    Simulated units draw that many items, and generation without units makes a
    segment of every combination of that many values: both read the plan's size.
    """
    assert spec.simulation is not None
    out = dict(spec.simulation.attributes)
    for name, dist in out.items():
        attr = spec.attributes.get(name)
        if attr is not None and attr.type == "list[string]" and dist.size is None and dist.values:
            out[name] = dist.model_copy(update={"size": [1, min(3, len(dist.values))]})
    return out


def _metric(m: Metric, spec: Spec, treatments: int, n_primary: int) -> PlanMetric:
    a = spec.analysis
    joint = a.family == "primary" and m.role == "primary"
    return PlanMetric(
        **m.model_dump(exclude={"window", "cuped", "numerator", "denominator", "cap"}),
        numerator=m.numerator.model_copy(update={"cap": None}) if m.numerator else None,
        denominator=m.denominator.model_copy(update={"cap": None}) if m.denominator else None,
        cap=m.cap or (m.numerator.cap if m.numerator else None),
        window_seconds=m.window,
        cuped=bool(a.cuped if m.cuped is None else m.cuped),
        family="primary" if joint else f"metric:{m.id}",
        family_size=treatments * (n_primary if joint else 1),
    )


def generation_jobs(spec: Spec) -> list[GenerationJob]:
    """One entry per prompted arm (each candidate its own): what is generated, by which model, how often."""
    parents = parent_of(spec)
    jobs = []
    for v in expanded(spec).variants:
        if v.prompt is None:
            continue
        gen = v.generate or _ONCE
        parent = parents.get(v.id)
        jobs.append(GenerationJob(variant=v.id, prompt=v.prompt, model=spec.prompts[v.prompt].model,
                                  per=gen.per, segment_by=list(gen.segment_by),
                                  candidate_of=parent[0] if parent else None,
                                  seed_offset=seed_offset(parent[1]) if parent else None))
    return jobs


def plan_json(plan: Plan) -> str:
    """The plan's canonical JSON text (byte-identical for the same spec)."""
    return plan.to_json()

