"""A loopback OpenAI-compatible chat-completions server for tests and benchmarks.

Why: expc's generation goes through litellm over real HTTP; tests must exercise that
path (latency, rate limits, server errors, timeouts, broken replies) with no network
and no API key. This server listens on 127.0.0.1 (a random free port), runs an
asyncio event loop in a background thread, and speaks just enough HTTP/1.1
(keep-alive, Content-Length or chunked request bodies) to serve
``POST /v1/chat/completions`` (also ``/chat/completions``) and ``GET /v1/models``.
Standard library only.

Usage::

    from fakellm import FakeLLM   # tests/ is on sys.path in pytest; benchmarks add it

    with FakeLLM(latency=0.0) as server:
        server.url                      # "http://127.0.0.1:PORT/v1"
        server.faults(["429:1", "500"]) # FIFO: the next requests get these, then normal replies
        server.always("503")            # every request gets this until server.always(None)
        server.requests                 # copies of the JSON bodies received, in arrival order
        server.headers                  # the headers of every request (lower-case names), in arrival order
        server.paths                    # (method, path) of every request, chat completion or not
        server.cut                      # replies the client stopped reading before their end
        server.calls                    # number of chat-completion requests received
        server.latency = 0.1            # seconds added before each reply (never blocks others)
        server.stamps                   # (arrived, answered) time.perf_counter() pairs, for benchmarks

A normal reply is deterministic: ``"fake reply to: " + last user message[:200]``, plus
``f" [seed={seed}]"`` when the request carries a ``seed``; ``usage`` counts words
(prompt: all messages; completion: the reply); ``model`` echoes the request. When
``always`` is set it wins over the queue (queued faults wait until it is cleared).

Faults and what the clients make of them (measured by tests/test_fakellm.py, which
asserts every row, with openai 3.57.0 and litellm 1.110.2, ``max_retries=0``):

=================  ===================================  ==============================  ==========================================
fault              server does                          raw ``openai.AsyncOpenAI``      ``litellm.acompletion``
=================  ===================================  ==============================  ==========================================
(none)             200, normal reply with usage         reply                           ``ModelResponse``, usage from the server
``429:N``          429, ``Retry-After: N``, error JSON  ``openai.RateLimitError``       ``litellm.RateLimitError`` (status 429)
``500``            500, error JSON                      ``openai.InternalServerError``  ``litellm.InternalServerError`` (500)
``503``            503, error JSON                      ``openai.InternalServerError``  ``litellm.ServiceUnavailableError`` (503)
``timeout``        waits 30 s, then a normal reply      ``openai.APITimeoutError``      ``litellm.Timeout`` (status 408)
``malformed``      200, body ``{"choices": [``          ``json.JSONDecodeError`` (!)    ``litellm.InternalServerError`` (500)
``empty_choices``  200, ``"choices": []``               no error, ``choices == []``     no error (!), ``choices == []``
``empty_content``  200, content ``""``                  no error, content ``""``        no error, content ``""``
(server gone)      connection refused                   ``openai.APIConnectionError``   ``litellm.InternalServerError``
=================  ===================================  ==============================  ==========================================

Faults for the bounds expc puts on replies (tests/runtime/generate/test_reply_limits.py):

=================  ==========================================================================================
fault              server does
=================  ==========================================================================================
``big:N``          200, a normal reply whose content is N characters (default 3 MiB), with Content-Length
``chunked:N``      the same, sent chunked (64 KiB chunks, no Content-Length), stopping if the client goes away
``gzip``           200, a normal reply compressed with gzip (``Content-Encoding: gzip``), whatever was asked
``redirect``       307 to the same path on ``localhost`` (another origin, the same server)
=================  ==========================================================================================

Notes for callers:
 * Every litellm exception above subclasses ``openai.APIError`` and carries
   ``.status_code``. ``litellm.ServiceUnavailableError`` does NOT subclass
   ``litellm.InternalServerError``: catch both (or test ``status_code >= 500``)
   when retrying on 5xx. ``litellm.Timeout`` subclasses ``openai.APITimeoutError``.
 * A 429's ``Retry-After`` is ``exc.response.headers["retry-after"]`` on both
   clients (litellm keeps the httpx response on the exception).
 * A malformed body is a 500-class ``InternalServerError`` through litellm (so a
   5xx retry policy retries it); the raw openai client lets the ``JSONDecodeError``
   escape.
 * ``empty_choices`` and ``empty_content`` are not errors through either client:
   treat no choice, ``None`` or ``""`` content as a failed generation yourself.
 * A short client ``timeout=`` against ``timeout`` frees the client; the server's
   30 s sleep is cancelled when the ``with`` block exits.
"""  # noqa: E501 (the tables above are wider than a line)

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import threading
import time
from typing import Any

__all__ = ["FakeLLM", "FAULTS", "reply_text"]

#: Fault names accepted by :meth:`FakeLLM.faults` and :meth:`FakeLLM.always`
#: (``429:N`` is ``429`` with a Retry-After of N seconds; plain ``429`` means ``429:1``).
FAULTS = ("429", "500", "503", "timeout", "malformed", "empty_choices", "empty_content", "big", "chunked", "gzip",
          "redirect")
SIZED = ("429", "big", "chunked")  # faults that take ``:N``
BIG_DEFAULT = 3 * 1024 * 1024
CHUNK = 64 * 1024

TIMEOUT_SLEEP = 30.0
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

_REASONS = {200: "OK", 307: "Temporary Redirect", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _check_fault(fault: str) -> str:
    """Return the fault unchanged if its name is known; raise ValueError otherwise (typos fail loudly)."""
    name, _, arg = fault.partition(":")
    if name not in FAULTS or (arg and (name not in SIZED or not arg.isdigit())):
        raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS} ({', '.join(SIZED)} may take :N)")
    return fault


def _text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def reply_text(body: dict[str, Any]) -> str:
    """The deterministic reply to a request body (exposed so tests can predict it)."""
    messages = body.get("messages") or []
    last_user = next((_text(m.get("content")) for m in reversed(messages)
                      if isinstance(m, dict) and m.get("role") == "user"), "")
    text = "fake reply to: " + last_user[:200]
    if body.get("seed") is not None:
        text += f" [seed={body['seed']}]"
    return text


def _completion(body: dict[str, Any], number: int, content: str | None, empty_choices: bool) -> dict[str, Any]:
    """An OpenAI chat.completion object for the body; usage counts words."""
    prompt_tokens = sum(len(_text(m.get("content")).split()) for m in body.get("messages") or []
                        if isinstance(m, dict))
    text = reply_text(body) if content is None else content
    completion_tokens = len(text.split())
    choices = [] if empty_choices else [{
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": "stop",
    }]
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "fake",
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _error(status: int, message: str, kind: str, code: str) -> bytes:
    """An OpenAI-style error body."""
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


class FakeLLM:
    """The server; a context manager that starts it on entry and stops it (cleanly) on exit."""

    def __init__(self, latency: float = 0.0, host: str = "127.0.0.1") -> None:
        """Configure (nothing starts until ``start()`` or ``with``)."""
        self.latency = float(latency)
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._queue: collections.deque[str] = collections.deque()
        self._always: str | None = None
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._paths: list[tuple[str, str]] = []
        self._cut = 0
        self._calls = 0
        self._stamps: list[tuple[float, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        """Base URL to pass as ``api_base`` / ``base_url``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the chat-completion JSON bodies received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """A copy of the headers of every request received (names lower-case), in arrival order."""
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def paths(self) -> list[tuple[str, str]]:
        """(method, path) of every request received (any path), in arrival order."""
        with self._lock:
            return list(self._paths)

    @property
    def cut(self) -> int:
        """How many replies the client stopped reading before their end (it closed the connection)."""
        with self._lock:
            return self._cut

    @property
    def calls(self) -> int:
        """How many chat-completion requests arrived (faulted ones included)."""
        with self._lock:
            return self._calls

    @property
    def stamps(self) -> list[tuple[float, float]]:
        """(arrived, answered) ``time.perf_counter()`` pairs of the chat completions finished so far.

        Benchmarks read the span from the first arrival to the last answer: the client's busy
        time, free of its start-up and shutdown.
        """
        with self._lock:
            return list(self._stamps)

    def faults(self, faults: list[str]) -> None:
        """Queue faults: each of the next requests gets the next one, then normal replies resume."""
        checked = [_check_fault(f) for f in faults]
        with self._lock:
            self._queue.extend(checked)

    def always(self, fault: str | None) -> None:
        """Give every request this fault until called with None (takes precedence over the queue)."""
        checked = None if fault is None else _check_fault(fault)
        with self._lock:
            self._always = checked

    def start(self) -> FakeLLM:
        """Start the event loop thread and wait until the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeLLM already started")
        self._thread = threading.Thread(target=self._run, name="fakellm", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise RuntimeError(f"FakeLLM could not start: {self._start_error}") from self._start_error
        return self

    def stop(self) -> None:
        """Close the listener, cancel open connections (and pending 30 s sleeps), end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            future.result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, 0, backlog=1024, limit=MAX_HEADER))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported to the caller of start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: requests in a loop while the client keeps it alive."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                with self._lock:
                    self._headers.append(headers)
                    self._paths.append((method, path))
                status, extra, payload = await self._respond(method, path, body, headers)
                keep = headers.get("connection", "").lower() != "close"
                chunked = extra.pop("Transfer-Encoding", None) == "chunked"
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                        "Content-Type: application/json",
                        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(payload)}",
                        f"Connection: {'keep-alive' if keep else 'close'}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                try:
                    if chunked:
                        for i in range(0, len(payload), CHUNK):
                            piece = payload[i:i + CHUNK]
                            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                            await writer.drain()
                        writer.write(b"0\r\n\r\n")
                    else:
                        writer.write(payload)
                    await writer.drain()
                except ConnectionError:
                    with self._lock:
                        self._cut += 1
                    raise
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def _read_request(self, reader: asyncio.StreamReader
                            ) -> tuple[str, str, dict[str, str], bytes] | None:
        """Parse one HTTP/1.1 request; None when the client closed the connection between requests."""
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            raise
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            body = await reader.readexactly(length) if length else b""
        return method.upper(), target.split("?", 1)[0], headers, body

    async def _respond(self, method: str, path: str, raw: bytes,
                       headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Status, extra headers and body for one request."""
        path = path.rstrip("/")
        if path in ("/v1/models", "/models"):
            if method != "GET":
                return 405, {}, _error(405, "use GET", "invalid_request_error", "method_not_allowed")
            models = {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "fakellm"}
                for name in ("fake", "gpt-4o-mini", "bench")]}
            return 200, {}, json.dumps(models).encode()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            return 404, {}, _error(404, f"no route {path}", "invalid_request_error", "not_found")
        if method != "POST":
            return 405, {}, _error(405, "use POST", "invalid_request_error", "method_not_allowed")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return 400, {}, _error(400, "request body is not a JSON object", "invalid_request_error", "bad_json")
        arrived = time.perf_counter()
        try:
            status, extra, payload = await self._complete(body)
            if extra.pop("X-Fake-Redirect", None):
                host = (headers or {}).get("host", f"{self.host}:{self.port}")
                port = host.rsplit(":", 1)[-1]
                extra["Location"] = f"http://localhost:{port}{path}"
            return status, extra, payload
        finally:
            with self._lock:
                self._stamps.append((arrived, time.perf_counter()))

    async def _complete(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Count and record a chat completion, then answer it (normally or with its fault)."""
        with self._lock:
            self._calls += 1
            number = self._calls
            self._requests.append(body)
            fault = self._always if self._always is not None else (
                self._queue.popleft() if self._queue else None)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault is None:
            return 200, {}, json.dumps(_completion(body, number, None, False)).encode()
        name, _, arg = fault.partition(":")
        if name == "429":
            seconds = arg or "1"
            return 429, {"Retry-After": seconds}, _error(
                429, f"Rate limit reached (fake); retry after {seconds} s", "rate_limit_error", "rate_limit_exceeded")
        if name == "500":
            return 500, {}, _error(500, "The server had an error (fake)", "server_error", "internal_error")
        if name == "503":
            return 503, {}, _error(503, "The engine is overloaded (fake)", "server_error", "service_unavailable")
        if name == "timeout":
            await asyncio.sleep(TIMEOUT_SLEEP)
            return 200, {}, json.dumps(_completion(body, number, None, False)).encode()
        if name == "malformed":
            return 200, {}, b'{"choices": ['
        if name == "empty_choices":
            return 200, {}, json.dumps(_completion(body, number, None, True)).encode()
        if name in ("big", "chunked"):
            size = int(arg) if arg else BIG_DEFAULT
            payload = json.dumps(_completion(body, number, "x" * size, False)).encode()
            return 200, {"Transfer-Encoding": "chunked"} if name == "chunked" else {}, payload
        if name == "gzip":
            payload = gzip.compress(json.dumps(_completion(body, number, None, False)).encode())
            return 200, {"Content-Encoding": "gzip"}, payload
        if name == "redirect":
            return 307, {"X-Fake-Redirect": "1"}, b""
        return 200, {}, json.dumps(_completion(body, number, "", False)).encode()  # empty_content
