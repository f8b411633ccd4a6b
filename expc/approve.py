"""``expc approve``: record the current content's hashes in the spec's lock file.

The content is read from the content store, never generated here: what
``expc generate`` (or ``expc run``) made with the same options is what a
reviewer saw in the review sheet, and the store gives back exactly it (no
call is made; content missing from the store is one line, exit 1). With a run
directory, the content is the run's: its units (drawn again for a simulated
run) and its store. The lock is ``<spec-stem>.approved.yaml`` beside the spec
(see :mod:`expc.runtime.approvals`).
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
                 variants: tuple[str, ...] | None = None, date: str | None = None,
                 run_dir: Path | None = None) -> Approved:
    """Approve the stored content of ``variants`` (None: every variant) of ``plan``, writing the spec's lock file.

    With ``run_dir``, the content is what the run there shows (:func:`run_items`), not ``units`` and ``store``.
    """
    from expc.runtime.approvals import approve, hashed_items, lock_path, read_lock, write_lock

    path = lock_path(spec)
    before = read_lock(path)  # a bad lock is refused before any work
    if run_dir is not None:
        items = run_items(plan, run_dir, opts)
        if variants is not None:
            items = [i for i in items if i.variant in variants]
    else:
        from dataclasses import replace

        items = stored_items(plan, units, store, replace(opts, variants=variants))
    hashed = hashed_items(items)
    day = date or datetime.now(UTC).date().isoformat()
    after = approve(before, plan.experiment.id, hashed, reviewer, day, variants)
    known = before.idents() if before is not None else set()
    write_lock(path, after)
    return Approved(path, sum(h.ident not in known for h in hashed), sum(h.ident in known for h in hashed))


def run_items(plan: Plan, run_dir: Path, opts: GenerateOptions) -> list[Any]:
    """The items the run in ``run_dir`` shows, from its content store: the same units, drawn or read, as the run.

    A simulated run's units are drawn again from its seed (the draw is
    deterministic) and its per-unit copy is bounded as the run bounds it; a
    run on data reads the units file it was given. Raises
    :class:`~expc.runtime.approvals.ApprovalError` when ``run_dir`` holds no
    run of this experiment.
    """
    import math
    from dataclasses import replace

    from expc.runtime.approvals import ApprovalError
    from expc.runtime.assign import assign
    from expc.runtime.generate.jobs import per_unit_variants
    from expc.runtime.run import SIMULATED_ITEMS_PER_VARIANT, STORE_NAME
    from expc.runtime.rundir import started_run
    from expc.runtime.units import Units

    identity = started_run(run_dir)
    if identity is None or identity.get("experiment") != plan.experiment.id:
        raise ApprovalError(f"{run_dir}: holds no run of experiment `{plan.experiment.id}` (run `expc run` first)")
    units: Any = None
    limit = None
    if identity.get("simulated"):
        from expc.runtime.synthetic import draw_units

        if plan.simulation is None:
            raise ApprovalError(f"{run_dir}: a simulated run, but the spec has no `simulation` block")
        units, _ = draw_units(plan, max(1, math.ceil(plan.simulation.looks[-1].day)), int(identity.get("seed") or 0))
        limit = SIMULATED_ITEMS_PER_VARIANT
    elif isinstance((identity.get("inputs") or {}).get("units"), str):
        from expc.runtime.tables import read_units

        units = read_units(identity["inputs"]["units"], plan.attributes, plan.assignment.unit)
    if units is not None:
        inside = assign(plan, units).variant >= 0
        units = Units({k: v[inside] for k, v in units.columns.items()}, units.types)
    else:  # a run without units generates no per-unit copy
        opts = replace(opts, variants=tuple(v.id for v in plan.variants if v.id not in per_unit_variants(plan)))
    return stored_items(plan, units, run_dir / STORE_NAME, replace(opts, max_items_per_variant=limit))
