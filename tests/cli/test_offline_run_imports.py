"""An offline `expc run` never imports litellm: the built-in model is served without it (seconds saved).

The process's imports are the subject, so the run is a subprocess (as in test_imports.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from test_imports import PROBE
from test_run_cli import write_spec


def _modules(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                          check=True, env=env, timeout=300)
    return json.loads(proc.stdout.splitlines()[-1])


def _generated(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "content.jsonl").read_text(encoding="utf-8").splitlines()
    return [item for item in map(json.loads, lines) if item["status"] != "static"]


def test_an_offline_example_run_does_not_import_litellm(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    modules = _modules("run", "specs/welcome-email.yaml", "--quiet", "--run-dir", str(run_dir))
    assert [m for m in modules if m.split(".")[0] == "litellm"] == []
    assert "expc.runtime.generate.calls" in modules  # the calls were made in this process, without litellm
    made = _generated(run_dir)
    assert made and all(c["status"] == "ok" and str(c["content"]).startswith("[offline]") for c in made)


def test_a_run_sent_offline_by_the_flag_does_not_import_litellm(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="openai/gpt-4o-mini")
    modules = _modules("run", str(spec), "--offline", "--quiet", "--run-dir", str(tmp_path / "run"))
    assert [m for m in modules if m.split(".")[0] == "litellm"] == []
    made = _generated(tmp_path / "run")
    assert made and all(c["model"] == "offline/gpt-4o-mini" for c in made)
