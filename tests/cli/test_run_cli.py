"""`expc run` as a user runs it: every example offline, exit codes, and runs killed or failed part-way.

The command runs in this process (click's CliRunner gives its exit code,
stdout and stderr as a user sees them). Only a run killed with SIGKILL needs a
process of its own: `python -m expc`, killed at a real moment of its work, then
resumed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from conftest import CLICKED_IN_A_DAY, ROOT
from fakellm import FakeLLM

from expc.cli import main

EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))

# A small simulated experiment whose treatment is written per unit by an OpenAI-style model.
SPEC = """\
version: 1
experiment:
  id: run-cli
  unit: user_id
attributes:
  user_id: string
  country: string
prompts:
  line:
    model: {model}
    max_tokens: 30
    template: "Write a line for customer {{{{ user.user_id }}}}."
variants:
  - id: control
    content: Hello!
  - id: treatment
    prompt: line
    generate: {{per: unit}}
""" + CLICKED_IN_A_DAY + """\
analysis:
  method: sequential
stopping:
  looks: {looks}
  max_days: {days}
  rules:
    - {{when: max_days, then: stop_inconclusive}}
simulation:
  units_per_day: {units_per_day}
  seed: 5
  truth:
    control: {{clicked: 0.1}}
"""


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key, as on a machine without credentials; what a run sets in os.environ is undone after the test.

    A run in this process sets LITELLM_OFFLINE_MODE (litellm reads it when
    first imported); monkeypatch restores it, so no test leaks it to another.
    """
    for name in [n for n in os.environ if n.endswith("_API_KEY")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LITELLM_OFFLINE_MODE", "true")


def expc(*args: str | Path) -> Result:
    """``expc ARGS`` in this process: its exit code, stdout and stderr."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    # anything but an exit would be a traceback (or "internal error") in a real process
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def killed_command(spec: Path, run_dir: Path, *options: str) -> list[str]:
    """``expc run`` as a process of its own, to be killed."""
    return [sys.executable, "-m", "expc", "run", str(spec), "--run-dir", str(run_dir), "--quiet", *options]


def write_spec(tmp_path: Path, model: str = "openai/gpt-4o-mini", days: int = 2, units_per_day: int = 40,
               looks: str = "daily") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(model=model, days=days, units_per_day=units_per_day, looks=looks), encoding="utf-8")
    return path


def stored_calls(store: Path) -> int:
    try:
        return sqlite3.connect(store).execute("select count(*) from calls").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_runs_offline_end_to_end(spec: Path, tmp_path: Path) -> None:
    done = expc("run", spec, "--run-dir", tmp_path / "run", "--quiet")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("SIMULATED")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["simulated"] is True and report["history"]
    # every example's simulation lasts its max_days, so some rule decides by the last look
    assert report["decision"]["action"] != "continue" and report["decision"]["rule"] is not None
    assert len(report["history"]) == len(list((tmp_path / "run" / "looks").glob("look-*.json")))
    assert "SIMULATED" in (tmp_path / "run" / "report.md").read_text().splitlines()[0]
    assert "SIMULATED" in (tmp_path / "run" / "report.html").read_text().splitlines()[0]
    assert str(tmp_path / "run" / "report.html") in done.stdout


def test_json_output_is_the_report_and_nothing_else(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="offline/copywriter")
    done = expc("run", spec, "--run-dir", tmp_path / "run", "--format", "json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["decision"]["action"] == "stop_inconclusive"


def test_a_compiled_plan_runs_like_its_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="offline/copywriter")
    assert expc("compile", spec, "-o", tmp_path / "plan.json").exit_code == 0
    a = expc("run", spec, "--run-dir", tmp_path / "a", "--format", "json")
    b = expc("run", tmp_path / "plan.json", "--run-dir", tmp_path / "b", "--format", "json")
    assert a.exit_code == b.exit_code == 0, a.stderr + b.stderr
    strip = lambda r: {k: v for k, v in json.loads(r).items() if k != "run"}
    assert strip(a.stdout) == strip(b.stdout)


def test_a_broken_plan_file_is_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text('{"plan_version": 1', encoding="utf-8")
    done = expc("run", tmp_path / "plan.json", "--run-dir", tmp_path / "r")
    assert done.exit_code == 1
    assert done.stderr.count("\n") == 1 and "plan.json: not a JSON document" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_dir_from_another_spec_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert expc("run", write_spec(tmp_path, model="offline/x"), "--run-dir", run_dir, "--quiet").exit_code == 0
    changed = write_spec(tmp_path, model="offline/x", units_per_day=41)
    done = expc("run", changed, "--run-dir", run_dir, "--quiet")
    assert done.exit_code == 1
    assert "the spec changed" in done.stderr and "--fresh" in done.stderr
    assert expc("run", changed, "--run-dir", run_dir, "--quiet", "--fresh").exit_code == 0


def test_simulate_needs_a_simulation_block(tmp_path: Path) -> None:
    text = write_spec(tmp_path, model="offline/x").read_text().split("simulation:")[0]
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    done = expc("run", tmp_path / "spec.yaml", "--run-dir", tmp_path / "r")
    assert done.exit_code == 2
    assert "no `simulation` block" in done.stderr


def test_a_bad_events_file_is_named_with_exit_1(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="offline/x")
    (tmp_path / "exposures.csv").write_text("user_id,variant,timestamp\nu1,control,2026-01-01T00:00:00Z\n")
    (tmp_path / "events.csv").write_text("user_id,event,timestamp\nu1,clicked,not a time\n")
    done = expc("run", spec, "--run-dir", tmp_path / "r", "--exposures", tmp_path / "exposures.csv",
                "--events", tmp_path / "events.csv", "--quiet")
    assert done.exit_code == 1, done.stderr
    assert "events.csv" in done.stderr and "Traceback" not in done.stderr


def test_real_data_runs_unsimulated(tmp_path: Path) -> None:
    from expc import compile_file
    from expc.runtime.assign import assign
    from expc.runtime.synthetic import draw_outcomes, draw_units, write_files

    spec = write_spec(tmp_path, model="offline/x", days=3, units_per_day=300)
    plan = compile_file(spec)
    units, entry_day = draw_units(plan, 3, seed=1)
    data = draw_outcomes(plan, units, entry_day, assign(plan, units).variant, 1)
    (tmp_path / "files").mkdir()
    exposures, events = write_files(data, tmp_path / "files")
    done = expc("run", spec, "--run-dir", tmp_path / "r", "--exposures", exposures, "--events", events,
                "--format", "json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["simulated"] is False
    assert len(report["history"]) >= 2
    assigned = int((assign(plan, units).variant >= 0).sum())
    assert sum(report["srm"]["observed"]) == assigned
    # units whose window has not ended by the data's last look wait (analysis.in_progress: exclude)
    assert sum(report["metrics"][0]["variants"][i]["units"] for i in range(2)) < assigned


def test_sigkill_during_generation_resumes_without_losing_or_repaying(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run_dir = tmp_path / "run"
    store = run_dir / "content.sqlite"
    with FakeLLM(latency=0.2) as server:
        proc = subprocess.Popen([*killed_command(spec, run_dir, "--concurrency", "2"), "--api-base", server.url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while stored_calls(store) < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # From now on the model never answers: the process is caught mid-generation, calls in flight, whatever
        # the machine's load, and is killed there.
        server.latency = 3600
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
        kept = stored_calls(store)
        first = server.calls
        server.latency = 0
        done = expc("run", spec, "--run-dir", run_dir, "--concurrency", "2", "--quiet", "--api-base", server.url)
        assert done.exit_code == 0, done.stderr
        second = [r["messages"][-1]["content"] for r in server.requests[first:]]
        sent_first = [r["messages"][-1]["content"] for r in server.requests[:first]]
    total = stored_calls(store)
    assert 5 <= kept < total
    assert len(second) == total - kept  # only what was not stored was asked again
    assert len(set(sent_first) & set(second)) <= 2  # at most the calls in flight at the kill (concurrency 2)
    report = json.loads((run_dir / "report.json").read_text())
    treatment = [r for r in report["generation"]["per_variant"] if r["variant"] == "treatment"][0]
    assert treatment["items"] == total and treatment["failures"] == 0


def test_sigkill_during_the_looks_resumes_to_the_same_report(tmp_path: Path) -> None:
    # hourly looks: 144 of them, evaluated one after another for about half a second, a window the kill can hit
    spec = write_spec(tmp_path, model="offline/x", days=6, units_per_day=200, looks="hourly")
    looks = 6 * 24
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(killed_command(spec, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "looks" / "look-002.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    looked = len(list((run_dir / "looks").glob("look-*.json")))
    # killed during the looks: some saved, not all, no report yet
    assert proc.returncode == -signal.SIGKILL and 2 <= looked < looks
    assert not (run_dir / "report.json").exists()
    assert expc("run", spec, "--run-dir", run_dir, "--quiet").exit_code == 0
    clean = tmp_path / "clean"
    assert expc("run", spec, "--run-dir", clean, "--quiet").exit_code == 0
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k not in ("run", "generation")}
    assert strip(run_dir / "report.json") == strip(clean / "report.json")
    assert len(list((run_dir / "looks").glob("look-*.json"))) == looks


def test_a_provider_outage_stops_with_exit_3_and_resumes_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import expc.runtime.generate.calls as calls

    # every retry is still made (five tries a call), each after the shortest wait its full-jitter backoff may draw
    monkeypatch.setattr(calls, "random", SimpleNamespace(uniform=lambda low, high: low))
    spec = write_spec(tmp_path)
    run_dir = tmp_path / "run"
    with FakeLLM() as server:
        server.always("500")
        command = ["run", spec, "--run-dir", run_dir, "--api-base", server.url, "--quiet"]
        down = expc(*command)
        assert down.exit_code == 3, down.stderr
        assert "again" in down.stderr and "Traceback" not in down.stderr
        assert (run_dir / "state.json").is_file() and (run_dir / "assignments.parquet").is_file()
        assert not (run_dir / "report.json").exists()
        server.always(None)
        up = expc(*command)
    assert up.exit_code == 0, up.stderr
    assert (run_dir / "report.json").is_file()


def test_an_exhausted_budget_stops_with_exit_3_and_says_what_was_spent(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    with FakeLLM() as server:
        done = expc("run", spec, "--run-dir", tmp_path / "run", "--api-base", server.url,
                    "--max-cost", "0.000001", "--concurrency", "1", "--quiet")
        calls = server.calls
    assert done.exit_code == 3, done.stderr
    assert "$" in done.stderr and "Traceback" not in done.stderr
    assert 1 <= calls < 20
    assert stored_calls(tmp_path / "run" / "content.sqlite") == calls


def test_a_missing_key_is_named_before_any_work(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="anthropic/claude-3-5-haiku-latest")
    done = expc("run", spec, "--run-dir", tmp_path / "run", "--quiet")
    assert done.exit_code == 3
    assert "ANTHROPIC_API_KEY" in done.stderr


def test_run_takes_batch_wait_as_generate_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec may ask for batch mode (generation.batch); the person running it bounds the polling, not the spec."""
    import expc.runtime.run as run_module

    seen = {}

    def execute(plan, options, progress=None):
        seen["wait"] = options.generation.batch_polling.max_wait
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "execute", execute)
    spec = ROOT / "specs" / "welcome-email.yaml"
    result = expc("run", spec, "--run-dir", tmp_path / "run", "--batch-wait", "120")
    assert seen == {"wait": 120.0} and result.exit_code == 3
    expc("run", spec, "--run-dir", tmp_path / "run")
    assert seen == {"wait": 86400.0}
