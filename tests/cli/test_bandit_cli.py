"""A bandit on the command line: validate, simulate (text and json), run, export: exit 0, no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from expc.cli import main

SPEC = """\
version: 1
experiment: {id: cli-bandit}
attributes: {user_id: string}
variants:
  - {id: control, content: "Council approves budget"}
  - {id: b, content: "What the budget means for you"}
  - {id: c, content: "Budget: five changes"}
metrics:
  - {id: click, kind: proportion, event: click, window: 1h, role: primary}
analysis: {method: bandit}
stopping:
  max_days: 5
  rules:
    - {when: srm, then: stop_inconclusive}
    - {when: best_arm, then: stop_ship_winner}
    - {when: max_days, then: stop_inconclusive}
simulation:
  units_per_day: 2000
  truth:
    control: {click: 0.05}
    b: {click: 0.06}
    c: {click: 0.05}
"""


def expc(*args: Any) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LITELLM_OFFLINE_MODE", "true")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bandit.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_validate_simulate_run_and_export_a_bandit(spec: Path, tmp_path: Path) -> None:
    assert expc("validate", spec).exit_code == 0
    assert "bandit: Thompson sampling on the primary metric; equal weights for 1 day" in expc("plan", spec).stdout
    text = expc("simulate", spec, "-n", 100)
    assert text.exit_code == 0 and "Bandit:" in text.output and "equal split" in text.output
    d = json.loads(expc("simulate", spec, "-n", 100, "--truth", "aa", "--format", "json").stdout)
    assert d["design"]["method"] == "bandit" and "false_ship_rate" in d["bandit"]
    run = expc("run", spec)
    assert run.exit_code == 0, run.output
    exported = expc("export", spec, "--to", "growthbook", "--values", "variant")
    assert exported.exit_code == 0
    payload = json.loads(exported.stdout)
    looks = sorted((tmp_path / ".expc" / "runs" / "cli-bandit" / "looks").glob("look-*.json"))
    last = json.loads(looks[-1].read_text())["bandit"]["next_weights"]
    assert payload["features"]["cli-bandit"]["rules"][0]["weights"] == pytest.approx(list(last.values()))
    assert "sticky bucketing" in exported.stderr
