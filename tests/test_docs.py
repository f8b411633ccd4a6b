"""docs/diagnostics.md documents exactly the codes in the registry."""

from __future__ import annotations

import re
from pathlib import Path

from expc.compiler.diagnostics import CODES

DOC = Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md"
CODE = r"[EW]\d{3}"
# A code as a heading (`### E012 — ...`) or as the first cell of a table row (`| E012 | ...`).
HEADING = re.compile(rf"^#{{1,6}}\s+`?({CODE})\b", re.MULTILINE)
TABLE_ROW = re.compile(rf"^\|\s*`?({CODE})\b", re.MULTILINE)


def documented() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return HEADING.findall(text) + TABLE_ROW.findall(text)


def test_every_code_is_documented_and_nothing_else():
    codes = documented()
    assert set(codes) == set(CODES), (
        f"undocumented: {sorted(set(CODES) - set(codes))}; not in CODES: {sorted(set(codes) - set(CODES))}"
    )


def test_each_code_is_documented_once():
    codes = documented()
    assert sorted(codes) == sorted(set(codes)), [c for c in set(codes) if codes.count(c) > 1]


def test_every_code_mentioned_anywhere_exists():
    mentioned = set(re.findall(rf"\b({CODE})\b", DOC.read_text(encoding="utf-8")))
    assert mentioned <= set(CODES), sorted(mentioned - set(CODES))


def test_each_heading_gives_the_registry_meaning():
    text = DOC.read_text(encoding="utf-8")
    for code, meaning in CODES.items():
        assert re.search(rf"^#+\s+{code}\s+\W+\s+{re.escape(meaning)}\s*$", text, re.MULTILINE), (code, meaning)


def test_every_fixture_named_in_the_docs_exists():
    fixtures = DOC.parent.parent / "tests" / "fixtures" / "bad"
    named = set(re.findall(r"`([a-z0-9-]+\.yaml)`", DOC.read_text(encoding="utf-8")))
    missing = sorted(n for n in named if not (fixtures / n).exists())
    assert not missing, missing
