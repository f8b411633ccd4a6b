"""evaluate() with caps and windows in progress: each metric on its own units, the cap in the JSON."""

from __future__ import annotations

import numpy as np
from conftest import BASE, plan_of_text

from expc.runtime.evaluate import evaluate
from expc.runtime.stats.moments import Moments
from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction

SPEC = BASE.replace("    event: activated\n", "    event: activated\n    window: 7d\n", 1) + """\
  - id: spend
    kind: mean
    event: purchase
    cap: {quantile: 0.99}
"""


def test_each_metric_is_tested_on_its_own_units_and_says_its_cap():
    plan = plan_of_text(SPEC)
    units = np.array([1000, 1000])
    reduction = Reduction(
        metrics={"activated": Moments.proportion([600, 580], [60, 70]),
                 "spend": Moments.of([1000, 1000], [2400.0, 2600.0], [90000.0, 95000.0])},
        units=units, excluded=dict.fromkeys(EXCLUDED_KEYS, 0), sql="",
        caps={"spend": 123.5}, in_progress={"activated": 820})
    out = evaluate(plan, reduction).to_dict()
    by = {m["id"]: m for m in out["metrics"]}
    assert [v["units"] for v in by["activated"]["variants"]] == [600, 580]
    assert [v["units"] for v in by["spend"]["variants"]] == [1000, 1000]
    assert by["activated"]["variants"][0]["mean"] == 0.1
    assert by["activated"]["units_in_progress"] == 820 and "cap" not in by["activated"]
    assert by["spend"]["cap"] == {"quantile": 0.99, "value": None, "at": 123.5}
    assert "units_in_progress" not in by["spend"]
    assert out["srm"]["observed"] == [1000, 1000]  # the sample ratio is of the exposed units


def test_a_metric_without_units_yet_gives_no_estimate_and_no_decision():
    plan = plan_of_text(SPEC)
    reduction = Reduction(
        metrics={"activated": Moments.proportion([0, 0], [0, 0]),
                 "spend": Moments.of([50, 50], [10.0, 12.0], [30.0, 40.0])},
        units=np.array([50, 50]), excluded=dict.fromkeys(EXCLUDED_KEYS, 0), sql="",
        caps={"spend": None}, in_progress={"activated": 100})
    out = evaluate(plan, reduction).to_dict()
    activated = out["metrics"][0]
    assert activated["variants"][0]["mean"] is None and activated["comparisons"][0]["p_value"] is None
    assert not activated["comparisons"][0]["significant"]
    assert out["metrics"][1]["cap"]["at"] is None
    assert out["decision"]["action"] == "continue"
