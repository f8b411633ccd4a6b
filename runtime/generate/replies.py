"""Bounds on a provider's HTTP reply, applied while it arrives: size, compression, redirects.

litellm reads a reply whole (and then holds it again as JSON, as a response
object and as text): a hostile or broken server could send 40 MB, or a small
gzip bomb, and expc would hold it several times over. While :func:`bounded`
is active (it is during :func:`expc.runtime.generate.calls.run`), every
request made through an ``httpx.AsyncClient`` in that task and the tasks it
starts

- asks for an uncompressed reply (``Accept-Encoding: identity``) and
  refuses a compressed one (its inflated size is unknown until inflated);
- refuses a reply whose ``Content-Length`` exceeds the limit before reading
  its body, and stops reading a body (chunked or not) as soon as it exceeds
  the limit, so at most ``limit`` bytes (plus one network chunk) are held;
- refuses a redirect to another origin (scheme, host, port): providers'
  key headers (``x-api-key``, ``api-key``) would follow it.

A refusal raises :class:`ReplyRefused` inside the HTTP client; the clients
wrap it in their own errors, so callers look for it with :func:`refusal`.
Outside :func:`bounded` nothing changes. This hooks httpx's
``AsyncClient._send_single_request`` (the one place every async request and
redirect passes through, whatever transport litellm picks); if a future
httpx lacks it, the hook is not installed and the limit on the reply's text
(in :mod:`.calls`) still holds.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any

MAX_REPLY_BYTES = 2 * 1024 * 1024
"""Largest HTTP reply body read from a provider, in bytes (2 MiB: the largest allowed text, escaped as JSON)."""

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("expc_reply_limit", default=None)
_installed = False


class ReplyRefused(Exception):
    """A provider's reply broke a bound (too large, compressed, redirected elsewhere)."""


@contextlib.contextmanager
def bounded(limit: int = MAX_REPLY_BYTES) -> Iterator[None]:
    """Apply the bounds to HTTP replies read in this context (and in tasks started from it)."""
    install()
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def refusal(exc: BaseException) -> ReplyRefused | None:
    """The :class:`ReplyRefused` behind ``exc`` (through its causes and contexts), if any."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        if isinstance(current, ReplyRefused):
            return current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def install() -> None:
    """Hook httpx once (idempotent), and httpx2 (the openai client's fork of it) where installed."""
    global _installed
    if _installed:
        return
    import importlib.util

    import httpx

    _hook(httpx)
    if importlib.util.find_spec("httpx2") is not None:
        _hook(importlib.import_module("httpx2"))
    _installed = True


def _hook(httpx: Any) -> None:
    """Hook one httpx-like module's ``AsyncClient._send_single_request``; without it, do nothing."""
    original = getattr(httpx.AsyncClient, "_send_single_request", None)
    if original is None:  # pragma: no cover - another httpx
        return

    capped = _capped(httpx)

    async def send_single_request(self: Any, request: Any) -> Any:
        limit = _LIMIT.get()
        if limit is None:
            return await original(self, request)
        request.headers["Accept-Encoding"] = "identity"
        response = await original(self, request)
        try:
            _check_head(request, response, limit)
        except ReplyRefused:
            await response.aclose()
            raise
        response.stream = capped(response.stream, limit)
        return response

    httpx.AsyncClient._send_single_request = send_single_request


def _check_head(request: Any, response: Any, limit: int) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ReplyRefused(f"the reply is compressed ({encoding}) although expc asked for none")
    length = response.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise ReplyRefused(f"the reply is {int(length):,} bytes, over the {_size(limit)} limit")
    if response.is_redirect:
        target = request.url.join(response.headers["location"])
        if (target.scheme, target.host, target.port) != (request.url.scheme, request.url.host, request.url.port):
            raise ReplyRefused(f"the server redirects to another host ({target.host or '?'})")


def _capped(httpx: Any) -> type:
    """An httpx async byte stream class that stops once more than ``limit`` bytes came through."""

    class Capped(httpx.AsyncByteStream):
        def __init__(self, inner: Any, limit: int) -> None:
            self._inner = inner
            self._limit = limit

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._limit:
                    raise ReplyRefused(f"the reply is over the {_size(self._limit)} limit (stopped reading at "
                                       f"{seen:,} bytes)")
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    return Capped


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"
