"""`expc analyze` with `analysis.cuped`: the covariate comes from pre-exposure events, reports say CUPED."""

from __future__ import annotations

import json
import random
from pathlib import Path

from click.testing import CliRunner
from conftest import BASE

from expc.cli import main

SPEC = BASE + """\
  - id: spend
    kind: mean
    event: purchase
    window: 7d
analysis:
  cuped: true
  cuped_lookback: 14d
  in_progress: include  # the data ends two days in: count the 7-day windows so far
"""


def files(tmp_path: Path, spec: str) -> tuple[Path, Path, Path]:
    """Units with a persistent propensity: spenders before exposure spend after it too."""
    rng = random.Random(4)
    exposures = ["user_id,variant,timestamp"]
    events = ["user_id,event,value,timestamp"]
    for i in range(600):
        variant = "control" if i % 2 == 0 else "treatment"
        exposures.append(f"u{i},{variant},2026-11-15T00:00:00Z")
        level = rng.choice([0, 0, 1, 5, 20])
        if level:
            events.append(f"u{i},purchase,{level + rng.random():.2f},2026-11-10T00:00:00Z")  # 5 days before
            events.append(f"u{i},purchase,{level * 1.1 + rng.random():.2f},2026-11-17T00:00:00Z")
        if rng.random() < 0.2:
            events.append(f"u{i},activated,,2026-11-16T00:00:00Z")
    paths = tmp_path / "spec.yaml", tmp_path / "ex.csv", tmp_path / "ev.csv"
    paths[0].write_text(spec, encoding="utf-8")
    paths[1].write_text("\n".join(exposures) + "\n", encoding="utf-8")
    paths[2].write_text("\n".join(events) + "\n", encoding="utf-8")
    return paths


def analyze(paths, fmt: str):
    spec, ex, ev = paths
    result = CliRunner().invoke(main, ["analyze", str(spec), "--exposures", str(ex), "--events", str(ev),
                                       "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def test_json_marks_cuped_comparisons_with_the_variance_reduction(tmp_path):
    out = json.loads(analyze(files(tmp_path, SPEC), "json"))
    by = {m["id"]: m["comparisons"][0] for m in out["metrics"]}
    assert by["spend"]["cuped"] and by["spend"]["variance_reduction"] > 0.9  # the pre-period predicts spend
    assert not by["activated"]["cuped"]  # no pre-exposure activations: nothing to adjust with, plain analysis
    assert out["excluded"]["events_before_exposure"] > 0  # pre-exposure events still never count as outcomes


def test_without_pre_period_variance_the_plain_analysis_runs(tmp_path):
    out = json.loads(analyze(files(tmp_path, SPEC.replace("cuped_lookback: 14d", "cuped_lookback: 1d")), "json"))
    assert not any(m["comparisons"][0]["cuped"] for m in out["metrics"])
    assert all(m["comparisons"][0]["variance_reduction"] is None for m in out["metrics"])


def test_text_and_markdown_say_so(tmp_path):
    paths = files(tmp_path, SPEC)
    for fmt in ("text", "md"):
        text = analyze(paths, fmt)
        assert "CUPED: the lift and test of treatment use pre-exposure-adjusted values" in text
