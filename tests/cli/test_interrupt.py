"""Ctrl-C during `expc run` says that the state is saved and how to resume (the process is the subject)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

SPEC = """\
version: 1
experiment: {id: interrupted, unit: user_id}
attributes: {user_id: string}
variants:
  - {id: control, content: A}
  - {id: b, content: B}
metrics:
  - {id: m, kind: proportion, event: e, role: primary}
stopping:
  looks: daily
  max_days: 40
  rules:
    - {when: max_days, then: stop_inconclusive}
simulation:
  units_per_day: 3000
  truth:
    control: {m: 0.1}
"""


def test_ctrl_c_says_the_state_is_saved_and_a_rerun_resumes(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "expc", "run", str(spec), "--run-dir", str(run_dir), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "looks" / "look-002.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "interrupted: the run's state is saved in" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(list((run_dir / "looks").glob("look-*.json"))) == 40
