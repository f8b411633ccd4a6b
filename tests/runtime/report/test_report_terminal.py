"""The terminal summary: SIMULATED first, the decision, a table per metric, the report paths; plain off a TTY."""

from __future__ import annotations

import copy
import io
import json

import pytest
from conftest import ROOT

from expc.runtime.report.terminal import print_summary, summary_text

FIXTURES = ROOT / "tests" / "fixtures" / "reports"
ANSI = "\x1b["


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def push() -> dict:
    return load("push-notification")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_text_has_decision_table_and_paths(push: dict) -> None:
    text = summary_text(push, push["outputs"])
    lines = text.splitlines()
    assert lines[0].startswith("SIMULATED · push-reengage-tone-2026q4 · look 3, day 3")
    assert lines[1] == "decision: Roll back to control (stop_rollback, by rule guardrail_harm)"
    assert any("urgent is worse than control" in line for line in lines[2:4])
    header = next(line for line in lines if line.startswith("variant") and "chance to beat control" in line)
    assert "abs. lift [95% CrI]" in header and "rel. lift [95% CrI]" in header and header.endswith("result")
    harm = next(line for line in lines if line.startswith("urgent") and "0.205" in line)
    assert harm.rstrip().endswith("harm")
    assert "Sample ratio as planned: p = 0.389 (a mismatch is flagged below 0.001); 40,500 units." in text
    assert "Generation: $0.4213 spent on 1,840 model calls; 312 items from the content store; 4 failures." in text
    assert "  html      .expc/runs/push-reengagement/report.html" in text
    assert ANSI not in text and "│" not in text


def test_one_table_per_metric_with_a_row_per_variant(push: dict) -> None:
    lines = summary_text(push).splitlines()
    titles = [line for line in lines if " · " in line and "is good" in line]
    assert titles == ["opened · primary · proportion, increase is good",
                      "returned · secondary · proportion, increase is good",
                      "unsubscribed · guardrail · proportion, decrease is good · margin 20% of the control"]
    controls = [line for line in lines if line.startswith("control ")]
    assert len(controls) == 3 and all(line.endswith("baseline") for line in controls)
    playful = [line for line in lines if line.startswith("playful ")]
    assert [line.split("  ")[-1].strip() for line in playful] == ["not significant", "not significant",
                                                                    "not shown yet"]


def test_not_a_tty_gives_plain_text(push: dict) -> None:
    out = io.StringIO()
    print_summary(push, push["outputs"], file=out)
    assert out.getvalue() == summary_text(push, push["outputs"])


def test_a_tty_gets_rich_output(push: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = Tty()
    print_summary(push, push["outputs"], file=out)
    text = out.getvalue()
    assert ANSI in text and "╭" in text
    plain = __import__("re").sub(r"\x1b\[[0-9;]*m", "", text)
    assert "SIMULATED" in plain.splitlines()[0]
    assert "Roll back to control" in plain
    assert "unsubscribed · guardrail · proportion, decrease is good" in plain  # not truncated at 100 columns
    assert max(len(line) for line in plain.splitlines()) <= 100
    urgent = [line for line in plain.splitlines() if line.startswith("urgent ")]
    assert len(urgent) == 3 and urgent[-1].rstrip().endswith("harm")
    assert ".expc/runs/push-reengagement/report.html" in plain


def test_real_run_and_analyze_shape() -> None:
    report = load("analyze-product")
    text = summary_text(report)
    assert "SIMULATED" not in text
    assert text.splitlines()[0] == "day 14"
    assert text.splitlines()[1].startswith("decision: Continue")
    assert "reports:" not in text and "Generation:" not in text
    assert "added_to_cart · secondary · proportion, increase is good" in text
    assert "Excluded from the analysis: bad rows 3; units in several variants 12." in text
    row = next(line for line in text.splitlines() if line.startswith("benefit_led") and "+1.07 pp" in line)
    assert row.endswith("better")


def test_nulls_show_as_dashes(push: dict) -> None:
    report = copy.deepcopy(push)
    c = report["metrics"][0]["comparisons"][0]
    c.update(abs_lift=None, abs_ci=[None, None], chance_to_beat=None)
    report["srm"]["p_value"] = None
    text = summary_text(report)
    row = next(line for line in text.splitlines() if line.startswith("playful") and "-0.4%" in line)
    assert row.count("—") >= 2 and "— [—]" in row
    assert "p = —" in text and "None" not in text and "null" not in text


def test_the_winner_is_marked(push: dict) -> None:
    report = load("welcome-email")
    row = next(line for line in summary_text(report).splitlines() if line.startswith("personalized")
               and "+0.70 pp" in line)
    assert row.endswith("better (winner)")
