"""Broken specs in ``tests/fixtures/bad``: each holds one mistake and says what expc must report.

Every fixture is a copy of the small valid spec ``BASE`` below with one
deliberate mistake. It starts with header comments::

    # expect: E034 37:13
    # expect: W004 16:3
    # mistake: allocation names audience `targt` (typo)

giving the code, 1-based line and column of each finding it must produce (the
key for an unknown key, the value for a bad value). The errors a fixture
produces must be exactly the ``E`` lines; the ``W`` lines are warnings that
must be among its findings, and other warnings are ignored.

The expectations say what a careful user expects, worked out from the text of
the fixture, not copied from expc's output.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from expc.cli import main
from expc.compiler.diagnostics import CODES
from expc.compiler.loader import MAX_BYTES
from expc.compiler.pipeline import CheckResult, check_bytes, check_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bad"
FILES = sorted(FIXTURES.glob("*.yaml"))
HEADER = re.compile(r"#\s*expect:\s*([EW]\d{3})\s+(\d+):(\d+)\s*\Z")

#: The valid spec every fixture breaks in one place.
BASE = """\
version: 1
experiment:
  id: base-exp
  owner: team@example.com
  unit: user_id
attributes:
  user_id: string
  country: string
  is_paying: boolean
  age: integer
  tags: list[string]
audiences:
  target:
    where:
      country: {$in: [US, CA]}
      age: {$gte: 18}
prompts:
  greet:
    model: offline/copywriter
    template: |
      Write a short greeting
      for a reader in {{ user.country }}.
    checks:
      max_chars: 80
      require: ['\\w+']
variants:
  - id: control
    control: true
    content: Hello!
  - id: treatment
    prompt: greet
    generate: {per: unit}
allocation:
  audience: target
  coverage: 100%
metrics:
  - id: clicked
    kind: proportion
    event: click
    window: 7d
    role: primary
    mde: 5%
    baseline: 0.1
  - id: revenue
    kind: ratio
    numerator: purchase
    denominator: {event: click, measure: count}
  - id: unsub
    kind: proportion
    event: unsubscribe
    role: guardrail
    direction: decrease
    margin: 2%
analysis:
  alpha: 0.05
  power: 0.8
stopping:
  max_days: 14
  rules:
    - {when: guardrail_harm, then: stop_rollback}
    - {when: max_days, then: stop_inconclusive}
"""

Located = tuple[str, int, int]


def expectations(path: Path) -> list[Located]:
    """The ``# expect: CODE LINE:COL`` lines at the top of a fixture."""
    found: list[Located] = []
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        m = HEADER.match(line.strip())
        if m:
            found.append((m[1], int(m[2]), int(m[3])))
    return found


def located(result: CheckResult, severity: str) -> set[Located]:
    return {(d.code, d.line, d.col) for d in result.diagnostics if d.severity == severity}


def describe(result: CheckResult) -> str:
    return "\n".join(f"  {d.line}:{d.col} {d.severity}[{d.code}] {d.message}" for d in result.diagnostics) or "  (none)"


def assert_well_formed(result: CheckResult) -> None:
    """Every finding is located, has a known code, a severity and a message."""
    for d in result.diagnostics:
        assert d.line >= 1 and d.col >= 1, d
        assert d.code in CODES, d
        assert d.severity in ("error", "warning"), d
        assert d.severity == ("error" if d.code.startswith("E") else "warning"), d
        assert isinstance(d.message, str) and d.message.strip(), d


# ------------------------------------------------------------------ the fixture set


def test_there_are_enough_fixtures():
    assert len(FILES) >= 36


def test_the_base_spec_is_valid_and_silent():
    result = check_bytes(BASE.encode(), "base.yaml")
    assert result.ok(), describe(result)
    assert result.diagnostics == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_fixture_header_is_well_formed(path: Path):
    expected = expectations(path)
    assert expected, f"{path.name} has no `# expect: CODE LINE:COL` header"
    assert any(code.startswith("E") for code, _, _ in expected), f"{path.name} expects no error"
    assert all(code in CODES for code, _, _ in expected), expected
    assert len(set(expected)) == len(expected), f"{path.name} repeats an expectation"


def test_fixtures_cover_every_error_code():
    covered = {code for path in FILES for code, _, _ in expectations(path)}
    # E001 (cannot read) and E002 (too large) are tested below, without a committed file.
    wanted = {code for code in CODES if code.startswith("E")} - {"E001", "E002"}
    assert wanted - covered == set(), f"no fixture expects {sorted(wanted - covered)}"


# ------------------------------------------------------------------ each fixture


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_fixture_reports_exactly_the_expected_errors(path: Path):
    expected = expectations(path)
    result = check_file(path)
    assert_well_formed(result)
    assert not result.ok()
    want_errors = {e for e in expected if e[0].startswith("E")}
    want_warnings = {e for e in expected if e[0].startswith("W")}
    got_errors, got_warnings = located(result, "error"), located(result, "warning")
    assert got_errors == want_errors, (
        f"{path.name}\n expected errors: {sorted(want_errors)}\n got errors:      {sorted(got_errors)}\n"
        f" all findings:\n{describe(result)}"
    )
    missing = want_warnings - got_warnings
    assert not missing, f"{path.name}: missing warnings {sorted(missing)}\n all findings:\n{describe(result)}"
    for d in result.diagnostics:
        assert d.file == str(path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_cli_validate_exits_1(path: Path):
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output


# ------------------------------------------------------------------ E001, E002


def test_e001_missing_file(tmp_path: Path):
    result = check_file(tmp_path / "nope.yaml")
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E001", 1, 1)]
    assert_well_formed(result)
    assert not result.ok()


def test_e001_folder(tmp_path: Path):
    result = check_file(tmp_path)
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E001", 1, 1)]
    assert_well_formed(result)
    assert not result.ok()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_e001_unreadable_file(tmp_path: Path):
    path = tmp_path / "secret.yaml"
    path.write_text(BASE)
    path.chmod(0)
    try:
        result = check_file(path)
    finally:
        path.chmod(0o644)
    assert [d.code for d in result.diagnostics] == ["E001"]
    assert_well_formed(result)


def _padded(size: int) -> bytes:
    """BASE followed by comment lines, exactly ``size`` bytes long."""
    raw = BASE.encode()
    filler = size - len(raw)
    line = b"#" * 99 + b"\n"
    pad = line * (filler // len(line))
    pad += b"#" * (filler - len(pad) - 1) + b"\n" if filler > len(pad) else b""
    out = raw + pad
    assert len(out) == size
    return out


def test_e002_file_over_the_size_limit(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(_padded(MAX_BYTES + 1))
    result = check_file(path)
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E002", 1, 1)]
    assert_well_formed(result)
    assert not result.ok()
    cli = CliRunner().invoke(main, ["validate", str(path)])
    assert cli.exception is None or isinstance(cli.exception, SystemExit), repr(cli.exception)
    assert cli.exit_code == 1


def test_e002_bytes_over_the_size_limit():
    result = check_bytes(_padded(MAX_BYTES + 1), "huge.yaml")
    assert [(d.code, d.line, d.col) for d in result.diagnostics] == [("E002", 1, 1)]


def test_a_file_of_exactly_the_size_limit_is_read(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_bytes(_padded(MAX_BYTES))
    result = check_file(path)
    assert result.ok(), describe(result)


# ------------------------------------------------------------------ found while writing the fixtures


@pytest.mark.parametrize(
    "old, new",
    [
        ("alpha: 0.05", "alpha: 1e-20"),  # 1 - alpha/2 rounds to 1.0
        ("mde: 5%", "mde: 1e-20"),  # target rate rounds to the baseline
        ("baseline: 0.1", "baseline: 0.1\n    sd: .inf"),
        ("    prompt: greet\n", "    weight: 1e308\n    prompt: greet\n"),
        ("    prompt: greet\n", "    weight: 1e-320\n    prompt: greet\n"),
    ],
    ids=["alpha-tiny", "mde-tiny", "sd-inf", "weight-huge", "weight-subnormal"],
)
def test_extreme_numbers_never_crash(old: str, new: str):
    text = BASE.replace(old, new)
    assert text != BASE
    result = check_bytes(text.encode(), "extreme.yaml")
    assert_well_formed(result)


def test_an_attribute_named_token_is_not_a_secret():
    # `token: string` declares an attribute's type; `string` is not a secret.
    text = BASE.replace("  tags: list[string]\n", "  tags: list[string]\n  token: string\n")
    result = check_bytes(text.encode(), "token.yaml")
    assert [d.code for d in result.diagnostics if d.is_error] == [], describe(result)
