"""What ``expc analyze`` renders: its result as a report dict, for the run's renderers (runtime/report).

``expc analyze --format json`` prints the evaluation's dict as it is (the keys
of report.json from ``method`` to ``excluded``). For ``text`` and ``md`` that
dict gets the experiment's identity and the spec's hash, the keys a run's
report starts with, so that :func:`expc.runtime.report.terminal.print_summary`
and :func:`expc.runtime.report.markdown.render_markdown` show an analysis in
the same words as a run's summary and report.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["analysis_report"]


def _field(obj: Any, name: str) -> Any:
    """A plan's field, from the plan's dict or its typed object."""
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def analysis_report(plan: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The report dict of one analysed look: ``result`` with the experiment and spec hash in front."""
    experiment = _field(plan, "experiment")
    return {
        "report_version": 1,
        "simulated": False,
        "experiment": {k: _field(experiment, k) for k in ("id", "name", "hypothesis", "owner")},
        "spec_sha256": _field(plan, "spec_sha256"),
        **result,
    }
