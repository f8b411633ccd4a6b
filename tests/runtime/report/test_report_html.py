"""report.html: decision banner first, SIMULATED, every variant, inline SVG only, escaping, nulls, no history."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest
from conftest import ROOT

from expc.runtime.report.html import render_html

FIXTURES = ROOT / "tests" / "fixtures" / "reports"
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class Outline(HTMLParser):
    """Tags, ids and the text of the first element whose class has ``banner``."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.banner_depth = 0
        self.banner_done = False
        self.banner_class = ""
        self.banner_text: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.append(a["id"])
        if self.banner_depth:
            self.banner_depth += 1
        elif not self.banner_done and "banner" in (a.get("class") or "").split():
            self.banner_depth = 1
            self.banner_class = a["class"]

    def handle_endtag(self, tag: str) -> None:
        if self.banner_depth:
            self.banner_depth -= 1
            if not self.banner_depth:
                self.banner_done = True

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.banner_depth:
            self.banner_text.append(data)


def outline(page: str) -> Outline:
    o = Outline()
    o.feed(page)
    return o


@pytest.fixture(scope="module")
def welcome_page() -> str:
    return render_html(load("welcome-email"))


@pytest.fixture(scope="module")
def hostile_page() -> str:
    report = load("analyze-product")  # no history: quick to draw
    report["metrics"] = report["metrics"][:1] + report["metrics"][-1:]  # the primary and the guardrail
    report["simulated"] = True
    report["experiment"] = {"id": "x", "name": HOSTILE, "hypothesis": HOSTILE, "owner": HOSTILE}
    report["decision"]["reasons"] = [HOSTILE]
    report["content_samples"] = {"spec_sheet": [{"key": 'k"><script>x</script>', "content": HOSTILE}],
                                 "benefit_led": [{"key": None, "content": "</textarea></style>" + HOSTILE}]}
    report["generation"] = {"spent": 0.1, "calls": 1, "store_hits": 0, "per_variant": [],
                            "failures": [{"variant": "benefit_led", "key": HOSTILE, "reason": HOSTILE}]}
    return render_html(report)


def test_decision_and_reasons_are_in_the_first_banner(welcome_page: str) -> None:
    o = outline(welcome_page)
    banner = " ".join(" ".join(o.banner_text).split())
    assert "ship" in o.banner_class.split()
    assert "Ship personalized" in banner
    assert "primary_significant" in banner
    assert "winner: personalized on activated" in banner
    assert o.tags.index("header") < o.tags.index("section")  # before any section


def test_simulated_is_said_first(welcome_page: str) -> None:
    assert "SIMULATED" in welcome_page.splitlines()[0]
    o = outline(welcome_page)
    assert "SIMULATED" in "".join(o.banner_text)
    assert re.search(r"<title>SIMULATED", welcome_page)


def test_every_variant_and_section_appears(welcome_page: str) -> None:
    text = " ".join(outline(welcome_page).text)
    for vid in ("control", "personalized"):
        assert vid in text
    for section in ('id="metric-activated"', 'id="guardrails"', 'id="srm"', 'id="generation"', 'id="samples"',
                    'id="looks"'):
        assert section in welcome_page
    assert "Your next great read is waiting at Acme" in text
    assert "check max_chars: 74 characters &gt; 70" in welcome_page


def test_plots_are_inline_svg_and_nothing_is_fetched(welcome_page: str) -> None:
    o = outline(welcome_page)
    # two per metric (lift and estimates) for activated and the guardrail, plus the sample ratio
    assert o.tags.count("svg") == 5
    assert welcome_page.count("<svg") == 5
    for tag in ("script", "img", "link", "iframe", "object", "embed"):
        assert tag not in o.tags
    assert not re.search(r"https?:", welcome_page)
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?#)""", welcome_page)  # only in-page references
    assert "@import" not in welcome_page and "url(" not in welcome_page.replace("url(#", "")


def test_ids_are_unique(welcome_page: str) -> None:
    ids = outline(welcome_page).ids
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'(?:url\(#|href="#)([^)"]+)', welcome_page):
        assert ref in ids


def test_lift_plot_has_labelled_axes_and_band(welcome_page: str) -> None:
    first_svg = welcome_page[welcome_page.index("<svg"):welcome_page.index("</svg>")]
    assert "absolute lift (pp)" in first_svg and ">day<" in first_svg
    assert "FillBetweenPolyCollection" in first_svg  # the confidence band
    assert "95% CI" in first_svg and "better ↑" in first_svg


def test_untrusted_content_is_escaped(hostile_page: str) -> None:
    o = outline(hostile_page)
    assert "script" not in o.tags and "img" not in o.tags and "textarea" not in o.tags
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in hostile_page
    assert 'k"><script>' not in hostile_page
    assert "</textarea>" not in hostile_page and "&lt;/textarea&gt;&lt;/style&gt;" in hostile_page
    assert HOSTILE in " ".join(o.text)  # shown to the reader as text


def test_a_report_without_history_renders_points(hostile_page: str) -> None:
    assert 'id="looks"' not in hostile_page
    assert "Lift vs control" in hostile_page and "by look" not in hostile_page
    assert hostile_page.count("<svg") == 2 * 2  # lift and estimates for each metric
    assert "neutral" in outline(hostile_page).banner_class


def test_rollback_is_red_and_three_arms_show() -> None:
    report = load("push-notification")
    report.pop("history")  # keep the test fast; the banner does not depend on it
    report["metrics"] = report["metrics"][:1]
    page = render_html(report)
    o = outline(page)
    assert "rollback" in o.banner_class.split()
    assert "Roll back to control" in "".join(o.banner_text)
    for vid in ("control", "playful", "urgent"):
        assert f"</span>{vid}</td>" in page
    assert "chance to beat control" in page and "95% CrI" in page


def test_nulls_render_as_dashes() -> None:
    report = load("analyze-product")
    m = report["metrics"][0]
    m["variants"][1]["mean"] = None
    m["comparisons"][0].update(abs_lift=None, abs_ci=[None, None], rel_lift=None, rel_ci=None, p_value=None,
                               adjusted_p_value=None)
    report["srm"]["p_value"] = None
    report["alpha"] = None
    report["metrics"] = [m]
    page = render_html(report)
    row = re.search(r"<tr><td><span class=\"sw\"[^>]*></span>benefit_led</td>.*?</tr>", page).group(0)
    assert row.count("—") >= 4
    assert "None" not in page and ">nan" not in page.lower()


def test_output_is_deterministic() -> None:
    report = load("analyze-product")
    report["metrics"] = report["metrics"][:1]
    assert render_html(report) == render_html(copy.deepcopy(report))


def test_an_almost_empty_report_renders() -> None:
    page = render_html({"decision": {"action": "stop_inconclusive", "reasons": []}})
    assert "Stop: inconclusive" in page and "neutral" in outline(page).banner_class


def test_cuped_is_noted() -> None:
    report = load("analyze-product")
    report["metrics"] = report["metrics"][:1]
    report["metrics"][0]["comparisons"][0].update(cuped=True, variance_reduction=0.381)
    page = render_html(report)
    assert "CUPED: the lift and test of benefit_led use pre-exposure-adjusted values (variance −38%)" in page


def test_guardrail_section_states_the_rule_the_decision_applies(welcome_page: str) -> None:
    section = welcome_page[welcome_page.index('id="guardrails"'):welcome_page.index('id="srm"')]
    assert "at an interim look a treatment harms a guardrail when it is significantly worse" in section
    assert "unless non-inferiority within the margin is shown" in section
    assert "moving the wrong way" not in welcome_page
    assert '<span class="pill good">non-inferior</span>' in section


def test_the_simulated_strip_and_the_rule_line() -> None:
    report = load("push-notification")
    report.pop("history")
    report["metrics"] = report["metrics"][:1]
    o = outline(render_html(report))
    banner = " ".join(" ".join(o.banner_text).split())
    assert "SIMULATED: the outcomes were drawn from the spec's simulation block (seed 21)" in banner
    assert "stop_rollback, by rule guardrail_harm" in banner
