"""Content checks: every failing rule gives a reason."""

from __future__ import annotations

from expc.runtime.generate.checks import check_text


def test_passing_text_has_no_reasons() -> None:
    assert check_text("Hello there", {"max_chars": 20, "min_chars": 2, "forbid": ["free"], "require": [r"^Hello"]}) == []


def test_each_rule_fails_with_its_reason() -> None:
    assert "max_chars" in check_text("x" * 30, {"max_chars": 20})[0]
    assert "min_chars" in check_text("short", {"min_chars": 10})[0]
    assert "forbidden" in check_text("Get FREE Money now", {"forbid": ["free money"]})[0]
    assert "required" in check_text("no number here", {"require": [r"\d+"]})[0]
    assert len(check_text("FREE MONEY " * 5, {"max_chars": 10, "forbid": ["free money"]})) == 2


def test_empty_text_always_fails() -> None:
    assert check_text("", {}) == ["empty content"]
    assert check_text("   ", {}) == ["empty content"]
    assert check_text(None, {}) == ["empty content"]


def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    assert check_text('{"title": "Hi"}', {"json_schema": schema}) == []
    assert check_text('```json\n{"title": "Hi"}\n```', {"json_schema": schema}) == []
    assert "not valid JSON" in check_text("title: Hi", {"json_schema": schema})[0]
    assert "schema" in check_text('{"name": "x"}', {"json_schema": schema})[0]
