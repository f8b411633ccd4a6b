"""What ``expc generate`` shows a person: a live progress bar, then a table per variant (rich, on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[int, int, int, float], None]]:
    """A progress callback ``(done, total, errors, cost)`` that drives a rich bar while the block runs.

    The bar is drawn only when stderr is a terminal; otherwise the callback does nothing.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total, errors, cost: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("errors {task.fields[errors]}"), TextColumn("${task.fields[cost]:.4f}"),
                   TimeElapsedColumn(), console=_console(), transient=False)
    task = bar.add_task("generate", total=None, errors=0, cost=0.0)

    def update(done: int, total: int, errors: int, cost: float) -> None:
        bar.update(task, completed=done, total=total, errors=errors, cost=cost)

    with bar:
        yield update


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
