"""report.md's hidden sticky-comment marker and its relative links to the other reports."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

from expc.runtime.report.markdown import MARKER_PREFIX, MAX_CHARS, render_markdown, report_marker

FIXTURES = ROOT / "tests" / "fixtures" / "reports"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_the_last_line_is_the_marker_of_the_experiment(name: str) -> None:
    report = load(name)
    text = render_markdown(report)
    ident = report["experiment"]["id"] if "experiment" in report else "unknown"  # an analysis JSON has none
    assert text.splitlines()[-1] == f"<!-- expc-report: {ident} -->"
    assert text.count(MARKER_PREFIX) == 1
    assert "SIMULATED" not in text.splitlines()[-1]


def test_two_experiments_have_two_markers_and_a_run_again_the_same() -> None:
    a, b = load("welcome-email"), load("push-notification")
    assert report_marker(a) != report_marker(b)
    later = load("welcome-email")
    later["decision"]["reasons"] = ["another look"]
    assert render_markdown(later).splitlines()[-1] == render_markdown(a).splitlines()[-1]


@pytest.mark.parametrize("ident", ["x --> <script>alert(1)</script>", "a\nb", "-->", "", None, 7, "é" * 300])
def test_a_hostile_id_cannot_close_the_comment(ident: object) -> None:
    report = load("welcome-email")
    report["experiment"]["id"] = ident
    marker = report_marker(report)
    assert re.fullmatch(r"<!-- expc-report: [A-Za-z0-9._-]{1,128} -->", marker), marker
    assert render_markdown(report).splitlines()[-1] == marker


def test_a_report_without_an_experiment_is_marked_unknown() -> None:
    assert report_marker({}) == "<!-- expc-report: unknown -->"
    assert report_marker({"experiment": "x"}) == "<!-- expc-report: unknown -->"


def test_a_runs_links_are_relative_to_report_md() -> None:
    report = load("welcome-email")
    links = LINK.findall(render_markdown(report))
    assert ("report.html", "report.html") in links and ("report.json", "report.json") in links
    for _, target in links:
        assert "://" not in target and not target.startswith("/") and ".." not in target


def test_an_analysis_has_no_links_but_the_marker() -> None:
    report = load("welcome-email")
    del report["outputs"]
    text = render_markdown(report)
    assert LINK.findall(text) == []
    assert text.splitlines()[-1].startswith(MARKER_PREFIX)


def test_the_marker_survives_the_size_cap() -> None:
    report = load("push-notification")
    report["content_samples"] = {"control": [{"key": str(i), "content": "x" * 280} for i in range(20_000)]}
    text = render_markdown(report)
    assert len(text) <= MAX_CHARS
    assert text.splitlines()[-1] == report_marker(report)
