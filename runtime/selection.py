"""A run's candidate selection: the ``top_k`` candidates its judge scores best, recorded before assignment.

A variant with ``candidates: N`` and ``top_k: K`` cannot know its K arms at
compile time: they are the candidates whose copy the prompt's judge scores
best. Before any unit is assigned, :func:`select_candidates` generates and
judges those candidates' copy (through the run's content store, so nothing is
paid twice), ranks them by their mean score over their items (an item that
failed counts 0; ties go to the lower number), writes ``selection.json`` in the
run folder (the scores, and the kept and dropped arms), and returns the plan
with only the kept ones (:func:`expc.compiler.candidates.with_selection`):
assignment, generation, analysis and the report all work from it. A resumed
run reads the recorded selection instead of choosing again.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from expc.compiler.candidates import with_selection

if TYPE_CHECKING:
    from pathlib import Path

    from expc.compiler.plan import Plan

    from .run import Progress, RunOptions

SELECTION_NAME = "selection.json"
COPY_PER_CANDIDATE = 3  # items of each candidate's copy the record (and the report) shows


def selecting(plan: Plan) -> list[str]:
    """The candidate arms a judge chooses among (of variants with ``top_k``); empty when there is nothing to choose."""
    return [v.id for v in plan.variants if v.candidate_of is not None and v.top_k is not None]


def select_candidates(plan: Plan, options: RunOptions, progress: Progress) -> Plan:
    """The plan with each ``top_k`` variant's best-scored candidates only, the choice recorded in the run folder.

    Raises :class:`~expc.runtime.run.RunError` when the candidates cannot be
    generated or judged (exit 3 for a run that could not finish, 1 for input).
    """
    from .files import write_atomic
    from .generate.judge import candidate_scores, top_k
    from .generate.runner import GenerateOptions, GenerationError, generate
    from .run import STORE_NAME, RunError

    arms = selecting(plan)
    if not arms:
        return plan
    path = options.run_dir / SELECTION_NAME
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            return with_selection(plan, {str(k): [str(a) for a in v] for k, v in recorded["kept"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RunError(f"{path}: not a selection this run can use ({exc}); start afresh with --fresh", 1) from None
    progress.step(f"generating and judging {len(arms)} candidates (top_k)")
    opts = replace(options.generation or GenerateOptions(), variants=tuple(arms))
    units = None
    if options.units_path is not None:  # per-segment copy: the segments the units hold
        from .tables import read_units

        units = read_units(options.units_path, plan.attributes, plan.assignment.unit)
    try:
        result = generate(plan, units, options.run_dir / STORE_NAME, opts, progress=progress.generation)
    except GenerationError as exc:
        resume = (f"\nThe run's state is saved in {options.run_dir}; run the same command again to resume."
                  if exc.exit_code == 3 else "")
        raise RunError(f"choosing the top_k candidates: {exc}{resume}", exc.exit_code) from None
    rejection = result.rejection()
    if rejection:
        raise RunError(f"choosing the top_k candidates: {rejection}; change the prompt, its checks or on_fail and "
                       "run again: stored calls are not repeated")
    scores = candidate_scores(plan, result.items)
    kept = top_k(plan, scores)
    record: dict[str, Any] = {"scores": scores, "kept": kept,
                              "dropped": [a for a in arms if not any(a in k for k in kept.values())],
                              "copy": _copy(result.items)}
    write_atomic(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return with_selection(plan, kept)


def _copy(items: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """A few items of each candidate's copy, with their key, status and score (personal values redacted)."""
    from .generate.personal import redact
    from .run import _key_text

    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        shown = out.setdefault(item.variant, [])
        if len(shown) < COPY_PER_CANDIDATE:
            shown.append({"key": _key_text(item.key), "content": redact(item.content, item.personal),
                          "status": item.status, "score": item.score})
    return out


def candidates_report(run_dir: Path) -> dict[str, Any]:
    """The report's ``candidates`` block (every candidate's score and copy, kept or not); {} without a selection."""
    path = run_dir / SELECTION_NAME
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {"candidates": {k: record.get(k) for k in ("scores", "kept", "dropped", "copy")}}
