"""A provider's reply is bounded: its size while it is read, its text, its compression and redirects.

Each case goes through litellm over real HTTP to the loopback server
(tests/fakellm.py). A reply over a bound is an attempt whose text failed its
checks: regenerated with a new seed, then ``on_fail`` applies; it is never
stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate.calls import MAX_CONTENT_CHARS
from expc.runtime.generate.replies import MAX_REPLY_BYTES
from expc.runtime.generate.runner import GenerateOptions, generate
from expc.runtime.generate.store import Store

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def server():
    with FakeLLM() as s:
        yield s


def _run(server: FakeLLM, tmp_path: Path, faults: list[str], checks: str = "{regenerate: 0}"):
    server.faults(faults)
    plan = plan_of(spec_text(model=MODEL, checks=checks))
    opts = GenerateOptions(api_base=server.url, backoff_base=0.01, concurrency=1)
    return generate(plan, units_of(1), tmp_path / "s.sqlite", opts)


def _treated(result):
    [item] = [i for i in result.items if i.variant == "treatment"]
    return item


def test_the_bounds_leave_room_for_the_largest_text() -> None:
    assert MAX_CONTENT_CHARS == 256 * 1024
    assert MAX_REPLY_BYTES >= 6 * MAX_CONTENT_CHARS  # a text at the limit fits even if every character is \\uXXXX


@pytest.mark.parametrize("fault", [f"big:{MAX_REPLY_BYTES + 1}", f"chunked:{40 * 1024 * 1024}"])
def test_a_reply_over_the_byte_limit_fails_its_item_without_being_stored(server: FakeLLM, tmp_path: Path,
                                                                         fault: str) -> None:
    result = _run(server, tmp_path, [fault])
    item = _treated(result)
    assert item.status == "failed" and item.content is None
    assert "MiB limit" in item.reason, item.reason
    assert server.calls == 1 and result.calls == 1  # not retried: the same request would bring the same reply
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 0


def test_a_chunked_reply_is_cut_off_while_it_arrives(server: FakeLLM, tmp_path: Path) -> None:
    item = _treated(_run(server, tmp_path, [f"chunked:{40 * 1024 * 1024}"]))
    assert "stopped reading at" in item.reason
    assert server.cut == 1  # the client closed the connection before the 40 MB were sent


def test_a_text_over_the_character_limit_is_regenerated_then_on_fail_applies(server: FakeLLM,
                                                                             tmp_path: Path) -> None:
    checks = "{regenerate: 1, on_fail: use_control}"
    result = _run(server, tmp_path, [f"big:{MAX_CONTENT_CHARS + 1}"], checks)
    item = _treated(result)
    assert item.status == "ok" and server.calls == 2  # the second attempt (a new seed) got a normal reply
    result = _run(server, tmp_path / "again", [f"big:{MAX_CONTENT_CHARS + 1}"] * 2, checks)
    item = _treated(result)
    assert item.status == "use_control" and item.content == "Hello!"
    assert f"over the {MAX_CONTENT_CHARS:,}-character limit" in item.reason


def test_a_compressed_reply_is_refused(server: FakeLLM, tmp_path: Path) -> None:
    item = _treated(_run(server, tmp_path, ["gzip"]))
    assert item.status == "failed" and "compressed (gzip)" in item.reason
    assert server.headers[-1]["accept-encoding"] == "identity"


def test_a_redirect_to_another_host_is_not_followed(server: FakeLLM, tmp_path: Path) -> None:
    item = _treated(_run(server, tmp_path, ["redirect"]))
    assert item.status == "failed" and "redirects to another host (localhost)" in item.reason
    assert server.calls == 1  # the redirect's target (the same server, as localhost) was never asked


def test_normal_replies_pass_untouched(server: FakeLLM, tmp_path: Path) -> None:
    item = _treated(_run(server, tmp_path, [f"big:{MAX_CONTENT_CHARS}"]))
    assert item.status == "ok" and len(item.content) == MAX_CONTENT_CHARS
