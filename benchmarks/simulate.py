#!/usr/bin/env python
"""Benchmark: `expc simulate`, the operating characteristics of a design, vectorised.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/simulate.py [--replications 1000] [--repeat 3] [--all]

What it does:

1. Takes the welcome-email example (always-valid sequential analysis, two
   arms, a primary and a guardrail proportion, 28 daily looks) with
   ``units_per_day`` set to 4,000, and simulates 1,000 replications under the
   A/A truth and under the spec's truth with ``expc.runtime.simulate.simulate``
   (draws, every look evaluated, stopping rules), timed in this process
   without import time; best of ``--repeat`` runs. Goal: under 30 s each.
2. Prints the time and what the runs found: the false-positive rate, the power,
   and how the replications ended.
3. ``--all`` also times each example in ``specs/`` under both truths (the
   Bayesian example computes exact Beta posteriors near its decision thresholds,
   so it is the slowest).

Exits 0: the figures are for reading, not a gate.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

GOAL_SECONDS = 30.0
ROOT = Path(__file__).resolve().parent.parent


def _plan(path: Path, units_per_day: int | None = None) -> Plan:
    """The compiled plan of a spec, optionally with another ``simulation.units_per_day``.

    The spec's text is changed and compiled again, so that what the plan derives
    from the traffic (units entering per day) follows it.
    """
    from expc import SpecError
    from expc.compiler.compile import compile_plan
    from expc.compiler.pipeline import check_bytes

    text = path.read_text(encoding="utf-8")
    if units_per_day is not None:
        text, count = re.subn(r"(?m)^(  units_per_day:) *\d+", rf"\g<1> {units_per_day}", text, count=1)
        assert count == 1, f"{path}: no simulation.units_per_day to change"
    result = check_bytes(text.encode("utf-8"), str(path))
    if not result.ok():
        raise SpecError([d for d in result.diagnostics if d.is_error])
    return compile_plan(result.doc, result.spec)


def _timed(plan: Plan, replications: int, truth: str, repeat: int) -> tuple[float, dict]:
    from expc.runtime.simulate import simulate

    best, out = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = simulate(plan, replications, truth=truth).to_dict()
        best = min(best, time.perf_counter() - start)
    return best, out


def _line(name: str, truth: str, seconds: float, d: dict) -> str:
    rate = (f"FPR {d['false_positive_rate']:.3f} ± {d['false_positive_rate_se']:.3f}" if truth == "aa"
            else f"power {d['power']:.3f} ± {d['power_se']:.3f}" if d.get("power") is not None else "power n/a")
    ends = ", ".join(f"{k} {v:.1%}" for k, v in sorted(d["decisions"].items(), key=lambda kv: -kv[1]) if v)
    return f"{name:<28} {truth:<5} {seconds:7.2f} s   {rate}   ({ends})"


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="also time every example in specs/")
    args = parser.parse_args()

    start = time.perf_counter()
    import expc.runtime.simulate  # noqa: F401  (import time is not part of the figure)

    imported = time.perf_counter() - start
    plan = _plan(ROOT / "specs" / "welcome-email.yaml", units_per_day=4000)
    print(f"import expc.runtime.simulate: {imported:.2f} s")
    print(f"welcome-email at 4,000 units/day, 28 daily looks, {args.replications:,} replications "
          f"(best of {args.repeat}); goal < {GOAL_SECONDS:.0f} s")
    worst = 0.0
    for truth in ("aa", "spec"):
        seconds, d = _timed(plan, args.replications, truth, args.repeat)
        worst = max(worst, seconds)
        print(_line("welcome-email @ 4,000/day", truth, seconds, d))
    print(f"goal: {'PASS' if worst < GOAL_SECONDS else 'FAIL'} ({worst:.2f} s for the slower truth)")

    if args.all:
        print()
        print(f"every example in specs/, {args.replications:,} replications (one run each)")
        for path in sorted((ROOT / "specs").glob("*.yaml")):
            example = _plan(path)
            for truth in ("aa", "spec"):
                seconds, d = _timed(example, args.replications, truth, 1)
                print(_line(path.stem, truth, seconds, d))


if __name__ == "__main__":
    main()
