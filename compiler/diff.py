"""What a change to a spec does to its experiment: the classification of ``expc diff`` and a run's identity.

Two compiled plans are compared field by field (the typed plans, not the YAML:
comments, key order and formatting are not there to differ). Every field of a
plan has an entry in :data:`REGISTRY`, a table of plan paths that says what a
change of that field does:

* ``safe``: names, descriptions, the status, report and simulation settings,
  generation limits, anything not below;
* ``rerandomises``: units may land in another variant or fall in or out of the
  experiment (experiment id, seed, unit, weights, coverage, audience and its
  condition, layer range, hash version, variants added, removed, renamed or
  reordered);
* ``analysis``: the statistics change (the control, metrics and their
  definitions, alpha, method, correction, windows, looks, stopping rules, where
  the data is read);
* ``content``: what units are shown changes (prompts, models, checks, a
  variant's content, how often it is generated).

Fields derived from others (bucket ranges, the arm order, the schedule's
looks, the sample size, the generation jobs) are never reported: what they
derive from is. A name or description that a prompt template reads
(``{{ experiment.name }}``) changes the content.

The same table says which fields are part of a run's identity
(:func:`plan_digest`): a run resumes when only names, descriptions, the status
or generation limits changed, and is refused, naming the change, otherwise.

Everything here is a pure function of the plans (and of the HEAD spec's
document, for line numbers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from .loader import Document
    from .plan import Plan

Kind = Literal["safe", "rerandomises", "analysis", "content"]
Action = Literal["added", "removed", "changed"]

KINDS: Final[tuple[Kind, ...]] = ("rerandomises", "analysis", "content", "safe")
"""The kinds, most serious first (the order of the text output)."""
GUARDED: Final[frozenset[Kind]] = frozenset({"rerandomises", "analysis", "content"})
"""The kinds a running experiment must not undergo."""
LABELS: Final[dict[Kind, str]] = {"safe": "safe", "rerandomises": "re-randomises",
                                  "analysis": "changes the analysis", "content": "changes the content"}

MAX_DEPTH = 40  #: deeper values are compared whole (a spec nests at most 64 levels, most of them in a condition)
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Field:
    """One row of the registry: what a change at plan paths matching ``pattern`` does."""

    pattern: str
    """A dotted plan path; ``*`` stands for one key (a variant's or metric's id, a prompt's name, ...)."""
    kind: Kind | None
    """What a change does; None for a field derived from others (never reported: its cause is)."""
    spec: str | None = None
    ("""Where the spec says it, when that is not the same path: ``*`` takes the plan path's keys in turn, """
     """``{audience}`` and ``{control}`` the HEAD plan's.""")
    identity: bool = True
    """Part of a run's identity: a run made before the change is not resumed after it."""
    context: str | None = None
    """The name a prompt template may read the field by (``experiment.name``): then a change is a content change."""

    @property
    def parts(self) -> tuple[str, ...]:
        """The pattern's segments."""
        return tuple(self.pattern.split("."))


REGISTRY: Final[tuple[Field, ...]] = (
    Field("plan_version", None, identity=False),
    Field("spec_sha256", None, identity=False),
    # who, and how units are hashed
    Field("experiment", "safe"),
    Field("experiment.id", "rerandomises"),
    Field("experiment.seed", "rerandomises"),
    Field("experiment.unit", "rerandomises"),
    Field("experiment.name", "safe", identity=False, context="experiment.name"),
    Field("experiment.owner", "safe", identity=False, context="experiment.owner"),
    Field("experiment.hypothesis", "safe", identity=False, context="experiment.hypothesis"),
    Field("experiment.description", "safe", identity=False, context="experiment.description"),
    Field("experiment.status", "safe", identity=False),
    Field("attributes", "safe"),
    Field("pii", "safe", spec="attributes"),
    Field("assignment", "rerandomises", spec="allocation"),
    Field("assignment.unit", None),
    Field("assignment.seed", None),
    Field("assignment.hash_version", "rerandomises", spec="allocation.hash_version"),
    Field("assignment.coverage", "rerandomises", spec="allocation.coverage"),
    Field("assignment.audience", "rerandomises", spec="allocation.audience"),
    Field("assignment.condition", "rerandomises", spec="audiences.{audience}.where"),
    Field("assignment.namespace", "rerandomises", spec="allocation.layer"),
    # the arms
    Field("control", "analysis", spec="variants.{control}.control"),
    Field("arm_order", None),
    Field("variants", "rerandomises"),
    Field("variants.*", "rerandomises"),
    Field("variants.*.index", "rerandomises", spec="variants.*"),
    Field("variants.*.weight", "rerandomises"),
    Field("variants.*.bucket_range", None),
    Field("variants.*.control", None),
    Field("variants.*.description", "safe", identity=False, context="variant.description"),
    Field("variants.*.content", "content"),
    Field("variants.*.prompt", "content"),
    Field("variants.*.generate", "content"),
    Field("prompts", "content"),
    # where a prompt's calls go: its deployments are interchangeable (a reply is stored under the prompt's key)
    Field("prompts.*.deployments", "safe", identity=False),
    Field("prompts.*.fallbacks", "safe", identity=False),
    # the statistics
    Field("metrics", "analysis"),
    Field("metrics.*", "analysis"),
    Field("metrics.*.name", "safe", identity=False),
    Field("metrics.*.description", "safe", identity=False),
    Field("metrics.*.window_seconds", "analysis", spec="metrics.*.window"),
    Field("metrics.*.family", None, spec="analysis.family"),
    Field("metrics.*.family_size", None),
    Field("analysis", "analysis"),
    Field("stopping", "analysis"),
    Field("schedule", None),
    Field("schedule.every_seconds", "analysis", spec="stopping.looks"),
    Field("sample_size", None),
    Field("sample_size_unavailable", None),
    Field("sequential", None),
    Field("sequential.planned_per_variant", "analysis", spec="analysis"),
    Field("data", "analysis"),
    # settings that shape neither units, statistics nor content
    Field("generation", "safe"),
    Field("generation.max_cost_usd", "safe", identity=False),
    Field("generation.concurrency", "safe", identity=False),
    Field("generation.timeout", "safe", identity=False),
    Field("generation.batch", "safe", identity=False),
    Field("generation.jobs", None),
    Field("simulation", "safe"),
    Field("simulation.looks", None),
    Field("simulation.entering_per_day", None),
)

_KEYED_LISTS = ("variants", "metrics")  # lists of objects with an `id`, compared by id
_SET_LIKE = (("pii",), ("prompts", "*", "send_pii"))  # lists whose order means nothing


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two plans: what it does, where, from what to what."""

    kind: Kind
    path: str
    """The plan path, dotted (``variants.ai.weight``)."""
    action: Action
    old: Any
    """The BASE value (None when added)."""
    new: Any
    """The HEAD value (None when removed)."""
    line: int | None = None
    """Where the HEAD spec says it (for a removal, its nearest remaining parent), when known."""
    identity: bool = True
    """Whether the change makes another run (see :func:`plan_digest`)."""

    @property
    def label(self) -> str:
        """The kind, for a person (``re-randomises``)."""
        return LABELS[self.kind]

    def describe(self, limit: int = 80) -> str:
        """``variants.ai.weight 0.5 -> 0.6`` (``added``, ``removed``); values cut to ``limit`` characters."""
        if self.action == "added":
            return f"{self.path} added ({shown(self.new, limit)})"
        if self.action == "removed":
            return f"{self.path} removed (was {shown(self.old, limit)})"
        return f"{self.path} {shown(self.old, limit)} -> {shown(self.new, limit)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "label": self.label, "path": self.path, "action": self.action,
                "old": self.old, "new": self.new, "line": self.line}


def shown(value: Any, limit: int = 80) -> str:
    """A value as compact JSON (a float to 6 significant digits), cut to ``limit`` characters (with ``…``)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False, default=str)
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


# ====================================================================== the registry


def field_of(path: tuple[str, ...]) -> Field | None:
    """The registry row for a plan path: the longest pattern that is a prefix of it (None: not registered)."""
    best: Field | None = None
    for row in REGISTRY:
        parts = row.parts
        if len(parts) <= len(path) and all(p in ("*", s) for p, s in zip(parts, path)) and (
                best is None or len(parts) > len(best.parts)):
            best = row
    return best


def _template_reads(plan: Plan) -> frozenset[str]:
    """The context fields (``experiment.name``, ``variant.description``) some prompt template of ``plan`` reads.

    A template that uses ``experiment`` or ``variant`` other than by a field
    (``{{ experiment }}``) reads every field of it.
    """
    from .templates import CONTEXT_FIELDS, analyse

    read: set[str] = set()
    for prompt in plan.prompts.values():
        uses = analyse(prompt.template).uses
        for name, fields in CONTEXT_FIELDS.items():
            named = sum(1 for u in uses if u.kind == "name" and u.name == name)
            dotted = [u.name for u in uses if u.kind == "field" and u.name.startswith(name + ".")]
            read |= {f"{name}.{f}" for f in fields} if named > len(dotted) else set(dotted)
    return frozenset(read)


# ====================================================================== the comparable form


def comparable(plan: Plan) -> dict[str, Any]:
    """The plan as a tree to compare: variants and metrics keyed by id, set-like lists sorted.

    A variant keeps its ``index`` (its order decides its bucket range); a
    metric's order means nothing, and neither does the order of ``pii`` or a
    prompt's ``send_pii``.
    """
    tree = plan.to_dict()
    for name in _KEYED_LISTS:
        tree[name] = {item["id"]: item for item in tree.get(name) or []}
    tree["pii"] = sorted(tree.get("pii") or [])
    for prompt in (tree.get("prompts") or {}).values():
        prompt["send_pii"] = sorted(prompt.get("send_pii") or [])
    return tree


def plan_digest(plan: Plan) -> str:
    """The run identity of a plan: SHA-256 of its canonical JSON, without what does not change its meaning.

    Left out: the spec's bytes (comments, key order, formatting), the names,
    descriptions and status (unless a prompt template reads them), the
    generation limits (budget, concurrency, timeout) and the order of metrics.
    """
    reads = _template_reads(plan)
    tree = comparable(plan)
    _drop_non_identity(tree, (), reads)
    text = json.dumps(tree, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _drop_non_identity(tree: dict[str, Any], path: tuple[str, ...], reads: frozenset[str]) -> None:
    """Remove, in place, every key whose registry row says it is not part of the identity."""
    for key in list(tree):
        here = (*path, str(key))
        row = field_of(here)
        if row is not None and len(row.parts) == len(here) and not row.identity and row.context not in reads:
            del tree[key]
        elif isinstance(tree[key], dict) and len(here) < 4:  # the registry's rows are at most 3 deep
            _drop_non_identity(tree[key], here, reads)


# ====================================================================== the comparison


def plan_changes(base: Plan, head: Plan, doc: Document | None = None) -> list[Change]:
    """Every change from ``base`` to ``head``, classified (see the module documentation), in plan order.

    ``doc`` is the HEAD spec's document: each change gets the line where it
    says it (a removal: its nearest remaining parent).
    """
    reads = _template_reads(base) | _template_reads(head)
    found: list[tuple[tuple[str, ...], Any, Any]] = []
    _walk(comparable(base), comparable(head), (), found)
    changes = []
    for path, old, new in found:
        row = field_of(path)
        if row is not None and row.kind is None:
            continue
        kind: Kind = row.kind if row is not None and row.kind is not None else "safe"
        context = row.context if row is not None else None
        if context is not None and context in reads:
            kind = "content"
        identity = row.identity if row is not None else True
        if context is not None and context in reads:
            identity = True
        action: Action = "added" if old is _ABSENT else "removed" if new is _ABSENT else "changed"
        changes.append(Change(
            kind=kind, path=".".join(path), action=action,
            old=None if old is _ABSENT else old, new=None if new is _ABSENT else new,
            line=_line(doc, head, path, row) if doc is not None else None, identity=identity,
        ))
    return changes


def _walk(old: Any, new: Any, path: tuple[str, ...], out: list[tuple[tuple[str, ...], Any, Any]]) -> None:
    """Collect (path, old, new) for every leaf that differs; mappings are compared key by key."""
    if isinstance(old, dict) and isinstance(new, dict) and len(path) < MAX_DEPTH:
        for key in dict.fromkeys([*old, *new]):
            _walk(old.get(key, _ABSENT), new.get(key, _ABSENT), (*path, str(key)), out)
    elif old != new or type(old) is not type(new) and not _same_number(old, new):
        out.append((path, old, new))


def _same_number(a: Any, b: Any) -> bool:
    """1 and 1.0 are the same value in a plan (JSON does not tell them apart); True and 1 are not."""
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and a == b)


# ====================================================================== where the HEAD spec says it


def _line(doc: Document, head: Plan, path: tuple[str, ...], row: Field | None) -> int:
    """The line of the HEAD spec that holds what ``path`` of the plan comes from."""
    spec_path: list[str] = list(path)
    if row is not None and row.spec is not None:
        keys = iter(s for p, s in zip(row.parts, path) if p == "*")
        spec_path = []
        for part in row.spec.split("."):
            if part == "*":
                spec_path.append(next(keys, "*"))
            elif part == "{audience}":
                spec_path.append(head.assignment.audience or "")
            elif part == "{control}":
                spec_path.append(head.control)
            else:
                spec_path.append(part)
        spec_path += list(path[len(row.parts):])
    return doc.where(_locate(doc.data, spec_path), key=True)[1]


def _locate(data: Any, parts: list[str]) -> tuple[str | int, ...]:
    """The document path of ``parts``, a list item found by its ``id``; stops where the document does."""
    out: list[str | int] = []
    node = data
    for part in parts:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list):
            index = next((i for i, item in enumerate(node) if isinstance(item, dict) and item.get("id") == part), None)
            if index is None:
                break
            out.append(index)
            node = node[index]
        else:
            break
    return tuple(out)


# ====================================================================== summaries


def guarded(changes: list[Change]) -> list[Change]:
    """The changes a running experiment must not undergo."""
    return [c for c in changes if c.kind in GUARDED]


def by_kind(changes: list[Change]) -> dict[Kind, list[Change]]:
    """The changes grouped by kind, most serious first (kinds without a change left out)."""
    return {k: [c for c in changes if c.kind == k] for k in KINDS if any(c.kind == k for c in changes)}


def what_changed(changes: list[Change], limit: int = 3) -> str:
    """One line naming the changes, most serious first: ``re-randomises: variants.ai.weight 0.5 -> 0.6; ...``.

    A safe change is named without its kind. At most ``limit`` are named.
    """
    ordered = [c for group in by_kind(changes).values() for c in group]
    named = [(f"{c.label}: " if c.kind != "safe" else "") + c.describe(40) for c in ordered[:limit]]
    more = len(ordered) - limit
    return "; ".join(named) + (f" and {more} more" if more > 0 else "")
