"""The terminal summary: SIMULATED first, the decision, a compact table, the report paths; plain off a TTY."""

from __future__ import annotations

import copy
import io
import json

import pytest

from conftest import ROOT
from expc.runtime.report.terminal import print_summary, summary_rows, summary_text

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
    assert lines[1] == "decision: Roll back to control (stop_rollback, rule guardrail_harm)"
    assert any("urgent is worse than control" in line for line in lines[2:4])
    header = next(line for line in lines if line.startswith("metric"))
    assert "P(better)" in header and "abs. lift [95% CrI]" in header
    harm = next(line for line in lines if line.startswith("unsubscribed") and "urgent" in line)
    assert harm.rstrip().endswith("harm") and "NI 0.205" in harm
    assert "sample ratio: as planned (p = 0.389); 40,500 units" in text
    assert "generation: $0.4213, 1,840 calls, 312 store hits, 4 failures" in text
    assert "  html      .expc/runs/push-reengagement/report.html" in text
    assert ANSI not in text and "│" not in text
    assert max(len(line) for line in lines if not line.startswith("  - ")) <= 100


def test_one_row_per_metric_and_treatment(push: dict) -> None:
    rows = summary_rows(push)
    assert len(rows) == 3 * 2
    assert [r[0][:2] for r in rows][:2] == [["opened", "playful"], ["opened", "urgent"]]
    assert rows[-1][1] == "bad"


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
    assert "unsubscribed   urgent" in plain  # ids are not truncated at 100 columns
    assert ".expc/runs/push-reengagement/report.html" in plain


def test_real_run_and_analyze_shape() -> None:
    report = load("analyze-product")
    text = summary_text(report)
    assert "SIMULATED" not in text
    assert text.splitlines()[1].startswith("decision: Continue")
    assert "reports:" not in text and "generation:" not in text
    assert "added_to_cart" in text and "better" in text


def test_nulls_show_as_dashes(push: dict) -> None:
    report = copy.deepcopy(push)
    c = report["metrics"][0]["comparisons"][0]
    c.update(abs_lift=None, abs_ci=[None, None], chance_to_beat=None)
    report["srm"]["p_value"] = None
    text = summary_text(report)
    row = next(line for line in text.splitlines() if line.startswith("opened") and "playful" in line)
    assert row.count("—") >= 2
    assert "p = —" in text and "None" not in text
