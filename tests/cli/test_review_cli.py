"""Reviewing generated copy: `expc generate --format md|html`, `expc approve`, `expc run --require-approval`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import CLICKED_IN_A_DAY
from test_personal_data import NAMES
from test_personal_data import SPEC as PII_SPEC
from test_run_cli import _environment, expc  # noqa: F401 - the fixture applies here too

from expc.runtime.approvals import content_sha256

HOSTILE = "| a | b | <img src=x onerror=alert(1)> [click](https://evil.example)\n# Heading\n@team #12 `code`"

SPEC = """\
version: 1
experiment:
  id: review-cli
  unit: user_id
attributes:
  user_id: string
  country: string
prompts:
  line:
    model: offline/copywriter
    max_tokens: 30
    template: "Write a welcome line for shoppers in {{{{ segment.country }}}}."
variants:
  - id: control
    content: {control}
  - id: treatment
    prompt: line
    generate: {{per: segment, segment_by: [country]}}
""" + CLICKED_IN_A_DAY + """\
stopping:
  max_days: 2
  rules:
    - {{when: max_days, then: stop_inconclusive}}
simulation:
  units_per_day: 40
  seed: 5
  attributes:
    country: {{values: [US, CA]}}
  truth:
    control: {{clicked: 0.1}}
"""


def write_spec(folder: Path, control: str = "Hello!") -> Path:
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(control=json.dumps(control)), encoding="utf-8")
    return path


def sheet(spec: Path, store: Path, fmt: str) -> str:
    done = expc("generate", spec, "--store", store, "--format", fmt, "--quiet")
    assert done.exit_code == 0, done.stderr
    return done.stdout


# ------------------------------------------------------------------ the review sheet


def test_the_markdown_sheet_shows_every_variant_copy_verdict_model_cost_and_hash(tmp_path: Path) -> None:
    spec, store = write_spec(tmp_path), tmp_path / "c.sqlite"
    text = sheet(spec, store, "md")
    assert text.startswith("## Content review: review-cli\n")
    assert text.endswith("\n<!-- expc-review: review-cli -->\n")  # the sticky comment's marker
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line and "scope" not in line]
    assert len(rows) == 3  # control, and treatment for US and CA
    control = rows[0]
    assert "everyone" in control and "Hello!" in control and "static" in control
    assert f"`{content_sha256('Hello!')}`" in control
    items = [json.loads(line) for line in expc("generate", spec, "--store", store, "--quiet").stdout.splitlines()]
    for generated in items[1:]:
        (row,) = [r for r in rows if f"country={generated['segment']['country']} " in r]
        assert "passed" in row and "offline/copywriter" in row and "$0.00" in row
        assert f"`{content_sha256(generated['content'])}`" in row
    assert sheet(spec, store, "md") == text  # generating again (from the store) gives the same hashes


def test_copy_cannot_inject_links_html_headings_or_table_breaks(tmp_path: Path) -> None:
    spec, store = write_spec(tmp_path, HOSTILE), tmp_path / "c.sqlite"
    md = sheet(spec, store, "md")
    (row,) = [line for line in md.splitlines() if "click" in line]
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # the table's own six columns, nothing from the copy
    assert "<img" not in md and "&lt;img" in row
    assert "[click](" not in md and "\\[click\\]" in row
    assert not any(line.startswith("#") and "Heading" in line for line in md.splitlines())
    assert "@team" not in md and "&#64;team" in row and "`code`" not in row
    assert f"`{content_sha256(HOSTILE)}`" in row  # the hash is of the copy as written
    html = sheet(spec, store, "html")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and html.lstrip().startswith("<!DOCTYPE html>")


def test_per_unit_copy_is_a_sample_of_units_by_id_without_personal_values(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(PII_SPEC, encoding="utf-8")
    units = tmp_path / "units.csv"
    names = [NAMES[i % len(NAMES)] for i in range(30)]
    units.write_text("user_id,first_name,email,phone,country\n" + "".join(
        f"u{i},{name},{name.lower()}@example.com,555-01{i:02d},{'US' if i % 2 else 'CA'}\n"
        for i, name in enumerate(names)), encoding="utf-8")
    done = expc("generate", spec, "--units", units, "--store", tmp_path / "c.sqlite", "--format", "md", "--quiet")
    assert done.exit_code == 0, done.stderr
    personal = [line for line in done.stdout.splitlines() if line.startswith("| unit ")]
    assert [line.split(" | ")[0] for line in personal] == [f"| unit u{i}" for i in range(10)]
    assert "20 more units not shown" in done.stdout
    assert not any(name in done.stdout for name in NAMES)
    assert "@example.com" not in done.stdout.replace("&#64;", "@")


# ------------------------------------------------------------------ approve, and run --require-approval


def test_run_refuses_unapproved_content_and_accepts_it_after_approval(tmp_path: Path) -> None:
    spec, run_dir = write_spec(tmp_path), tmp_path / "run"
    refused = expc("run", spec, "--run-dir", run_dir, "--quiet", "--require-approval")
    assert refused.exit_code == 1
    (line,) = [li for li in refused.stderr.splitlines() if li.startswith("error:")]  # one line (the rest: warnings)
    assert line.startswith("error: content not approved: variant `control`")
    assert content_sha256("Hello!") in refused.stderr and "expc approve" in refused.stderr
    assert not (run_dir / "report.json").exists()

    approved = expc("approve", spec, "--store", run_dir / "content.sqlite", "--reviewer", "Ann Example")
    assert approved.exit_code == 0, approved.stderr
    assert "3 text(s) approved now" in approved.stdout
    lock = (tmp_path / "spec.approved.yaml").read_text(encoding="utf-8")
    assert 'reviewer: "Ann Example"' in lock and content_sha256("Hello!") in lock
    accepted = expc("run", spec, "--run-dir", run_dir, "--quiet", "--require-approval")
    assert accepted.exit_code == 0, accepted.stderr
    assert (run_dir / "report.json").exists()

    changed = write_spec(tmp_path, "Hello there!")
    again = expc("run", changed, "--run-dir", run_dir, "--quiet", "--fresh", "--require-approval")
    assert again.exit_code == 1 and content_sha256("Hello there!") in again.stderr
    assert expc("run", changed, "--run-dir", tmp_path / "other", "--quiet").exit_code == 0  # without the flag


def test_approve_the_reviewed_sheet_then_only_one_variant(tmp_path: Path) -> None:
    spec, store = write_spec(tmp_path), tmp_path / "c.sqlite"
    sheet(spec, store, "md")
    first = expc("approve", spec, "--store", store, "--reviewer", "Ann", "--variant", "control")
    assert first.exit_code == 0, first.stderr
    lock = (tmp_path / "spec.approved.yaml").read_text(encoding="utf-8")
    assert lock.count("variant:") == 1
    both = expc("approve", spec, "--store", store, "--reviewer", "Bob")
    assert "2 text(s) approved now, 1 already approved" in both.stdout
    lock = (tmp_path / "spec.approved.yaml").read_text(encoding="utf-8")
    assert lock.count('reviewer: "Ann"') == 1 and lock.count('reviewer: "Bob"') == 2


def test_approve_needs_generated_content_and_a_reviewer(tmp_path: Path, monkeypatch) -> None:
    spec = write_spec(tmp_path)
    missing = expc("approve", spec, "--store", tmp_path / "none.sqlite", "--reviewer", "Ann")
    assert missing.exit_code == 1 and "run `expc generate` first" in missing.stderr
    assert not (tmp_path / "spec.approved.yaml").exists() and not (tmp_path / "none.sqlite").exists()
    monkeypatch.delenv("EXPC_REVIEWER", raising=False)
    assert expc("approve", spec, "--store", tmp_path / "c.sqlite").exit_code == 2
    unknown = expc("approve", spec, "--reviewer", "Ann", "--variant", "nope")
    assert unknown.exit_code == 2 and "nope" in unknown.stderr
    monkeypatch.setenv("EXPC_REVIEWER", "Env Reviewer")
    sheet(spec, tmp_path / "c.sqlite", "md")
    assert expc("approve", spec, "--store", tmp_path / "c.sqlite").exit_code == 0
    assert 'reviewer: "Env Reviewer"' in (tmp_path / "spec.approved.yaml").read_text(encoding="utf-8")


def test_approve_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    spec, store = write_spec(tmp_path), tmp_path / "c.sqlite"
    sheet(spec, store, "md")
    mine = tmp_path / "spec.approved.yaml"
    mine.write_text("notes: keep me\n", encoding="utf-8")
    done = expc("approve", spec, "--store", store, "--reviewer", "Ann")
    (line,) = [li for li in done.stderr.splitlines() if li.startswith("error:")]
    assert done.exit_code == 1 and "not a lock file of expc" in line
    assert mine.read_text(encoding="utf-8") == "notes: keep me\n"
    refused = expc("run", spec, "--run-dir", tmp_path / "run", "--quiet", "--require-approval")
    assert refused.exit_code == 1 and "not a lock file of expc" in refused.stderr


def test_a_refused_run_is_approved_from_its_run_directory_even_per_unit_copy(tmp_path: Path) -> None:
    from test_run_cli import write_spec as per_unit_spec

    spec, run_dir = per_unit_spec(tmp_path, model="offline/copywriter"), tmp_path / "run"
    refused = expc("run", spec, "--run-dir", run_dir, "--quiet", "--require-approval")
    assert refused.exit_code == 1 and "content not approved" in refused.stderr
    assert "more item(s)" in refused.stderr  # the control and every simulated unit's copy
    approved = expc("approve", spec, "--reviewer", "Ann", "--run-dir", run_dir)
    assert approved.exit_code == 0, approved.stderr
    lock = (tmp_path / "spec.approved.yaml").read_text(encoding="utf-8")
    assert lock.count('scope: "unit"') > 10 and lock.count('scope: "all"') == 1
    accepted = expc("run", spec, "--run-dir", run_dir, "--quiet", "--require-approval")
    assert accepted.exit_code == 0, accepted.stderr
    both = expc("approve", spec, "--reviewer", "Ann", "--run-dir", run_dir, "--store", tmp_path / "c.sqlite")
    assert both.exit_code == 2
    empty = expc("approve", spec, "--reviewer", "Ann", "--run-dir", tmp_path / "nothing")
    assert empty.exit_code == 1 and "holds no run of experiment" in empty.stderr


def test_the_sheet_fits_a_comment_however_much_copy_there_is() -> None:
    from types import SimpleNamespace

    from conftest import plan_of_text
    from test_run_cli import SPEC as PER_UNIT

    from expc.generate_report import MAX_SHEET_CHARS, review_html, review_markdown

    plan = plan_of_text(PER_UNIT.format(model="offline/x", looks="daily", days=2, units_per_day=10))
    items = [SimpleNamespace(variant="control", key=None, content="Hello!", status="static", reason=None, model=None,
                             cost=0.0, personal=())]
    items += [SimpleNamespace(variant="treatment", key=f"u{i}", content="|" * 5000, status="ok", reason=None,
                              model="offline/x", cost=0.001, personal=()) for i in range(5000)]
    md = review_markdown(plan, items, "spec.yaml")
    assert len(md) < MAX_SHEET_CHARS and "4,990 more units not shown" in md
    assert md.count("| unit u") == 10
    assert len(review_html(plan, items, "spec.yaml")) < 200_000
    segmented = plan_of_text(SPEC.format(control=json.dumps("Hello!")))
    items = [SimpleNamespace(variant="treatment", key={"country": f"C{i}"}, content="|" * 5000, status="ok",
                             reason=None, model="offline/x", cost=0.0, personal=()) for i in range(60)]
    md = review_markdown(segmented, items, "spec.yaml")
    assert len(md) < MAX_SHEET_CHARS and "rows left out to fit a comment" in md
    assert "10 more items not shown" in md  # past the 50 rows a variant shows
