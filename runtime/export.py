"""Export a plan to GrowthBook: a features payload its SDKs load as it is, serving the tested copy.

One feature, keyed by the experiment id, whose rules are the experiment: the
same seed, hash version, hash attribute, weights, coverage, audience condition
and namespace (layer) as the plan, so that any GrowthBook SDK assigns each
user exactly as ``expc assign`` does. Users outside the experiment get the
feature's default value, ``null``. Each rule's ``meta`` names the variants, so
a tracking callback logs expc's variant ids.

What a variation's value is (:func:`growthbook_export`):

* without the content (``items`` None): the variant id;
* a variant with one text for everyone (static content, or generated
  ``per: once``): that text, as generated and tested;
* variants written ``per: segment``: one rule per segment, its condition the
  audience's and the segment's values (``{"country": "US"}``; a list
  attribute by its size and items), each variation that segment's copy. A user
  of a segment that has no tested copy matches no rule and gets ``null``;
* a variant written ``per: unit``: a lookup key (``expc-lookup:<variant>``)
  for the production service to fetch the unit's copy by (variant, unit),
  said in the payload's ``expc.note`` and in :attr:`Exported.warnings`.

Bandits (``analysis.method: bandit``): the rule's weights are the bandit's
current weights (``weights``: the ``next_weights`` of the run's last look,
:func:`expc.runtime.bandit.current_weights`; equal weights before the first
look), and the payload's ``expc.bandit`` says so. Re-export after each look.
Changing the weights moves hash ranges, so some users would switch arms: the
SDK must use GrowthBook's **sticky bucketing** (a ``StickyBucketService``, e.g.
``LocalStorageStickyBucketService`` in a browser or a server-side store keyed
by the hash attribute). With it a user keeps the variation of the first
assignment as long as the rule's ``bucketVersion`` stays the same (the export
keeps it at 0), which is how expc analyses a bandit: each unit in the arm, and
the period, it first entered. The warning on stderr says this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from expc.compiler.errors import EXIT_INVALID, ExpcError

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

LOOKUP_PREFIX = "expc-lookup:"


class ExportError(ExpcError):
    """The copy cannot be exported as tested (a failed or missing item, mixed segmentations): one line, exit 1."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class Exported:
    """A payload and what a person must know about it (printed on stderr by the command line)."""

    payload: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def growthbook_payload(plan: Plan, items: list[Any] | None = None) -> dict[str, Any]:
    """The GrowthBook SDK payload (``{"features": {...}}``) that serves this plan (see :func:`growthbook_export`)."""
    return growthbook_export(plan, items).payload


def growthbook_json(plan: Plan, items: list[Any] | None = None) -> str:
    """The payload as JSON text."""
    return payload_json(growthbook_payload(plan, items))


def payload_json(payload: dict[str, Any]) -> str:
    """A payload as JSON text (indented, UTF-8)."""
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _rule(plan: Plan, variations: list[Any], condition: dict[str, Any] | None,
          weights: list[float] | None = None) -> dict[str, Any]:
    """The experiment rule: expc's assignment, with these variation values, this condition and these weights."""
    exp, asg, variants = plan.experiment, plan.assignment, plan.variants
    rule: dict[str, Any] = {
        "key": exp.id,
        "seed": asg.seed,
        "hashVersion": asg.hash_version,
        "hashAttribute": asg.unit,
        "variations": variations,
        "weights": list(weights) if weights is not None else [v.weight for v in variants],
        "coverage": asg.coverage,
        "meta": [{"key": str(v.index), "name": v.id} for v in variants],
        "name": exp.name or exp.id,
        "phase": "0",
    }
    if condition:
        rule["condition"] = condition
    if asg.namespace is not None:
        rule["namespace"] = [asg.namespace.id, asg.namespace.start, asg.namespace.end]
    return rule


def segment_condition(segment: dict[str, Any]) -> dict[str, Any]:
    """A GrowthBook condition matching exactly the users of ``segment``, as expc segments them.

    A list value matches by its size and its items. expc reads a missing list
    as ``[]`` and a missing text as ``""`` (:func:`~expc.runtime.generate.render.plain`),
    so the segment of an empty value also matches users without the attribute.
    """
    parts: list[dict[str, Any]] = []
    for name, value in segment.items():
        if isinstance(value, list):
            parts.append({name: {"$size": len(value), "$all": list(value)} if value else {"$size": 0}})
        else:
            parts.append({name: value})
        if value == [] or value == "":
            parts[-1] = {"$or": [parts[-1], {name: {"$exists": False}}]}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def growthbook_export(plan: Plan, items: list[Any] | None = None, weights: Any = None) -> Exported:
    """The payload serving ``items`` (generation items: ``variant``, ``key``, ``content``, ``status``).

    ``items`` None exports the variant ids as values. ``weights``: a bandit's
    current weights (:class:`expc.runtime.bandit.CurrentWeights`; see the module docs). Raises
    :class:`ExportError` when a variant's copy is missing or failed its
    checks, or when variants are written per segment of different attributes.
    """
    from expc.runtime.generate.jobs import segment_id

    exp, asg = plan.experiment, plan.assignment
    served = weights.weights if weights is not None else None
    if items is None:
        rule = _rule(plan, [v.id for v in plan.variants], asg.condition, served)
        return _with_bandit(plan, Exported({"features": {exp.id: {"defaultValue": None, "rules": [rule]}}}), weights)
    per = {v.id: "static" if v.prompt is None else (v.generate.per if v.generate else "once") for v in plan.variants}
    by_variant: dict[str, list[Any]] = {}
    for item in items:
        by_variant.setdefault(item.variant, []).append(item)
    for item in items:
        if per.get(item.variant) != "unit" and (item.content is None or item.status == "failed"):
            where = f" for segment {json.dumps(item.key, ensure_ascii=False)}" if isinstance(item.key, dict) else ""
            raise ExportError(f"variant `{item.variant}` has no tested copy{where} ({item.status}: "
                              f"{item.reason or 'no content'}): fix its prompt or checks and generate again")
    segmented = [v for v in plan.variants if per[v.id] == "segment"]
    attributes = {tuple(v.generate.segment_by) for v in segmented if v.generate is not None}
    if len(attributes) > 1:
        raise ExportError("variants are written per segment of different attributes ("
                          + "; ".join(", ".join(a) for a in sorted(attributes))
                          + "): GrowthBook rules need one segmentation to export the copy")

    def value(variant: str, segment: str | None) -> Any:
        kind = per[variant]
        if kind == "unit":
            return LOOKUP_PREFIX + variant
        mine = by_variant.get(variant) or []
        if kind == "segment":
            mine = [i for i in mine if segment_key(i.key) == segment]
        if not mine:
            where = f" for segment {segment}" if segment is not None else ""
            raise ExportError(f"variant `{variant}` has no copy{where} among the items: generate it first")
        return mine[0].content

    notes: list[str] = []
    warnings: list[str] = []
    if not segmented:
        rules = [_rule(plan, [value(v.id, None) for v in plan.variants], asg.condition, served)]
    else:
        segments = {segment_id(i.key): i.key for v in segmented for i in by_variant.get(v.id, [])
                    if isinstance(i.key, dict)}
        rules = []
        for sid in sorted(segments):
            condition = segment_condition(segments[sid])
            if asg.condition:
                condition = {"$and": [asg.condition, condition]}
            rules.append(_rule(plan, [value(v.id, sid) for v in plan.variants], condition, served))
        notes.append(f"one rule per segment of {', '.join(sorted(attributes)[0])} ({len(rules):,} rules, the "
                     "same assignment in each); a user of a segment without tested copy matches no rule and gets "
                     "the default value (null)")
    payload: dict[str, Any] = {"features": {exp.id: {"defaultValue": None, "rules": rules}}}
    lookup = {v.id: LOOKUP_PREFIX + v.id for v in plan.variants if per[v.id] == "unit"}
    for variant, key in lookup.items():
        warnings.append(f"variant `{variant}` is written per unit: its value is the lookup key {key!r}, not copy; "
                        "serve each unit the copy expc generated for (variant, unit) (`expc generate --units ... "
                        "-o content.jsonl`)")
    if lookup or notes:
        payload["expc"] = {"note": "; ".join(notes + warnings)}
        if lookup:
            payload["expc"]["lookup_keys"] = lookup
    return _with_bandit(plan, Exported(payload, warnings), weights)


STICKY = ("a bandit's weights change at each look: serve it with GrowthBook's sticky bucketing (an SDK "
          "StickyBucketService) so that every user keeps the variation first assigned; re-export after each look")


def _with_bandit(plan: Plan, exported: Exported, weights: Any) -> Exported:
    """A bandit's payload says which weights it serves and that sticky bucketing must be on (other plans: as is)."""
    if plan.analysis.method != "bandit":
        return exported
    payload = dict(exported.payload)
    served = weights.weights if weights is not None else [v.weight for v in plan.variants]
    payload["expc"] = {**payload.get("expc", {}), "bandit": {
        "weights": {v.id: w for v, w in zip(plan.variants, served)},
        "from_look": weights.look if weights is not None else None,
        "sticky_bucketing": STICKY}}
    return Exported(payload, [*exported.warnings, STICKY])


def segment_key(key: Any) -> str | None:
    """A segment's canonical id (None for an item that is not a segment's)."""
    from expc.runtime.generate.jobs import segment_id

    return segment_id(key) if isinstance(key, dict) else None
