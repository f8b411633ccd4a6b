"""`expc generate`: JSON Lines out, a table per variant, the store, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BASE, ROOT

from expc.cli import main

WELCOME = str(ROOT / "specs" / "welcome-email.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_offline_segments_from_the_simulation_then_all_store_hits(tmp_path: Path) -> None:
    store, out = tmp_path / "c.sqlite", tmp_path / "out.jsonl"
    first = run("generate", WELCOME, "--offline", "--store", str(store), "-o", str(out))
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"variant": "control", "content": "Welcome to Acme!", "model": None, "cost": 0.0,
                       "tokens": 0, "status": "static"}
    generated = rows[1:]
    # interests: 5 values, 1 or 2 of them -> 5 + 10 segments
    assert len(generated) == 15 and all(r["segment"]["interests"] for r in generated)
    assert all(r["status"] == "ok" and r["content"].startswith("[offline]") for r in generated)
    assert "personalized" in first.stderr and "store hits" in first.stderr
    again = run("generate", WELCOME, "--offline", "--store", str(store))
    assert again.exit_code == 0
    assert [json.loads(line) for line in again.stdout.splitlines()] == rows
    line = next(li for li in again.stderr.splitlines() if li.startswith("personalized"))
    # items, calls (the 15 made by the first run, none now), store hits
    assert [c.strip() for c in line.split("│")][1:4] == ["15", "15 (0 now)", "15"]


def test_per_unit_needs_units(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE, encoding="utf-8")
    result = run("generate", str(spec), "--store", str(tmp_path / "c.sqlite"))
    assert result.exit_code == 1 and "--units" in result.stderr and "Traceback" not in result.output


def test_per_unit_with_units(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE, encoding="utf-8")
    units = tmp_path / "units.csv"
    units.write_text("user_id,first_name,interests,country\nu1,Ada,chess|maths,US\nu2,Bob,,US\n", encoding="utf-8")
    result = run("generate", str(spec), "--units", str(units), "--store", str(tmp_path / "c.sqlite"), "--quiet")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("unit") for r in rows] == [None, "u1", "u2"]
    assert rows[1]["content"] != rows[2]["content"]


def test_missing_credentials_exit_3_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run("generate", WELCOME, "--model", "openai/gpt-4o-mini", "--store", str(tmp_path / "c.sqlite"))
    assert result.exit_code == 3 and "OPENAI_API_KEY" in result.stderr
    assert not result.stdout


def test_content_failing_checks_with_on_fail_error_exits_3(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(WELCOME_TEXT().replace("on_fail: use_control", "on_fail: error")
                    .replace("forbid: [free money, guaranteed]", "forbid: [offline]"), encoding="utf-8")
    result = run("generate", str(spec), "--store", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 3 and "failed their checks" in result.stderr and "forbidden" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["status"] for r in rows[1:]} == {"failed"}


def test_invalid_spec_exits_1(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.replace("version: 1", "version: 9"), encoding="utf-8")
    assert run("generate", str(spec)).exit_code == 1


def WELCOME_TEXT() -> str:
    return Path(WELCOME).read_text(encoding="utf-8")
