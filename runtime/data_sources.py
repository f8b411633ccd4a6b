"""Where a command reads exposures and events: its flags, else the plan's ``data`` section.

A path on the command line is the user's own choice and may be anywhere. A
path in the spec is relative to the spec's folder and must stay inside it,
symbolic links resolved (the checks of :mod:`expc.compiler.datasources` see
only the text; here the files are there to look at), so a spec from an
untrusted pull request cannot point expc at other files of the machine.
Tables and queries are passed on as they are, in the dialect the spec names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from expc.compiler.errors import ExpcError
from expc.compiler.model import DataSource

from .tables import DataError

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

RELATIONS = ("exposures", "events")


def from_spec(plan: Plan, what: str, base: Path | None) -> DataSource | None:
    """The plan's source of ``what`` with a path made absolute (inside ``base``), or None when it has none."""
    source = getattr(plan.data, what) if plan.data is not None else None
    if source is None or source.path is None:
        return source
    folder = (base or Path.cwd()).resolve()
    resolved = (folder / source.path).resolve()
    if not resolved.is_relative_to(folder):
        raise DataError(f"data.{what}.path {source.path!r} leads outside the spec's folder ({resolved}); a spec may "
                        f"read only files beside it: give other files with --{what}", source.path)
    if resolved.is_dir():
        for found in resolved.rglob("*"):
            if not found.resolve().is_relative_to(folder):
                raise DataError(f"data.{what}.path {source.path!r}: {found} links outside the spec's folder",
                                source.path)
    return source.model_copy(update={"path": str(resolved)})


def sources(plan: Plan, base: Path | None, **paths: str | os.PathLike[str] | None) -> dict[str, DataSource | None]:
    """``exposures`` and ``events``: the flag's path when given (``paths``), else the spec's source, else None."""
    out: dict[str, DataSource | None] = {}
    for what in RELATIONS:
        given = paths.get(what)
        out[what] = DataSource(path=str(given)) if given is not None else from_spec(plan, what, base)
    return out


def required(found: dict[str, DataSource | None]) -> dict[str, DataSource]:
    """Both sources, or an :class:`ExpcError` (exit 2) saying how to give the missing one."""
    for what, source in found.items():
        if source is None:
            raise ExpcError(f"no {what} to read: give --{what} PATH, or say where they are in the spec's "
                            f"`data.{what}` (a table, files or a query)", 2)
    return {what: source for what, source in found.items() if source is not None}
