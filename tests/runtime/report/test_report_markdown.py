"""report.md: decision first, SIMULATED on the first line, a table per metric, inert untrusted text, size cap."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT

from expc.runtime.report.markdown import MAX_CHARS, render_markdown

FIXTURES = ROOT / "tests" / "fixtures" / "reports"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def welcome() -> dict:
    return load("welcome-email")


def test_first_line_says_simulated_and_the_decision(welcome: dict) -> None:
    text = render_markdown(welcome)
    first = text.splitlines()[0]
    assert "SIMULATED" in first
    assert "Ship personalized" in first
    assert "welcome-subject-2026q4" in first


def test_a_real_run_does_not_say_simulated() -> None:
    report = load("welcome-email")
    report["simulated"] = False
    text = render_markdown(report)
    assert "SIMULATED" not in text
    assert "analyze" not in text.splitlines()[0]


def test_decision_and_reasons_come_before_the_tables(welcome: dict) -> None:
    text = render_markdown(welcome)
    first_table = text.index("| variant |")
    for reason in welcome["decision"]["reasons"]:
        assert 0 < text.index(reason.split(":")[0]) < first_table
    assert text.index("**Decision:** stop\\_ship\\_winner, by rule primary\\_significant") < first_table


def test_one_table_per_metric_with_every_variant() -> None:
    report = load("push-notification")
    text = render_markdown(report)
    for m in report["metrics"]:
        assert f"#### {m['id']} · {m['role']} · proportion" in text
    # one table per metric, guardrails included, under their own heading
    assert text.count("| variant | units | rate |") == len(report["metrics"])
    assert text.index("### Guardrails") < text.index("#### unsubscribed")
    assert "| ❌ harm |" in text and "| p (non-inferiority) |" in text
    for vid in ("control", "playful", "urgent"):
        assert f"| {vid} |" in text
    controls = [line for line in text.splitlines() if line.startswith("| control | 13,630 | ")]
    assert sum(line.endswith("| baseline |") for line in controls) == len(report["metrics"])


def test_srm_generation_failures_history_and_samples_are_there(welcome: dict) -> None:
    text = render_markdown(welcome)
    assert "### Sample ratio" in text and "p = 0.351" in text
    assert "### Generation" in text and "1 failure" in text
    assert "<details><summary>Generation failures (1)</summary>" in text
    assert "<details><summary>Looks (12)</summary>" in text
    assert "<details><summary>Content samples (6)</summary>" in text
    assert text.count("<details>") == text.count("</details>") == 3
    assert "Level up: new games and gear for your setup" in text


def test_analyze_shape_renders_without_run_keys() -> None:
    report = load("analyze-product")
    assert "history" not in report and "generation" not in report
    text = render_markdown(report)
    assert text.startswith("## ⚪ Continue")
    assert "#### revenue\\_per\\_visitor · primary · mean" in text
    assert "Generation" not in text and "<details>" not in text and "report.html" not in text
    assert "Excluded from the analysis: bad rows 3; units in several variants 12." in text


def test_untrusted_text_is_inert(welcome: dict) -> None:
    report = copy.deepcopy(welcome)
    report["content_samples"]["personalized"].insert(0, {
        "key": "interests=<b>x</b>",
        "content": "<script>alert(1)</script> hi @octocat see #12 | [link](javascript:x)\nline"})
    report["decision"]["reasons"].append("<img src=x onerror=alert(1)>")
    text = render_markdown(report)
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "@octocat" not in text and "&#64;octocat" in text  # no mention of a GitHub user
    assert "#12" not in text
    assert "\\[link\\]" in text  # no clickable link
    row = next(line for line in text.splitlines() if "octocat" in line)
    assert row.count(" | ") == 2  # the pipe in the content did not add a column


def test_nulls_render_as_dashes(welcome: dict) -> None:
    report = copy.deepcopy(welcome)
    m = report["metrics"][0]
    m["variants"][1]["mean"] = None
    m["variants"][1]["ci"] = [None, None]
    c = m["comparisons"][0]
    c.update(abs_lift=None, abs_ci=[None, 0.01], rel_lift=None, rel_ci=None, adjusted_p_value=None, p_value=None)
    report["srm"]["p_value"] = None
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| personalized | 35,875"))
    assert row.count("—") >= 4
    assert "| — \\[—\\] | — \\[—, +1.00\\] | — | — |" in row  # the header promises intervals: shown missing
    assert "None" not in text and "nan" not in text.lower().replace("personalized", "")


def test_huge_reports_still_fit_a_comment(welcome: dict) -> None:
    report = copy.deepcopy(welcome)
    report["content_samples"] = {f"v{i}": [{"key": f"k{j}", "content": "x" * 5000} for j in range(50)]
                                 for i in range(40)}
    report["generation"]["failures"] = [{"variant": "personalized", "key": "k" * 300, "reason": "r" * 5000}] * 3000
    report["history"] = report["history"] * 40
    text = render_markdown(report)
    assert len(text) <= MAX_CHARS
    assert text.splitlines()[0].startswith("## SIMULATED")
    assert "### Metrics" in text and "### Generation" in text


def test_the_empty_report_does_not_crash() -> None:
    text = render_markdown({"decision": {"action": "continue"}})
    assert "Continue" in text.splitlines()[0]


def test_the_decision_line_and_tables_use_the_shared_words(welcome: dict) -> None:
    text = render_markdown(welcome)
    header = "| variant | units | rate \\[95% CI\\] | abs. lift \\[95% CI\\] | rel. lift | p (adjusted) | result |"
    assert header in text
    assert "| control | 36,125 | 9.97% \\[9.66, 10.28\\] |   |   |   | baseline |" in text
    assert "| ✅ better (winner) |" in text
    assert "(control)" not in text and "p (adj.)" not in text and "null" not in text


def test_untrusted_ids_and_controls_are_inert(welcome: dict) -> None:
    report = copy.deepcopy(welcome)
    report["metrics"][0]["variants"][1]["id"] = "per|so`na`lized\x1b[2J"
    report["metrics"][0]["comparisons"][0]["variant"] = "per|so`na`lized\x1b[2J"
    report["experiment"]["hypothesis"] = "**bold** <script>x</script> \u202eevil"
    text = render_markdown(report)
    assert "\x1b" not in text and "\u202e" not in text
    assert "per\\|so\\`na\\`lized\\\\x1b\\[2J" in text
    assert "\\*\\*bold\\*\\* &lt;script&gt;x&lt;/script&gt; \\\\u202eevil" in text
