"""The compiler's back half: a checked spec becomes the plan (the IR).

The plan is one JSON document that everything downstream works from: every
default resolved, weights normalised, bucket ranges computed as GrowthBook
computes them, the hashing seed and layer, each metric's resolved definition,
the planned sample size and the content-generation jobs. It carries the spec's
SHA-256, and the same spec always compiles to byte-identical JSON (no times,
no absolute paths, insertion-ordered keys, deterministic floats).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .buckets import bucket_ranges, normalise
from .loader import Document
from .model import Spec
from .planning import sample_size
from .quantities import format_duration

PLAN_VERSION = 1


def compile_plan(doc: Document, spec: Spec) -> dict[str, Any]:
    """Build the plan of a checked spec (call only when checks found no error)."""
    control = spec.control
    weights = normalise([v.weight for v in spec.variants])
    ranges = bucket_ranges(len(weights), spec.allocation.coverage, weights)
    layer = spec.allocation.layer
    planned, reason = sample_size(spec)
    return {
        "plan_version": PLAN_VERSION,
        "spec_sha256": hashlib.sha256(doc.text.encode("utf-8")).hexdigest(),
        "experiment": spec.experiment.model_dump(mode="json") | {"seed": spec.experiment.seed or spec.experiment.id},
        "attributes": {name: a.type for name, a in spec.attributes.items()},
        "assignment": {
            "unit": spec.experiment.unit,
            "seed": spec.experiment.seed or spec.experiment.id,
            "hash_version": spec.allocation.hash_version,
            "coverage": spec.allocation.coverage,
            "audience": spec.allocation.audience,
            "condition": spec.audiences[spec.allocation.audience].where if spec.allocation.audience else {},
            "namespace": [layer.id, layer.range[0], layer.range[1]] if layer else None,
        },
        "control": control.id if control else None,
        "variants": [
            {
                "id": v.id,
                "index": i,
                "control": v is control,
                "weight": weights[i],
                "bucket_range": list(ranges[i]),
                "description": v.description,
                "content": v.content,
                "prompt": v.prompt,
                "generate": (v.generate.model_dump(mode="json") if v.generate else {"per": "once", "segment_by": []})
                if v.prompt
                else None,
            }
            for i, v in enumerate(spec.variants)
        ],
        "prompts": {name: p.model_dump(mode="json") for name, p in spec.prompts.items()},
        "metrics": [_metric(m, spec.analysis.cuped) for m in spec.metrics],
        "analysis": spec.analysis.model_dump(mode="json"),
        "stopping": spec.stopping.model_dump(mode="json") | {"looks": format_duration(spec.stopping.looks),
                                                            "look_seconds": spec.stopping.looks},
        "sample_size": (
            {
                "metric": planned.metric,
                "baseline": planned.baseline,
                "mde": planned.mde,
                "alpha": planned.alpha,
                "power": planned.power,
                "per_variant": planned.per_variant,
                "total": planned.total,
                "estimated_days": planned.estimated_days,
                "method": planned.method,
                "fixed_horizon_per_variant": planned.fixed_horizon_per_variant,
            }
            if planned
            else {"unavailable": reason}
        ),
        "sequential": sequential_design(spec, planned.per_variant if planned else None),
        "generation": spec.generation.model_dump(mode="json") | {"jobs": generation_jobs(spec)},
        "simulation": spec.simulation.model_dump(mode="json") if spec.simulation else None,
    }


def sequential_design(spec: Spec, planned_per_variant: int | None) -> dict[str, Any] | None:
    """The design of a sequential analysis (None for other methods): what the runtime needs at every look.

    ``always_valid``: the planned units per variant, from which the runtime tunes
    the mixing variance of the confidence sequence. ``group``: the planned
    number of looks (``max_days`` over ``stopping.looks``, e.g. 28 daily looks),
    the spending function and alpha; the runtime computes the boundaries (they
    need scipy, which the compiler never imports) at the information fraction
    of each look, units so far / planned units (capped at 1; the final look
    spends what is left).
    """
    a = spec.analysis
    if a.method != "sequential":
        return None
    looks = None
    if spec.stopping.max_days:
        looks = max(1, -(-spec.stopping.max_days * 86400 // spec.stopping.looks))  # ceil
    return {
        "type": a.sequential,
        "alpha": a.alpha,
        "planned_per_variant": planned_per_variant,
        "spending": a.spending if a.sequential == "group" else None,
        "looks": looks,
        "look_seconds": spec.stopping.looks,
    }


def _metric(m, cuped: bool = False) -> dict[str, Any]:
    out = m.model_dump(mode="json")
    out["window"] = format_duration(m.window) if m.window else None
    out["window_seconds"] = m.window
    out["cuped"] = bool(cuped if m.cuped is None else m.cuped)  # effective: the metric's own or analysis.cuped
    return out


def generation_jobs(spec: Spec) -> list[dict[str, Any]]:
    """One entry per prompted variant: what is generated, by which model, how often."""
    jobs = []
    for v in spec.variants:
        if v.prompt is None:
            continue
        gen = v.generate
        per = gen.per if gen else "once"
        jobs.append(
            {
                "variant": v.id,
                "prompt": v.prompt,
                "model": spec.prompts[v.prompt].model,
                "per": per,
                "segment_by": list(gen.segment_by) if gen else [],
                "count": 1 if per == "once" else None,  # known once the units are
            }
        )
    return jobs


def plan_json(plan: dict[str, Any]) -> str:
    """The plan's canonical JSON text (byte-identical for the same spec)."""
    return json.dumps(plan, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
