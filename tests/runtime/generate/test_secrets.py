"""A recognisable fake API key never reaches the store, the outputs or the logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakellm import FakeLLM
from gen_helpers import spec_text

KEY = "sk-expc-FAKE-KEY-0123456789abcdef"


def test_key_never_written(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(model="openai/gpt-4o-mini", extra="api_key_env: EXPC_TEST_KEY"), encoding="utf-8")
    units = tmp_path / "units.csv"
    units.write_text("user_id,first_name\nu1,Ada\nu2,Bob\nu3,Cy\n", encoding="utf-8")
    # litellm at its most verbose, a failure and a retry on the way: whatever is logged is captured
    env = os.environ | {"EXPC_TEST_KEY": KEY, "OPENAI_API_KEY": KEY, "LITELLM_LOG": "DEBUG",
                        "EXPC_ALLOWED_KEY_ENVS": "EXPC_TEST_KEY"}  # the user lets the spec name this variable
    with FakeLLM() as server:
        server.faults(["500", "429:0"])
        cmd = [sys.executable, "-m", "expc", "generate", str(spec), "--units", str(units), "--concurrency", "1",
               "--api-base", server.url, "--store", str(tmp_path / "run" / "content.sqlite"),
               "-o", str(tmp_path / "run" / "out.jsonl")]
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert server.calls == 5
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"content.sqlite", "out.jsonl"}
    for p in written:
        assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in done.stdout and KEY not in done.stderr


def test_error_messages_are_scrubbed() -> None:
    from expc.runtime.generate.calls import _redact

    assert _redact(f"401: bad key {KEY} given", (KEY, "")) == "401: bad key *** given"
