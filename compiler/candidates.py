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
"""

from __future__ import annotations

from .model import Spec, TruthValue, Variant

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


def expanded(spec: Spec) -> Spec:
    """The spec with every variant's candidates as arms of their own (the spec itself when none asks for any).

    Each candidate arm is the variant with its id, its share of the weight and
    no ``candidates`` (``top_k`` stays, as does the variant's description).
    The simulation's truth is keyed by arm: a variant's own entry applies to
    its candidates that have none.
    """
    if not has_candidates(spec):
        return spec
    arms: list[Variant] = []
    for v in spec.variants:
        if not v.candidates:
            arms.append(v)
            continue
        share = v.weight / v.candidates
        arms.extend(v.model_copy(update={"id": arm, "weight": share, "candidates": None})
                    for arm in candidate_ids(v))
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
