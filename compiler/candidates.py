"""Candidates: a variant that asks for ``candidates: N`` becomes N arms, ``<id>-1`` ... ``<id>-N``.

The expansion is made once, here, and everything that counts or weighs arms
(the plan's variants and bucket ranges, the sample size, the simulation's
truth) works from the expanded spec (:func:`expanded`), so they cannot
disagree about how many arms there are.

* **Ids** are stable: candidate ``j`` of variant ``ai`` is ``ai-j``, whatever
  the other variants are.
* **Weights**: the variant's weight is split equally among its candidates
  (``weight: 2`` with 4 candidates gives each ``0.5``), so the variant as a
  whole keeps the share of traffic the spec gives it.
* **Copy**: every candidate renders the same prompt (its template sees the
  variant's own id, ``ai``) and is generated with its own seed: candidate ``j``
  asks for seed ``base + 1000 * (j - 1)`` and regenerates with the next ones
  (``regenerate`` is at most 10), so no two candidates share a request, a
  stored reply or a text (:func:`seed_offset`). Seeds, unlike temperatures,
  leave the prompt's sampling settings as written and make each candidate a
  distinct, repeatable request; at temperature 0 a real model may still return
  the same text for every seed.
* **Truth**: a simulation's ``truth`` may give a candidate's own value
  (``ai-2``) or the variant's (``ai``), which every candidate without its own
  then takes.
* **top_k**: which candidates a judge keeps is known only once they are
  generated and judged, so the plan lists them all; a run records the kept ones
  (``selection.json`` in its folder) and works from :func:`with_selection` of
  its plan and that record, the plan without the others: the kept candidates
  share their variant's weight equally, bucket ranges and correction families
  follow. The derived plan is a function of the two, so a resumed run derives
  the same one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import Spec, TruthValue, Variant

if TYPE_CHECKING:
    from .plan import Plan

SEED_STRIDE = 1000
"""Seeds between two candidates' first requests: more than any chain of regenerations (at most 11 attempts)."""


def candidate_id(variant_id: str, number: int) -> str:
    """The arm id of candidate ``number`` (1-based) of ``variant_id``: ``ai`` and 2 give ``ai-2``."""
    return f"{variant_id}-{number}"


def candidate_ids(variant: Variant) -> list[str]:
    """The arm ids a variant's candidates become (empty when it asks for none)."""
    return [candidate_id(variant.id, j) for j in range(1, (variant.candidates or 0) + 1)]


def seed_offset(number: int | None) -> int:
    """What candidate ``number`` adds to the generation seed (0 for a variant without candidates)."""
    return SEED_STRIDE * (number - 1) if number else 0


def has_candidates(spec: Spec) -> bool:
    """True when some variant asks for candidates."""
    return any(v.candidates for v in spec.variants)


def expanded(spec: Spec, kept_only: bool = False) -> Spec:
    """The spec with every variant's candidates as arms of their own (the spec itself when none asks for any).

    Each candidate arm is the variant with its id, its share of the weight and
    no ``candidates`` (``top_k`` stays, as does the variant's description).
    The simulation's truth is keyed by arm: a variant's own entry applies to
    its candidates that have none. ``kept_only``: a variant with ``top_k: K``
    has only the K arms that get traffic (candidates 1..K, sharing its weight),
    as a design is planned: the sample size counts the arms a run assigns to.
    """
    if not has_candidates(spec):
        return spec
    arms: list[Variant] = []
    for v in spec.variants:
        if not v.candidates:
            arms.append(v)
            continue
        ids = candidate_ids(v)[:v.top_k] if kept_only and v.top_k else candidate_ids(v)
        share = v.weight / len(ids)
        arms.extend(v.model_copy(update={"id": arm, "weight": share, "candidates": None}) for arm in ids)
    update: dict = {"variants": arms}
    if spec.simulation is not None and spec.simulation.truth:
        truth: dict[str, dict[str, TruthValue]] = {}
        for v in spec.variants:
            own = spec.simulation.truth.get(v.id)
            for arm in candidate_ids(v) or [v.id]:
                values = {**(own or {}), **spec.simulation.truth.get(arm, {})} if arm != v.id else own
                if values:
                    truth[arm] = values
        update["simulation"] = spec.simulation.model_copy(update={"truth": truth})
    return spec.model_copy(update=update)


def parent_of(spec: Spec) -> dict[str, tuple[str, int]]:
    """Each candidate arm's id -> (its variant's id, its number)."""
    return {arm: (v.id, j) for v in spec.variants for j, arm in enumerate(candidate_ids(v), start=1)}


def with_selection(plan: Plan, kept: dict[str, list[str]]) -> Plan:
    """The plan with only the ``kept`` candidates of each variant named in ``kept`` (its candidate ids, in order).

    Each variant's weight is shared equally by its kept candidates; the other
    arms keep theirs; weights, bucket ranges, the arm order and every metric's
    correction family follow, and the simulation's truth and the generation
    jobs of dropped candidates go. Raises ``ValueError`` for a selection that
    does not fit the plan (an unknown variant or arm, none kept).
    """
    from .buckets import bucket_ranges, normalise
    from .plan import Plan

    if not kept:
        return plan
    groups: dict[str, list[str]] = {}
    for v in plan.variants:
        if v.candidate_of is not None:
            groups.setdefault(v.candidate_of, []).append(v.id)
    for parent, arms in kept.items():
        if parent not in groups or not arms or not set(arms) <= set(groups[parent]) or len(set(arms)) != len(arms):
            raise ValueError(f"the selection keeps {arms!r} of `{parent}`, which are not some of its candidates")
    dropped = {a for parent, arms in kept.items() for a in groups[parent] if a not in arms}
    data: dict[str, Any] = plan.to_dict()
    share = {parent: sum(v["weight"] for v in data["variants"] if v.get("candidate_of") == parent) / len(arms)
             for parent, arms in kept.items()}
    variants = [v for v in data["variants"] if v["id"] not in dropped]
    raw = [share[v["candidate_of"]] if v.get("candidate_of") in share else v["weight"] for v in variants]
    weights = normalise(raw)
    ranges = bucket_ranges(len(weights), data["assignment"]["coverage"], weights)
    for i, v in enumerate(variants):
        v.update(index=i, weight=weights[i], bucket_range=list(ranges[i]))
    data["variants"] = variants
    control = next(i for i, v in enumerate(variants) if v["id"] == data["control"])
    data["arm_order"] = [control] + [i for i in range(len(variants)) if i != control]
    primaries = sum(1 for m in data["metrics"] if m["family"] == "primary")
    for m in data["metrics"]:
        m["family_size"] = (len(variants) - 1) * (primaries if m["family"] == "primary" else 1)
    data["generation"]["jobs"] = [j for j in data["generation"]["jobs"] if j["variant"] not in dropped]
    if data.get("simulation"):
        data["simulation"]["truth"] = {k: t for k, t in data["simulation"]["truth"].items() if k not in dropped}
    return Plan.from_dict(data, "the plan with its selected candidates")


def design_selection(plan: Plan) -> Plan:
    """The plan a design is simulated with before any judge has scored: each ``top_k`` variant keeps candidates 1..K.

    Which candidates a run keeps is known only after generation; a simulation of
    the design needs only how many arms there are and their weights, so it
    takes the first K (give the simulation's truth for those).
    """
    kept: dict[str, list[str]] = {}
    for v in plan.variants:
        if v.candidate_of is not None and v.top_k is not None and v.candidate is not None and v.candidate <= v.top_k:
            kept.setdefault(v.candidate_of, []).append(v.id)
    return with_selection(plan, kept)
