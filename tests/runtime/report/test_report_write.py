"""render_all: report.json, report.md and report.html written atomically into the run directory."""

from __future__ import annotations

import json
import math

import pytest
from conftest import ROOT

from expc.runtime.report import render_all

FIXTURES = ROOT / "tests" / "fixtures" / "reports"


def small_report() -> dict:
    report = json.loads((FIXTURES / "analyze-product.json").read_text(encoding="utf-8"))
    report["metrics"] = report["metrics"][:1]  # one metric: two small figures
    return report


def test_writes_three_files_and_nothing_else(tmp_path) -> None:
    report = small_report()
    paths = render_all(report, tmp_path / "run")
    assert set(paths) == {"report_json", "report_md", "report_html"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads(paths["report_json"].read_text(encoding="utf-8")) == report
    assert paths["report_json"].read_text(encoding="utf-8").startswith('{\n  "method"')
    assert paths["report_md"].read_text(encoding="utf-8").startswith("## ")
    assert paths["report_html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_nan_is_refused_and_old_reports_stay(tmp_path) -> None:
    report = small_report()
    render_all(report, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad = dict(report, alpha=math.nan)
    with pytest.raises(ValueError):
        render_all(bad, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files, nothing changed


def test_docs_describe_every_key_of_a_run_report() -> None:
    doc = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    report = json.loads((FIXTURES / "welcome-email.json").read_text(encoding="utf-8"))
    keys = set(report) | set(report["run"]) | set(report["srm"]) | set(report["decision"])
    keys |= set(report["metrics"][0]) | set(report["metrics"][0]["comparisons"][0])
    keys |= set(report["metrics"][1]["comparisons"][0]["guardrail"])
    keys |= set(report["history"][0]) | set(report["generation"]) | set(report["generation"]["per_variant"][0])
    keys |= set(report["generation"]["failures"][0]) | set(report["excluded"])
    missing = sorted(k for k in keys if f"`{k}`" not in doc and f"`{k}[]`" not in doc)
    assert not missing, missing
