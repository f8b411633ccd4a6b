"""Hostile specs in ``tests/fixtures/hostile``: each ends in its expected located errors, never a crash or a hang.

Every spec there with ``# expect: CODE LINE:COL`` header lines (the format of
``tests/fixtures/bad``) must produce exactly those errors, make ``expc
validate`` exit 1 in every output format, and print none of the raw
characters that would control a terminal. Files without such a header belong
to other tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from expc.cli import main
from expc.compiler.pipeline import check_file

HOSTILE = Path(__file__).resolve().parent.parent / "fixtures" / "hostile"
HEADER = re.compile(r"#\s*expect:\s*([EW]\d{3})\s+(\d+):(\d+)\s*\Z")
#: What must never reach a terminal raw: ESC, BEL, NUL, C1 CSI, bidi override and isolates.
RAW = ("\x1b", "\x07", "\x00", "\x9b", "\u202e", "\u2066", "\u2067", "\u2068")


def expectations(path: Path) -> set[tuple[str, int, int]]:
    found = set()
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = HEADER.match(line.strip())
            if m:
                found.add((m[1], int(m[2]), int(m[3])))
    return found


SPECS = sorted(p for p in HOSTILE.glob("*.yaml") if expectations(p))


def test_the_corpus_has_the_input_cases():
    names = {p.name for p in SPECS}
    assert {"huge-integer.yaml", "float-overflow.yaml", "units-per-day-absurd.yaml", "max-days-absurd.yaml",
            "simulated-units-over-limit.yaml", "looks-hourly-ten-years.yaml", "terminal-escapes.yaml"} <= names


def test_every_spec_is_listed_in_the_readme():
    readme = (HOSTILE / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in SPECS if f"`{p.name}`" not in readme] == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_hostile_spec_reports_exactly_its_errors(path: Path):
    result = check_file(path)
    got = {(d.code, d.line, d.col) for d in result.diagnostics if d.is_error}
    assert got == {e for e in expectations(path) if e[0].startswith("E")}, result.diagnostics
    assert not result.ok()


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_validate_exits_1_and_prints_nothing_raw(path: Path, fmt: str):
    result = CliRunner().invoke(main, ["validate", str(path), "--format", fmt])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert not [c for c in RAW if c in result.output], repr(result.output[:500])
    if fmt == "json":
        errors = {d["code"] for d in json.loads(result.output) if d["severity"] == "error"}
        assert errors == {c for c, _, _ in expectations(path)}


def test_escapes_in_a_spec_value_are_shown_escaped():
    result = CliRunner().invoke(main, ["validate", str(HOSTILE / "terminal-escapes.yaml")])
    assert r"\x1b]0;pwned\x07\x1b[2J\u202eevil\x9b31m\x00" in result.output
