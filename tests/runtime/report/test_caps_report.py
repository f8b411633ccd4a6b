"""Reports say when a metric was capped and at what value, and how many units wait for their window."""

from __future__ import annotations

import json

from conftest import ROOT
from test_rows import html_read, md_unescape

from expc.runtime.report.html import render_html
from expc.runtime.report.markdown import render_markdown
from expc.runtime.report.rows import build
from expc.runtime.report.terminal import summary_text


def report() -> dict:
    r = json.loads((ROOT / "tests" / "fixtures" / "reports" / "analyze-product.json").read_text(encoding="utf-8"))
    r["metrics"][0]["cap"] = {"quantile": 0.99, "value": None, "at": 412.3456789}
    r["metrics"][1]["cap"] = {"quantile": None, "value": 500.0, "at": 500.0}
    r["metrics"][3]["units_in_progress"] = 1234
    return r


def test_the_notes_say_the_cap_and_the_units_in_progress():
    tables = {t.id: t for t in build(report()).metrics}
    assert tables["revenue_per_visitor"].notes[0] == (
        "Capped at 412.346: each unit's value above the 99th percentile of the units' values, all variants "
        "pooled, counts as 412.346 (the mean, lift and test use capped values)")
    assert tables["revenue_per_session"].notes[0].startswith("Capped at 500: each unit's numerator above the "
                                                              "spec's cap")
    assert tables["return_requested"].notes == (
        "1,234 exposed units are left out until their window ends (analysis.in_progress: exclude)",)
    assert tables["added_to_cart"].notes == ()


def test_every_format_shows_the_notes():
    r = report()
    lines = [n for t in build(r).metrics for n in t.notes]
    assert len(lines) == 3
    page = "".join(html_read(render_html(r)).text)
    for fmt, text in (("terminal", summary_text(r)), ("markdown", md_unescape(render_markdown(r))), ("html", page)):
        flat = " ".join(text.split())
        for line in lines:
            assert line in flat, (fmt, line)


def test_a_cap_without_units_says_so_and_a_report_without_caps_has_no_note():
    r = report()
    r["metrics"][0]["cap"]["at"] = None
    assert build(r).metrics[0].notes[0].startswith("Capped: no unit counted yet")
    plain = json.loads((ROOT / "tests" / "fixtures" / "reports" / "analyze-product.json").read_text())
    assert all(not t.notes for t in build(plain).metrics)
