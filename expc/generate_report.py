"""What ``expc generate`` shows a person after its progress bar (``run_progress``): a table per variant.

The table is the generation table of the run's reports
(:func:`expc.runtime.report.rows.generation_table`): the same columns and
number formats, variant ids escaped, every cell plain text (no rich markup).
"""

from __future__ import annotations

from typing import Any

from expc.runtime.report.format import fmt_money
from expc.runtime.report.rows import UNKNOWN_PRICE, generation_table


def variant_table(rows: list[dict[str, Any]], spent: float) -> None:
    """Print the per-variant summary: items, calls made, store hits, failures, tokens, cost."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    shared = generation_table(rows)
    table = Table(title=None, show_edge=False, pad_edge=False)
    for name, numeric in zip(shared.headers, shared.numeric):
        table.add_column(name, justify="right" if numeric else "left")
    for cells in shared.rows:
        table.add_row(*(Text(c) for c in cells))
    console = Console(stderr=True, highlight=False, markup=False, emoji=False)
    console.print(table)
    console.print(Text(f"spent in this run: {fmt_money(spent)}"))
    if any(not row.get("cost_known", True) for row in rows):
        console.print(UNKNOWN_PRICE)
