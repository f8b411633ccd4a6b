"""top_k in a run: the judge's best candidates are chosen before assignment, recorded, and read back on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import headline_candidates_spec, plan_of_text

from expc.runtime.run import RunError, RunOptions, execute
from expc.runtime.selection import SELECTION_NAME, selecting

SPEC = headline_candidates_spec("top-k-demo", threshold=0.3, countries="France, Germany", units_per_day=300, days=3,
                                weight=2)


def test_a_run_keeps_the_best_scored_candidates_and_records_them(tmp_path: Path) -> None:
    plan = plan_of_text(SPEC)
    assert selecting(plan) == ["ai-1", "ai-2", "ai-3", "ai-4"]
    run_dir = tmp_path / "run"
    result = execute(plan, RunOptions(run_dir=run_dir, simulate=True))
    record = json.loads((run_dir / SELECTION_NAME).read_text())
    kept = record["kept"]["ai"]
    assert len(kept) == 2 and sorted(kept + record["dropped"]) == ["ai-1", "ai-2", "ai-3", "ai-4"]
    assert min(record["scores"][a] for a in kept) >= max(record["scores"][a] for a in record["dropped"])
    assert list(result.report["content_samples"]) == ["control", *kept]
    assigned = {c["variant"] for m in result.report["metrics"] for c in m["comparisons"]}
    assert assigned == set(kept)
    content = [json.loads(line) for line in (run_dir / "content.jsonl").read_text().splitlines()]
    assert {c["variant"] for c in content} == {"control", *kept} and all("score" in c for c in content[1:])


def test_a_resumed_run_reads_the_recorded_selection(tmp_path: Path) -> None:
    plan = plan_of_text(SPEC)
    run_dir = tmp_path / "run"
    execute(plan, RunOptions(run_dir=run_dir, simulate=True))
    path = run_dir / SELECTION_NAME
    record = json.loads(path.read_text())
    record["kept"] = {"ai": ["ai-1", "ai-4"]}  # as if chosen so earlier: the record wins over choosing again
    path.write_text(json.dumps(record))
    again = execute(plan, RunOptions(run_dir=run_dir, simulate=True, fresh=False))
    assert list(again.report["content_samples"]) == ["control", "ai-1", "ai-4"]
    path.write_text('{"kept": {"ai": ["ai-9"]}}')
    with pytest.raises(RunError) as caught:
        execute(plan, RunOptions(run_dir=run_dir, simulate=True))
    assert caught.value.exit_code == 1 and SELECTION_NAME in str(caught.value)


def test_fresh_chooses_again(tmp_path: Path) -> None:
    plan = plan_of_text(SPEC)
    run_dir = tmp_path / "run"
    first = execute(plan, RunOptions(run_dir=run_dir, simulate=True))
    path = run_dir / SELECTION_NAME
    path.write_text('{"kept": {"ai": ["ai-9"]}}')
    again = execute(plan, RunOptions(run_dir=run_dir, simulate=True, fresh=True))
    assert list(again.report["content_samples"]) == list(first.report["content_samples"])
    assert json.loads(path.read_text())["kept"]["ai"] == list(first.report["content_samples"])[1:]


def test_the_report_shows_every_candidate_copy_with_its_score(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = execute(plan_of_text(SPEC), RunOptions(run_dir=run_dir, simulate=True))
    block = result.report["candidates"]
    assert set(block["copy"]) == {"ai-1", "ai-2", "ai-3", "ai-4"} and len(block["dropped"]) == 2
    assert all(isinstance(it["score"], float) and it["content"] for items in block["copy"].values() for it in items)
    kept = block["kept"]["ai"]
    assert all("score" in s for s in result.report["content_samples"][kept[0]])
    markdown = (run_dir / "report.md").read_text()
    for arm in block["dropped"]:
        assert f"{arm} (not kept by top\\_k; judge mean" in markdown
    assert "· judge 0." in markdown


def test_simulate_plans_the_design_with_k_candidates() -> None:
    from expc.runtime.simulate import simulate

    design = simulate(plan_of_text(SPEC), 20, seed=1).to_dict()["design"]
    assert design["variants"] == pytest.approx({"control": 1 / 3, "ai-1": 1 / 3, "ai-2": 1 / 3})
