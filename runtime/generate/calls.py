"""Model calls: concurrent, timed out, retried with backoff, within a budget, each one stored.

:func:`run` takes the :class:`Task` s that need at least one model call and
works through them with ``concurrency`` workers on one event loop. A task is
one distinct request (rendered messages + model + parameters) whose reply
must pass the prompt's checks: attempt ``k`` uses seed ``base + k`` (a new
store key), up to ``1 + regenerate`` attempts.

One call is tried up to ``max_tries`` times: 429, 5xx, timeouts, refused
connections and broken replies (malformed JSON, no choice) are retried after
an exponential backoff with full jitter, or after the server's
``Retry-After`` when that is longer; anything else (bad request, refused
credentials, unknown model) fails the call at once. litellm's own retries
are off (``max_retries=0``; ``num_retries`` is never passed).

Budget: a call starts only while the money spent on the plan's calls (in
earlier runs, as stored, and in this one) is below the budget; once it is
reached no new call starts, the calls in flight finish and are stored, and
:func:`run` reports the budget as exhausted.

Every completed call (whatever its checks say) is committed to the store
before anything else happens, so a killed process never loses a paid call.

Replies are bounded: the HTTP body to :data:`~.replies.MAX_REPLY_BYTES`
while it is read (:mod:`.replies`), the text to :data:`MAX_CONTENT_CHARS`.
A reply over either bound counts as an attempt whose text failed its checks
(it is regenerated, then ``on_fail`` applies) and is never stored.

Where a call goes is decided here last, whatever the target says: only the
parameters a spec may set (:data:`~expc.compiler.destinations.SAFE_PARAMS`)
are passed on, and the model, messages, API base and key are set after them,
so nothing in ``params`` can override the user's base or key.

Calls to the built-in offline model (:func:`~.offline.is_offline`) are
answered here by :func:`~.offline.offline_reply`, the function litellm's
``offline`` provider serves too, from the same arguments and into the same
records; litellm is imported only when some task goes to another model.

Calls to an OpenAI-compatible endpoint (``openai/<name>``, parameters that the
OpenAI API takes as they are) go through the ``openai`` async client directly
(:func:`route` says which way a target goes): litellm's per-call work (its
logging object, parameter mapping, cost search) is about 2x the CPU of the
call itself. Every call, whichever way it goes, is priced from its tokens by
:mod:`.pricing`, which looks each model up once per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from expc.compiler.destinations import SAFE_PARAMS
from expc.compiler.model import Checks

from . import pricing, replies
from .checks import check_text
from .offline import is_offline, offline_reply
from .personal import Personal, redact
from .routing import Route, Router
from .store import Record, Store, request_key

RETRYABLE_STATUS = {408, 409, 425, 429}
PLACEHOLDER_KEY = "expc-no-key"  # sent to a local OpenAI-compatible server that needs no key
MAX_CONTENT_CHARS = 256 * 1024
"""Longest generated text accepted from a provider, in characters (256 Ki: far beyond any marketing copy)."""
SERVE_OFFLINE_DIRECTLY = True
"""Answer the offline model here, without litellm; False: through litellm's ``offline`` provider (the same records)."""


DIRECT_OPENAI = True
"""Send ``openai/...`` calls with the ``openai`` client directly; False: through litellm (the same records)."""
#: Parameters the OpenAI chat-completions API takes as they are (litellm passes them through unchanged)
OPENAI_NATIVE_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "presence_penalty", "frequency_penalty",
    "logit_bias", "seed", "response_format", "reasoning_effort", "verbosity", "logprobs", "top_logprobs", "user"})
# OpenAI's reasoning models, whose parameters litellm rewrites (max_tokens, temperature): litellm serves them
_REASONING_MODEL = re.compile(r"^(o[0-9]|gpt-5|codex)", re.IGNORECASE)


def route(model: str, params: dict[str, Any] | None = None) -> str:
    """How calls to ``model`` are made: ``offline`` (served here), ``openai`` (the openai client) or ``litellm``."""
    if SERVE_OFFLINE_DIRECTLY and is_offline(model):
        return "offline"
    if (DIRECT_OPENAI and model.startswith("openai/") and not _REASONING_MODEL.match(model[len("openai/"):])
            and all(k in OPENAI_NATIVE_PARAMS for k in params or {})):
        return "openai"
    return "litellm"


def needs_litellm(model: str, params: dict[str, Any] | None = None) -> bool:
    """True when calls to ``model`` (with ``params``) go through litellm (see :func:`route`)."""
    return route(model, params) == "litellm"


@dataclass(frozen=True)
class Target:
    """Where and how a prompt's requests go (no secret: only the *name* of the key's variable)."""

    model: str
    api_base: str | None
    params: dict[str, Any]  # temperature, max_tokens, top_p, the prompt's params, offline hints
    key_env: str | None = None  # environment variable holding the API key
    placeholder_key: bool = False  # send PLACEHOLDER_KEY (a local server with no key)
    routes: tuple[Route, ...] = ()  # the prompt's deployments: calls go to them (see .routing); the key stays ours

    def models(self) -> tuple[str, ...]:
        """The model ids its calls go to: its deployments' models, or its own."""
        return tuple(dict.fromkeys(r.model for r in self.routes)) if self.routes else (self.model,)

    def via(self, route: Route) -> Target:
        """Where one call goes when ``route`` (one of :attr:`routes`) serves it: its model, server and key."""
        return Target(route.model, route.api_base or self.api_base, self.params, route.key_env,
                      route.placeholder_key)


@dataclass(frozen=True)
class Limits:
    """How calls are made (``concurrency``, ``timeout`` and ``max_cost`` from the plan, or the user's overrides)."""

    concurrency: int
    timeout: float
    max_cost: float | None = None
    already_spent: float = 0.0  # on this plan's stored calls, in earlier runs: counts against max_cost
    max_tries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0
    max_reply_bytes: int = replies.MAX_REPLY_BYTES
    max_content_chars: int = MAX_CONTENT_CHARS
    workers: int = 1  # processes making the calls (see .workers); 1: this one


@dataclass(eq=False)
class Task:
    """One distinct request whose reply must pass ``checks``; filled in as attempts complete."""

    target: Target
    messages: list[dict[str, str]]
    checks: Checks
    seed: int
    start_attempt: int = 0  # attempts before this one were answered from the store
    records: list[Record] = field(default_factory=list)  # every attempt's record (stored or new), in order
    calls: int = 0  # calls made in this run
    cost: float = 0.0  # spent in this run
    error: str | None = None  # the call could not be made (after retries)
    done: bool = False
    recorded: list[dict[str, str]] | None = None  # the messages as the store records them (personal values out)
    personal: Personal = ()  # the personal values the messages carry
    secret: bytes | None = None  # the store's secret: the key of a request with personal values is keyed by it

    @property
    def attempts_allowed(self) -> int:
        """The first attempt and the checks' ``regenerate`` more."""
        return 1 + self.checks.regenerate

    def key(self, attempt: int) -> str:
        """The store key of attempt ``attempt``."""
        return request_key(self.target.model, self.target.api_base, self.target.params, self.messages,
                           self.seed + attempt, self.secret if self.personal else None)

    def reuse(self, record: Record) -> Record:
        """A stored record judged by this task's checks as they are now (the spec's checks may have changed)."""
        return replace(record, checks=check_text(record.content, self.checks))

    @property
    def passed(self) -> Record | None:
        """The record whose content passed the checks, if any."""
        last = self.records[-1] if self.records else None
        return last if last is not None and not last.checks else None


@dataclass
class Outcome:
    """What :func:`run` did."""

    spent: float = 0.0
    calls: int = 0
    budget_exhausted: bool = False
    provider_error: str | None = None


class _Fatal(Exception):
    """A call failed in a way retries cannot fix."""


class _Halted(Exception):
    """The run is stopping (budget, another call's failure): a failed call is not retried."""


def run(tasks: list[Task], store: Store, limits: Limits,
        on_task_done: Callable[[Task], None] | None = None, secrets: tuple[str, ...] = (),
        shared: Any = None) -> Outcome:
    """Make the calls ``tasks`` need; returns when all are done, or the budget or provider stops them.

    With ``limits.workers`` above 1 (and enough tasks), worker processes make
    them (:mod:`.workers`); ``shared`` is what a worker shares with the others.
    """
    if limits.workers > 1 and len(tasks) >= 2 * limits.workers:
        from . import workers

        networked = any(route(m, t.target.params) != "offline" for t in tasks for m in t.target.models())
        if networked and workers.available():
            return workers.run(tasks, store, limits, on_task_done, secrets, limits.workers)
    return asyncio.run(_run(tasks, store, limits, on_task_done, secrets, shared))


async def _run(tasks: list[Task], store: Store, limits: Limits,
               on_task_done: Callable[[Task], None] | None, secrets: tuple[str, ...], shared: Any = None) -> Outcome:
    litellm: Any = None
    ways = {route(model, task.target.params) for task in tasks for model in task.target.models()}
    if "litellm" in ways:
        import litellm
    prices = {model: pricing.lookup(model) for model in {m for task in tasks for m in task.target.models()}}  # once
    clients = _OpenAIClients(limits.timeout) if "openai" in ways else None
    routers = {task.target.routes: Router(task.target.routes) for task in tasks if task.target.routes}

    outcome = Outcome()
    queue = iter(tasks)
    stop = asyncio.Event()

    async def worker() -> None:
        for task in queue:
            if stop.is_set() or (shared is not None and shared.halted()):
                return
            await _task(task)
            if on_task_done is not None:
                on_task_done(task)

    async def _task(task: Task) -> None:
        for attempt in range(task.start_attempt, task.attempts_allowed):
            key = task.key(attempt)
            stored = store.get_many([key]).get(key) if attempt > task.start_attempt else None
            if stored is not None:
                stored = task.reuse(stored)
            else:
                if _over_budget():
                    outcome.budget_exhausted = True
                    stop.set()
                if stop.is_set() or (shared is not None and shared.halted()):
                    return
                try:
                    stored = await _call(task, key, attempt)
                except _Fatal as exc:
                    task.error = redact(_redact(str(exc), secrets), task.personal)
                    outcome.provider_error = outcome.provider_error or task.error
                    stop.set()
                    if shared is not None:
                        shared.halt()
                    return
                except _Halted:
                    return
            task.records.append(stored)
            if not stored.checks:
                break
        task.done = True

    def _over_budget() -> bool:
        spent = shared.spent() if shared is not None else outcome.spent
        return limits.max_cost is not None and limits.already_spent + spent >= limits.max_cost

    def _paid(task: Task, cost: float) -> None:
        outcome.calls += 1
        outcome.spent += cost
        task.calls += 1
        task.cost += cost
        if shared is not None:
            shared.add(cost)

    def _unusable(task: Task, key: str, attempt: int, reason: str, reply: _Reply | None, tries: int) -> Record:
        """A reply that broke a bound: counted as a call whose text failed its checks, never stored."""
        record = _record(task, key, attempt, replace(reply, content=""), 0.0, tries) if reply is not None else Record(
            key=key, model=task.target.model, api_base=task.target.api_base, request={}, content=None,
            response_model=None, prompt_tokens=0, completion_tokens=0, cost=0.0, cost_known=False, latency=0.0,
            attempts=tries, checks=[])
        record = replace(record, content=None, checks=[reason])
        _paid(task, record.cost)
        return record

    async def _call(task: Task, key: str, attempt: int) -> Record:
        router = routers.get(task.target.routes)
        tried: frozenset[str] = frozenset()  # deployments this call failed on: the next try goes elsewhere
        started = time.perf_counter()
        last_error = "no attempt made"
        for tries in range(1, limits.max_tries + 1):
            wait: float | None = None
            served = await router.pick(tried) if router is not None else None
            target = task.target.via(served) if served is not None else task.target
            kwargs = _arguments(target, task.messages, task.seed + attempt, limits.timeout)
            way = route(target.model, target.params)
            direct = way == "offline"
            price = prices[target.model]
            try:
                if direct:
                    reply = _offline(kwargs)
                elif way == "openai" and clients is not None:
                    reply = _from_openai(await asyncio.wait_for(clients.create(kwargs), limits.timeout + 10), price)
                else:
                    reply = _from_litellm(await asyncio.wait_for(litellm.acompletion(**kwargs), limits.timeout + 10),
                                          price)
                if len(reply.content) > limits.max_content_chars:
                    return _unusable(task, key, attempt, f"the reply is {len(reply.content):,} characters, over the "
                                     f"{limits.max_content_chars:,}-character limit", reply, tries)
            except TimeoutError:
                last_error = f"no reply within {limits.timeout:g} s"
            except _Broken as exc:
                last_error = str(exc)
            except Exception as exc:  # litellm's typed errors (openai.APIError subclasses), sorted below
                if direct:  # a deterministic function: trying again would fail again
                    raise _Fatal(f"{target.model}: the offline model failed: {type(exc).__name__}: "
                                 f"{_first_line(str(exc))}") from None
                refused = replies.refusal(exc)
                if refused is not None:
                    return _unusable(task, key, attempt, str(refused), None, tries)
                status = getattr(exc, "status_code", None)
                last_error = f"{type(exc).__name__}: {_first_line(str(exc))}"
                if not _retryable(exc, status):
                    raise _Fatal(f"{_where(target, served)}: {last_error}") from None
                wait = _retry_after(exc)
            else:
                if router is not None and served is not None:
                    router.succeeded(served, reply.prompt_tokens + reply.completion_tokens)
                record = _record(task, key, attempt, reply, time.perf_counter() - started, tries,
                                 served.id if served is not None else None)
                store.put(record)
                _paid(task, record.cost)
                return record
            if router is not None and served is not None:
                router.failed(served, wait)
                tried |= {served.id}
                last_error = f"deployment `{served.id}`: {last_error}"
            if stop.is_set():
                raise _Halted
            if tries < limits.max_tries and (router is None or router.all_tried(tried)):
                tried = frozenset()  # every deployment failed this call once: back off, then try them again
                backoff = random.uniform(0, min(limits.backoff_cap, limits.backoff_base * 2 ** (tries - 1)))
                await asyncio.sleep(max(backoff, min(wait or 0.0, limits.retry_after_cap)))
        raise _Fatal(f"{task.target.model}: gave up after {limits.max_tries} tries: {last_error}")

    # the bound is set before the workers start: they inherit it (only litellm's calls read HTTP replies)
    networked = litellm is not None or clients is not None
    with replies.bounded(limits.max_reply_bytes) if networked else contextlib.nullcontext():
        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(limits.concurrency, len(tasks))))]
        try:
            await asyncio.gather(*workers)
        finally:
            if clients is not None:
                await clients.close()
            if litellm is not None:
                await _close_clients()
    return outcome


def _arguments(target: Target, messages: list[dict[str, str]], seed: int, timeout: float) -> dict[str, Any]:
    """litellm's arguments for one call: the target's params, then what only expc and the user decide.

    A parameter a spec may not set (see :mod:`expc.compiler.destinations`)
    stops the call, even if it reached the target past every check (a plan
    written by hand); ``extra_body`` carries expc's own hints to the offline
    provider, which makes no network call.
    """
    offline = is_offline(target.model)
    refused = sorted(k for k in target.params if k not in SAFE_PARAMS and not (offline and k == "extra_body"))
    if refused:
        raise _Fatal(f"{target.model}: `params` may not set {', '.join(refused)} (it could send the call or a key "
                     "elsewhere)")
    kwargs: dict[str, Any] = dict(target.params)
    kwargs.update(model=target.model, messages=messages, seed=seed, timeout=timeout, max_retries=0,
                  drop_params=True, api_base=target.api_base)
    if target.key_env:
        kwargs["api_key"] = os.environ.get(target.key_env, "")
    elif target.placeholder_key:
        kwargs["api_key"] = PLACEHOLDER_KEY
    return kwargs


async def _close_clients() -> None:
    """Close litellm's cached HTTP clients while their event loop still runs, and forget them.

    They belong to this run's loop: left open they would be closed at exit on a
    dead loop (a noisy traceback), and a later run (a new loop) must not reuse them.
    """
    import litellm

    try:
        await litellm.close_litellm_async_clients()
        cache = getattr(litellm, "in_memory_llm_clients_cache", None)
        if cache is not None and hasattr(cache, "flush_cache"):
            cache.flush_cache()
    except Exception:  # cleanup must never hide the run's outcome
        pass


@dataclass(frozen=True)
class _Reply:
    """What the store keeps of a reply, whichever way it came (litellm, or the offline model directly)."""

    content: str
    model: str | None  # as the reply names it
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # None: not in litellm's price table


def _where(target: Target, served: Route | None) -> str:
    """The model a failed call went to, and its deployment when it had one (for the error's line)."""
    return f"{target.model} (deployment `{served.id}`)" if served is not None else target.model


def _record(task: Task, key: str, attempt: int, reply: _Reply, latency: float, tries: int,
            deployment: str | None = None) -> Record:
    """A completed call as the store keeps it (under the task's key, whichever deployment served it)."""
    target = task.target
    return Record(
        key=key, model=target.model, api_base=target.api_base,
        request={"params": target.params, "seed": task.seed + attempt,
                 "messages": task.recorded if task.recorded is not None else task.messages},
        content=reply.content, response_model=reply.model,
        prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
        cost=float(reply.cost) if reply.cost is not None else 0.0, cost_known=reply.cost is not None,
        latency=round(latency, 4), attempts=tries, checks=check_text(reply.content, task.checks),
        deployment=deployment,
    )


def _offline(kwargs: dict[str, Any]) -> _Reply:
    """The offline model's reply to litellm's arguments for the call, made here (free: cost 0)."""
    reply = offline_reply(kwargs["model"], kwargs["messages"], kwargs.get("seed"), kwargs.get("extra_body"))
    return _Reply(reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens, 0.0)


class _Broken(Exception):
    """A reply came back but holds no usable choice (retried like a 5xx)."""


def _usage(response: Any) -> tuple[int, int, int]:
    """Prompt, completion and cached prompt tokens of a reply (0 where the reply does not say)."""
    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None)
    return (int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0),
            int(getattr(details, "cached_tokens", 0) or 0))


def _from_litellm(response: Any, price: pricing.Price) -> _Reply:
    """litellm's reply: its first choice's text, its tokens, its cost (the run's price; else litellm's own)."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise _Broken("the reply has no choices")
    prompt, completion, cached = _usage(response)
    cost = price.cost(prompt, completion, cached)
    if cost is None:  # not a per-token price: litellm may still know it (its own pricing of this call)
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    return _Reply(choices[0].message.content or "", getattr(response, "model", None), prompt, completion,
                  float(cost) if cost is not None else None)


def _from_openai(response: Any, price: pricing.Price) -> _Reply:
    """The openai client's reply: its first choice's text, its tokens, its cost at the run's price."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise _Broken("the reply has no choices")
    prompt, completion, cached = _usage(response)
    return _Reply(choices[0].message.content or "", getattr(response, "model", None), prompt, completion,
                  price.cost(prompt, completion, cached))


class _OpenAIClients:
    """One ``openai.AsyncOpenAI`` per (base URL, key) for the run, closed at its end (no retries of its own)."""

    def __init__(self, timeout: float) -> None:
        import openai

        self._openai = openai
        self._timeout = timeout
        self._clients: dict[tuple[str, str], Any] = {}

    async def create(self, kwargs: dict[str, Any]) -> Any:
        """One chat completion from litellm-style arguments (``openai/`` model, api_base, api_key)."""
        base = (kwargs.get("api_base") or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
                or "https://api.openai.com/v1")
        key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY
        client = self._clients.get((base, key))
        if client is None:
            client = self._openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=self._timeout)
            self._clients[(base, key)] = client
        body = {k: v for k, v in kwargs.items() if k in OPENAI_NATIVE_PARAMS}
        try:
            return await client.chat.completions.create(model=kwargs["model"][len("openai/"):],
                                                        messages=kwargs["messages"], timeout=kwargs["timeout"],
                                                        **body)
        except ValueError as exc:  # a body that is not JSON (the openai client lets json's error escape)
            raise _Broken(f"the reply is not valid JSON: {_first_line(str(exc))}") from None

    async def close(self) -> None:
        """Close every client while the run's event loop still runs."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()


def _retryable(exc: Exception, status: int | None) -> bool:
    import openai  # litellm's errors subclass openai's

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                        openai.InternalServerError)):
        return True
    return status is not None and (status >= 500 or status in RETRYABLE_STATUS)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "(no message)"


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return text
