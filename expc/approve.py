"""``expc approve``: record the current content's hashes in the spec's lock file.

The content is read from the content store, never generated here: what
``expc generate`` (or ``expc run``) made with the same options is what a
reviewer saw in the review sheet, and the store gives back exactly it (no
call is made; content missing from the store is one line, exit 1). The lock is
``<spec-stem>.approved.yaml`` beside the spec (see :mod:`expc.runtime.approvals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.plan import Plan
    from expc.runtime.generate.runner import GenerateOptions


@dataclass(frozen=True)
class Approved:
    """What ``expc approve`` did: the lock it wrote, the texts it approved now and those already approved."""

    path: Path
    new: int
    kept: int


def stored_items(plan: Plan, units: Any | None, store: Path, opts: GenerateOptions) -> list[Any]:
    """The plan's items as the store holds them (no call; :class:`NotInStore` for content never generated)."""
    from dataclasses import replace

    from expc.runtime.generate.runner import generate

    return generate(plan, units, store, replace(opts, store_only=True)).items


def approve_spec(spec: str, plan: Plan, units: Any | None, store: Path, opts: GenerateOptions, reviewer: str,
                 variants: tuple[str, ...] | None = None, date: str | None = None) -> Approved:
    """Approve the stored content of ``variants`` (None: every variant) of ``plan``, writing the spec's lock file."""
    from dataclasses import replace

    from expc.runtime.approvals import approve, hashed_items, lock_path, read_lock, write_lock

    path = lock_path(spec)
    before = read_lock(path)  # a bad lock is refused before any work
    items = stored_items(plan, units, store, replace(opts, variants=variants))
    hashed = hashed_items(items)
    day = date or datetime.now(UTC).date().isoformat()
    after = approve(before, plan.experiment.id, hashed, reviewer, day, variants)
    known = before.idents() if before is not None else set()
    write_lock(path, after)
    return Approved(path, sum(h.ident not in known for h in hashed), sum(h.ident in known for h in hashed))
