"""Generate a plan's content: the public entry point (:func:`generate`).

Steps, each in its own module:

1. :mod:`.jobs` renders every item's messages from the plan (and the units);
2. items with identical requests share one :class:`~.calls.Task`;
3. the store (:mod:`.store`) answers every task it can, walking the
   regeneration chain (attempt ``k`` has seed ``seed + k``); a run whose
   answers are all stored, or whose calls all go to the built-in offline
   model (served by :mod:`.calls` itself), never imports litellm;
4. credentials are checked for the models that still need calls, before any
   call starts (:class:`MissingCredentials` names the variable);
5. :mod:`.calls` makes the calls (concurrency, timeouts, retries, budget),
   committing each completed one to the store;
6. each item gets its content, or its status and reason when the checks
   failed, or when its template went past its rendering budget
   (``on_fail``: ``error`` -> failed, ``skip`` -> skipped,
   ``use_control`` -> the control's content);
7. :mod:`.judge` grades the texts of prompts with a ``judge`` check (its
   calls stored and budgeted like the others'): a text below the threshold,
   or a judge's answer without a score, gets ``on_fail``.

A candidate (``candidates: N``) asks with its own seed offset, so its
requests are its own (:func:`~.jobs.request_group`).

Errors for a person are :class:`GenerationError` s with an exit code: 3 when
the run could not finish (budget, provider, credentials), 1 when the input
cannot work (per-unit generation without units, a template that fails).
"""

from __future__ import annotations

import atexit
import copy
import gc
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from expc.compiler.destinations import Allowances, has_url, param_problem
from expc.compiler.errors import EXIT_INVALID, EXIT_RUN, ExpcError
from expc.compiler.model import Prompt
from expc.compiler.plan import Plan

from . import batch as batch_mod
from . import calls as calls_mod
from . import judge as judge_mod
from .batch import Polling
from .calls import Limits, Target, Task
from .jobs import JobError, Piece, pieces, request_group
from .offline import is_offline
from .personal import Personal, redact
from .render import MAX_PROMPT_CHARS, RENDER_SECONDS, RenderLimits
from .routing import Route
from .store import Store

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)


class GenerationError(ExpcError):
    """Generation could not finish: ``str(exc)`` is for a person, ``exit_code`` for the shell."""

    exit_code = EXIT_RUN

    def __init__(self, message: str, result: GenerationResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class MissingCredentials(GenerationError):
    """A model's API key is not in the environment (nothing was called)."""


class BudgetExhausted(GenerationError):
    """The budget was reached: no new call started; the completed ones are stored."""


class ProviderFailed(GenerationError):
    """A call failed after its retries (or could never succeed); the completed ones are stored."""


class GenerationInputError(GenerationError):
    """What to generate cannot be worked out from the spec and the units (exit 1)."""

    exit_code = EXIT_INVALID


class NotInStore(GenerationInputError):
    """``store_only``: some content was never generated with these options (exit 1; nothing was called)."""


@dataclass(frozen=True)
class GenerateOptions:
    """Overrides and limits for one generation run (``None``: the plan's value)."""

    offline: bool = False
    model: str | None = None
    api_base: str | None = None  # wins over every prompt's api_base
    api_key_env: str | None = None  # the variable holding the key of every prompt (wins over api_key_env)
    concurrency: int | None = None
    max_cost: float | None = None
    timeout: float | None = None
    seed: int = 0
    max_items_per_variant: int | None = None
    max_tries: int = 5
    backoff_base: float = 0.5
    render_seconds: float = RENDER_SECONDS  # each item's template renders within this time...
    render_chars: int = MAX_PROMPT_CHARS  # ...to at most this many characters, or that item fails
    variants: tuple[str, ...] | None = None  # generate only these variants' items (ids); None: every variant's
    store_only: bool = False  # make no call: what the store lacks is a NotInStore error (review, approval, export)
    workers: int = 1  # processes making the calls (more than one core; see .workers)
    batch: bool | None = None  # through the provider's batch API (runtime/generate/batch.py); None: the plan's
    batch_polling: Polling = Polling()  # how often and how long batch mode polls


@dataclass(frozen=True)
class Item:
    """One generated (or static) piece of content.

    ``cost`` and ``tokens`` are those of the calls behind the item (all its
    attempts, made now or earlier), counted on the first item that shares
    them, so that they add up.
    """

    variant: str
    key: None | dict[str, Any] | str
    content: str | None
    model: str | None
    cost: float
    tokens: int
    status: str  # ok | failed | skipped | use_control | static
    reason: str | None
    from_store: bool
    cost_known: bool = True
    personal: Personal = ()  # the personal values its prompt sent: what reports must redact (never written)
    deployment: str | None = None  # the prompt's deployment that served its content (None: the prompt's model)
    score: float | None = None  # the judge's score (a prompt with a `judge` check), 0 to 1

    def to_json(self) -> dict[str, Any]:
        """The item as one JSON Lines record (``segment`` or ``unit`` names what it is for)."""
        out: dict[str, Any] = {"variant": self.variant}
        if isinstance(self.key, dict):
            out["segment"] = self.key
        elif isinstance(self.key, str):
            out["unit"] = self.key
        out.update(content=self.content, model=self.model, cost=round(self.cost, 8), tokens=self.tokens,
                   status=self.status)
        if self.reason:
            out["reason"] = self.reason
        if not self.cost_known:
            out["cost_known"] = False
        if self.deployment is not None:
            out["deployment"] = self.deployment
        if self.score is not None:
            out["score"] = self.score
        return out


@dataclass
class GenerationResult:
    """What :func:`generate` produced."""

    items: list[Item]
    spent: float = 0.0
    calls: int = 0
    store_path: Path | None = None
    notes: list[str] = field(default_factory=list)  # one line each, for a person (batch mode says what it did)
    _calls_by_variant: dict[str, int] = field(default_factory=dict)
    _spent_by_variant: dict[str, float] = field(default_factory=dict)
    _calls_total_by_variant: dict[str, int] = field(default_factory=dict)
    _by_deployment: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def per_deployment(self) -> list[dict[str, Any]]:
        """Per prompt and deployment (or model, for a prompt without deployments): the calls behind the content.

        ``calls``, ``tokens`` and ``cost`` count every call, whichever
        invocation made it (the store records the deployment of each);
        ``calls_now`` and ``cost_now`` are this invocation's.
        """
        return [dict(row) for row in self._by_deployment.values()]

    def per_variant(self) -> list[dict[str, Any]]:
        """Per variant: items, store hits, failures, and the calls behind its content with their tokens and cost.

        ``calls``, ``tokens`` and ``cost`` count every call behind the content,
        whichever invocation made (and paid for) it: the content store keeps each
        one, so a resumed or repeated run reports what its content cost.
        ``calls_now`` and ``cost_now`` are the calls this invocation made.
        """
        rows: dict[str, dict[str, Any]] = {}
        for item in self.items:
            row = rows.setdefault(item.variant, {"variant": item.variant, "items": 0, "calls": 0, "store_hits": 0,
                                                 "failures": 0, "tokens": 0, "cost": 0.0, "cost_known": True})
            row["items"] += 1
            row["store_hits"] += item.from_store
            row["failures"] += item.status in ("failed", "skipped", "use_control")
            row["cost_known"] &= item.cost_known
            row["tokens"] += item.tokens
            row["cost"] += item.cost
        for variant, row in rows.items():
            row["calls"] = self._calls_total_by_variant.get(variant, 0)
            row["calls_now"] = self._calls_by_variant.get(variant, 0)
            row["cost_now"] = self._spent_by_variant.get(variant, 0.0)
        return list(rows.values())

    @property
    def spent_total(self) -> float:
        """What every call behind the content cost, in this invocation or earlier ones."""
        return float(sum(item.cost for item in self.items))

    def rejected(self) -> list[Item]:
        """Items whose content failed its checks with ``on_fail: error`` (or could not be made)."""
        return [i for i in self.items if i.status == "failed"]

    def rejection(self) -> str | None:
        """One line saying which items failed their checks with ``on_fail: error``; None when none did."""
        rejected = self.rejected()
        if not rejected:
            return None
        first = rejected[0]
        return (f"{len(rejected)} item(s) failed their checks (on_fail: error); first: variant "
                f"`{first.variant}`: {first.reason}")

    def jsonl(self) -> str:
        """The items as JSON Lines, one record per item (what `expc generate` writes)."""
        return "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in self.items)


@dataclass
class _Progress:
    """Items done so far, those without content, and what this run's calls cost (for the progress callback)."""

    done: int
    errors: int = 0
    cost: float = 0.0


def generate(plan: Plan, units: Any | None, store_path: Path,
             opts: GenerateOptions = GenerateOptions(),
             progress: Callable[[int, int, int, float], None] | None = None) -> GenerationResult:
    """Generate every item of ``plan`` (per unit needs ``units``), through the store at ``store_path``.

    ``opts.variants`` limits the run to some variants (by id). Raises
    :class:`MissingCredentials`, :class:`BudgetExhausted`,
    :class:`ProviderFailed` (each with the partial result on ``.result``) or
    :class:`GenerationInputError`. Items whose checks failed are returned with
    their status; :meth:`GenerationResult.rejected` lists the ones that must
    stop the run (the CLI exits 3 for them).
    """
    unknown = [v for v in opts.variants or () if v not in {variant.id for variant in plan.variants}]
    if unknown:
        raise GenerationInputError(f"no variant `{unknown[0]}` in the plan")
    allowed = Allowances.from_environ()
    targets = {name: _target(name, prompt, opts, allowed) for name, prompt in plan.prompts.items()}
    try:
        todo = pieces(plan, units, opts.max_items_per_variant, RenderLimits(opts.render_seconds, opts.render_chars),
                      opts.variants)
    except JobError as exc:
        raise GenerationInputError(str(exc)) from None
    tasks: dict[tuple[str, tuple[tuple[str, str], ...]], Task] = {}
    owner: dict[tuple[str, tuple[tuple[str, str], ...]], Piece] = {}
    group_sizes: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for piece in todo:
        if piece.prompt is None or piece.error is not None:
            continue
        gid = request_group(piece)
        if gid not in tasks:
            recorded = [{"role": r, "content": c} for r, c in piece.recorded] if piece.recorded else None
            tasks[gid] = Task(targets[piece.prompt], [{"role": r, "content": c} for r, c in piece.messages],
                              plan.prompts[piece.prompt].checks, opts.seed + piece.seed, recorded=recorded,
                              personal=piece.personal)
            owner[gid] = piece
        group_sizes[gid] = group_sizes.get(gid, 0) + 1
    store_path = Path(store_path)
    total = len(todo)
    if opts.store_only and tasks and not store_path.exists():
        raise NotInStore(f"no content store at {store_path}: run `expc generate` first (or give --store)")
    if opts.store_only and not tasks:  # static content only: no store to open
        return _result(plan, todo, tasks, owner, calls_mod.Outcome(), store_path)
    with Store(store_path) as store:
        if any(t.personal for t in tasks.values()):
            secret = store.secret()
            for task in tasks.values():
                task.secret = secret
        pending = _answer_from_store(list(tasks.values()), store)
        waiting = {id(t) for t in pending}
        state = _Progress(done=total - sum(group_sizes[gid] for gid, t in tasks.items() if id(t) in waiting))
        if progress:
            progress(state.done, total, 0, 0.0)
        outcome = calls_mod.Outcome()
        if pending and opts.store_only:
            first = owner[next(gid for gid, t in tasks.items() if id(t) in waiting)]
            raise NotInStore(f"{len(pending)} request(s) are not in the content store {store_path} (first: variant "
                             f"`{first.variant}`): run `expc generate` first, with the same --offline, --model, "
                             "--api-base, --seed and --units")
        if pending:
            sizes = {id(t): group_sizes[gid] for gid, t in tasks.items()}
            secrets = _prepare_calls([*pending, *judge_mod.probes(plan, todo, opts)])  # the judges' keys too

            def task_done(task: Task) -> None:
                state.done += sizes[id(task)]
                state.errors += sizes[id(task)] * (task.passed is None)
                state.cost += task.cost
                if progress:
                    progress(state.done, total, state.errors, state.cost)

            limits = Limits(
                concurrency=opts.concurrency or plan.generation.concurrency,
                timeout=float(opts.timeout or plan.generation.timeout),
                max_cost=opts.max_cost if opts.max_cost is not None else plan.generation.max_cost_usd,
                max_tries=opts.max_tries, backoff_base=opts.backoff_base, workers=opts.workers,
                already_spent=sum(r.cost for t in tasks.values() for r in t.records),
            )
            if opts.batch if opts.batch is not None else plan.generation.batch:
                outcome = batch_mod.run(pending, store, limits, task_done, secrets, opts.batch_polling)
            else:
                outcome = calls_mod.run(pending, store, limits, task_done, secrets)
        copy_before = sum(r.cost for t in tasks.values() for r in t.records) - outcome.spent  # earlier runs
        try:
            judging = judge_mod.judge(plan, todo, tasks, store, opts,
                                      judge_mod.limits(plan, opts, copy_before + outcome.spent),
                                      not (outcome.budget_exhausted or outcome.provider_error), _prepare_calls)
        except judge_mod.JudgeError as exc:
            raise (NotInStore if exc.not_stored else GenerationInputError)(str(exc)) from None
        limits = judge_mod.limits(plan, opts, copy_before + judging.spent_before)
    result = _result(plan, todo, tasks, owner, outcome, store_path)
    judge_mod.apply(plan, result, judging)
    outcome = judge_mod.merged(outcome, judging.outcome)
    result.notes = list(getattr(outcome, "notes", ()))
    if outcome.budget_exhausted:
        missing = sum(1 for t in (*tasks.values(), *judging.tasks) if not t.done)  # copy, then judgements
        raise BudgetExhausted(
            f"budget of ${limits.max_cost:g} reached: ${outcome.spent:.4f} spent on {outcome.calls} calls in this "
            f"run, ${limits.already_spent + outcome.spent:.4f} on this spec's content in all; {missing} request(s) "
            f"not generated. Every completed call is stored in {store_path}: run the "
            "same command again (with a higher --max-cost or generation.max_cost_usd) to resume without paying "
            "twice.", result)
    if outcome.provider_error:
        raise ProviderFailed(
            f"a model call failed: {outcome.provider_error}. ${outcome.spent:.4f} spent on {outcome.calls} calls; "
            f"every completed call is stored in {store_path}: run the same command again to resume.", result)
    if getattr(outcome, "waiting", None):
        raise GenerationError(f"batch mode: {outcome.waiting}", result)  # type: ignore[attr-defined]
    return result


def _answer_from_store(tasks: list[Task], store: Store) -> list[Task]:
    """Fill each task from the store as far as it goes; the tasks that still need a call."""
    first = store.get_many(t.key(0) for t in tasks)
    pending: list[Task] = []
    for task in tasks:
        record = first.get(task.key(0))
        attempt = 0
        while record is not None:
            record = task.reuse(record)
            task.records.append(record)
            attempt += 1
            if not record.checks or attempt >= task.attempts_allowed:
                task.done = True
                break
            record = store.get_many([task.key(attempt)]).get(task.key(attempt))
        if not task.done:
            task.start_attempt = attempt
            pending.append(task)
    return pending


def _target(name: str, prompt: Prompt, opts: GenerateOptions, allowed: Allowances) -> Target:
    """Where and how a prompt's calls go: the user's --model, --api-base and --api-key-env win over the plan.

    The plan is checked again (it may have been written by hand, past
    ``validate``): it may name a key variable or a host only where the
    user's allow-lists let it, holds no URL in a model id, and its params
    hold nothing that could send a call or a key elsewhere.
    """
    _refuse_destinations(name, prompt, opts, allowed)
    model = opts.model or prompt.model
    api_base = opts.api_base or prompt.api_base
    shaping = {"temperature": prompt.temperature, "max_tokens": prompt.max_tokens, "top_p": prompt.top_p}
    params: dict[str, Any] = {k: v for k, v in shaping.items() if v is not None}
    params.update(copy.deepcopy(prompt.params))  # copies: nothing downstream can change the plan
    if opts.offline or is_offline(model):
        model = model if is_offline(model) else "offline/" + model.rsplit("/", 1)[-1]
        checks = prompt.checks
        hints: dict[str, Any] = {}
        if checks.json_schema is not None:
            hints["expc_json_schema"] = copy.deepcopy(checks.json_schema)
        elif checks.max_chars or checks.min_chars:
            hints["expc_chars"] = [checks.min_chars or 0, checks.max_chars or 0]  # 0: no bound
        if hints:
            params["extra_body"] = hints
        return Target(model, None, params)
    fallbacks = {d: rank for rank, d in enumerate(prompt.fallbacks, 1)}
    routes = tuple(Route(d.id, d.model, opts.api_base or d.api_base, opts.api_key_env or d.api_key_env, d.rpm, d.tpm,
                         fallbacks.get(d.id, 0)) for d in prompt.deployments) if opts.model is None else ()
    return Target(model, api_base, params, key_env=opts.api_key_env or prompt.api_key_env, routes=routes)


def _refuse_destinations(name: str, prompt: Prompt, opts: GenerateOptions, allowed: Allowances) -> None:
    """Raise :class:`GenerationInputError` when the plan's prompt chooses a key variable, a host or a route."""
    where = f"prompt `{name}`"
    for key in prompt.params:
        if param_problem(str(key)) is not None:
            raise GenerationInputError(
                f"{where}: `params.{key}` is not allowed: a plan may set only parameters that shape the reply, "
                "never a host, a key, a header or a provider (hosts come from --api-base, keys from the "
                "environment)")
    if opts.model is None and has_url(prompt.model):
        raise GenerationInputError(f"{where}: the model id holds a URL; pass --api-base URL instead")
    judge = prompt.checks.judge
    if judge is not None and not (opts.offline or is_offline(judge.model)) and has_url(judge.model):
        raise GenerationInputError(f"{where}: the judge's model id holds a URL; a plan may not choose where calls go")
    base = prompt.api_base
    if base and opts.api_base is None and not allowed.base_allowed(base):
        raise GenerationInputError(
            f"{where}: `api_base` is not on your allow-list; pass --api-base URL, or allow it in "
            "EXPC_ALLOWED_API_BASES (the spec may not choose where calls go)")
    key_env = prompt.api_key_env
    if key_env and opts.api_key_env is None and not allowed.key_env_allowed(key_env):
        raise GenerationInputError(
            f"{where}: `api_key_env` names a variable you have not allowed; pass --api-key-env NAME, or allow it "
            "in EXPC_ALLOWED_KEY_ENVS (the spec may not choose which secret is sent)")
    for dep in prompt.deployments if opts.model is None else ():
        here = f"{where}, deployment `{dep.id}`"
        if has_url(dep.model):
            raise GenerationInputError(f"{here}: the model id holds a URL; a spec may not choose where calls go")
        if dep.api_base and opts.api_base is None and not allowed.base_allowed(dep.api_base):
            raise GenerationInputError(f"{here}: `api_base` is not on your allow-list; pass --api-base URL, or allow "
                                       "it in EXPC_ALLOWED_API_BASES (the spec may not choose where calls go)")
        if dep.api_key_env and opts.api_key_env is None and not allowed.key_env_allowed(dep.api_key_env):
            raise GenerationInputError(f"{here}: `api_key_env` names a variable you have not allowed; pass "
                                       "--api-key-env NAME, or allow it in EXPC_ALLOWED_KEY_ENVS")


def offline_run(plan: Plan, opts: GenerateOptions) -> bool:
    """True when every prompt goes to the offline provider (``--offline``, or every model is ``offline/...``)."""
    return opts.offline or all(is_offline(opts.model or p.model) for p in plan.prompts.values())


def _litellm_offline_mode(force: bool) -> None:
    """Set litellm's offline mode before it is imported: forced for an offline run, else the user's choice.

    With ``LITELLM_OFFLINE_MODE=true`` litellm fetches nothing on its own (its
    price table comes from the package). An offline run promises no network,
    so it forces the mode whatever the environment says; other runs default
    to it and honour the user's setting.
    """
    if force:
        os.environ["LITELLM_OFFLINE_MODE"] = "true"
    else:
        os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def preload_litellm(plan: Plan | None = None, opts: GenerateOptions | None = None) -> None:
    """Start importing litellm in a background thread (it takes seconds) while the caller does other work.

    For callers that know calls are coming, such as a fresh ``expc run``: the
    import overlaps with drawing and assigning units, and :func:`generate`
    then finds the module ready (or waits for the import to finish). Given
    the plan and options, an offline run imports nothing: its calls are
    answered without litellm.
    """
    import threading

    if plan is not None and offline_run(plan, opts or GenerateOptions()):
        _litellm_offline_mode(True)  # should anything import litellm after all, it fetches nothing
        return
    _litellm_offline_mode(False)
    threading.Thread(target=__import__, args=("litellm",), name="expc-preload-litellm", daemon=True).start()


def _prepare_calls(pending: list[Task]) -> tuple[str, ...]:
    """Set up litellm if a call needs it, check credentials (before any call): the secrets to keep out of messages.

    Calls to the offline model need neither litellm nor a key: when every
    pending call goes there, litellm is not imported.
    """
    if any(calls_mod.needs_litellm(model, task.target.params) for task in pending for model in task.target.models()):
        _prepare_litellm(offline=all(is_offline(task.target.model) for task in pending))
    checked: dict[tuple[str, str | None, str | None], Target] = {}

    def ready(target: Target) -> Target:
        which = (target.model, target.api_base, target.key_env)
        if which not in checked:
            checked[which] = _credentials(target)
        return replace(target, key_env=checked[which].key_env, placeholder_key=checked[which].placeholder_key)

    for task in pending:
        target = task.target
        if target.routes:  # each deployment's key is checked; the task's own target is only its store key
            routes = []
            for route in target.routes:
                try:
                    via = ready(target.via(route))
                except MissingCredentials as exc:
                    raise MissingCredentials(f"deployment `{route.id}`: {exc}") from None
                routes.append(replace(route, key_env=via.key_env, placeholder_key=via.placeholder_key))
            task.target = replace(target, routes=tuple(routes))
        else:
            task.target = ready(target)
    return tuple(v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8)


def _prepare_litellm(offline: bool) -> None:
    """Import and set up litellm (idempotent): quiet, no per-call logging, the offline provider registered.

    ``offline``: every call goes to the offline model, so litellm's offline mode is forced.
    """
    _litellm_offline_mode(offline)
    import litellm

    from .offline import register

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    register()
    _skip_unobserved_success_logging(litellm)
    _once(atexit.register, _skip_collection_at_exit)


_registered: set[Any] = set()


def _once(register: Callable[[Callable[[], None]], Any], hook: Callable[[], None]) -> None:
    if hook not in _registered:
        _registered.add(hook)
        register(hook)


def _skip_collection_at_exit() -> None:
    """At exit, skip the garbage collector's last passes over litellm's ~200 MB of objects.

    The process is ending and nothing is left to finalise that matters (every
    call is committed, outputs are written); those passes cost about 2 s.
    """
    gc.disable()
    gc.freeze()


def _skip_unobserved_success_logging(litellm: Any) -> None:
    """Drop litellm's per-call success logging when nothing listens to it (no callbacks configured).

    After each call litellm queues a coroutine that builds a logging payload
    (prices, metadata) for its callbacks; with none configured nobody reads
    it, yet it costs about a millisecond of CPU per call and is flushed at
    exit. The reply's cost is computed before that step, so it is unaffected.
    Guarded: with any callback configured, or another litellm version
    without this worker, nothing changes.
    """
    if any(getattr(litellm, name, None) for name in ("callbacks", "success_callback", "_async_success_callback",
                                                      "input_callback", "service_callback")):
        return
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:
        return
    if not hasattr(GLOBAL_LOGGING_WORKER, "ensure_initialized_and_enqueue"):
        return

    def discard(async_coroutine: Any) -> None:
        async_coroutine.close()

    GLOBAL_LOGGING_WORKER.ensure_initialized_and_enqueue = discard  # type: ignore[method-assign]


def _credentials(target: Target) -> Target:
    """The target, ready to call: its key's variable is set, or a placeholder goes to a local server."""
    if is_offline(target.model):
        return target
    if target.key_env:
        if not os.environ.get(target.key_env):
            raise MissingCredentials(f"model {target.model} needs an API key: set the environment variable "
                                     f"{target.key_env} (--api-key-env, or the prompt's api_key_env), or run "
                                     "with --offline")
        return target
    provider = target.model.split("/", 1)[0] if "/" in target.model else "openai"
    if calls_mod.route(target.model, target.params) == "openai":  # the openai client: no litellm to ask
        env: dict[str, Any] | None = {"missing_keys": [] if os.environ.get("OPENAI_API_KEY") else ["OPENAI_API_KEY"]}
    else:
        env = _litellm_environment(target.model)
    if env is None:  # an unknown provider: let the call say what is wrong
        return target
    missing = [k for k in env.get("missing_keys") or [] if not k.endswith(("_API_BASE", "_BASE_URL", "_ENDPOINT"))]
    if not missing:
        return target
    if target.api_base and provider in ("openai", "hosted_vllm", "text-completion-openai", "custom_openai"):
        return Target(target.model, target.api_base, target.params, None, placeholder_key=True)
    raise MissingCredentials(
        f"model {target.model} needs credentials: set the environment variable{'s' * (len(missing) > 1)} "
        f"{', '.join(missing)} (or run with --offline, or --api-base URL for a local OpenAI-compatible server)")


def _litellm_environment(model: str) -> dict[str, Any] | None:
    """litellm's view of the keys ``model`` needs (``missing_keys``); None for a provider it does not know."""
    import litellm

    try:
        return dict(litellm.validate_environment(model))
    except Exception:
        return None


def _result(plan: Plan, todo: list[Piece], tasks: dict[tuple[str, tuple[tuple[str, str], ...]], Task],
            owner: dict[tuple[str, tuple[tuple[str, str], ...]], Piece], outcome: calls_mod.Outcome,
            store_path: Path) -> GenerationResult:
    control_text = plan.variant(plan.control).content
    served: list[tuple[int, Task]] = []  # (item, its task): which deployment served each item
    result = GenerationResult(items=[], spent=outcome.spent, calls=outcome.calls, store_path=store_path)
    for piece in todo:
        if piece.prompt is None:
            result.items.append(Item(piece.variant, piece.key, piece.static, None, 0.0, 0, "static", None, False))
            continue
        if piece.error is not None:
            result.items.append(_unrendered(plan.prompts[piece.prompt], piece, control_text))
            continue
        gid = request_group(piece)
        task = tasks[gid]
        first = owner[gid] is piece
        served.append((len(result.items), task))
        if first:
            _count_deployments(result, piece.prompt, task)
            result._calls_by_variant[piece.variant] = result._calls_by_variant.get(piece.variant, 0) + task.calls
            result._calls_total_by_variant[piece.variant] = (result._calls_total_by_variant.get(piece.variant, 0)
                                                             + len(task.records))
            result._spent_by_variant[piece.variant] = result._spent_by_variant.get(piece.variant, 0.0) + task.cost
        cost = sum(r.cost for r in task.records) if first else 0.0
        tokens = sum(r.tokens for r in task.records) if first else 0
        known = all(r.cost_known for r in task.records)
        from_store = task.calls == 0 and bool(task.records)
        model = task.target.model
        passed = task.passed
        personal = piece.personal  # a reason quoting the copy (a JSON Schema error) is redacted
        if passed is not None:
            result.items.append(Item(piece.variant, piece.key, passed.content, model, cost, tokens, "ok", None,
                                     from_store, known, personal))
            continue
        if not task.done:
            reason = f"not generated: {task.error}" if task.error else "not generated: the run stopped first"
            result.items.append(Item(piece.variant, piece.key, None, model, cost, tokens, "failed", reason,
                                     False, known, personal))
            continue
        reasons = "; ".join(task.records[-1].checks)
        reason = redact(f"failed its checks after {len(task.records)} attempt(s): {reasons}", personal) or ""
        on_fail = task.checks.on_fail
        if on_fail == "skip":
            item = Item(piece.variant, piece.key, None, model, cost, tokens, "skipped", reason, from_store, known,
                        personal)
        elif on_fail == "use_control":
            item = Item(piece.variant, piece.key, control_text, model, cost, tokens, "use_control", reason,
                        from_store, known, personal)
        else:
            item = Item(piece.variant, piece.key, task.records[-1].content, model, cost, tokens, "failed", reason,
                        from_store, known, personal)
        result.items.append(item)
    for at, task in served:
        deployment = next((r.deployment for r in reversed(task.records) if r.deployment), None)
        if deployment is not None:
            result.items[at] = replace(result.items[at], deployment=deployment)
    return result


def _count_deployments(result: GenerationResult, prompt: str, task: Task) -> None:
    """Add a task's calls (stored and new: the last ``task.calls`` records are this run's) to its deployments."""
    for i, record in enumerate(task.records):
        name = record.deployment or record.model
        row = result._by_deployment.setdefault((prompt, name), {
            "prompt": prompt, "deployment": name, "model": record.model, "calls": 0, "calls_now": 0, "tokens": 0,
            "cost": 0.0, "cost_now": 0.0, "cost_known": True})
        now = i >= len(task.records) - task.calls
        row["calls"] += 1
        row["calls_now"] += now
        row["tokens"] += record.tokens
        row["cost"] += record.cost
        row["cost_now"] += record.cost if now else 0.0
        row["cost_known"] &= record.cost_known


def _unrendered(prompt: Prompt, piece: Piece, control_text: str | None) -> Item:
    """An item whose template went past its rendering budget, under its prompt's ``on_fail`` (no call was made)."""
    status, content = {"skip": ("skipped", None), "use_control": ("use_control", control_text)}.get(
        prompt.checks.on_fail, ("failed", None))
    return Item(piece.variant, piece.key, content, None, 0.0, 0, status, piece.error, False, personal=piece.personal)
