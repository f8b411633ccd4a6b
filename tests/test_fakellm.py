"""Tests of the loopback OpenAI-compatible server (tests/fakellm.py) that the generation tests rely on.

The server is driven through the raw ``openai`` async client and through ``litellm.acompletion``
(the path expc uses), so these tests also pin which exception each fault becomes (the table in
fakellm's docstring). No test depends on timing: the only clocks are client timeouts that are
far shorter than the server's 30 s ``timeout`` fault.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from fakellm import FAULTS, FakeLLM, reply_text

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

litellm = pytest.importorskip("litellm")
openai = pytest.importorskip("openai")
litellm.suppress_debug_info = True

MESSAGES = [{"role": "system", "content": "You write short subject lines."},
            {"role": "user", "content": "Write a subject line for Ada who likes chess"}]
GENEROUS = 20.0  # a client timeout no healthy loopback reply comes near


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module: litellm caches its HTTP clients per loop."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    """A fresh server per test (its queue, counters and requests start empty)."""
    with FakeLLM() as srv:
        yield srv


def via_litellm(loop: asyncio.AbstractEventLoop, server: FakeLLM, timeout: float = GENEROUS,
                **kwargs: Any) -> Any:
    """One litellm call to the fake server, as expc's generation makes it (no retries)."""
    return loop.run_until_complete(litellm.acompletion(
        model="openai/x", messages=MESSAGES, api_base=server.url, api_key="sk-fake",
        max_retries=0, timeout=timeout, **kwargs))


def via_openai(loop: asyncio.AbstractEventLoop, server: FakeLLM, timeout: float = GENEROUS,
               **kwargs: Any) -> Any:
    """One call through the raw openai async client (a new client each time, closed after)."""
    async def call() -> Any:
        client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-fake", max_retries=0, timeout=timeout)
        try:
            return await client.chat.completions.create(model="x", messages=MESSAGES, **kwargs)
        finally:
            await client.close()
    return loop.run_until_complete(call())


# ---------------------------------------------------------------------- normal replies


def test_url_is_loopback_with_a_port(server: FakeLLM) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.url.endswith("/v1")
    assert server.port > 0


def test_raw_openai_client_gets_the_deterministic_reply_with_usage(
        loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    reply = via_openai(loop, server, seed=7)
    expected = "fake reply to: Write a subject line for Ada who likes chess [seed=7]"
    assert reply.choices[0].message.content == expected
    assert reply.model == "x"
    prompt_words = len(MESSAGES[0]["content"].split()) + len(MESSAGES[1]["content"].split())
    assert reply.usage.prompt_tokens == prompt_words
    assert reply.usage.completion_tokens == len(expected.split())
    assert reply.usage.total_tokens == prompt_words + len(expected.split())
    assert server.calls == 1
    assert server.requests[0]["messages"] == MESSAGES
    assert server.requests[0]["seed"] == 7


def test_litellm_gets_the_normal_reply_with_usage(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    reply = via_litellm(loop, server, seed=3)
    expected = "fake reply to: Write a subject line for Ada who likes chess [seed=3]"
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == 14
    assert reply.usage.completion_tokens == len(expected.split())
    assert reply.usage.total_tokens == 14 + len(expected.split())
    body = server.requests[0]
    assert body["model"] == "x"  # litellm strips the "openai/" provider prefix
    assert body["messages"] == MESSAGES


def test_reply_text_truncates_and_reads_content_parts() -> None:
    long = "w" * 500
    assert reply_text({"messages": [{"role": "user", "content": long}]}) == "fake reply to: " + "w" * 200
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                        {"type": "text", "text": "b"}]}]}
    assert reply_text(parts) == "fake reply to: a b"
    last_user = {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                              {"role": "user", "content": "second"}], "seed": 0}
    assert reply_text(last_user) == "fake reply to: second [seed=0]"


def test_models_endpoint_lists_models(server: FakeLLM) -> None:
    with urllib.request.urlopen(server.url + "/models", timeout=GENEROUS) as response:
        data = json.load(response)
    assert data["object"] == "list"
    assert data["data"] and all(m["object"] == "model" for m in data["data"])
    assert server.calls == 0


def test_keep_alive_chunked_body_and_route_errors(server: FakeLLM) -> None:
    """Several requests on one connection, a chunked body, the short path, 404 and 400."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=GENEROUS)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read())["choices"][0]["message"]["content"] == "fake reply to: hi"
    sock = conn.sock
    conn.request("POST", "/chat/completions", iter([body[:10], body[10:]]),
                 {"Content-Type": "application/json"}, encode_chunked=True)
    second = conn.getresponse()
    assert second.status == 200 and json.loads(second.read())["model"] == "m"
    assert conn.sock is sock  # the same connection was kept alive
    conn.request("POST", "/v1/nowhere", b"{}")
    missing = conn.getresponse()
    assert missing.status == 404 and "error" in json.loads(missing.read())
    conn.request("POST", "/v1/chat/completions", b"not json")
    bad = conn.getresponse()
    assert bad.status == 400 and "error" in json.loads(bad.read())
    conn.close()
    assert server.calls == 2  # 404 and 400 are not chat completions


# ---------------------------------------------------------------------- faults through litellm


@pytest.mark.parametrize(("fault", "exc_name", "status"), [
    ("429:1", "RateLimitError", 429),
    ("500", "InternalServerError", 500),
    ("503", "ServiceUnavailableError", 503),
    ("malformed", "InternalServerError", 500),
])
def test_litellm_raises_typed_errors(loop: asyncio.AbstractEventLoop, server: FakeLLM,
                                     fault: str, exc_name: str, status: int) -> None:
    server.faults([fault])
    with pytest.raises(getattr(litellm, exc_name)) as info:
        via_litellm(loop, server)
    assert type(info.value) is getattr(litellm, exc_name)
    assert info.value.status_code == status
    assert isinstance(info.value, openai.APIError)
    assert server.calls == 1
    # the fault was used up: the next request is answered normally
    assert via_litellm(loop, server).choices[0].message.content.startswith("fake reply to: ")


def test_litellm_503_is_not_an_internal_server_error(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    """Documented in the table: a 5xx retry policy must catch ServiceUnavailableError too."""
    server.faults(["503"])
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        via_litellm(loop, server)
    assert not isinstance(info.value, litellm.InternalServerError)


def test_litellm_rate_limit_carries_retry_after(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    server.faults(["429:7"])
    with pytest.raises(litellm.RateLimitError) as info:
        via_litellm(loop, server)
    assert info.value.response.headers["retry-after"] == "7"


def test_litellm_timeout(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    server.faults(["timeout"])
    with pytest.raises(litellm.Timeout) as info:
        via_litellm(loop, server, timeout=1.0)
    assert isinstance(info.value, openai.APITimeoutError)
    assert via_litellm(loop, server).choices[0].message.content.startswith("fake reply to: ")


@pytest.mark.parametrize(("fault", "content"), [("empty_choices", None), ("empty_content", "")])
def test_litellm_empty_replies_are_not_errors(loop: asyncio.AbstractEventLoop, server: FakeLLM,
                                              fault: str, content: str | None) -> None:
    server.faults([fault])
    reply = via_litellm(loop, server)
    if content is None:
        assert reply.choices == []
    else:
        assert reply.choices[0].message.content == content


def test_refused_connection_is_an_internal_server_error(loop: asyncio.AbstractEventLoop) -> None:
    with FakeLLM() as gone:
        pass  # started, then stopped: its port now refuses connections
    with pytest.raises(litellm.InternalServerError):
        via_litellm(loop, gone)
    with pytest.raises(openai.APIConnectionError):
        via_openai(loop, gone)


# ---------------------------------------------------------------------- faults through the raw client


@pytest.mark.parametrize(("fault", "exc"), [
    ("429:2", "RateLimitError"),
    ("500", "InternalServerError"),
    ("503", "InternalServerError"),
])
def test_raw_openai_client_status_errors(loop: asyncio.AbstractEventLoop, server: FakeLLM,
                                         fault: str, exc: str) -> None:
    server.faults([fault])
    with pytest.raises(getattr(openai, exc)) as info:
        via_openai(loop, server)
    assert info.value.status_code == int(fault.split(":")[0])
    if fault.startswith("429"):
        assert info.value.response.headers["retry-after"] == "2"
        assert info.value.body["code"] == "rate_limit_exceeded"


def test_raw_openai_client_timeout_and_broken_bodies(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    server.faults(["timeout"])
    with pytest.raises(openai.APITimeoutError):
        via_openai(loop, server, timeout=1.0)
    server.faults(["malformed", "empty_choices", "empty_content"])
    with pytest.raises(json.JSONDecodeError):
        via_openai(loop, server)
    assert via_openai(loop, server).choices == []
    assert via_openai(loop, server).choices[0].message.content == ""
    assert via_openai(loop, server).choices[0].message.content.startswith("fake reply to: ")


# ---------------------------------------------------------------------- queue, always, counters, shutdown


def test_faults_are_a_fifo_queue_and_always_wins(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    server.faults(["500"])
    server.faults(["503"])  # appended after the 500
    statuses = []
    for _ in range(3):
        try:
            via_litellm(loop, server)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses == [500, 503, 200]
    server.faults(["429:1"])
    server.always("500")
    for _ in range(2):
        with pytest.raises(litellm.InternalServerError):
            via_litellm(loop, server)
    server.always(None)
    with pytest.raises(litellm.RateLimitError):  # the queued fault waited while `always` was set
        via_litellm(loop, server)
    via_litellm(loop, server)
    assert server.calls == 7
    assert len(server.requests) == 7


def test_unknown_faults_are_refused(server: FakeLLM) -> None:
    for bad in ("404", "429:x", "500:1", "slow", "Timeout"):
        with pytest.raises(ValueError, match="unknown fault"):
            server.faults([bad])
        with pytest.raises(ValueError, match="unknown fault"):
            server.always(bad)
    for good in (*FAULTS, "429:0", "429:30"):
        server.faults([good])  # accepted


def test_requests_is_a_copy(loop: asyncio.AbstractEventLoop, server: FakeLLM) -> None:
    via_litellm(loop, server)
    snapshot = server.requests
    snapshot.clear()
    assert len(server.requests) == 1


def test_a_hanging_request_does_not_block_others_and_exit_cancels_it(loop: asyncio.AbstractEventLoop) -> None:
    """While one request sits in the 30 s timeout fault, others are answered; exit does not wait for it."""
    srv = FakeLLM(latency=0.0).start()
    srv.faults(["timeout"])

    async def scenario() -> tuple[bool, str]:
        client = openai.AsyncOpenAI(base_url=srv.url, api_key="sk-fake", max_retries=0, timeout=60.0)
        hanging = asyncio.ensure_future(client.chat.completions.create(model="x", messages=MESSAGES))
        while srv.calls < 1:  # wait until the hanging request has reached the server
            await asyncio.sleep(0.01)
        other = await client.chat.completions.create(model="x", messages=MESSAGES, timeout=GENEROUS)
        still_hanging = not hanging.done()
        hanging.cancel()
        await asyncio.gather(hanging, return_exceptions=True)
        await client.close()
        return still_hanging, other.choices[0].message.content

    still_hanging, content = loop.run_until_complete(scenario())
    assert still_hanging
    assert content.startswith("fake reply to: ")
    thread = srv._thread
    assert thread is not None
    srv.stop()  # cancels the server-side 30 s sleep
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=GENEROUS)


def test_concurrent_requests_with_latency_all_answered(loop: asyncio.AbstractEventLoop) -> None:
    """64 requests at concurrency 32 with latency: each gets its own reply, every body is recorded."""
    async def scenario(url: str) -> list[str]:
        client = openai.AsyncOpenAI(base_url=url, api_key="sk-fake", max_retries=0, timeout=GENEROUS)
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with gate:
                reply = await client.chat.completions.create(
                    model="x", messages=[{"role": "user", "content": f"unit {i}"}])
                return reply.choices[0].message.content

        try:
            return await asyncio.gather(*(one(i) for i in range(64)))
        finally:
            await client.close()

    with FakeLLM(latency=0.05) as srv:
        replies = loop.run_until_complete(scenario(srv.url))
        assert replies == [f"fake reply to: unit {i}" for i in range(64)]
        assert srv.calls == 64
        stamps = srv.stamps
        assert len(stamps) == 64 and all(arrived <= answered for arrived, answered in stamps)
        assert sorted(r["messages"][0]["content"] for r in srv.requests) == sorted(f"unit {i}" for i in range(64))
