"""`expc analyze` on the command line: results and the decision as json, text and md; bad input.

Bad data exits 1 with one line on stderr naming the file; a bad --as-of is a
usage error (exit 2); never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import BASE

from expc.cli import main

SPEC = BASE + """\
stopping:
  rules:
    - {when: srm, then: stop_inconclusive}
    - {when: primary_significant, then: stop_ship_winner}
"""


def run(*args: Any):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A spec and CSV files where the treatment activates 50% of its units and the control 10%."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    exposures = ["user_id,variant,timestamp"]
    events = ["user_id,event,value,timestamp"]
    for i in range(400):
        variant = "control" if i % 2 == 0 else "treatment"
        exposures.append(f"u{i},{variant},2026-11-01T00:{i % 60:02d}:00Z")
        if (variant == "control" and i % 20 == 0) or (variant == "treatment" and i % 4 == 1):
            events.append(f"u{i},activated,,2026-11-02T00:00:00Z")
    events.append("u0,other_event,,2026-11-02T00:00:00Z")  # not a metric's event: ignored
    ex = tmp_path / "exposures.csv"
    ev = tmp_path / "events.csv"
    ex.write_text("\n".join(exposures) + "\n", encoding="utf-8")
    ev.write_text("\n".join(events) + "\n", encoding="utf-8")
    return spec, ex, ev


def analyze(data, *extra: Any):
    spec, ex, ev = data
    return run("analyze", spec, "--exposures", ex, "--events", ev, *extra)


def test_json_is_the_stable_shape_with_a_winner(data):
    result = analyze(data, "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"method", "alpha", "day", "metrics", "srm", "decision", "excluded"}
    assert out["decision"]["action"] == "stop_ship_winner"
    assert out["decision"]["variant"] == "treatment"
    assert out["decision"]["rule"] == "primary_significant"
    assert out["day"] == 1  # every exposure on the first day, no --as-of: the first look
    (metric,) = out["metrics"]
    assert set(metric) == {"id", "role", "kind", "direction", "variants", "comparisons"}
    assert [(v["id"], v["units"], v["mean"]) for v in metric["variants"]] == [
        ("control", 200, 0.1), ("treatment", 200, 0.5)]
    (c,) = metric["comparisons"]
    assert c["significant"] and c["better"] and c["abs_lift"] == pytest.approx(0.4)
    assert c["abs_ci"][0] < 0.4 < c["abs_ci"][1]
    assert set(out["srm"]) == {"p_value", "flagged", "statistic", "threshold", "observed", "expected"}
    assert out["srm"]["observed"] == [200, 200] and not out["srm"]["flagged"]
    assert all(v == 0 for v in out["excluded"].values())


def test_text_shows_the_table_srm_exclusions_and_decision(data):
    result = analyze(data)  # text is the default
    assert result.exit_code == 0, result.output
    text = result.stdout
    lines = text.splitlines()
    assert lines[0].startswith("demo · day ")
    assert lines[1] == "decision: Ship treatment (stop_ship_winner, by rule primary_significant)"
    for words in ("variant", "units", "rate", "abs. lift [95% CI]", "rel. lift [95% CI]", "p (adjusted)",
                  "result", "10.00%", "50.00%", "+40.00 pp [", "+400.0% [", "<0.001", "better (winner)",
                  "Sample ratio as planned", "Excluded from the analysis: none.",
                  "treatment is a significant improvement over control"):
        assert words in text, words
    row = next(line for line in lines if line.startswith("treatment "))
    assert "200" in row and row.endswith("better (winner)")
    control = next(line for line in lines if line.startswith("control "))
    assert control.endswith("baseline")


def test_markdown_starts_with_the_id_and_decision(data):
    result = analyze(data, "--format", "md")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## ") and "demo" in lines[0] and "Ship treatment" in lines[0]
    assert "stop\\_ship\\_winner, by rule primary\\_significant" in result.stdout
    assert "| variant | units | rate | abs. lift \\[95% CI\\] |" in result.stdout
    assert any(line.startswith("| treatment | 200 | 50.00% |") for line in lines)
    assert any(line.startswith("| control | 200 | 10.00% |") and "baseline" in line for line in lines)
    assert "Sample ratio as planned" in result.stdout and "Excluded from the analysis: none." in result.stdout
    assert "report.html" not in result.stdout  # analyze writes no report files


def test_text_and_markdown_say_the_same_words(data):
    """One row model: the analysis's table rows read the same in the terminal text and in Markdown."""
    text = analyze(data).stdout
    md = analyze(data, "--format", "md").stdout
    for line in text.splitlines():
        if line.startswith(("control ", "treatment ")):
            cells = [c for c in line.split("  ") if c.strip()]
            md_row = next(m for m in md.splitlines() if m.startswith(f"| {cells[0].strip()} |"))
            for cell in cells:
                plain = cell.strip().replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
                assert plain in md_row, (plain, md_row)


def test_as_of_cuts_the_data(data):
    result = analyze(data, "--as-of", "2026-11-01T00:30:00Z", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sum(out["srm"]["observed"]) < 400
    assert out["decision"]["action"] == "continue"  # no event yet at that time


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45", "not a time"])
def test_bad_as_of_is_a_usage_error(data, bad):
    result = analyze(data, "--as-of", bad)
    assert result.exit_code == 2
    assert "--as-of" in result.stderr and result.stdout == ""


def test_missing_file_is_one_line_naming_it(data, tmp_path):
    spec, ex, _ = data
    missing = tmp_path / "nope.csv"
    result = run("analyze", spec, "--exposures", ex, "--events", missing)
    assert result.exit_code == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0]


def test_file_with_missing_columns_is_one_line_naming_it(data, tmp_path):
    spec, _, ev = data
    bad = tmp_path / "exposures_bad.csv"
    bad.write_text("user_id,timestamp\nu1,2026-11-01T00:00:00Z\n", encoding="utf-8")
    result = run("analyze", spec, "--exposures", bad, "--events", ev)
    assert result.exit_code == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and "`variant`" in errors[0]


def test_invalid_spec_exits_1(data, tmp_path):
    _, ex, ev = data
    spec = tmp_path / "broken.yaml"
    spec.write_text(SPEC.replace("kind: proportion", "kind: nonsense"), encoding="utf-8")
    result = run("analyze", spec, "--exposures", ex, "--events", ev)
    assert result.exit_code == 1 and result.stdout == ""
    assert "error" in result.stderr


def test_missing_options_are_usage_errors(data):
    spec, ex, _ = data
    assert run("analyze", spec, "--exposures", ex).exit_code == 2
    assert run("analyze", spec, "--exposures", ex, "--events", ex, "--format", "xml").exit_code == 2


def test_help_shows_examples():
    result = run("analyze", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "expc analyze" in result.stdout
    assert "--as-of" in result.stdout and "--format" in result.stdout


def test_the_look_day_counts_from_the_first_exposure_and_max_days_fires(data):
    spec, exposures, events = data
    text = spec.read_text(encoding="utf-8").replace(
        "  rules:\n", "  max_days: 28\n  rules:\n    - {when: max_days, then: stop_inconclusive}\n")
    spec.write_text(text, encoding="utf-8")

    def look(as_of: str) -> dict:
        result = run("analyze", spec, "--exposures", exposures, "--events", events, "--format", "json",
                     "--as-of", as_of)
        return json.loads(result.stdout)

    # the first exposure is 2026-11-01T00:00Z; a time is numbered by the look in progress (run numbers it so too)
    assert (look("2026-11-20T00:00:00Z")["day"], look("2026-11-28T23:00:00Z")["day"]) == (19, 28)
    assert look("2026-11-28T23:00:00Z")["decision"]["action"] == "stop_ship_winner"
    last = look("2026-11-29T00:30:00Z")
    assert last["day"] == 28 and last["decision"]["action"] == "stop_inconclusive"
    assert last["decision"]["rule"] == "max_days"
