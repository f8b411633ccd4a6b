"""Per-segment results in the reports (issue 13): a table per metric and attribute, the heterogeneity sentence,
a forest plot in report.html, the copy each segment was shown; hostile segment values made inert."""

from __future__ import annotations

import copy
import io
import json
import re

import pytest
from conftest import ROOT
from test_rows import html_read, md_tables, md_unescape, terminal_tables

from expc.runtime.report.html import render_html
from expc.runtime.report.markdown import MAX_CHARS, render_markdown
from expc.runtime.report.rows import COPY_CHARS, MAX_SEGMENTS, VALUE_CHARS, build
from expc.runtime.report.terminal import print_summary, summary_text

FIXTURES = ROOT / "tests" / "fixtures" / "reports"
SCRIPT = '<script>alert("seg")</script>'
ANSI = "\x1b[2J\x1b]0;pwned\x07FR\u202e"
LONG = "x" * 10_000
DIFFERS = ("The effect of personalized on activated differs by country "
           "(Cochran's Q = 14.20, df = 4, p = 0.007, I² = 72%).")
SAME = ("No evidence that the effect of personalized on activated differs by plan "
        "(Cochran's Q = 0.40, df = 1, p = 0.527, I² = 0%).")


def _seg(attribute: str, value: object, lift: float | None, ci: list, p: float | None, adjusted: float | None,
         significant: bool, units: tuple[int, int] = (1200, 1180), srm: float = 0.51,
         content: dict | None = None) -> dict:
    row = {"attribute": attribute, "value": value, "units": {"control": units[1], "personalized": units[0]},
           "abs_lift": lift, "abs_ci": ci, "rel_lift": None if lift is None else lift * 10,
           "rel_ci": [None, None] if lift is None else [ci[0] * 10, ci[1] * 10], "p_value": p,
           "adjusted_p_value": adjusted, "significant": significant, "srm_p_value": srm,
           "srm_flagged": srm < 0.001}
    if content is not None:
        row["content"] = content
    return row


def segment_report() -> dict:
    """An `expc analyze` result broken down by country (hostile values) and plan (copy per segment)."""
    country = [
        _seg("country", "DE", 0.012, [0.001, 0.023], 0.004, 0.012, True),
        _seg("country", SCRIPT, -0.02, [-0.035, -0.005], 0.002, 0.01, True, (900, 880)),
        _seg("country", ANSI, 0.001, [-0.01, 0.012], 0.8, 0.8, False, (400, 560), srm=0.00001),
        _seg("country", LONG, 0.004, [-0.02, 0.028], 0.7, 0.8, False, (150, 160)),
        _seg("country", "(unknown)", None, [None, None], None, None, False, (3, 2)),
    ]
    plan = [
        _seg("plan", "free", 0.005, [-0.001, 0.011], 0.09, 0.18, False, (2000, 2010),
             content={"personalized": "Free users: <img src=x onerror=alert(1)> start today!",
                      "control": "Welcome to Acme"}),
        _seg("plan", "pro", 0.008, [-0.002, 0.018], 0.12, 0.18, False, (650, 640),
             content={"personalized": "Pro tip \x1b[31m" + "y" * 500}),
        _seg("plan", "team|`x`", 0.0, [-0.01, 0.01], 0.99, 0.99, False, (60, 61),
             content={"personalized": "a | b"}),
    ]
    comparison = {
        "variant": "personalized", "baseline": "control", "abs_lift": 0.007, "abs_ci": [0.001, 0.013],
        "rel_lift": 0.07, "rel_ci": [0.01, 0.13], "p_value": 0.02, "adjusted_p_value": 0.02, "significant": True,
        "better": True, "chance_to_beat": None, "trustworthy": True, "cuped": False, "variance_reduction": None,
        "segments": country + plan,
        "heterogeneity": [
            {"attribute": "country", "q": 14.2, "df": 4, "p_value": 0.0067, "i2": 0.718, "segments": 5,
             "differs": True},
            {"attribute": "plan", "q": 0.4, "df": 1, "p_value": 0.527, "i2": 0.0, "segments": 2, "differs": False},
        ],
    }
    revenue = {
        "id": "revenue", "role": "guardrail", "kind": "mean", "direction": "increase",
        "variants": [{"id": "control", "units": 2650, "mean": 4.1}, {"id": "personalized", "units": 2660, "mean": 4.3}],
        "comparisons": [{
            "variant": "personalized", "baseline": "control", "abs_lift": 0.2, "abs_ci": [-0.3, 0.7], "rel_lift": 0.05,
            "rel_ci": [-0.07, 0.17], "p_value": 0.4, "adjusted_p_value": 0.4, "significant": False, "better": True,
            "trustworthy": True,
            "guardrail": {"margin": 0.05, "p_value": 0.01, "non_inferior": True, "harm": False,
                          "basis": "non_inferiority"},
            "segments": [_seg("country", "DE", -0.9, [-1.6, -0.2], 0.01, 0.03, True)],
            "heterogeneity": [{"attribute": "country", "q": None, "df": 0, "p_value": None, "i2": None,
                               "segments": 1, "differs": False}],
        }],
    }
    return {
        "experiment": {"id": "welcome-subject", "name": "Welcome", "hypothesis": "", "owner": "growth"},
        "method": "fixed", "alpha": 0.05, "day": 14, "segment_attributes": ["country", "plan"],
        "metrics": [
            {"id": "activated", "role": "primary", "kind": "proportion", "direction": "increase",
             "variants": [{"id": "control", "units": 2650, "mean": 0.10},
                          {"id": "personalized", "units": 2660, "mean": 0.107}],
             "comparisons": [comparison]},
            revenue,
        ],
        "srm": {"p_value": 0.8, "flagged": False, "statistic": 0.06, "threshold": 0.001,
                "observed": [2650, 2660], "expected": [2655, 2655]},
        "decision": {"action": "stop_ship_winner", "variant": "personalized", "rule": "primary_significant",
                     "reasons": ["winner: personalized on activated"]},
        "excluded": {},
    }


@pytest.fixture(scope="module")
def report() -> dict:
    return segment_report()


@pytest.fixture(scope="module")
def page(report: dict) -> str:
    return render_html(report)


def segment_tables(tables: list) -> list:
    """The segment tables: those whose fourth column is the segment's absolute lift."""
    return [t for t in tables if t and len(t[0]) > 7 and t[0][2] == "units (variant / control)"]


# ================================================================== the rows


def test_one_table_per_metric_and_attribute_with_the_words_chosen(report: dict) -> None:
    rows = build(report)
    activated, revenue = rows.metrics
    assert [t.title for t in activated.segments] == ["activated by country", "activated by plan"]
    assert [t.title for t in revenue.segments] == ["revenue by country"]
    country = activated.segments[0]
    assert country.headers == ("country", "variant", "units (variant / control)", "abs. lift [95% CI]",
                               "rel. lift [95% CI]", "p (adjusted)", "result", "SRM p")
    assert country.rows[0].cells() == ("DE", "personalized", "1,200 / 1,180", "+1.20 pp [+0.10, +2.30]",
                                       "+12.0% [+1.0, +23.0]", "0.012", "better", "0.510")
    assert [(r.result, r.tone) for r in country.rows] == [
        ("better", "good"), ("worse", "bad"), ("not significant (untrusted: SRM)", "bad"),
        ("not significant", "none"), ("—", "none")]
    assert country.rows[4].abs_lift.text == "— [—]" and country.rows[4].score == "—"
    assert revenue.segments[0].rows[0].cells()[3:7] == ("-0.9 [-1.6, -0.2]", "-900.0% [-1600.0, -200.0]", "0.030",
                                                         "worse")


def test_heterogeneity_sentences(report: dict) -> None:
    rows = build(report)
    activated, revenue = rows.metrics
    assert activated.segments[0].sentences == (DIFFERS,) and activated.segments[0].differs == (True,)
    assert activated.segments[1].sentences == (SAME,) and activated.segments[1].differs == (False,)
    assert revenue.segments[0].sentences == (
        "The effect of personalized on revenue was not tested for differences by country "
        "(fewer than two segments with an estimate).",)
    assert DIFFERS in rows.lines() and SAME in rows.lines()


def test_hostile_segment_values_are_visible_and_cut(report: dict) -> None:
    values = [r.value for r in build(report).metrics[0].segments[0].rows]
    assert values[1] == SCRIPT  # text; each format escapes it
    assert values[2] == "\\x1b[2J\\x1b]0;pwned\\x07FR\\u202e"
    assert values[3] == "x" * (VALUE_CHARS - 1) + "…"
    for s in values:
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e]", s)


def test_the_copy_each_segment_was_shown_sits_in_its_row(report: dict) -> None:
    plan = build(report).metrics[0].segments[1]
    assert plan.headers[-2:] == ("variant's copy", "control's copy") and plan.copy_columns == (8, 9)
    free, pro, team = plan.rows
    assert free.copy == "Free users: <img src=x onerror=alert(1)> start today!"
    assert free.control_copy == "Welcome to Acme"
    assert pro.copy is not None and pro.copy.startswith("Pro tip \\x1b[31my") and len(pro.copy) == COPY_CHARS
    assert pro.copy.endswith("…") and pro.control_copy == "—"
    assert team.value == "team|`x`" and team.copy == "a | b" and team.result == "not significant"
    assert build(report).metrics[0].segments[0].copy_columns == ()  # no copy per country: no column


def test_bayesian_segments_show_the_chance_to_beat() -> None:
    report = segment_report()
    report["method"] = "bayesian"
    for s in report["metrics"][0]["comparisons"][0]["segments"]:
        s.update(p_value=None, adjusted_p_value=None, significant=False, chance_to_beat=0.97)
    country = build(report).metrics[0].segments[0]
    assert country.headers[3] == "abs. lift [95% CrI]" and country.headers[5] == "chance to beat control"
    assert country.rows[0].score == "97.0%" and country.rows[0].result == "—"
    assert country.rows[2].result == "— (untrusted: SRM)"


def test_a_long_tail_is_cut_with_a_note() -> None:
    report = segment_report()
    comp = report["metrics"][0]["comparisons"][0]
    comp["segments"] = [_seg("country", f"c{i}", 0.001, [-0.01, 0.01], 0.5, 0.9, False)
                        for i in range(MAX_SEGMENTS + 7)]
    country = build(report).metrics[0].segments[0]
    assert len(country.rows) == MAX_SEGMENTS
    assert country.notes == ("personalized: 7 more segments of country in report.json.",)
    assert "personalized: 7 more segments of country in report.json." in summary_text(report)


# ================================================================== the formats


def test_markdown_table_and_sentence(report: dict) -> None:
    md = render_markdown(report)
    assert "##### activated by country" in md and "##### activated by plan" in md
    assert f"**{DIFFERS.replace('_', chr(92) + '_')}**" in md  # a flagged difference in bold
    tables = segment_tables(md_tables(md))
    assert [len(t) - 1 for t in tables] == [5, 3, 1]
    de = tables[0][1]
    assert de == ("DE", "personalized", "1,200 / 1,180", "+1.20 pp [+0.10, +2.30]", "+12.0% [+1.0, +23.0]",
                  "0.012", "better", "0.510")
    assert "| ✅ better |" in md and "| ❌ worse |" in md
    assert tables[1][1][-2:] == ("Free users: <img src=x onerror=alert(1)> start today!", "Welcome to Acme")
    assert "<script" not in md and "<img" not in md and "\x1b" not in md and "\u202e" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "x" * VALUE_CHARS not in md and "x" * (VALUE_CHARS - 1) + "…" in md
    widths: list[int] = []
    for line in md.splitlines() + [""]:
        if line.startswith("| "):
            widths.append(len(re.split(r"(?<!\\)\|", line)))
        elif widths:
            assert len(set(widths)) == 1, widths  # no pipe in a value or a copy added a column
            widths = []


def test_terminal_compact_table_and_sentence(report: dict) -> None:
    text = summary_text(report)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert DIFFERS in text and SAME in text
    tables = segment_tables(terminal_tables(text))
    assert [len(t) - 1 for t in tables] == [5, 3, 1]
    assert tables[0][1] == ("DE", "personalized", "1,200 / 1,180", "+1.20 pp [+0.10, +2.30]",
                            "+12.0% [+1.0, +23.0]", "0.012", "better", "0.510")
    assert "activated by country" in text.splitlines()
    assert "\\x1b[2J\\x1b]0;pwned\\x07FR\\u202e" in text
    free_copy = tables[1][1][8]
    assert free_copy.startswith("Free users:") and len(free_copy) <= 48 and free_copy.endswith("…")
    assert max(len(line) for line in text.splitlines()) < 400  # the 10,000-character value is cut


def test_terminal_tty_sends_no_escape(report: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "200")
    out = Tty()
    print_summary(report, file=out)
    raw = out.getvalue()
    assert "\x1b[2J" not in raw and "\x1b]" not in raw and "\u202e" not in raw
    plain = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    assert "activated by country" in plain and "Cochran's Q = 14.20" in plain


def test_every_format_shows_the_same_segment_rows_and_sentences(report: dict, page: str) -> None:
    rows = build(report)
    expected = [[tuple(c for c in t.headers)] + [tuple(c for c in r.cells() if c) for r in t.rows]
                for m in rows.metrics for t in m.segments]
    assert segment_tables(md_tables(render_markdown(report))) == expected
    assert segment_tables(html_read(page).tables) == expected
    markdown = " ".join(md_unescape(render_markdown(report)).split())
    text = " ".join("".join(html_read(page).text).split())
    terminal = " ".join(summary_text(report).split())
    for line in rows.lines():
        assert line in markdown and line in text and line in terminal, line


def test_html_forest_plot_per_metric_and_attribute(page: str) -> None:
    assert page.count("<svg") == 2 * 2 + 3  # lift and estimates per metric, a forest per metric and attribute
    assert page.count("Lift vs control in each segment of country") == 2
    assert "Lift vs control in each segment of plan" in page
    forest = page[page.index("each segment of country"):]
    forest = forest[:forest.index("</svg>")]
    assert ">overall<" in forest and "personalized vs control" in forest and "better →" in forest
    assert ">DE<" in forest and "absolute lift (pp), 95% CI" in forest
    assert "&lt;script&gt;alert(&quot;seg&quot;)&lt;/script&gt;" in forest or "&lt;script&gt;alert(" in forest
    assert "(SRM)" in forest  # the segment whose split is broken
    assert "x" * 32 not in forest


def test_html_escapes_segment_values_and_copy(page: str) -> None:
    assert "<script" not in page and "<img" not in page
    assert "\x1b" not in page and "\u202e" not in page and "\x07" not in page
    assert "&lt;script&gt;alert(&quot;seg&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "x" * VALUE_CHARS not in page
    assert '<span class="pill warn">differs</span>' in page
    parsed = html_read(page)
    assert SCRIPT in "".join(parsed.text)  # shown to the reader as text


def test_html_stays_self_contained_with_unique_ids(page: str) -> None:
    assert not re.search(r"https?:", page)
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?#)""", page.replace("&lt;img src=x", ""))
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert ref in ids


def test_a_dollar_in_a_segment_value_is_not_mathtext() -> None:
    report = segment_report()
    report["metrics"][0]["comparisons"][0]["segments"][0]["value"] = r"$\frac{1}{"
    page = render_html(report)
    assert r"$\frac{1}{" in page


def test_markdown_drops_segment_tables_before_going_over_the_limit() -> None:
    report = segment_report()
    comp = report["metrics"][0]["comparisons"][0]
    comp["segments"] = [_seg("plan", f"p{i}", 0.001, [-0.01, 0.01], 0.5, 0.9, False,
                             content={"personalized": f"{i} " + "z" * 400}) for i in range(MAX_SEGMENTS)]
    for i in range(3):  # three metrics with a full table each
        report["metrics"].insert(1, copy.deepcopy(report["metrics"][0]) | {"id": f"activated{i}", "role": "secondary"})
    assert len(build(report).metrics[0].segments[1].rows) == MAX_SEGMENTS
    md = render_markdown(report)
    assert len(md) <= MAX_CHARS
    assert "The segment tables were left out to fit a comment" in md
    assert SAME in md_unescape(md) and "##### activated by plan" in md


def test_a_report_without_segments_renders_as_before() -> None:
    for name in ("welcome-email", "push-notification", "analyze-product"):
        report = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
        empty = copy.deepcopy(report)
        empty["segment_attributes"] = []
        for m in empty["metrics"]:
            for c in m["comparisons"]:
                c["segments"], c["heterogeneity"] = [], []
        assert all(not m.segments for m in build(empty).metrics)
        assert render_markdown(empty) == render_markdown(report)
        assert summary_text(empty) == summary_text(report)
        assert render_html(empty) == render_html(report)


def test_malformed_segment_entries_render_without_error() -> None:
    """A hand-edited report.json: wrong types anywhere in the segment keys cost a dash, never a traceback."""
    report = segment_report()
    comp = report["metrics"][0]["comparisons"][0]
    comp["segments"] = [
        "not a row", None,
        {"attribute": "country", "value": None, "units": "many", "abs_lift": "big", "abs_ci": "wide",
         "rel_ci": [1], "content": ["a"], "srm_p_value": float("nan")},
        {"attribute": "country", "value": ["a", 1], "units": {"personalized": "x"}, "content": {"personalized": 7}},
        {"attribute": 5, "value": "odd attribute"},
    ]
    comp["heterogeneity"] = [None, {"attribute": "country", "q": "x", "df": None}, {"attribute": "plan"}]
    report["segment_attributes"] = "country"
    rows = build(report)
    country = rows.metrics[0].segments[0]
    assert country.rows[0].cells()[:4] == ("—", "personalized", "— / —", "—")
    assert country.rows[1].value == "['a', 1]"
    assert country.sentences[0].startswith("The effect of personalized on activated was not tested")
    for text in (summary_text(report), render_markdown(report), render_html(report)):
        assert "None" not in text and not re.search(r"\bnan\b", text, re.IGNORECASE)
