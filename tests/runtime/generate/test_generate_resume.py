"""A real `expc generate` process killed with SIGKILL mid-way resumes: no completed call lost, none paid twice.

The killed generation is a process of its own; the resume reads what it left
and runs in this process (click's CliRunner).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakellm import FakeLLM
from gen_helpers import spec_text

from expc.cli import main

N = 40


def _stored(path: Path) -> int:
    try:
        return sqlite3.connect(path).execute("select count(*) from calls").fetchone()[0]
    except sqlite3.Error:
        return 0


def _stored_prompts(path: Path) -> set[str]:
    rows = sqlite3.connect(path).execute("select request from calls").fetchall()
    return {json.loads(r[0])["messages"][-1]["content"] for r in rows}


def _arguments(spec: Path, units: Path, store: Path, url: str) -> list[str]:
    return ["generate", str(spec), "--units", str(units), "--store", str(store), "--api-base", url,
            "--concurrency", "4", "--quiet", "-o", str(spec.parent / "out.jsonl")]


def test_sigkill_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(model="openai/gpt-4o-mini"), encoding="utf-8")
    units = tmp_path / "units.csv"
    units.write_text("user_id,first_name\n" + "".join(f"u{i},Name{i}\n" for i in range(N)), encoding="utf-8")
    store = tmp_path / "content.sqlite"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("LITELLM_OFFLINE_MODE", "true")  # the resume in this process sets it; restored after
    with FakeLLM(latency=0.25) as server:
        proc = subprocess.Popen([sys.executable, "-m", "expc", *_arguments(spec, units, store, server.url)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _stored(store) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # From now on the model never answers: the process is caught mid-generation, calls in flight, whatever
        # the machine's load, and is killed there.
        server.latency = 3600
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
        kept = _stored(store)
        assert 8 <= kept < N
        paid = _stored_prompts(store)
        first_run = server.calls
        sent_first = [r["messages"][-1]["content"] for r in server.requests]
        server.latency = 0
        done = CliRunner().invoke(main, _arguments(spec, units, store, server.url))
        assert done.exit_code == 0 and done.exception is None, done.stderr
        sent_second = [r["messages"][-1]["content"] for r in server.requests[first_run:]]
    assert _stored(store) == N
    # nothing completed before the kill was asked for again, and everything else was, once
    assert not paid & set(sent_second)
    assert len(sent_second) == N - kept and len(set(sent_second)) == len(sent_second)
    # ... and at most the calls in flight at the kill (concurrency 4) were sent twice
    assert len(set(sent_first) & set(sent_second)) <= 4
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == N + 1
