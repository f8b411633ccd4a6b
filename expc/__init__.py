"""expc: an experiment-as-code compiler for LLM-generated marketing content.

The small public Python API::

    from expc import check_file, compile_file

    result = check_file("specs/welcome-email.yaml")   # findings, never raises
    plan = compile_file("specs/welcome-email.yaml")   # the plan, or SpecError

Importing ``expc`` is cheap: the compiler loads on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.diagnostics import Diagnostic
    from expc.compiler.pipeline import CheckResult

__all__ = ["SpecError", "check_file", "compile_file"]


class SpecError(Exception):
    """A spec has errors; ``diagnostics`` lists them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        from expc.compiler.diagnostics import format_text

        self.diagnostics = diagnostics
        super().__init__(format_text(diagnostics))


def check_file(path: str | Path) -> CheckResult:
    """Load, validate and check a spec file; every finding, never an exception."""
    from expc.compiler.pipeline import check_file as _check

    return _check(path)


def compile_file(path: str | Path) -> dict[str, Any]:
    """Check and compile a spec file into its plan; raise SpecError when it has errors."""
    from expc.compiler.compile import compile_plan

    result = check_file(path)
    if not result.ok():
        raise SpecError([d for d in result.diagnostics if d.is_error])
    return compile_plan(result.doc, result.spec)
