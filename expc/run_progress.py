"""Progress of ``expc run`` and ``expc generate`` on stderr: a line per step, bars for generation and looks (rich).

stdout stays free for the summary or the JSON report; with ``quiet`` nothing
is shown, and when stderr is not a terminal rich prints no bars at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from expc.compiler.textsafe import terminal_safe
from expc.runtime.run import Progress

if TYPE_CHECKING:
    from rich.progress import TaskID


@contextmanager
def progress_for(quiet: bool) -> Iterator[Progress]:
    """A :class:`Progress` that draws on stderr, or does nothing when ``quiet``."""
    if quiet:
        yield Progress()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bars

    console = Console(stderr=True)
    bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), console=console, transient=False,
                disable=not console.is_terminal)
    tasks: dict[str, TaskID] = {}

    def step(message: str) -> None:  # a message may quote a file name: no markup, no terminal control from it
        console.print(f"[dim]·[/dim] {escape(terminal_safe(message))}")

    def generation(done: int, total: int, errors: int, cost: float) -> None:
        if "generation" not in tasks:
            tasks["generation"] = bars.add_task("content", total=total, extra="")
        bars.update(tasks["generation"], completed=done, total=total,
                    extra=f"{errors} errors, ${cost:.4f}" if errors else f"${cost:.4f}")

    def look(done: int, total: int) -> None:
        if "looks" not in tasks:
            tasks["looks"] = bars.add_task("looks", total=total, extra="")
        bars.update(tasks["looks"], completed=done, total=total)

    with bars:
        yield Progress(step=step, generation=generation, look=look)
