"""What ``expc generate`` shows a person after its progress bar (``run_progress``): a table per variant (rich, on stderr)."""

from __future__ import annotations

from typing import Any


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def variant_table(rows: list[dict[str, Any]], spent: float) -> None:
    """Print the per-variant summary: items, calls made, store hits, failures, tokens, cost."""
    from rich.table import Table

    table = Table(title=None, show_edge=False, pad_edge=False)
    for name, justify in (("variant", "left"), ("items", "right"), ("calls", "right"), ("store hits", "right"),
                          ("failures", "right"), ("tokens", "right"), ("cost", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    unknown = False
    for row in rows:
        unknown |= not row.get("cost_known", True)
        cost = f"${row['cost']:.4f}" + ("" if row.get("cost_known", True) else " *")
        table.add_row(row["variant"], f"{row['items']:,}", f"{row['calls']:,}", f"{row['store_hits']:,}",
                      f"{row['failures']:,}", f"{row['tokens']:,}", cost)
    console = _console()
    console.print(table)
    console.print(f"spent in this run: ${spent:.4f}")
    if unknown:
        console.print("* a model without a known price: its calls are counted by tokens only, not in the cost")
