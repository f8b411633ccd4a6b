"""`expc export --to growthbook` with the copy: read from the content store, a warning for per-unit copy, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import BASE, ROOT
from growthbook import GrowthBook
from test_run_cli import _environment, expc  # noqa: F401 - the fixture applies here too

WELCOME = ROOT / "specs" / "welcome-email.yaml"


def test_the_generated_copy_is_exported_one_rule_per_segment(tmp_path: Path) -> None:
    store, content = tmp_path / "c.sqlite", tmp_path / "content.jsonl"
    assert expc("generate", WELCOME, "--offline", "--store", store, "--quiet", "-o", content).exit_code == 0
    items = [json.loads(line) for line in content.read_text(encoding="utf-8").splitlines()]
    done = expc("export", WELCOME, "--to", "growthbook", "--offline", "--store", store)
    assert done.exit_code == 0, done.stderr
    assert "warning" not in done.stderr
    payload = json.loads(done.stdout)
    rules = payload["features"]["welcome-subject-2026q4"]["rules"]
    assert len(rules) == len(items) - 1  # one per segment of `interests`
    copies = {r["content"] for r in items[1:]}
    assert {r["variations"][1] for r in rules} == copies
    assert {r["variations"][0] for r in rules} == {items[0]["content"]}
    # a user of the audience who likes cooking is served the copy of that segment, or the control's
    user = {"user_id": "u1", "country": "US", "signup_days": 1, "interests": ["cooking"]}
    found = GrowthBook(attributes=user, features=payload["features"]).eval_feature("welcome-subject-2026q4")
    cooking = next(r["content"] for r in items[1:] if r["segment"]["interests"] == ["cooking"])
    assert found.value == {"control": items[0]["content"], "personalized": cooking}[found.experimentResult.name]


def test_copy_per_unit_is_a_lookup_key_with_a_warning_and_a_note(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE, encoding="utf-8")
    done = expc("export", spec, "--to", "growthbook", "-o", tmp_path / "features.json")
    assert done.exit_code == 0, done.stderr
    assert "warning: variant `treatment` is written per unit" in done.stderr
    payload = json.loads((tmp_path / "features.json").read_text(encoding="utf-8"))
    (rule,) = payload["features"]["demo"]["rules"]
    assert rule["variations"] == ["Welcome!", "expc-lookup:treatment"]
    assert "lookup key" in payload["expc"]["note"]


def test_copy_missing_from_the_store_is_exit_1_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "features.json"
    done = expc("export", WELCOME, "--to", "growthbook", "--store", tmp_path / "none.sqlite", "-o", target)
    assert done.exit_code == 1
    (line,) = [li for li in done.stderr.splitlines() if li.startswith("error:")]
    assert "run `expc generate` first" in line and "--values variant" in line
    assert not target.exists() and not (tmp_path / "none.sqlite").exists()
    ids = expc("export", WELCOME, "--to", "growthbook", "--values", "variant", "-o", target)
    assert ids.exit_code == 0 and "control" in json.loads(target.read_text(encoding="utf-8"))["features"][
        "welcome-subject-2026q4"]["rules"][0]["variations"]
