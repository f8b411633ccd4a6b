"""Spreading a prompt's calls over its deployments within their rate limits, and falling back while some fail.

A prompt may list ``deployments`` (interchangeable copies of its model: each a
model id, optionally a server and a key variable, and ``rpm``/``tpm`` limits)
and ``fallbacks`` (ids of those used only while the others fail). One
:class:`Router` per prompt, inside one run's event loop, decides where each
call goes (:meth:`Router.pick`):

- **within limits**: a deployment takes a call only while the calls it took
  in the last 60 s are fewer than its ``rpm`` and the tokens its replies used
  in that window fewer than its ``tpm``; among those that can, the one least
  used relative to its limit gets it (so calls spread in proportion to the
  limits). When none can, the call waits for the first to free up: a rate
  limit is a reason to wait, not to fall back.
- **fallbacks**: the primary deployments (those not in ``fallbacks``) serve
  while any of them is up; the fallbacks, in their order, only while every
  primary is cooling down.
- **outage**: a call that failed in a way worth retrying (429, 5xx, a
  timeout, a refused connection) tries another deployment next, if there is
  one it has not tried; a deployment that failed :attr:`Router.failures_to_cool`
  times in a row, or answered 429 with ``Retry-After``, cools down (gets no
  call) for :attr:`Router.cooldown` seconds (or the ``Retry-After``, at most
  :attr:`Router.max_cooldown`), then is tried again.

litellm's ``Router`` does this too, but it makes its own retries, keeps its
own per-call state and goes through ``litellm.acompletion`` on every call;
expc's calls keep their one retry policy, budget and store (:mod:`.calls`),
and an OpenAI-compatible deployment is still called without litellm.
Everything here is bounded by the spec's own limits (at most
``MAX_DEPLOYMENTS`` deployments, one time stamp per call in the window).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW = 60.0  # seconds: rpm and tpm are per minute


@dataclass(frozen=True)
class Route:
    """One deployment as the calls see it (no secret: only the *name* of its key's variable)."""

    id: str
    model: str
    api_base: str | None = None
    key_env: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    fallback: int = 0  # 0: primary; 1, 2, ...: its place in ``fallbacks``
    placeholder_key: bool = False  # a local server with no key


@dataclass
class _State:
    """What a router knows of one deployment: recent calls and tokens, failures in a row, cooldown."""

    route: Route
    calls: collections.deque[float] = field(default_factory=collections.deque)
    tokens: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    token_sum: int = 0
    failures: int = 0
    cool_until: float = 0.0
    served: int = 0

    def prune(self, now: float) -> None:
        while self.calls and self.calls[0] <= now - WINDOW:
            self.calls.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW:
            self.token_sum -= self.tokens.popleft()[1]

    def free_at(self, now: float) -> float:
        """When this deployment may take a call (``now`` if it may at once)."""
        at = now
        if self.route.rpm is not None and len(self.calls) >= self.route.rpm:
            at = max(at, self.calls[len(self.calls) - self.route.rpm] + WINDOW)
        if self.route.tpm is not None and self.token_sum >= self.route.tpm:
            at = max(at, self.tokens[0][0] + WINDOW)
        return at

    def load(self) -> float:
        """How much of its limits the last minute used (0 without limits)."""
        used = [len(self.calls) / self.route.rpm] if self.route.rpm else []
        used += [self.token_sum / self.route.tpm] if self.route.tpm else []
        return max(used, default=0.0)


class Router:
    """Where each of one prompt's calls goes: within the deployments' limits, falling back while some fail."""

    failures_to_cool = 3
    cooldown = 30.0
    max_cooldown = 300.0

    def __init__(self, routes: tuple[Route, ...], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """A router over ``routes`` (at least one), with a clock and a sleep that tests may replace."""
        if not routes:
            raise ValueError("a router needs at least one deployment")
        self._states = {r.id: _State(r) for r in routes}
        self._clock, self._sleep = clock, sleep
        tiers = sorted({r.fallback for r in routes})
        self._tiers = [[self._states[r.id] for r in routes if r.fallback == tier] for tier in tiers]

    @property
    def routes(self) -> list[Route]:
        """The deployments, in the order given."""
        return [s.route for s in self._states.values()]

    def served(self) -> dict[str, int]:
        """Calls each deployment was given so far (by id)."""
        return {k: s.served for k, s in self._states.items()}

    async def pick(self, avoid: frozenset[str] = frozenset()) -> Route:
        """The deployment for the next call, once one may take it (``avoid``: those this call already failed on)."""
        while True:
            now = self._clock()
            for state in self._states.values():
                state.prune(now)
            up = self._first_tier_up(now, avoid) or self._first_tier_up(now, frozenset())
            if up:
                ready = [s for s in up if s.free_at(now) <= now]
                if ready:
                    chosen = min(ready, key=lambda s: (s.load(), s.served))
                    chosen.calls.append(now)
                    chosen.served += 1
                    return chosen.route
                wait = min(s.free_at(now) for s in up) - now
            else:  # every deployment is cooling down: wait for the first to come back
                wait = min(s.cool_until for s in self._states.values()) - now
            await self._sleep(max(wait, 0.001))

    def _first_tier_up(self, now: float, avoid: frozenset[str]) -> list[_State]:
        for tier in self._tiers:
            up = [s for s in tier if s.cool_until <= now and s.route.id not in avoid]
            if up:
                return up
        return []

    def succeeded(self, route: Route, tokens: int) -> None:
        """A call to ``route`` was answered, using ``tokens``: it counts against ``tpm``; its failures reset."""
        state = self._states[route.id]
        state.failures = 0
        if tokens > 0:
            state.tokens.append((self._clock(), tokens))
            state.token_sum += tokens
        state.cool_until = 0.0

    def failed(self, route: Route, retry_after: float | None = None) -> None:
        """A call to ``route`` failed in a way worth retrying: after enough in a row (or a 429's wait) it cools down."""
        state = self._states[route.id]
        state.failures += 1
        now = self._clock()
        if retry_after is not None and retry_after > 0:
            state.cool_until = max(state.cool_until, now + min(retry_after, self.max_cooldown))
        elif state.failures >= self.failures_to_cool:
            state.cool_until = max(state.cool_until, now + self.cooldown)

    def all_tried(self, avoid: frozenset[str]) -> bool:
        """True when ``avoid`` holds every deployment (a call has tried them all: time to back off)."""
        return set(self._states) <= avoid
