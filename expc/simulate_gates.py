"""CI gates on a design's simulated operating characteristics: ``expc simulate --max-fpr X --min-power Y``.

How each figure is measured
===========================

* The **false-positive rate** always comes from an A/A simulation
  (``truth="aa"``: every variant has the control's truth): the share of
  replications that ship a treatment although none is better. When the
  command runs with ``--truth spec``, the A/A simulation is run as well.
* The **power** always comes from the spec's truth (``truth="spec"``): the
  share of replications that ship the truly best variant. When the command
  runs with ``--truth aa``, the spec's truth is simulated as well. When no
  treatment is truly better than the control, the power is undefined and the
  gate fails (the design cannot show that it finds an improvement).

Both simulations use the same seed and the same number of replications, so a
gated run is as reproducible as an ungated one.

What a gate compares
====================

A gate compares the **point estimate** with its threshold: the FPR gate fails
when the estimate exceeds ``--max-fpr``, the power gate when the estimate is
below ``--min-power``. Monte Carlo error is reported, not used to decide: each
gate carries the estimate's standard error ``√(p(1 - p)/R)`` and a 95% Wilson
interval, and is flagged ``close`` when the threshold lies inside that
interval; then another seed may decide the other way, and raising
``--replications`` (the error shrinks as ``1/√R``) settles it. Deciding on
the estimate keeps the rule simple and symmetric (an interval-based rule
would fail every design near its threshold, or pass them, depending on which
side it favoured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plan only in annotations: this module is imported by the CLI at call time
    from expc.compiler.plan import Plan

__all__ = ["Gate", "evaluate_gates", "failed", "wilson"]

_Z95 = 1.959963984540054


def wilson(p: float, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``p`` of ``n`` trials (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # rounding never leaves p outside


@dataclass(frozen=True)
class Gate:
    """One gate: the figure measured, its Monte Carlo error, the threshold and the verdict."""

    name: str  # "max_fpr" or "min_power"
    figure: float | None
    se: float | None
    interval: tuple[float, float] | None
    threshold: float
    passed: bool
    close: bool  # the threshold lies inside the 95% Monte Carlo interval
    truth: str  # the simulation the figure comes from: "aa" or "spec"
    replications: int
    seed: int
    reason: str | None = None  # why there is no figure

    def to_dict(self) -> dict[str, Any]:
        """The gate as ``expc simulate --format json`` shows it under ``gates``."""
        return {
            "figure": self.figure,
            "se": self.se,
            "interval": list(self.interval) if self.interval is not None else None,
            "threshold": self.threshold,
            "passed": self.passed,
            "close": self.close,
            "truth": self.truth,
            "replications": self.replications,
            "seed": self.seed,
            "reason": self.reason,
        }


def _gate(name: str, figure: float | None, threshold: float, d: dict[str, Any], reason: str | None) -> Gate:
    n = int(d["replications"])
    if figure is None:
        return Gate(name, None, None, None, threshold, False, False, d["truth"], n, int(d["seed"]), reason)
    se = math.sqrt(figure * (1 - figure) / n)
    low, high = wilson(figure, n)
    passed = figure <= threshold if name == "max_fpr" else figure >= threshold
    return Gate(name, figure, se, (low, high), threshold, passed, low <= threshold <= high, d["truth"], n,
                int(d["seed"]))


def evaluate_gates(plan: Plan, result: dict[str, Any], max_fpr: float | None,
                   min_power: float | None) -> dict[str, Gate]:
    """The gates asked for, measured on ``result`` (``SimulationResult.to_dict``) or on a second simulation.

    The A/A simulation gives the false-positive rate and the spec's truth the
    power (see the module docs); the one ``result`` does not have is simulated
    with its seed and number of replications.
    """
    runs = {result["truth"]: result}

    def run(truth: str) -> dict[str, Any]:
        if truth not in runs:
            from expc.runtime.simulate import simulate

            runs[truth] = simulate(plan, int(result["replications"]), truth=truth,
                                   seed=int(result["seed"])).to_dict()
        return runs[truth]

    gates: dict[str, Gate] = {}
    if max_fpr is not None:
        aa = run("aa")
        gates["max_fpr"] = _gate("max_fpr", aa.get("false_positive_rate"), max_fpr, aa,
                                 None if aa.get("false_positive_rate") is not None else "no replication")
    if min_power is not None:
        spec = run("spec")
        reason = None
        if spec.get("power") is None:
            reason = ("no treatment is truly better than the control in the spec's truth (simulation.truth), "
                      "so there is no power to measure")
        gates["min_power"] = _gate("min_power", spec.get("power"), min_power, spec, reason)
    return gates


def failed(gates: dict[str, Gate]) -> list[str]:
    """The names of the gates that failed."""
    return [name for name, gate in gates.items() if not gate.passed]
