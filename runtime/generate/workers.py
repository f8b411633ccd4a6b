"""More than one core for the calls: worker processes, each with its own event loop and its own store connection.

One process spends most of a call's CPU in the HTTP client (building the
request, parsing the reply), so on a machine with more cores than one,
:func:`run` forks ``workers`` processes after everything is prepared (plan,
rendered messages, credentials, imports), deals the tasks out to them in turn
and waits. Each worker makes its share of the calls with
:func:`expc.runtime.generate.calls.run` (concurrency and rate limits divided
among the workers), through its own connection to the same content store:
SQLite in WAL mode lets several processes write one file, each completed call
committed on its own as before (the store's ``busy_timeout`` makes a writer
wait for another's commit instead of failing), so a killed worker loses
nothing that finished.

Shared between the workers: the money spent (a budget is the run's, not a
worker's: a call starts only while the total is below it) and a halt flag (a
call that fails for good, in any worker, stops every worker from starting new
calls, as in one process). The parent sends each worker's finished tasks back
into its own :class:`~.calls.Task` objects as they arrive, so progress and
results are as with one process.

Fork only (Linux, macOS): where a platform cannot fork, the calls run in one
process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue as queue_mod
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .calls import Limits, Outcome, Task
from .routing import Route
from .store import Store

POLL_SECONDS = 0.5  # how often the parent checks that its workers are alive while it waits


class Shared:
    """The run's state every worker reads and adds to: money spent, and whether a worker halted the run."""

    def __init__(self, context: Any) -> None:
        """Shared memory from a multiprocessing ``context`` (made before the workers fork)."""
        self._spent = context.Value("d", 0.0)
        self._halt = context.Event()

    def add(self, cost: float) -> None:
        """Count a call's cost."""
        with self._spent.get_lock():
            self._spent.value += cost

    def spent(self) -> float:
        """What every worker's calls cost so far."""
        return float(self._spent.value)

    def halt(self) -> None:
        """Stop every worker from starting a call (a call failed for good)."""
        self._halt.set()

    def halted(self) -> bool:
        """True once a worker halted the run."""
        return bool(self._halt.is_set())


def available() -> bool:
    """True when worker processes can be forked here."""
    return "fork" in multiprocessing.get_all_start_methods()


def run(tasks: list[Task], store: Store, limits: Limits, on_task_done: Callable[[Task], None] | None,
        secrets: tuple[str, ...], workers: int) -> Outcome:
    """Make the calls ``tasks`` need with ``workers`` forked processes; the merged outcome."""
    from . import calls

    context = multiprocessing.get_context("fork")
    shared = Shared(context)
    results: Any = context.Queue()
    share = replace(limits, concurrency=max(1, -(-limits.concurrency // workers)), workers=1)
    for task in tasks:  # a deployment's limits are the run's: each worker gets its part
        if task.target.routes:
            task.target = replace(task.target, routes=tuple(_part(r, workers) for r in task.target.routes))
    if any(calls.route(m, t.target.params) == "openai" for t in tasks for m in t.target.models()):
        import openai  # noqa: F401  (imported once, here, rather than once per worker)
    dealt = [list(range(w, len(tasks), workers)) for w in range(workers)]
    procs = [context.Process(target=_worker, args=(calls, tasks, mine, store.path, share, secrets, results, shared),
                             name=f"expc-generate-{w}", daemon=True) for w, mine in enumerate(dealt) if mine]
    gc.freeze()  # the workers' collections then leave the parent's objects (and their shared pages) alone
    try:
        for proc in procs:
            proc.start()
    finally:
        gc.unfreeze()
    outcome = Outcome()
    ended = 0
    try:
        while ended < len(procs):
            try:
                message = results.get(timeout=POLL_SECONDS)
            except queue_mod.Empty:
                if all(p.exitcode is not None for p in procs):  # a worker died without a word
                    outcome.provider_error = outcome.provider_error or "a worker process stopped unexpectedly"
                    break
                continue
            kind = message[0]
            if kind == "task":
                _apply(tasks[message[1]], message[2])
                if on_task_done is not None:
                    on_task_done(tasks[message[1]])
            elif kind == "end":
                ended += 1
                for index, state in message[2]:
                    _apply(tasks[index], state)
                done: Outcome = message[1]
                outcome.spent += done.spent
                outcome.calls += done.calls
                outcome.budget_exhausted |= done.budget_exhausted
                outcome.provider_error = outcome.provider_error or done.provider_error
            else:  # "crash": the worker's own error, as text
                ended += 1
                outcome.provider_error = outcome.provider_error or f"a worker process failed: {message[1]}"
                shared.halt()
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        results.close()
    return outcome


def _part(route: Route, workers: int) -> Route:
    """A deployment's limits divided among the workers (rounded up: never below one call a minute)."""
    return replace(route, rpm=-(-route.rpm // workers) if route.rpm else None,
                   tpm=-(-route.tpm // workers) if route.tpm else None)


def _state(task: Task) -> tuple[Any, ...]:
    return (task.records, task.calls, task.cost, task.error, task.done)


def _apply(task: Task, state: tuple[Any, ...]) -> None:
    task.records, task.calls, task.cost, task.error, task.done = state
    task.records = list(task.records)


def _worker(calls: Any, tasks: list[Task], mine: list[int], path: Any, limits: Limits, secrets: tuple[str, ...],
            results: Any, shared: Shared) -> None:
    """One worker process: its tasks' calls on its own event loop and store connection; reports back, then exits."""
    code = 0
    try:
        own = [tasks[i] for i in mine]
        index = {id(t): i for t, i in zip(own, mine)}
        with Store(path) as store:
            outcome = calls.run(own, store, limits,
                                lambda task: results.put(("task", index[id(task)], _state(task))), secrets, shared)
        results.put(("end", outcome, [(index[id(t)], _state(t)) for t in own]))
    except BaseException as exc:  # reported to the parent as one line; never a traceback on the terminal
        results.put(("crash", f"{type(exc).__name__}: {str(exc)[:300]}"))
        code = 1
    finally:
        results.close()
        results.join_thread()
        os._exit(code)  # nothing of the parent's (its store connection, its exit hooks) runs here
