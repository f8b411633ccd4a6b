"""Personal data: which attributes a prompt reads, and so sends to its model.

An attribute marked ``pii: true`` is personal data. A prompt may send one to
its model only when it lists it in ``send_pii``; the compiler refuses a
template that reads one it does not list (E095), ``expc plan`` shows what each
prompt sends where, and the runtime neither gives a template a personal value
its prompt may not send nor writes one in plain text (see
:mod:`expc.runtime.generate.personal`).

A template *reads* an attribute when it uses ``user.<name>`` or
``segment.<name>``; a template that uses ``user`` as a whole (a loop over it,
``user | tojson``) reads every attribute its prompt may send, and the whole
``segment`` reads the attributes its variants segment by. The system text is
analysed like the template: what it names is sent too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .model import Prompt
from .templates import analyse

__all__ = ["Reads", "prompt_reads", "template_reads", "withheld"]

_OBJECTS = ("user", "segment")


@dataclass(frozen=True)
class Reads:
    """What one template reads of the unit: attributes by name, and whether it reads ``user`` or ``segment`` whole."""

    fields: frozenset[str]
    whole_user: bool = False
    whole_segment: bool = False


def template_reads(source: str) -> Reads:
    """The attributes ``source`` reads (``user.x``, ``segment.x``) and its whole-object reads (none if it fails)."""
    uses = analyse(source).uses
    fields = frozenset(u.name.split(".", 1)[1] for u in uses
                       if u.kind == "field" and u.name.split(".", 1)[0] in _OBJECTS)
    return Reads(fields,
                 whole_user=any(u.kind == "whole" and u.name == "user" for u in uses),
                 whole_segment=any(u.kind == "whole" and u.name == "segment" for u in uses))


def withheld(prompt: Prompt, pii: Collection[str]) -> frozenset[str]:
    """The personal attributes ``prompt`` may not send (those of ``pii`` it does not list in ``send_pii``)."""
    return frozenset(pii) - set(prompt.send_pii)


def prompt_reads(prompt: Prompt, attributes: Sequence[str], pii: Collection[str] = (),
                 segment_by: Iterable[str] = ()) -> list[str]:
    """The declared ``attributes`` the prompt's system text, template and judge's rubric read, in declaration order.

    Reading ``user`` whole reads every attribute but the personal ones the
    prompt may not send (the runtime never gives it those); reading
    ``segment`` whole reads ``segment_by``.
    """
    read: set[str] = set()
    segment = set(segment_by)
    hidden = withheld(prompt, pii)
    for source in (prompt.system, prompt.template, prompt.checks.judge.rubric if prompt.checks.judge else None):
        if source is None:
            continue
        found = template_reads(source)
        read |= found.fields
        if found.whole_user:
            read |= set(attributes) - hidden
        if found.whole_segment:
            read |= segment
    return [name for name in attributes if name in read]
