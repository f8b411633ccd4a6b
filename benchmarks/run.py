#!/usr/bin/env python
"""Benchmark: `expc run --simulate` on every example in ``specs/``, end to end, time per stage.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/run.py [--spec specs/welcome-email.yaml]

For each example it times, in a fresh run directory:

1. the whole command as a user types it (``expc run SPEC --simulate --offline
   --quiet``, a subprocess: interpreter start-up, imports and all), goal under
   20 s;
2. the same run in this process, stage by stage (compile, drawing units and
   assigning them, generation, drawing outcomes, evaluating the looks,
   writing the reports), so that a slow stage is visible;
3. a second invocation in the same directory (everything resumed: no model
   call, looks read back).

Exits 0: the figures are for reading, not a gate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 20.0


def _command(spec: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "expc", "run", str(spec), "--simulate", "--offline", "--quiet",
            "--run-dir", str(run_dir)]


def _wall(spec: Path, run_dir: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(_command(spec, run_dir), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec}: expc run failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - start


def _stages(spec: Path, run_dir: Path) -> list[tuple[str, float]]:
    from expc import compile_file
    from expc.runtime.generate.runner import GenerateOptions
    from expc.runtime.run import Progress, RunOptions, execute

    marks: list[tuple[str, float]] = [("compile", time.perf_counter())]
    plan = compile_file(spec)
    execute(plan, RunOptions(run_dir=run_dir, simulate=True, generation=GenerateOptions(offline=True)),
            Progress(step=lambda message: marks.append((message, time.perf_counter()))))
    marks.append(("end", time.perf_counter()))
    return [(name, later - at) for (name, at), (_, later) in zip(marks, marks[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--spec", type=Path, action="append", help="only this spec (repeatable)")
    args = parser.parse_args()
    specs = args.spec or sorted((ROOT / "specs").glob("*.yaml"))
    print(f"expc run --simulate --offline, each example end to end (goal < {GOAL_SECONDS:.0f} s)\n")
    rows = []
    for spec in specs:
        with tempfile.TemporaryDirectory() as tmp:
            first = _wall(spec, Path(tmp) / "cli")
            again = _wall(spec, Path(tmp) / "cli")
            stages = _stages(spec, Path(tmp) / "stages")
        rows.append((spec.name, first, again))
        print(f"{spec.name}")
        for name, seconds in stages:
            print(f"  {name:<40} {seconds:7.2f} s")
        print(f"  {'whole command (subprocess)':<40} {first:7.2f} s  {'PASS' if first < GOAL_SECONDS else 'FAIL'}")
        print(f"  {'second invocation (resumed)':<40} {again:7.2f} s\n")
    print(f"{'spec':<28} {'run s':>8} {'resumed s':>10}")
    for name, first, again in rows:
        print(f"{name:<28} {first:8.2f} {again:10.2f}")


if __name__ == "__main__":
    main()
