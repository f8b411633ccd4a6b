#!/usr/bin/env python
"""How often a `segment_harm` rule rolls back an A/A test, and how often it catches a real harm.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/segment_harm.py [--replications 2000] [--seed 1]

The design: three arms, a primary proportion (10%) and a guardrail mean, results
broken down by country (5 values, top 3 plus `other`) and by a boolean, 2,000
units a day for 6 days, and one rule, `{when: segment_harm, then:
stop_rollback}`. Each row is `expc simulate` of that design with another
method or look schedule: under ``--truth aa`` every rollback is false; "harm
everywhere": treatment `a` lowers the primary rate from 10% to 7.5% in every
segment; "harm in DE": from 10% to 6% in Germany only (a quarter of the units;
``segment_truth``, the Python API's per-segment truth). Prints a Markdown table
(docs/statistics.md, section 14, has one) and the seconds each row took. Exits
0: the figures are for reading, not a gate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import expc
from expc.runtime.simulate import simulate

SPEC = """\
version: 1
experiment: {id: harm}
attributes: {user_id: string, country: string, premium: boolean}
variants: [{id: control, content: A}, {id: a, content: B}, {id: b, content: C}]
analysis: {METHODsegments: {by: [country, premium], min_units: 300, top: 3}}
metrics:
  - {id: bought, kind: proportion, event: buy, role: primary, mde: 10%, baseline: 0.1}
  - {id: spend, kind: mean, event: buy, role: guardrail, direction: increase, margin: 5%}
stopping:
  max_days: 6
LOOKS  rules:
    - {when: segment_harm, then: stop_rollback}
simulation:
  units_per_day: 2000
  attributes:
    country: {values: [US, DE, FR, IS, NO], weights: [50, 25, 15, 5, 5]}
    premium: {p: 0.3}
  truth:
    control: {bought: 0.1, spend: {mean: 2, sd: 5}}
    a: {bought: 0.075}
"""
CONFINED = {("country", "DE"): {"a": {"bought": 0.06}}}

DESIGNS = {
    "fixed, daily looks": ("", ""),
    "fixed, one look (day 6)": ("", "  looks: 6d\n"),
    "sequential (always valid), daily looks": ("method: sequential, ", ""),
    "sequential (group), daily looks": ("method: sequential, sequential: group, ", ""),
}


def main() -> None:
    """Simulate each design under both truths and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print("| design | false rollbacks (A/A) | harm everywhere: rolled back | harm in DE: rolled back | seconds |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (method, looks) in DESIGNS.items():
            path = Path(tmp) / "harm.yaml"
            path.write_text(SPEC.replace("METHOD", method).replace("LOOKS", looks))
            plan = expc.compile_file(path)
            start = time.perf_counter()
            aa = simulate(plan, args.replications, truth="aa", seed=args.seed).to_dict()
            everywhere = simulate(plan, args.replications, truth="spec", seed=args.seed).to_dict()
            confined = simulate(plan.model_copy(update={"simulation": plan.simulation.model_copy(update={
                "truth": {**plan.simulation.truth, "a": plan.simulation.truth["control"]}})}),
                args.replications, truth="spec", seed=args.seed, segment_truth=CONFINED).to_dict()
            seconds = time.perf_counter() - start
            rate, se = aa["false_rollback_rate"], aa["false_rollback_rate_se"]
            caught = [d["decisions"].get("stop_rollback", 0.0) for d in (everywhere, confined)]
            print(f"| {name} | {rate:.1%} (± {se:.1%}) | {caught[0]:.1%} | {caught[1]:.1%} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
