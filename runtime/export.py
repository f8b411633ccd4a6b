"""Export a plan to GrowthBook: a features payload its SDKs load as it is.

One feature, keyed by the experiment id, whose only rule is the experiment:
the same seed, hash version, hash attribute, weights, coverage, audience
condition and namespace (layer) as the plan, so that any GrowthBook SDK
assigns each user exactly as ``expc assign`` does. Its variations are the
variant ids, so ``eval_feature(key).value`` names the variant; users outside
the experiment get the feature's default value, ``null``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.plan import Plan


def growthbook_payload(plan: Plan) -> dict[str, Any]:
    """The GrowthBook SDK payload (``{"features": {...}}``) that serves this plan."""
    exp, asg, variants = plan.experiment, plan.assignment, plan.variants
    rule: dict[str, Any] = {
        "key": exp.id,
        "seed": asg.seed,
        "hashVersion": asg.hash_version,
        "hashAttribute": asg.unit,
        "variations": [v.id for v in variants],
        "weights": [v.weight for v in variants],
        "coverage": asg.coverage,
        "meta": [{"key": str(v.index), "name": v.id} for v in variants],
        "name": exp.name or exp.id,
        "phase": "0",
    }
    if asg.condition:
        rule["condition"] = asg.condition
    if asg.namespace is not None:
        rule["namespace"] = [asg.namespace.id, asg.namespace.start, asg.namespace.end]
    return {"features": {exp.id: {"defaultValue": None, "rules": [rule]}}}


def growthbook_json(plan: Plan) -> str:
    """The payload as JSON text."""
    return json.dumps(growthbook_payload(plan), indent=2, ensure_ascii=False) + "\n"
