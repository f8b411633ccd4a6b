"""Batch mode against a loopback OpenAI-compatible server with files and batches endpoints.

The server (:class:`FakeBatchLLM`) extends the chat-completions fake
(``tests/fakellm.py``) with ``POST /v1/files``, ``GET /v1/files/{id}/content``,
``POST /v1/batches`` and ``GET /v1/batches/{id}``. A batch ends at its
``finish_after``-th poll as its ``mode`` says: ``complete`` (every request
answered), ``partial`` (every second request fails: a 500 line or an error
line), ``expire`` (only the first half answered, the rest ``batch_expired``),
or ``never`` (still in progress).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakellm import FakeLLM, _completion, _error
from gen_helpers import plan_of, spec_text, units_of

from expc.runtime.generate import batch as batch_mod
from expc.runtime.generate.batch import Polling
from expc.runtime.generate.runner import BudgetExhausted, GenerateOptions, GenerationError, generate
from expc.runtime.generate.store import Store

# a client left open, or a coroutine never awaited, would print a traceback at exit: here it fails the test
pytestmark = [pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("error::RuntimeWarning")]

MODEL = "openai/gpt-4o-mini"  # a model with a price (and batch rates) in litellm's table
FAST = Polling(first=0.01, cap=0.05, max_wait=5.0)


class FakeBatchLLM(FakeLLM):
    """FakeLLM plus the files and batches endpoints (state in memory, counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.created = 0
        self.uploads = 0
        self.mode = "complete"
        self.finish_after = 1
        self.lose_create_reply = False  # create the batch, then send no reply (the client times out)

    async def _respond(self, method: str, path: str, raw: bytes,
                       headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        path = path.rstrip("/")
        headers = headers or {}
        if path == "/v1/files" and method == "POST":
            return self._upload(raw, headers)
        if (m := re.fullmatch(r"/v1/files/([\w-]+)/content", path)) and method == "GET":
            if m[1] not in self.files:
                return 404, {}, _error(404, "no such file", "invalid_request_error", "not_found")
            return 200, {}, self.files[m[1]]
        if path == "/v1/batches" and method == "POST":
            created = self._create(json.loads(raw))
            if self.lose_create_reply:
                await asyncio.sleep(30)
            return created
        if path == "/v1/batches" and method == "GET":
            listed = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
            return 200, {}, json.dumps({"object": "list", "data": listed, "has_more": False}).encode()
        if (m := re.fullmatch(r"/v1/batches/([\w-]+)", path)) and method == "GET":
            if m[1] not in self.batches:
                return 404, {}, _error(404, "no such batch", "invalid_request_error", "not_found")
            return 200, {}, json.dumps(self._advance(m[1])).encode()
        return await super()._respond(method, path, raw, headers)

    def _upload(self, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        head = f"Content-Type: {headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(head + raw)
        content = next(p.get_payload(decode=True) for p in message.iter_parts()
                       if p.get_param("name", header="content-disposition") == "file")
        with self._lock:
            self.uploads += 1
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
        return 200, {}, json.dumps({"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                                    "filename": "in.jsonl", "purpose": "batch", "status": "processed"}).encode()

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.created += 1
            batch_id = f"batch_{self.created}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                "metadata": body.get("metadata"), "request_counts": {"total": 0, "completed": 0, "failed": 0}}
            self.polls[batch_id] = 0
        return 200, {}, json.dumps(self.batches[batch_id]).encode()

    def _advance(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        self.polls[batch_id] += 1
        if batch["status"] not in ("validating", "in_progress"):
            return batch
        if self.mode == "never" or self.polls[batch_id] < self.finish_after:
            batch["status"] = "in_progress"
            return batch
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].splitlines()]
        out, errors = [], []
        for i, line in enumerate(lines):
            if self.mode == "expire" and i >= len(lines) // 2:
                errors.append({"id": f"r{i}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "expired"}})
            elif self.mode == "partial" and i % 4 == 1:
                errors.append({"id": f"r{i}", "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 500, "body": {"error": {"message": "boom", "code": "server_error"}}}})
            elif self.mode == "partial" and i % 4 == 3:
                errors.append({"id": f"r{i}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "invalid_request", "message": "no"}})
            else:
                out.append({"id": f"r{i}", "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 200, "request_id": f"q{i}", "body": _completion(line["body"], i, None, False)}})
        for name, rows in (("output_file_id", out), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[name] = file_id
        batch["status"] = "expired" if self.mode == "expire" else "completed"
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}
        return batch


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture()
def server():
    with FakeBatchLLM() as s:
        yield s


def _opts(server: FakeLLM, polling: Polling = FAST, **kw: Any) -> GenerateOptions:
    return GenerateOptions(api_base=server.url, backoff_base=0.01, batch=True, batch_polling=polling, **kw)


def _ok(result) -> list:
    return [i for i in result.items if i.status == "ok"]


def test_a_completed_batch_is_stored_under_the_live_keys(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    result = generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    assert server.uploads == 1 and server.created == 1 and server.calls == 0  # no live call
    assert len(_ok(result)) == 4 and result.calls == 4
    assert _ok(result)[0].content == "fake reply to: Write a greeting for Name0. [seed=0]"
    assert all(i.cost > 0 and i.cost_known for i in _ok(result))
    line = json.loads(server.files["file-1"].splitlines()[0])
    assert line["url"] == "/v1/chat/completions" and line["body"]["model"] == "gpt-4o-mini"
    assert line["body"]["seed"] == 0 and line["body"]["temperature"] == 0.5
    # a live run (no --batch) finds every result in the store: nothing is called or paid again
    live = generate(plan, units_of(4), tmp_path / "s.sqlite", GenerateOptions(api_base=server.url))
    assert server.calls == 0 and live.calls == 0 and all(i.from_store for i in _ok(live))
    assert [i.content for i in _ok(live)] == [i.content for i in _ok(result)]
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 4 and store.open_batches() == []


def test_batch_price_is_lower_than_the_live_price(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    batched = generate(plan, units_of(2), tmp_path / "b.sqlite", _opts(server))
    live = generate(plan, units_of(2), tmp_path / "l.sqlite", GenerateOptions(api_base=server.url))
    assert [i.tokens for i in _ok(batched)] == [i.tokens for i in _ok(live)]
    assert batched.spent == pytest.approx(live.spent / 2, rel=0.01)


def test_items_in_the_store_are_not_submitted(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions(api_base=server.url))
    assert server.calls == 2
    result = generate(plan, units_of(5), tmp_path / "s.sqlite", _opts(server))
    assert len(server.files["file-1"].splitlines()) == 3 and server.created == 1
    assert len(_ok(result)) == 5 and result.calls == 3


def test_checks_apply_and_failed_replies_are_regenerated_in_another_batch(server: FakeBatchLLM,
                                                                          tmp_path: Path) -> None:
    # the reply carries "[seed=0]" on the first attempt: forbidding it fails every first reply
    plan = plan_of(spec_text(model=MODEL, checks="{forbid: ['[seed=0]'], regenerate: 1, on_fail: skip}"))
    result = generate(plan, units_of(3), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 2 and server.calls == 0
    second = [json.loads(x)["body"]["seed"] for x in server.files[server.batches["batch_2"]["input_file_id"]]
              .splitlines()]
    assert second == [1, 1, 1]
    assert len(_ok(result)) == 3 and all(i.content.endswith("[seed=1]") for i in _ok(result))
    assert result.calls == 6
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 6  # both attempts were paid: both are stored


def test_on_fail_applies_when_the_last_attempt_fails(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL, checks="{forbid: ['fake reply'], regenerate: 1, on_fail: use_control}"))
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server))
    treated = [i for i in result.items if i.variant == "treatment"]
    assert [i.status for i in treated] == ["use_control", "use_control"]
    assert all(i.content == "Hello!" and "forbidden phrase" in i.reason for i in treated)
    assert server.created == 2


def test_partial_failure_makes_the_failed_requests_live(server: FakeBatchLLM, tmp_path: Path) -> None:
    server.mode = "partial"
    plan = plan_of(spec_text(model=MODEL))
    result = generate(plan, units_of(8), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1 and server.calls == 4  # the four failed lines, once each, live
    assert len(_ok(result)) == 8 and result.calls == 8
    assert any("4 request(s) the batches did not answer" in n and "server_error (HTTP 500)" in n
               for n in result.notes), result.notes
    again = generate(plan, units_of(8), tmp_path / "s.sqlite", _opts(server))
    assert again.calls == 0 and server.created == 1 and server.calls == 4


def test_an_expired_batch_keeps_its_answers_and_the_rest_goes_live(server: FakeBatchLLM, tmp_path: Path) -> None:
    server.mode = "expire"
    plan = plan_of(spec_text(model=MODEL))
    result = generate(plan, units_of(6), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1 and server.calls == 3
    assert [r["seed"] for r in server.requests] == [0, 0, 0]
    assert len(_ok(result)) == 6
    assert any("batch_expired" in n for n in result.notes), result.notes
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 6 and store.open_batches() == []


def test_the_wait_runs_out_then_a_rerun_collects_without_submitting_again(server: FakeBatchLLM,
                                                                          tmp_path: Path) -> None:
    server.mode = "never"
    plan = plan_of(spec_text(model=MODEL))
    with pytest.raises(GenerationError) as info:
        generate(plan, units_of(3), tmp_path / "s.sqlite", _opts(server, Polling(first=0.01, max_wait=0.0)))
    assert info.value.exit_code == 3 and "batch_1" in str(info.value) and "run the same command" in str(info.value)
    with Store(tmp_path / "s.sqlite") as store:
        [(_, state)] = store.open_batches()
        assert state["batch_id"] == "batch_1" and state["input_file_id"] == "file-1" and len(state["requests"]) == 3
    server.mode = "complete"
    result = generate(plan, units_of(3), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1 and server.uploads == 1 and server.calls == 0
    assert len(_ok(result)) == 3 and result.calls == 3


def test_killed_while_polling_then_rerun_pays_nothing_twice(server: FakeBatchLLM, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server.finish_after = 3
    plan = plan_of(spec_text(model=MODEL))
    original = batch_mod._Session._poll

    async def killed(self, running, by_key):  # the process dies once the batch is submitted and recorded
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_mod._Session, "_poll", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1
    monkeypatch.setattr(batch_mod._Session, "_poll", original)
    result = generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1 and server.uploads == 1 and server.calls == 0
    assert len(_ok(result)) == 4 and result.spent > 0
    again = generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    assert again.calls == 0 and again.spent == 0 and server.created == 1


def test_killed_while_storing_results_then_rerun_counts_each_once(server: FakeBatchLLM, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(spec_text(model=MODEL))
    original = Store.put
    puts: list[str] = []

    def dies_on_the_third(self, record):
        if len(puts) == 2:
            raise KeyboardInterrupt
        puts.append(record.key)
        original(self, record)

    monkeypatch.setattr(Store, "put", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    monkeypatch.setattr(Store, "put", original)
    result = generate(plan, units_of(4), tmp_path / "s.sqlite", _opts(server))
    assert server.created == 1 and server.calls == 0
    assert len(_ok(result)) == 4 and result.calls == 2  # the two stored before the kill are not counted again
    assert sum(i.from_store for i in _ok(result)) == 2
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 4 and store.open_batches() == []


def test_killed_between_upload_and_creation_reuses_the_uploaded_file(server: FakeBatchLLM, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(spec_text(model=MODEL))
    original = batch_mod._Session._create

    async def killed(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_mod._Session, "_create", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server))
    assert server.uploads == 1 and server.created == 0
    monkeypatch.setattr(batch_mod._Session, "_create", original)
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server))
    assert server.uploads == 1 and server.created == 1 and len(_ok(result)) == 2


def test_a_lost_creation_reply_is_found_again_not_created_twice(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL))
    server.lose_create_reply = True
    with pytest.raises(GenerationError) as info:
        generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server, timeout=0.5))
    assert info.value.exit_code == 3 and "may have been created" in str(info.value)
    assert server.created == 1 and server.uploads == 1
    server.lose_create_reply = False
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server, timeout=0.5))
    assert server.created == 1 and server.uploads == 1 and server.calls == 0
    assert ("GET", "/v1/batches") in server.paths and len(_ok(result)) == 2


def test_an_output_file_over_the_bound_is_refused_and_the_batch_kept(server: FakeBatchLLM, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_mod, "MAX_OUTPUT_BYTES", 900)
    plan = plan_of(spec_text(model=MODEL))
    with pytest.raises(GenerationError) as info:
        generate(plan, units_of(3), tmp_path / "s.sqlite", _opts(server))
    assert info.value.exit_code == 3 and "downloading the batch's results failed" in str(info.value)
    assert "over the 900 bytes limit" in str(info.value)
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 0 and len(store.open_batches()) == 1  # kept: a re-run with a larger bound collects
    assert server.calls == 0


def test_no_batch_is_submitted_once_the_budget_is_spent(server: FakeBatchLLM, tmp_path: Path) -> None:
    plan = plan_of(spec_text(model=MODEL, checks="{forbid: ['[seed=0]'], regenerate: 2}"))
    with pytest.raises(BudgetExhausted):
        generate(plan, units_of(2), tmp_path / "s.sqlite", _opts(server, max_cost=1e-9))
    assert server.created == 1 and server.calls == 0  # the first round, then no second batch


def test_the_offline_model_is_served_directly_with_a_note(tmp_path: Path) -> None:
    plan = plan_of(spec_text())
    result = generate(plan, units_of(2), tmp_path / "s.sqlite", GenerateOptions(batch=True))
    assert len(_ok(result)) == 2
    assert result.notes == ["batch mode: the offline model has no batch API: served directly (2 request(s))"]


def test_the_spec_setting_turns_batch_mode_on_and_the_option_off(server: FakeBatchLLM, tmp_path: Path) -> None:
    text = spec_text(model=MODEL) + "generation:\n  batch: true\n"
    plan = plan_of(text)
    assert plan.generation.batch is True
    generate(plan, units_of(1), tmp_path / "a.sqlite", GenerateOptions(api_base=server.url, batch_polling=FAST))
    assert server.created == 1 and server.calls == 0
    generate(plan, units_of(1), tmp_path / "b.sqlite", GenerateOptions(api_base=server.url, batch=False))
    assert server.created == 1 and server.calls == 1


def test_cli_batch_flag(server: FakeBatchLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expc.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(model=MODEL))
    (tmp_path / "units.csv").write_text("user_id,first_name\nu0,Ann\nu1,Bo\n")
    args = ["generate", str(spec), "--units", str(tmp_path / "units.csv"), "--batch", "--batch-wait", "5",
            "--api-base", server.url, "--quiet", "--store", str(tmp_path / "s.sqlite")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert server.created == 1 and server.calls == 0
    assert "fake reply to" in result.stdout
    server.mode = "never"
    args[args.index("--store") + 1] = str(tmp_path / "t.sqlite")
    result = CliRunner().invoke(main, [a if a != "5" else "0" for a in args])
    assert result.exit_code == 3 and "still running" in result.stderr and "Traceback" not in result.output
