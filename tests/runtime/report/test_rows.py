"""The row model: one report, the same words in every format; honest intervals; the winner by direction.

The cross-format tests read each rendering back (terminal text, Markdown, HTML)
into tables of cell texts and compare them with each other and with the rows
of :func:`expc.runtime.report.rows.build`.
"""

from __future__ import annotations

import copy
import html
import json
import re
from html.parser import HTMLParser

import pytest
from conftest import ROOT

from expc.runtime.report.format import visible
from expc.runtime.report.html import render_html
from expc.runtime.report.markdown import TONE_MARK, render_markdown
from expc.runtime.report.rows import best_comparison, build, guardrail_state
from expc.runtime.report.terminal import summary_text

FIXTURES = ROOT / "tests" / "fixtures" / "reports"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
HOSTILE = '<script>alert("x")</script> a|b `code` **bold** @octocat #12 \x1b[2J\x1b]0;pwned\x07 \u202eevil'

Table = list[tuple[str, ...]]  # header row first, then the rows; each row's non-empty cells


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def hostile_report() -> dict:
    """A run's report whose every piece of text from a spec, data or a provider is hostile."""
    report = load("push-notification")
    report["history"] = report["history"][-2:]
    rename = {"playful": "play|ful`<b>", "urgent": "ur\x1b[31mgent\u202e"}
    text = json.dumps(report)
    for old, new in rename.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    report = json.loads(text)
    report["experiment"] = {"id": "exp|`x`", "name": HOSTILE, "hypothesis": HOSTILE, "owner": HOSTILE}
    report["decision"]["reasons"] = [HOSTILE, "two\nlines"]
    report["metrics"][0]["id"] = "open|ed_*x*"
    report["content_samples"]["control"] = [{"key": HOSTILE, "content": HOSTILE}]
    report["generation"]["failures"][0]["reason"] = HOSTILE
    return report


CASES = NAMES + ["hostile"]


def report_for(name: str) -> dict:
    return hostile_report() if name == "hostile" else load(name)


# ================================================================== reading a rendering back


def _cells(cells: list[str]) -> tuple[str, ...]:
    return tuple(c for c in (" ".join(x.split()) for x in cells) if c)


def terminal_tables(text: str) -> list[Table]:
    """Plain-text tables: a header line, a line of dashes, rows up to a blank line; cells split at 2+ spaces."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if i and re.fullmatch(r"-+( +-+)+", line):
            table = [_cells(re.split(r" {2,}", lines[i - 1]))]
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                table.append(_cells(re.split(r" {2,}", row)))
            tables.append(table)
    return tables


def md_unescape(text: str) -> str:
    return html.unescape(re.sub(r"\\([\\`*_\[\]|~])", r"\1", text))


def md_tables(text: str) -> list[Table]:
    """Markdown tables: rows split at unescaped pipes, the alignment row skipped, tone marks removed."""
    tables: list[Table] = []
    current: Table | None = None
    for line in text.splitlines():
        if not line.startswith("| "):
            current = None
            continue
        cells = [md_unescape(c.strip()) for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if all(re.fullmatch(r"-+:?", c) for c in cells):
            continue
        cells = [c.removeprefix(TONE_MARK["good"]).removeprefix(TONE_MARK["bad"]) for c in cells]
        if current is None:
            current = []
            tables.append(current)
        current.append(_cells(cells))
    return tables


class _HtmlTables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[-1].append(_cells(self.row))
            self.row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)


def html_read(page: str) -> _HtmlTables:
    parser = _HtmlTables()
    parser.feed(page)
    return parser


def metric_tables(tables: list[Table]) -> list[Table]:
    """The metric tables: those whose last header is ``result``."""
    return [t for t in tables if t and t[0] and t[0][-1] == "result"]


def model_tables(report: dict) -> list[Table]:
    return [[_cells(list(m.headers))] + [_cells(list(r.cells())) for r in m.rows] for m in build(report).metrics]


# ================================================================== the same words everywhere


@pytest.mark.parametrize("name", CASES)
def test_every_format_shows_the_same_metric_rows(name: str) -> None:
    report = report_for(name)
    expected = model_tables(report)
    assert expected and all(len(t) > 2 for t in expected)
    assert metric_tables(terminal_tables(summary_text(report))) == expected
    assert metric_tables(md_tables(render_markdown(report))) == expected
    assert metric_tables(html_read(render_html(report)).tables) == expected


@pytest.mark.parametrize("name", CASES)
def test_every_format_says_the_same_sentences(name: str) -> None:
    report = report_for(name)
    rows = build(report)
    terminal = " ".join(summary_text(report).split())
    markdown = " ".join(md_unescape(render_markdown(report)).split())
    page = " ".join("".join(html_read(render_html(report)).text).split())
    assert rows.lines()
    for line in rows.lines():
        for fmt, text in (("terminal", terminal), ("markdown", markdown), ("html", page)):
            assert line in text, (fmt, line)


@pytest.mark.parametrize("name", CASES)
def test_markdown_and_html_show_the_same_other_tables(name: str) -> None:
    """Sample ratio, generation, failures and looks: the same rows in report.md and report.html."""
    report = report_for(name)
    md = [t for t in md_tables(render_markdown(report)) if t not in metric_tables([t])
          and t[0] != ("variant", "key", "content")]  # samples: a table in Markdown, boxes in HTML
    page = [t for t in html_read(render_html(report)).tables if t not in metric_tables([t])]
    assert md == page
    assert md  # at least the sample ratio


def test_analyze_shape_and_run_shape_of_one_look_say_the_same() -> None:
    """A run's report and the same look as `expc analyze` gives it: the same metric rows."""
    run = load("welcome-email")
    analysis = {k: run[k] for k in ("method", "alpha", "day", "metrics", "srm", "decision", "excluded")}
    assert model_tables(analysis) == model_tables(run)


# ================================================================== honest numbers


def test_no_format_prints_null_none_or_nan() -> None:
    report = load("welcome-email")
    m = report["metrics"][0]
    m["variants"][1].update(mean=None, ci=[None, None])
    m["comparisons"][0].update(abs_lift=None, abs_ci=[None, None], rel_lift=None, rel_ci=[None, None],
                               adjusted_p_value=None, p_value=None)
    report["srm"]["p_value"] = None
    for text in (summary_text(report), render_markdown(report), render_html(report)):
        assert "null" not in text.lower() and "None" not in text
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_headers_promise_an_interval_only_when_one_is_shown() -> None:
    welcome = build(load("welcome-email"))  # sequential: rel_ci is [null, null]; variants have a ci
    activated = welcome.metrics[0]
    assert activated.headers[2] == "rate [95% CI]" and activated.headers[4] == "rel. lift"
    treatment = activated.rows[1]
    assert treatment.rel_lift is not None and treatment.rel_lift.text == "+7.0%"
    assert treatment.estimate.text == "10.66% [10.35, 10.98]"
    assert treatment.abs_lift is not None and treatment.abs_lift.text == "+0.70 pp [+0.00, +1.39]"

    product = build(load("analyze-product"))  # fixed: no variant ci, rel_ci present
    assert product.metrics[2].headers[2:5] == ("rate", "abs. lift [95% CI]", "rel. lift [95% CI]")
    assert product.metrics[2].rows[1].estimate.text == "8.87%"


def test_a_relative_interval_is_shown_when_the_statistics_give_one() -> None:
    report = load("welcome-email")
    report["metrics"][0]["comparisons"][0]["rel_ci"] = [0.001, 0.14]
    activated = build(report).metrics[0]
    assert activated.headers[4] == "rel. lift [95% CI]"
    assert activated.rows[1].rel_lift is not None and activated.rows[1].rel_lift.text == "+7.0% [+0.1, +14.0]"


def test_a_missing_interval_in_a_column_that_has_some_shows_a_dash() -> None:
    report = load("push-notification")
    report["metrics"][0]["comparisons"][1]["rel_ci"] = [None, None]
    opened = build(report).metrics[0]
    assert opened.headers[4] == "rel. lift [95% CrI]"
    assert opened.rows[2].rel_lift is not None and opened.rows[2].rel_lift.text == "-2.0% [—]"
    report["metrics"][0]["comparisons"][1]["abs_ci"] = [None, 0.004]
    assert build(report).metrics[0].rows[2].abs_lift.text == "-0.12 pp [—, +0.40]"  # type: ignore[union-attr]


def test_scores_by_method() -> None:
    bayes = build(load("push-notification")).metrics[0]
    assert bayes.headers[5] == "chance to beat control" and bayes.rows[1].score == "46.7%"
    fixed = build(load("analyze-product")).metrics
    assert fixed[0].headers[5] == "p (adjusted)" and fixed[0].rows[1].score == "0.399"
    assert fixed[3].headers[5] == "p (non-inferiority)" and fixed[3].rows[1].score == "0.176"
    report = load("analyze-product")
    report["metrics"][0]["comparisons"][0]["adjusted_p_value"] = None  # group sequential: the boundary decides
    assert build(report).metrics[0].rows[1].score == "—"  # not the raw p under an "adjusted" header


# ================================================================== results, winner, guardrails


def test_result_words() -> None:
    product = build(load("analyze-product"))
    assert [r.result for r in product.metrics[0].rows] == ["baseline", "not significant"]
    assert product.metrics[2].rows[1].result == "better" and product.metrics[2].rows[1].tone == "good"
    welcome = build(load("welcome-email"))
    assert welcome.metrics[0].rows[1].result == "better (winner)" and welcome.metrics[0].rows[1].winner
    report = load("analyze-product")
    report["metrics"][2]["comparisons"][0].update(better=False, trustworthy=False)
    row = build(report).metrics[2].rows[1]
    assert row.result == "worse (untrusted: SRM)" and row.tone == "bad"


@pytest.mark.parametrize(("g", "state"), [
    ({"harm": True, "non_inferior": False, "basis": "significantly_worse"}, ("harm: significantly worse", "bad")),
    ({"harm": True, "non_inferior": False, "basis": "non_inferiority"}, ("harm: non-inferiority not shown", "bad")),
    ({"harm": True, "non_inferior": False}, ("harm", "bad")),
    ({"harm": False, "non_inferior": True, "basis": "significantly_worse"}, ("non-inferior", "good")),
    ({"harm": False, "non_inferior": False, "basis": "significantly_worse"}, ("not shown yet", "none")),
    ({"harm": False, "non_inferior": False, "basis": "non_inferiority"}, ("no estimate", "none")),
    (None, ("—", "none")),
])
def test_guardrail_state_follows_the_rule_of_the_look(g: dict | None, state: tuple[str, str]) -> None:
    assert guardrail_state(g) == state


def test_guardrail_wording_is_the_rule_evaluate_applies() -> None:
    """Interim looks: significantly worse by the method's own test; final look: non-inferiority not shown."""
    from expc.runtime import decide

    doc = " ".join((decide.__doc__ or "").split())  # the rule the decision kernel applies
    assert "at the final look, non-inferiority at the margin is not shown" in doc
    assert "before it, the guardrail is significantly worse by the method's own uncorrected test" in doc

    report = load("welcome-email")
    rule = build(report).guardrail_lines[0]
    assert "at an interim look a treatment harms a guardrail when it is significantly worse" in rule
    assert "by the analysis's own test (uncorrected)" in rule
    assert "at the final look" in rule and "unless non-inferiority within the margin is shown" in rule
    assert "moving" not in rule  # the old wording: not shown non-inferior and moving the wrong way

    for c in report["metrics"][1]["comparisons"]:
        c["guardrail"]["basis"] = "significantly_worse"
    assert build(report).guardrail_lines[1] == "This look is an interim look: harm means significantly worse."
    for c in report["metrics"][1]["comparisons"]:
        c["guardrail"]["basis"] = "non_inferiority"
    assert build(report).guardrail_lines[1] == "This look is the final look: harm means non-inferiority not shown."
    assert build(load("push-notification")).guardrail_lines[0] == build(load("analyze-product")).guardrail_lines[0]


def _metric(direction: str, lifts: dict[str, float], significant: tuple[str, ...] = ()) -> dict:
    sign = -1 if direction == "decrease" else 1
    return {"id": "m", "role": "primary", "kind": "proportion", "direction": direction,
            "comparisons": [{"variant": v, "abs_lift": x, "significant": v in significant,
                             "better": sign * x > 0} for v, x in lifts.items()]}


@pytest.mark.parametrize(("direction", "best"), [("increase", "up"), ("decrease", "down")])
def test_best_comparison_follows_direction(direction: str, best: str) -> None:
    m = _metric(direction, {"up": 0.03, "down": -0.02, "flat": 0.0})
    chosen = best_comparison(m, {"action": "continue", "variant": None})
    assert chosen is not None and chosen["variant"] == best


def test_best_comparison_reads_the_decision_first_then_significance() -> None:
    m = _metric("increase", {"big": 0.05, "small": 0.01}, significant=("small",))

    def best(decision: dict | None) -> str:
        chosen = best_comparison(m, decision)
        assert chosen is not None
        return chosen["variant"]

    assert best(None) == "small"  # the significant improvement before the larger lift
    assert best({"action": "stop_ship_winner", "variant": "big"}) == "big"  # the decision's variant, as it is
    assert best({"action": "stop_rollback", "variant": "control"}) == "small"  # the control is not a treatment
    assert best_comparison({"comparisons": []}, None) is None


def test_the_html_key_figure_follows_direction() -> None:
    """A decrease-is-good primary metric without a decided variant headlines the largest decrease."""
    report = load("push-notification")
    report["decision"] = {"action": "continue", "variant": None, "rule": None, "reasons": []}
    m = report["metrics"][0]
    m["direction"] = "decrease"
    for c in m["comparisons"]:
        c["significant"] = False
    lead = build(report).lead
    assert lead is not None and lead.row.variant == "urgent"  # -0.12 pp beats -0.02 pp when lower is better
    page = render_html(report)
    assert "opened: urgent" in page


# ================================================================== hostile text


def test_rows_hold_no_control_characters() -> None:
    rows = build(hostile_report())
    strings = [rows.title, *rows.lines(), *(c for m in rows.metrics for r in m.rows for c in r.cells())]
    for s in strings:
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", s), s
    assert "\\x1b[2J" in " ".join(rows.decision.reasons)
    assert visible("a\x1b]0;t\x07b\u202ec") == "a\\x1b]0;t\\x07b\\u202ec"
    assert visible("one\ntwo\tthree", lines=True) == "one\ntwo\tthree" and visible("one\ntwo") == "one two"
    assert visible("👩‍👩‍👧 café") == "👩‍👩‍👧 café"  # joiners in emoji are not controls
    assert visible("a\u200bb\ufeffc\U000e0041") == "a\\u200bb\\ufeffc\\U000e0041"  # invisible characters
    assert visible("::error::x ##[group]y") == "\\x3a:error::x #\\x23[group]y"  # no CI log commands
    assert visible("ok\n  ::warning::z", lines=True) == "ok\n  \\x3a:warning::z"
    assert visible(visible("\x1b[2J ::x ##[y")) == visible("\x1b[2J ::x ##[y")  # escaping twice changes nothing


def test_hostile_text_is_inert_in_every_format() -> None:
    report = hostile_report()
    terminal = summary_text(report, {"report_html": "runs/\x1b]8;;http://x\x07link"})
    assert "\x1b" not in terminal and "\x07" not in terminal and "\u202e" not in terminal
    assert "\\x1b[2J" in terminal and "\\x1b]8;;http://x\\x07link" in terminal

    md = render_markdown(report)
    assert "\x1b" not in md and "\u202e" not in md
    assert "<script" not in md and "<b>" not in md and "@octocat" not in md and "#12" not in md
    widths = []
    for line in md.splitlines() + [""]:
        if line.startswith("| "):
            widths.append(len(re.split(r"(?<!\\)\|", line)))
        elif widths:
            assert len(set(widths)) == 1, widths  # no pipe in a cell added a column
            widths = []

    page = render_html(report)
    assert "\x1b" not in page and "\u202e" not in page
    parsed = html_read(page)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert HOSTILE.split(" \x1b")[0] in "".join(parsed.text)  # shown to the reader as text


def test_a_tty_summary_parses_no_markup_and_sends_no_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from expc.runtime.report.terminal import print_summary

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "160")
    report = hostile_report()
    report["decision"]["reasons"].append("[bold red]not markup[/]")
    out = Tty()
    print_summary(report, file=out)
    text = out.getvalue()
    assert "\x1b[2J" not in text and "\x1b]" not in text and "\u202e" not in text
    assert "[bold red]not markup[/]" in re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_building_is_pure() -> None:
    report = load("welcome-email")
    before = copy.deepcopy(report)
    assert build(report) == build(report)
    assert report == before


def test_generation_table_is_shared_and_marks_unknown_prices() -> None:
    from expc.runtime.report.rows import UNKNOWN_PRICE, generation_table

    per = [{"variant": "a", "items": 3, "calls": 2, "store_hits": 1, "failures": 0, "tokens": 1234, "cost": 0.00012},
           {"variant": "b\x1b[2J", "items": 1, "calls": 1, "store_hits": 0, "failures": 1, "tokens": 9, "cost": 0.0,
            "cost_known": False}]
    table = generation_table(per)
    assert table.rows == (("a", "3", "2", "1", "0", "1,234", "$0.0001"),
                          ("b\\x1b[2J", "1", "1", "0", "1", "9", "$0.00 *"))
    report = {"generation": {"spent": 0.00012, "calls": 3, "store_hits": 1, "per_variant": per, "failures": []}}
    rows = build(report)
    assert rows.generation is not None and rows.generation.table == table
    assert rows.generation.line.endswith(UNKNOWN_PRICE)
    assert UNKNOWN_PRICE in summary_text(report) and "$0.00 \\*" in render_markdown(report)


def test_probabilities_never_round_to_certainty() -> None:
    from expc.runtime.report.format import fmt_prob

    assert [fmt_prob(x) for x in (0.99996, 1.0, 0.5934, 0.0004, 0.0, None)] == [
        ">99.9%", "100.0%", "59.3%", "<0.1%", "0.0%", "—"]
