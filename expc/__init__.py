"""expc: an experiment-as-code compiler for LLM-generated marketing content.

The Python API mirrors the command line::

    import expc

    result = expc.check_file("specs/welcome-email.yaml")   # findings, never raises
    plan = expc.compile_file("specs/welcome-email.yaml")   # the typed plan, or SpecError
    run = expc.run("specs/welcome-email.yaml")             # as `expc run`: run.report is report.json
    expc.simulate(plan, truth="aa").to_dict()              # as `expc simulate --format json`
    expc.analyze(plan, exposures="exp.parquet", events="ev.parquet").to_dict()   # as `expc analyze`

Importing ``expc`` is cheap: the compiler, the statistics and the model
client load on first use (see :mod:`expc.api`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from expc.api import Analysis, analyze, load_plan, run, simulate
from expc.compiler.errors import ExpcError

if TYPE_CHECKING:
    from expc.compiler.diagnostics import Diagnostic
    from expc.compiler.pipeline import CheckResult
    from expc.compiler.plan import Plan

__all__ = ["Analysis", "ExpcError", "SpecError", "analyze", "check_file", "compile_file", "load_plan", "run",
           "simulate"]


class SpecError(ExpcError):
    """A spec has errors; ``diagnostics`` lists them all (exit 1)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        from expc.compiler.diagnostics import format_text

        self.diagnostics = diagnostics
        super().__init__(format_text(diagnostics))


def check_file(path: str | Path) -> CheckResult:
    """Load, validate and check a spec file; every finding, never an exception."""
    from expc.compiler.pipeline import check_file as _check

    return _check(path)


def compile_file(path: str | Path) -> Plan:
    """Check and compile a spec file into its plan; raise SpecError when it has errors."""
    from expc.compiler.compile import compile_plan

    result = check_file(path)
    if not result.ok():
        raise SpecError([d for d in result.diagnostics if d.is_error])
    assert result.doc is not None and result.spec is not None  # ok() means both were read
    return compile_plan(result.doc, result.spec)
