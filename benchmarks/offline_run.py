#!/usr/bin/env python
"""Benchmark: an offline `expc run` as a user types it: wall time, and whether litellm was imported.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/offline_run.py [--spec specs/welcome-email.yaml] [--runs 5]

Each run is ``expc SPEC --quiet --run-dir FRESH`` (the console script next to
``sys.executable``, a subprocess: interpreter start-up, imports and all) in a
fresh run directory. One more run, untimed, reports the modules the process
imported: the built-in offline model is served without litellm, which alone
took about 4.5 s to import. Goal (issue 17): under 3 s.

Exits 0: the figures are for reading, not a gate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 3.0
PROBE = """
import json, sys
from expc.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _expc() -> list[str]:
    script = Path(sys.executable).with_name("expc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "expc"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(spec: Path, run_dir: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    cpu = _cpu()
    start = time.perf_counter()
    done = subprocess.run([*_expc(), "run", str(spec), "--quiet", "--run-dir", str(run_dir)], capture_output=True,
                          text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{spec}: expc run failed ({done.returncode}):\n{done.stderr}")
    return elapsed, _cpu() - cpu


def _imported(spec: Path, run_dir: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, "run", str(spec), "--quiet", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    """Time the runs and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "welcome-email.yaml")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="expc-offline-run-") as tmp:
        floor_start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        floor = time.perf_counter() - floor_start
        timed = [_wall(args.spec, Path(tmp) / f"run-{i}") for i in range(max(1, args.runs))]
        modules = _imported(args.spec, Path(tmp) / "probe")
    heavy = sorted({m.split(".")[0] for m in modules} & {"litellm", "openai", "httpx", "aiohttp"})
    times = [wall for wall, _ in timed]
    median = statistics.median(times)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"expc run {args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec} "
          f"(offline, fresh run directory each time), {len(times)} runs")
    print(f"wall time: min {min(times):.2f} s, median {median:.2f} s, max {max(times):.2f} s "
          f"(python -c pass: {floor:.2f} s)")
    print(f"runs (wall / CPU): {', '.join(f'{w:.2f} / {c:.2f}' for w, c in timed)}; load average {load} "
          f"on {os.cpu_count()} cores")
    print(f"litellm imported: {'yes' if 'litellm' in heavy else 'no'}; HTTP clients imported: "
          f"{', '.join(h for h in heavy if h != 'litellm') or 'none'}")
    print(f"goal: median under {GOAL_SECONDS:g} s: {'PASS' if median < GOAL_SECONDS else 'FAIL'}")


if __name__ == "__main__":
    main()
