"""Batch mode: the calls go through the provider's batch API, and each result lands in the content store.

``expc generate --batch`` (or ``generation.batch: true``) hands the requests
that the store cannot answer to :func:`run` instead of
:func:`~.calls.run`. For an OpenAI-compatible provider (litellm's ``openai``,
``hosted_vllm`` and ``litellm_proxy``) it calls that API with the ``openai``
client (see :class:`_Clients` for why not litellm's files and batches
functions; litellm still names the provider and prices the results), and

1. writes each request as one JSON line (``custom_id`` is the request's store
   key, the body what a live call would send: model, messages, seed and the
   prompt's parameters) and uploads the file (``POST /v1/files``),
   at most :data:`MAX_REQUESTS_PER_BATCH` requests and
   :data:`MAX_INPUT_BYTES` per file;
2. records the input file's id in the store's ``batches`` table, creates the
   batch (``POST /v1/batches``, ``/v1/chat/completions``, 24 h, expc's
   id for it in ``metadata``) and records its id, each committed before the
   next step: a process stopped at any point after the upload never uploads
   or submits those requests again (a creation whose reply was lost is looked
   for in the provider's list of batches before another is created);
3. polls every open batch (``GET /v1/batches/{id}``): at once, then after
   :attr:`Polling.first` seconds, twice as long each time up to
   :attr:`Polling.cap`; an invocation waits at most :attr:`Polling.max_wait`
   seconds in all, then stops (exit 3) with the batches recorded: the same
   command picks them up (a re-run submits nothing the open batches hold);
4. once a batch ends, downloads its output and error files
   (``GET /v1/files/{id}/content``, at most :data:`MAX_OUTPUT_BYTES` each) and
   stores every answered request under its key, the key a live call uses, so
   a later live run (or ``expc run``) finds it; then marks the batch closed.

A result is judged by the prompt's checks as a live reply is
(:func:`~.checks.check_text`): a reply that fails them is regenerated with the
next seed in another batch (up to ``regenerate`` more attempts), then
``on_fail`` applies, as for live calls. The cost of each result is litellm's
batch price (``batch_cost_calculator``: the model's batch rates, else half its
rates), and counts against ``max_cost``; no new batch is submitted once the
budget is reached (a batch's cost is known only once it ends).

Requests a batch does not answer (a line with an error, or the batch expired,
was cancelled or failed as a whole) are made by live calls in the same
invocation (:func:`~.calls.run`: retries, the budget, ``on_fail``), and a
note says how many. A model without a batch API expc can use is called live
too, with a note; the built-in offline model has none: its requests are
served directly (instantly, free) and the note says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import calls as calls_mod
from . import replies
from .calls import Limits, Outcome, Target, Task
from .checks import check_text
from .offline import is_offline
from .store import Record, Store

BATCH_PROVIDERS = frozenset({"openai", "hosted_vllm", "litellm_proxy"})
"""litellm providers whose files and batches endpoints are OpenAI's."""
ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_REQUESTS_PER_BATCH = 10_000
MAX_INPUT_BYTES = 100 * 1024 * 1024
"""Largest input file uploaded (OpenAI accepts 200 MB): more requests go to another batch."""
MAX_OUTPUT_BYTES = 256 * 1024 * 1024
"""Largest output or error file read back from the provider."""
TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})


@dataclass(frozen=True)
class Polling:
    """How long and how often to poll: ``first`` seconds, doubling to ``cap``, ``max_wait`` in all (seconds)."""

    first: float = 5.0
    cap: float = 300.0
    max_wait: float = 24 * 3600.0
    max_requests: int = MAX_REQUESTS_PER_BATCH


@dataclass
class BatchOutcome(Outcome):
    """What :func:`run` did: :class:`~.calls.Outcome`'s counts, plus notes for a person and batches left running."""

    notes: list[str] = field(default_factory=list)
    waiting: str | None = None  # set when batches were still running at the end of the wait: why, and what to do
    batched: int = 0  # results that came back through a batch in this invocation


def batchable(target: Target) -> bool:
    """True when ``target``'s provider has a batch API expc can use (OpenAI-compatible) and no routing applies."""
    return not is_offline(target.model) and not getattr(target, "routes", ()) and _provider(target) is not None


def _why_live(target: Target) -> str:
    """Why a request is not batched, in a few words."""
    if is_offline(target.model):
        return "the offline model has no batch API: served directly"
    if getattr(target, "routes", ()):
        return "a prompt with deployments is routed live"
    return f"{target.model[:80]} has no batch API expc can use (OpenAI-compatible only): made live"


def run(tasks: list[Task], store: Store, limits: Limits, on_task_done: Callable[[Task], None] | None = None,
        secrets: tuple[str, ...] = (), polling: Polling = Polling()) -> BatchOutcome:
    """Make the calls ``tasks`` need through batches where the provider has them, live otherwise.

    Returns when every task is done, or the wait ran out (``waiting``), or
    the budget or the provider stopped the run (as :func:`~.calls.run`).
    """
    outcome = BatchOutcome()
    direct = [t for t in tasks if not batchable(t.target)]
    batched = [t for t in tasks if batchable(t.target)]
    reasons: dict[str, int] = {}
    for task in direct:
        why = _why_live(task.target)
        reasons[why] = reasons.get(why, 0) + 1
    outcome.notes.extend(f"batch mode: {why} ({n} request(s))" for why, n in list(reasons.items())[:5])
    if direct:
        _merge(outcome, calls_mod.run(direct, store, limits, on_task_done, secrets))
    if batched and not (outcome.provider_error or outcome.budget_exhausted):
        session = _Session(store, limits, polling, outcome, on_task_done, secrets)
        leftover = asyncio.run(session.rounds(batched))
        if leftover and not (outcome.waiting or outcome.provider_error or outcome.budget_exhausted):
            outcome.notes.append(f"batch mode: {len(leftover)} request(s) the batches did not answer "
                                 f"({session.why_unanswered()}) were made live")
            spent = replace(limits, already_spent=limits.already_spent + outcome.spent)
            _merge(outcome, calls_mod.run(leftover, store, spent, on_task_done, secrets))
    return outcome


def _merge(outcome: BatchOutcome, other: Outcome) -> None:
    outcome.calls += other.calls
    outcome.spent += other.spent
    outcome.budget_exhausted |= other.budget_exhausted
    outcome.provider_error = outcome.provider_error or other.provider_error


def _provider(target: Target) -> tuple[str, str] | None:
    """(the model's name at the provider, the litellm provider) when the provider has an OpenAI batch API."""
    litellm = _litellm()

    try:
        name, provider, _, _ = litellm.get_llm_provider(target.model, api_base=target.api_base)
    except Exception:  # an unknown provider: live calls say what is wrong
        return None
    return (name, provider) if provider in BATCH_PROVIDERS else None


class _Clients:
    """One ``openai.AsyncOpenAI`` per (base URL, key) for the files and batches calls, closed at the end.

    litellm's files and batches functions build a new client for every call
    and never close it (the clients then fail noisily at exit, and a download
    leaves a coroutine unawaited): the OpenAI-compatible batch API is the
    openai client's own, so expc calls it directly (no retries of its own).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.made: dict[tuple[str, str], Any] = {}

    def get(self, target: Target) -> Any:
        """The client for ``target``'s server and key (the key a live call to it sends)."""
        import openai

        base = (target.api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
                or "https://api.openai.com/v1")
        if target.key_env:
            key = os.environ.get(target.key_env, "")
        elif target.placeholder_key:
            key = calls_mod.PLACEHOLDER_KEY
        else:
            key = os.environ.get("OPENAI_API_KEY") or calls_mod.PLACEHOLDER_KEY
        client = self.made.get((base, key))
        if client is None:
            client = self.made[(base, key)] = openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0,
                                                                 timeout=self.timeout)
        return client

    async def close(self) -> None:
        """Close every client while the event loop still runs."""
        for client in self.made.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.made.clear()


class _ControlFailed(Exception):
    """A files or batches call failed after its retries, or in a way retries cannot fix."""


@dataclass
class _Open:
    """A batch in flight (recorded in the store under ``local_id``) and the target its calls go to."""

    local_id: str
    state: dict[str, Any]
    target: Target
    failures: int = 0


class _Session:
    """One invocation's batches: submit, poll, collect; every step recorded in the store first."""

    def __init__(self, store: Store, limits: Limits, polling: Polling, outcome: BatchOutcome,
                 on_task_done: Callable[[Task], None] | None, secrets: tuple[str, ...]) -> None:
        self.store, self.limits, self.polling, self.outcome = store, limits, polling, outcome
        self.on_task_done, self.secrets = on_task_done, secrets
        self.unanswered: dict[str, int] = {}  # why requests came back without a reply -> how many
        self.missing: set[str] = set()  # keys an ended batch did not answer
        self.prices: dict[tuple[str, str], Any] = {}
        self.clients = _Clients(limits.timeout)

    def why_unanswered(self) -> str:
        """The reasons requests came back unanswered, most frequent first, with their counts."""
        ranked = sorted(self.unanswered.items(), key=lambda kv: -kv[1])
        return "; ".join(f"{n}: {why}" for why, n in ranked[:3]) or "none"

    async def rounds(self, tasks: list[Task]) -> list[Task]:
        """Every attempt of ``tasks`` through batches; the tasks left for live calls."""
        leftover: list[Task] = []
        todo = tasks
        try:
            with replies.bounded(MAX_OUTPUT_BYTES):
                for _ in range(max(t.attempts_allowed for t in tasks)):  # one round per attempt at most
                    if not todo:
                        break
                    todo, missed = await self._round(todo)
                    leftover.extend(missed)
                    if self.outcome.waiting or self.outcome.provider_error:
                        break
        finally:
            await self.clients.close()
        return leftover

    async def _round(self, tasks: list[Task]) -> tuple[list[Task], list[Task]]:
        """Submit (or pick up) one attempt of each task, poll, collect: (tasks for the next round, unanswered)."""
        by_key: dict[str, list[Task]] = {}
        for task in tasks:
            by_key.setdefault(task.key(task.start_attempt), []).append(task)
        running: list[_Open] = []
        covered: set[str] = set()
        for local_id, state in self.store.open_batches():
            keys = [k for k in state.get("requests", {}) if k in by_key]
            if keys:  # a batch of an earlier invocation holds some of these requests: wait for it
                running.append(_Open(local_id, state, by_key[keys[0]][0].target))
                covered.update(state["requests"])
        fresh = [key for key in by_key if key not in covered]
        try:
            running.extend(await self._submit(fresh, by_key))
            for batch in running:
                if not batch.state.get("batch_id"):
                    await self._create(batch)
            await self._poll(running, by_key)
        except _ControlFailed as exc:
            self.outcome.provider_error = self.outcome.provider_error or str(exc)
        next_round: list[Task] = []
        unanswered: list[Task] = []
        for key, group in by_key.items():
            for task in group:
                if task.done:
                    continue
                if task.key(task.start_attempt) != key:  # its reply failed the checks: the next attempt
                    next_round.append(task)
                elif key in self.missing:
                    unanswered.append(task)
        return next_round, unanswered

    async def _submit(self, keys: list[str], by_key: dict[str, list[Task]]) -> list[_Open]:
        """Upload and record the requests of ``keys`` in files of at most the limits; the batches to create."""
        made: list[_Open] = []
        groups: dict[tuple[str, str | None, str | None, bool], list[str]] = {}
        for key in keys:
            target = by_key[key][0].target
            groups.setdefault((target.model, target.api_base, target.key_env, target.placeholder_key), []).append(key)
        for group in groups.values():
            target = by_key[group[0]][0].target
            lines: list[bytes] = []
            requests: dict[str, dict[str, Any]] = {}
            size = 0
            for key in group:
                task = by_key[key][0]
                line, recorded = self._line(task, key)
                if lines and (len(lines) >= self.polling.max_requests or size + len(line) > MAX_INPUT_BYTES):
                    if self._over_budget():
                        return made
                    made.append(await self._upload(target, lines, requests))
                    lines, requests, size = [], {}, 0
                lines.append(line)
                requests[key] = recorded
                size += len(line)
            if lines:
                if self._over_budget():
                    return made
                made.append(await self._upload(target, lines, requests))
        return made

    def _over_budget(self) -> bool:
        """True (and the outcome says so) once the budget is spent: no new batch is submitted."""
        limits = self.limits
        if limits.max_cost is not None and limits.already_spent + self.outcome.spent >= limits.max_cost:
            self.outcome.budget_exhausted = True
        return self.outcome.budget_exhausted

    def _line(self, task: Task, key: str) -> tuple[bytes, dict[str, Any]]:
        """The request as one line of the input file, and as the store records it."""
        seed = task.seed + task.start_attempt
        try:
            kwargs = calls_mod._arguments(task.target, task.messages, seed, self.limits.timeout)
        except calls_mod._Fatal as exc:
            raise _ControlFailed(str(exc)) from None
        name, _ = _provider(task.target) or (task.target.model, "")
        body = {k: v for k, v in kwargs.items()
                if k not in ("timeout", "max_retries", "drop_params", "api_base", "api_key")}
        body["model"] = name
        line = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
        recorded = {"params": task.target.params, "seed": seed,
                    "messages": task.recorded if task.recorded is not None else task.messages}
        return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"), recorded

    async def _upload(self, target: Target, lines: list[bytes], requests: dict[str, dict[str, Any]]) -> _Open:
        """Upload one input file and record it (before any batch is created from it)."""
        local_id = uuid.uuid4().hex
        client = self.clients.get(target)
        created = await self._control(lambda: client.files.create(
            file=(f"expc-{local_id}.jsonl", b"".join(lines), "application/jsonl"), purpose="batch"),
            "uploading the batch's input file")
        state: dict[str, Any] = {"model": target.model, "api_base": target.api_base,
                                 "input_file_id": str(created.id), "batch_id": None, "status": "uploaded",
                                 "requests": requests, "submitted": time.time()}
        self.store.put_batch(local_id, state)
        return _Open(local_id, state, target)

    async def _create(self, batch: _Open) -> None:
        """Create the batch from its recorded input file, and record its id (before polling it)."""
        client = self.clients.get(batch.target)
        created = await self._created_before(batch) if batch.state.get("status") == "creating" else None
        if created is None:
            batch.state["status"] = "creating"  # from here on, a batch may exist that expc has no id of
            self.store.put_batch(batch.local_id, batch.state)
            created = await self._control(lambda: client.batches.create(
                completion_window=COMPLETION_WINDOW, endpoint=ENDPOINT, input_file_id=batch.state["input_file_id"],
                metadata={"expc_batch": batch.local_id}), "creating the batch", ambiguous_is_fatal=True)
        batch.state.update(batch_id=str(created.id), status=str(getattr(created, "status", "") or "validating"))
        self.store.put_batch(batch.local_id, batch.state)

    async def _created_before(self, batch: _Open) -> Any | None:
        """The batch an interrupted creation may have made: found by the id expc put in its metadata."""
        client = self.clients.get(batch.target)
        listed = await self._control(lambda: client.batches.list(limit=100),
                                     "looking for a batch whose creation was interrupted")
        for item in getattr(listed, "data", None) or []:
            metadata = getattr(item, "metadata", None) or {}
            if isinstance(metadata, dict) and metadata.get("expc_batch") == batch.local_id:
                return item
        return None

    async def _poll(self, running: list[_Open], by_key: dict[str, list[Task]]) -> None:
        """Poll until every batch ended (collecting each as it ends) or the wait ran out."""
        deadline = time.monotonic() + self.polling.max_wait
        wait = self.polling.first
        pending = list(running)
        while pending:
            for batch in list(pending):
                try:
                    info = await asyncio.wait_for(self.clients.get(batch.target).batches.retrieve(
                        batch.state["batch_id"]), self.limits.timeout + 10)
                except Exception as exc:
                    status = getattr(exc, "status_code", None)
                    if status == 404:  # the provider does not know it: nothing there to pay for or collect
                        self._close(batch, "not found at the provider", by_key)
                        pending.remove(batch)
                        continue
                    batch.failures += 1
                    if not (_unanswered(exc) or calls_mod._retryable(exc, status)) \
                            or batch.failures >= self.limits.max_tries:
                        raise _ControlFailed(self._said(f"polling batch {batch.state['batch_id']}", exc)) from None
                    continue
                batch.failures = 0
                status = str(getattr(info, "status", "") or "")
                if status in TERMINAL:
                    await self._collect(batch, info, by_key)
                    pending.remove(batch)
                elif status != batch.state.get("status"):
                    batch.state["status"] = status
                    self.store.put_batch(batch.local_id, batch.state)
            if not pending:
                return
            if time.monotonic() + wait > deadline:
                ids = ", ".join(str(b.state["batch_id"])[:80] for b in pending[:3])
                self.outcome.waiting = (
                    f"{len(pending)} batch(es) still running after {self.polling.max_wait:g} s of polling ({ids}"
                    f"{', ...' if len(pending) > 3 else ''}); they are recorded in {self.store.path}: run the same "
                    "command again to collect them (nothing is submitted twice)")
                return
            await asyncio.sleep(wait * random.uniform(0.9, 1.1))
            wait = min(wait * 2, self.polling.cap)

    async def _collect(self, batch: _Open, info: Any, by_key: dict[str, list[Task]]) -> None:
        """Download an ended batch's results, store each answered request, then close the batch."""
        answered: set[str] = set()
        reasons: dict[str, str] = {}
        # stored by an earlier collection of this batch that was stopped before closing it: not counted again
        stored = set(self.store.get_many(k for k in batch.state["requests"] if k not in by_key))
        for which in ("output_file_id", "error_file_id"):
            file_id = getattr(info, which, None)
            if not file_id:
                continue
            for line in (await self._download(batch, str(file_id))).splitlines():
                key, record, reason = self._result(batch, line)
                if key is None or key not in batch.state["requests"] or key in answered or key in stored:
                    continue
                if record is None:
                    reasons.setdefault(key, reason or "no reply")
                    continue
                answered.add(key)
                waiting = by_key.get(key)
                if waiting and not record.checks:  # stored judged, as a live call's record is
                    record = replace(record, checks=check_text(record.content, waiting[0].checks))
                if record.content is not None:
                    self.store.put(record)
                self._apply(key, record, by_key)
        status = str(getattr(info, "status", ""))
        for key in batch.state["requests"]:
            if key not in answered and key in by_key:
                why = reasons.get(key) or f"the batch {status}"
                self.unanswered[why] = self.unanswered.get(why, 0) + 1
        self._close(batch, status, by_key, answered)

    def _close(self, batch: _Open, status: str, by_key: dict[str, list[Task]],
               answered: set[str] | None = None) -> None:
        """Mark an ended batch collected; its requests without an answer go to live calls."""
        batch.state["status"] = status
        self.store.put_batch(batch.local_id, batch.state, open=False)
        for key in batch.state["requests"]:
            if key not in (answered or ()) and key in by_key:
                self.missing.add(key)
        if status == "not found at the provider":
            n = len(batch.state["requests"])
            self.unanswered[status] = self.unanswered.get(status, 0) + n

    async def _download(self, batch: _Open, file_id: str) -> str:
        client = self.clients.get(batch.target)
        content = await self._control(lambda: client.files.content(file_id), "downloading the batch's results")
        data = getattr(content, "content", content)
        if isinstance(data, str):
            return data
        return bytes(data).decode("utf-8", errors="replace")

    def _result(self, batch: _Open, line: str) -> tuple[str | None, Record | None, str | None]:
        """One output line: its key, and its record (None with a reason when the request failed)."""
        try:
            entry = json.loads(line)
        except ValueError:
            return None, None, None
        if not isinstance(entry, dict) or not isinstance(entry.get("custom_id"), str):
            return None, None, None
        key = entry["custom_id"]
        response = _obj(entry.get("response"))
        error = entry.get("error")
        status = response.get("status_code")
        body = _obj(response.get("body"))
        if error or status != 200:
            code = _obj(error).get("code") or _obj(body.get("error")).get("code")
            why = f"{str(code)[:60] if code else 'error'}" + (f" (HTTP {status})" if status and status != 200 else "")
            return key, None, why
        choices = body.get("choices")
        first = _obj(choices[0]) if isinstance(choices, list) and choices else {}
        content = _obj(first.get("message")).get("content")
        if not isinstance(content, str):
            return key, None, "the reply has no choices"
        usage = _obj(body.get("usage"))
        prompt_tokens = _int(usage.get("prompt_tokens"))
        completion_tokens = _int(usage.get("completion_tokens"))
        cost = self._cost(batch.target, prompt_tokens, completion_tokens)
        request = batch.state["requests"][key]
        record = Record(key=key, model=batch.state["model"], api_base=batch.state["api_base"], request=request,
                        content=content, response_model=str(body.get("model") or "") or None,
                        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        cost=cost if cost is not None else 0.0, cost_known=cost is not None,
                        latency=round(max(0.0, time.time() - float(batch.state.get("submitted") or time.time())), 4),
                        attempts=1, checks=[])
        if len(content) > self.limits.max_content_chars:  # counted as a reply that failed its checks, never stored
            record = replace(record, content=None, checks=[
                f"the reply is {len(content):,} characters, over the {self.limits.max_content_chars:,}-character "
                "limit"])
        return key, record, None

    def _apply(self, key: str, record: Record, by_key: dict[str, list[Task]]) -> None:
        """A result reaches the tasks waiting for it: judged by their checks, counted once, then done or next."""
        self.outcome.calls += 1
        self.outcome.spent += record.cost
        self.outcome.batched += 1
        for n, task in enumerate(by_key.get(key, [])):
            judged = task.reuse(record) if record.content is not None else record
            task.records.append(judged)
            if n == 0:
                task.calls += 1
                task.cost += record.cost
            self._advance(task)

    def _advance(self, task: Task) -> None:
        """After a result: done when it passed or no attempt is left; else the next attempt (the store first)."""
        while task.records and task.records[-1].checks and len(task.records) < task.attempts_allowed:
            attempt = task.start_attempt + 1
            task.start_attempt = attempt
            stored = self.store.get_many([task.key(attempt)]).get(task.key(attempt))
            if stored is None:
                return
            task.records.append(task.reuse(stored))
        task.done = True
        if self.on_task_done is not None:
            self.on_task_done(task)

    def _cost(self, target: Target, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The batch price of a result (litellm's batch rates), None when the model has no price."""
        litellm = _litellm()
        from litellm.cost_calculator import batch_cost_calculator

        name, provider = _provider(target) or (target.model, "openai")
        if (name, provider) not in self.prices:
            try:
                self.prices[(name, provider)] = litellm.get_model_info(model=name, custom_llm_provider=provider)
            except Exception:
                self.prices[(name, provider)] = None
        info = self.prices[(name, provider)]
        if not info or info.get("input_cost_per_token") is None:
            return None
        usage = litellm.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              total_tokens=prompt_tokens + completion_tokens)
        prompt_cost, completion_cost = batch_cost_calculator(usage=usage, model=name, custom_llm_provider=provider,
                                                             model_info=info)
        return float(prompt_cost) + float(completion_cost)

    async def _control(self, call: Callable[[], Any], what: str, ambiguous_is_fatal: bool = False) -> Any:
        """A files or batches call, retried on 429 and 5xx with backoff (on timeouts and lost connections too,
        unless ``ambiguous_is_fatal``: a batch created without our knowing would be paid twice)."""

        for tries in range(1, self.limits.max_tries + 1):
            try:
                return await asyncio.wait_for(call(), self.limits.timeout + 10)
            except Exception as exc:
                if replies.refusal(exc) is not None:  # too large, compressed, redirected elsewhere: again the same
                    raise _ControlFailed(self._said(what, replies.refusal(exc) or exc)) from None
                status = getattr(exc, "status_code", None)
                unanswered = _unanswered(exc)
                if not unanswered and not calls_mod._retryable(exc, status):
                    raise _ControlFailed(self._said(what, exc)) from None
                if ambiguous_is_fatal and unanswered:
                    raise _ControlFailed(self._said(what, exc) + " (the batch may have been created: the same "
                                         "command looks for it before creating another)") from None
                if tries == self.limits.max_tries:
                    raise _ControlFailed(self._said(what, exc)) from None
                backoff = random.uniform(0, min(self.limits.backoff_cap, self.limits.backoff_base * 2 ** (tries - 1)))
                await asyncio.sleep(max(backoff, min(calls_mod._retry_after(exc) or 0.0, self.limits.retry_after_cap)))
        raise _ControlFailed(f"{what}: no try made")  # pragma: no cover - max_tries >= 1

    def _said(self, what: str, exc: BaseException) -> str:
        text = f"batch mode: {what} failed: {type(exc).__name__}: {calls_mod._first_line(str(exc))}"
        return calls_mod._redact(text, self.secrets)


def _litellm() -> Any:
    """litellm, quiet and (unless the user says otherwise) with no network of its own (the runner may not have
    imported it: live OpenAI calls go through the openai client)."""
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _unanswered(exc: BaseException) -> bool:
    """No reply came (a timeout, a lost connection): whatever was asked may have been done, or not."""
    import openai

    return isinstance(exc, (TimeoutError, openai.APIConnectionError))


def _obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a provider's reply is not trusted to be well formed)."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0
