"""Content checks: every failing rule gives a reason."""

from __future__ import annotations

from expc.compiler.model import Checks
from expc.runtime.generate.checks import check_text


def test_passing_text_has_no_reasons() -> None:
    checks = Checks(max_chars=20, min_chars=2, forbid=["free"], require=[r"^Hello"])
    assert check_text("Hello there", checks) == []


def test_each_rule_fails_with_its_reason() -> None:
    assert "max_chars" in check_text("x" * 30, Checks(max_chars=20))[0]
    assert "min_chars" in check_text("short", Checks(min_chars=10))[0]
    assert "forbidden" in check_text("Get FREE Money now", Checks(forbid=["free money"]))[0]
    assert "required" in check_text("no number here", Checks(require=[r"\d+"]))[0]
    assert len(check_text("FREE MONEY " * 5, Checks(max_chars=10, forbid=["free money"]))) == 2


def test_empty_text_always_fails() -> None:
    assert check_text("", Checks()) == ["empty content"]
    assert check_text("   ", Checks()) == ["empty content"]
    assert check_text(None, Checks()) == ["empty content"]


def test_json_schema() -> None:
    checks = Checks(json_schema={"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
    assert check_text('{"title": "Hi"}', checks) == []
    assert check_text('```json\n{"title": "Hi"}\n```', checks) == []
    assert "not valid JSON" in check_text("title: Hi", checks)[0]
    assert "schema" in check_text('{"name": "x"}', checks)[0]


def test_json_that_python_cannot_read_fails_its_check() -> None:
    checks = Checks(json_schema={"type": "array"})
    assert check_text("[" * 100_000 + "]" * 100_000, checks) == ["not valid JSON (nested too deeply)"]
    assert check_text("1" * 5000, checks)[0].startswith("not valid JSON (Exceeds the limit")
