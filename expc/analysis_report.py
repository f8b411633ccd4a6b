"""What ``expc analyze`` renders: its result as a report dict, for the run's renderers (runtime/report).

``expc analyze --format json`` prints the evaluation's dict as it is (the keys
of report.json from ``method`` to ``excluded``). For ``text`` and ``md`` that
dict gets the experiment's identity and the spec's hash, the keys a run's
report starts with, so that :func:`expc.runtime.report.terminal.print_summary`
and :func:`expc.runtime.report.markdown.render_markdown` show an analysis in
the same words as a run's summary and report.md.
"""

from __future__ import annotations

from typing import Any

from expc.compiler.plan import Plan

__all__ = ["analysis_report"]


def analysis_report(plan: Plan, result: dict[str, Any]) -> dict[str, Any]:
    """The report dict of one analysed look: ``result`` with the experiment and spec hash in front."""
    return {
        "report_version": 1,
        "simulated": False,
        "experiment": {k: getattr(plan.experiment, k) for k in ("id", "name", "hypothesis", "owner")},
        "spec_sha256": plan.spec_sha256,
        **result,
    }
