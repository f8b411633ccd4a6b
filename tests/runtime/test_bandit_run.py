"""runtime/bandit_run.py and a bandit's look in evaluate(): each period split by the weights in force, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import plan_of_text

from expc.compiler.plan import Plan
from expc.runtime.bandit import Periods
from expc.runtime.bandit_run import merged_run, subset_run
from expc.runtime.evaluate import evaluate
from expc.runtime.run import RunOptions, execute
from expc.runtime.simulate import draw, look_reduction
from expc.runtime.synthetic import draw_outcomes, draw_units

SPEC = """\
version: 1
experiment: {id: bandit-run}
attributes: {user_id: string}
variants:
  - {id: control, content: "A"}
  - {id: b, content: "B"}
  - {id: c, content: "C"}
metrics:
  - {id: click, kind: proportion, event: click, window: 1h, role: primary}
analysis: {method: bandit, bandit: {explore_days: 1, min_weight: 10%, threshold: 0.99}}
stopping:
  max_days: 6
  rules:
    - {when: srm, then: stop_inconclusive}
    - {when: best_arm, then: stop_ship_winner}
    - {when: max_days, then: stop_inconclusive}
simulation:
  units_per_day: 3000
  truth:
    control: {click: 0.05}
    b: {click: 0.065}
    c: {click: 0.05}
"""


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of_text(SPEC)


@pytest.fixture(scope="module")
def run(plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("bandit") / "run"
    return execute(plan, RunOptions(run_dir=folder, simulate=True)).report, folder


def test_each_period_is_split_by_the_weights_the_last_look_chose(run: tuple[dict, Path]) -> None:
    report, folder = run
    looks = sorted((folder / "looks").glob("look-*.json"))
    last = json.loads(looks[-1].read_text())
    periods = last["bandit"]["weights"]
    assert periods[0]["weights"] == {"control": pytest.approx(1 / 3), "b": pytest.approx(1 / 3),
                                     "c": pytest.approx(1 / 3)}
    for before, after in zip(looks, looks[1:]):  # the weights of a period are the next_weights of the look before it
        chosen = json.loads(before.read_text())["bandit"]["next_weights"]
        assert json.loads(after.read_text())["bandit"]["weights"][-1]["weights"] == pytest.approx(chosen)
    counts = duckdb.sql(f"SELECT period, variant, count(*) AS n FROM '{folder / 'assignments.parquet'}' "
                        "WHERE period >= 0 GROUP BY ALL").fetchall()
    by_period: dict[int, dict[str, int]] = {}
    for p, v, n in counts:
        by_period.setdefault(p, {})[v] = n
    for p, row in enumerate(periods):
        total = sum(by_period[p].values())
        for variant, w in row["weights"].items():
            assert abs(by_period[p][variant] / total - w) < 4 * np.sqrt(w * (1 - w) / total) + 1e-9
    assert not last["srm"]["flagged"]


def test_the_better_arm_gets_the_traffic_and_the_report_shows_the_weights(run: tuple[dict, Path]) -> None:
    report, folder = run
    assert report["method"] == "bandit"
    assert report["history"][-1]["bandit"]["weights"][-1]["weights"]["b"] > 0.5
    assert report["decision"]["variant"] in ("b", None)
    md = (folder / "report.md").read_text()
    assert "weights until the look" in md and "P(best)" in md
    html = (folder / "report.html").read_text()
    assert "weights until the look" in html


def test_a_rerun_reads_the_saved_looks_and_gives_the_same_report(plan: Plan, run: tuple[dict, Path]) -> None:
    report, folder = run
    again = execute(plan, RunOptions(run_dir=folder, simulate=True))
    assert again.resumed
    assert again.report["history"] == report["history"]


def test_one_period_at_equal_weights_is_the_pooled_analysis(plan: Plan) -> None:
    d = draw(plan, 1, seed=4)
    reduction = look_reduction(d, plan, 0, 2)
    look = plan.schedule.looks[2]
    alone = evaluate(plan, reduction, look).to_dict()
    one = evaluate(plan, reduction, look, periods=Periods([reduction], np.full((1, 3), 1 / 3), [3.0])).to_dict()
    assert "note" in alone["bandit"] and "note" not in one["bandit"]  # logged data carry no periods
    alone["bandit"].pop("note")
    assert alone == one
    pooled = [v["mean"] for v in alone["metrics"][0]["variants"]]
    n = reduction.metrics["click"].n
    assert pooled == pytest.approx(list(reduction.metrics["click"].sum / n))
    assert sum(alone["bandit"]["probability_best"].values()) == pytest.approx(1.0)


def test_subsets_and_merges_of_simulated_runs_keep_their_events(plan: Plan) -> None:
    units, entry = draw_units(plan, 2, 1)
    runs = [draw_outcomes(plan, units, entry, np.full(len(units), a), 1) for a in range(3)]
    arm = np.arange(runs[0].exposures) % 3
    merged = merged_run(runs, arm)
    assert merged.events == sum(int(np.sum(arm[r.event_unit] == a)) for a, r in enumerate(runs))
    assert np.all(np.diff(merged.event_ts) >= 0)
    keep = arm == 1
    part = subset_run(merged, keep)
    assert part.exposures == int(keep.sum())
    assert np.all(part.arm == 1) and part.events == int(np.sum(keep[merged.event_unit]))


def test_a_run_on_the_logged_data_reads_the_same_periods_as_the_simulated_run(
        plan: Plan, run: tuple[dict, Path], tmp_path: Path) -> None:
    report, folder = run
    logged = execute(plan, RunOptions(run_dir=tmp_path / "logged", exposures_path=folder / "exposures.parquet",
                                      events_path=folder / "events.parquet")).report
    assert not logged["simulated"]
    assert len(logged["history"]) == len(report["history"])
    for simulated, real in zip(report["history"], logged["history"]):
        assert real["decision"] == simulated["decision"]
        assert real["units"] == simulated["units"]
        assert real["bandit"]["weights"] == simulated["bandit"]["weights"]
        assert real["bandit"]["probability_best"] == pytest.approx(simulated["bandit"]["probability_best"],
                                                                   rel=1e-9, abs=1e-12)
        assert real["srm"]["p_value"] == pytest.approx(simulated["srm"]["p_value"], rel=1e-9)
