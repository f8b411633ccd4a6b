"""From the plan (and the units) to what must be generated: one :class:`Piece` per item.

A variant with static ``content`` is one item. A prompted variant is one item
(``per: once``), one per distinct combination of its ``segment_by`` values
(``per: segment``) or one per unit (``per: unit``). Each item's template is
rendered here, so what leaves this module is the exact messages to send.

Segments come from the units when there are any (the combinations present),
else from the simulation block's declared ``values`` (their cross product;
for a ``list[string]`` attribute, every combination of ``size`` items). A
list value in a segment is sorted, so ``[running, cooking]`` and
``[cooking, running]`` are one segment (see :func:`segment_id`).

Per-unit items are rendered once per distinct combination of the attributes
the template (and its judge's rubric) reads, not once per unit.

A candidate arm (``candidate_of`` in the plan) renders its variant's prompt
with ``variant.id`` the variant's own id, so every candidate sends the same
messages; its item carries the candidate's seed offset (``seed``), which makes
it a request of its own (see :mod:`expc.compiler.candidates`). A prompt with a
``judge`` check has its rubric rendered here too, from the same context
(``rubric``), for :mod:`.judge`.

Each render has a budget (:class:`~.render.RenderLimits`): an item whose
template goes past it is a :class:`Piece` with an ``error`` (generation fails
it under the prompt's ``on_fail``). After :data:`MAX_SLOW_RENDERS` renders of
one variant ran out of time, its remaining items fail without rendering, so a
slow template costs seconds, not hours. The template reads read-only copies of
its context (:class:`~.render.Record`); the key recorded with an item is
another copy, which no template can reach.

Personal attributes (the plan's ``pii``) are in a template's context only when
its prompt lists them in ``send_pii``. An item whose context holds personal
values is rendered a second time with placeholders in their place
(:func:`~.personal.placeholder`): that copy is what the store records, and the
item carries the values (``personal``) so that what is written about it can be
redacted (see :mod:`.personal`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from expc.compiler.candidates import seed_offset
from expc.compiler.model import Generate, Prompt
from expc.compiler.pii import withheld
from expc.compiler.plan import Plan, PlanVariant
from expc.compiler.templates import analyse

from .personal import Personal, placeholder, redact
from .render import Record, RenderError, RenderLimitExceeded, RenderLimits, plain, render

#: Most segments a spec's simulation block may imply when there are no units.
MAX_SIMULATED_SEGMENTS = 10_000
#: Renders of one variant that may run out of time before its other items fail without rendering.
MAX_SLOW_RENDERS = 3


class JobError(Exception):
    """What to generate cannot be worked out (missing units, a template that fails): a message for a person."""


@dataclass(frozen=True)
class Piece:
    """One item to produce: a variant's content for everyone, a segment or a unit."""

    variant: str
    key: None | dict[str, Any] | str
    prompt: str | None  # None for static content
    messages: tuple[tuple[str, str], ...] = ()  # (role, content)
    static: str | None = None
    error: str | None = None  # why the template could not render within its budget (then no messages)
    recorded: tuple[tuple[str, str], ...] | None = None  # the messages as recorded, personal values replaced
    personal: Personal = ()  # the personal values the messages carry: (attribute, value)
    seed: int = 0  # added to the generation seed: a candidate's offset (0 for other variants)
    rubric: str | None = None  # the prompt's judge rubric, rendered for this item (None: no judge)


def request_group(piece: Piece) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What items share one request: the prompt and the messages, and a candidate's seed offset when it has one."""
    return (piece.prompt if not piece.seed else f"{piece.prompt}#{piece.seed}") or "", piece.messages


def segment_id(segment: dict[str, Any]) -> str:
    """A canonical text for a segment (its values, lists sorted): equal segments, equal ids."""
    return json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in segment.items()},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def per_unit_variants(plan: Plan) -> list[str]:
    """The ids of the variants whose content is generated per unit (they need the units)."""
    return [v.id for v in plan.variants if v.generate is not None and v.generate.per == "unit"]


def pieces(plan: Plan, units: Any | None, max_items_per_variant: int | None = None,
           limits: RenderLimits | None = None, variants: Collection[str] | None = None) -> list[Piece]:
    """Every item of every variant, rendered within ``limits`` (raises :class:`JobError` for a template that fails).

    An item whose template goes past ``limits`` (default: :class:`RenderLimits`'s) is returned with its ``error``.
    ``variants`` (ids) keeps only those variants' items; None keeps every variant's.
    """
    out: list[Piece] = []
    for variant in plan.variants:
        if variants is not None and variant.id not in variants:
            continue
        if variant.prompt is None:
            out.append(Piece(variant.id, None, None, static=variant.content or ""))
            continue
        prompt = plan.prompts[variant.prompt]
        gen = variant.generate or Generate()  # the compiler sets it on every prompted variant
        personal = [name for name in gen.segment_by if name in plan.pii] if gen.per == "segment" else []
        if personal:  # the compiler refuses it (E096); a plan written by hand may not
            raise JobError(f"variant `{variant.id}` generates per segment of `{personal[0]}`, a personal attribute: "
                           "segment values are written in plain text")
        renderer = _Renderer(plan, variant, variant.prompt, prompt, limits or RenderLimits())
        try:
            if gen.per == "once":
                out.append(renderer.piece(None, {}, {}))
            elif gen.per == "segment":
                for segment in _segments(plan, variant, gen.segment_by, units):
                    out.append(renderer.piece(Record("segment", segment), segment, segment))
            else:
                out.extend(_unit_pieces(plan, variant, renderer, units, max_items_per_variant))
        except RenderError as exc:
            raise JobError(f"variant `{variant.id}` (prompt `{variant.prompt}`): {exc}") from None
    return out


class _Renderer:
    """Renders one variant's items, each from its own read-only context, and counts the renders that ran out of time."""

    def __init__(self, plan: Plan, variant: PlanVariant, prompt_id: str, prompt: Prompt,
                 limits: RenderLimits) -> None:
        self.variant, self.prompt_id, self.prompt, self.limits = variant, prompt_id, prompt, limits
        experiment = plan.experiment
        self.experiment = {k: getattr(experiment, k) for k in ("id", "name", "owner", "hypothesis", "description")}
        self.seed = seed_offset(variant.candidate)
        self.rubric = prompt.checks.judge.rubric if prompt.checks.judge is not None else None
        self.slow = 0
        self.pii = {name: plan.attributes.get(name, "string") for name in plan.pii if name in prompt.send_pii}

    def piece(self, key: Any, user: dict[str, Any], segment: dict[str, Any]) -> Piece:
        """The item for ``key`` (its messages, or the reason it could not render); other render errors raise."""
        variant, prompt_id = self.variant, self.prompt_id
        if self.slow >= MAX_SLOW_RENDERS:
            return Piece(variant.id, key, prompt_id,
                         error=f"template not rendered: it ran out of time ({self.limits.seconds:g} s) on "
                               f"{self.slow} items of this variant already")
        personal = tuple((name, user[name]) for name in self.pii if name in user)
        system = [("system", self.prompt.system.strip())] if self.prompt.system else []
        rubric = None
        try:
            text = render(self.prompt.template, self._context(user, segment), self.limits)
            if self.rubric is not None:
                rubric = render(self.rubric, self._context(user, segment), self.limits).strip()
        except RenderLimitExceeded as exc:
            self.slow += exc.slow
            return Piece(variant.id, key, prompt_id, error=f"template not rendered: {redact(str(exc), personal)}")
        except RenderError as exc:
            raise RenderError(redact(str(exc), personal) or "template error") from None
        recorded = None
        if personal:
            masked = dict(user) | {name: placeholder(name, self.pii[name]) for name, _ in personal}
            try:
                shown = render(self.prompt.template, self._context(masked, segment), self.limits)
            except RenderError:  # the template needs the real values (a test on them, arithmetic)
                shown = f"[not recorded: the prompt sends personal data ({', '.join(n for n, _ in personal)})]"
            recorded = tuple(system + [("user", redact(shown, personal) or "")])
        return Piece(variant.id, key, prompt_id, tuple(system + [("user", text)]), recorded=recorded,
                     personal=personal, seed=self.seed, rubric=rubric)

    def _context(self, user: dict[str, Any], segment: dict[str, Any]) -> dict[str, Record]:
        """Fresh read-only values for one render: a template cannot reach another item's or the key."""
        return {
            "user": Record("user", user),
            "segment": Record("segment", segment),
            "variant": Record("variant", {"id": self.variant.candidate_of or self.variant.id,
                                          "description": self.variant.description}),
            "experiment": Record("experiment", self.experiment),
        }


def _segments(plan: Plan, variant: PlanVariant, names: list[str], units: Any | None) -> list[dict[str, Any]]:
    if units is not None and len(units):
        missing = [n for n in names if n not in units.columns]
        if missing:
            raise JobError(f"variant `{variant.id}` generates per segment of {', '.join(names)}, "
                           f"but the units have no column {', '.join(missing)}")
        distinct = set(zip(*(units.columns[n].tolist() for n in names)))  # hashing in C: few combinations remain
        combos = dict.fromkeys(
            json.dumps([_canonical(plain(x, units.types.get(n))) for n, x in zip(names, row)], ensure_ascii=False)
            for row in distinct)
        return [dict(zip(names, json.loads(c))) for c in sorted(combos)]
    declared = plan.simulation.attributes if plan.simulation is not None else {}
    choices: list[list[Any]] = []
    for name in names:
        dist = declared.get(name)
        if dist is None or not dist.values:
            raise JobError(f"variant `{variant.id}` generates per segment of {', '.join(names)}: give the "
                           f"units (--units FILE), or declare `simulation.attributes.{name}.values` in the spec")
        values: list[Any] = [json.loads(v) for v in dict.fromkeys(json.dumps(v) for v in dist.values)]
        if plan.attributes.get(name) == "list[string]" and not any(isinstance(v, list) for v in values):
            low, high = dist.size or [1, 1]  # the compiler resolves `size` of a list attribute with values
            values = [sorted(c) for k in range(max(low, 0), min(high, len(values)) + 1)
                      for c in itertools.combinations(values, k)]
        choices.append(values)
    total = 1
    for c in choices:
        total *= len(c)
    if total > MAX_SIMULATED_SEGMENTS:
        raise JobError(f"variant `{variant.id}`: the simulation's values make {total:,} segments "
                       f"(more than {MAX_SIMULATED_SEGMENTS:,}); give the units (--units FILE)")
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def _canonical(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def _unit_pieces(plan: Plan, variant: PlanVariant, renderer: _Renderer, units: Any | None,
                 limit: int | None) -> list[Piece]:
    from expc.runtime.assign import id_text

    if units is None or not len(units):
        raise JobError(f"variant `{variant.id}` generates content per unit: give the units (--units FILE)")
    unit = plan.assignment.unit
    ids = id_text(units, unit)
    n = len(ids) if limit is None else min(limit, len(ids))
    uses = analyse(renderer.prompt.template).uses + (analyse(renderer.rubric).uses if renderer.rubric else ())
    hidden = withheld(renderer.prompt, plan.pii)  # personal values the prompt may not send: never in its context
    if any(u.kind == "whole" and u.name == "user" for u in uses):
        names = [x for x in units.columns if x not in hidden]
    else:
        names = sorted({u.name.split(".", 1)[1] for u in uses if u.kind == "field" and u.name.startswith("user.")})
        names = [x for x in names if x in units.columns and x not in hidden]
    # one render per distinct combination of the attributes the template reads (list values are tuples)
    keys = list(zip(*(units.columns[name][:n].tolist() for name in names))) if names else [()] * n
    rendered: dict[tuple, Piece] = {}
    for key in dict.fromkeys(keys):
        user = {name: plain(value, units.types.get(name, "")) for name, value in zip(names, key)}
        try:
            rendered[key] = renderer.piece(None, user, {})
        except RenderError as exc:
            raise RenderError(f"unit {ids[keys.index(key)]}: {exc}") from None
    return [Piece(variant.id, str(uid), r.prompt, r.messages, error=r.error, recorded=r.recorded, personal=r.personal,
                  seed=r.seed, rubric=r.rubric)
            for uid, key in zip(ids[:n], keys) for r in (rendered[key],)]
