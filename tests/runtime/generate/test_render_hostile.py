"""Hostile templates in ``tests/fixtures/hostile/templates``: each ends as its header says, within a few seconds.

Header lines (before the YAML):

* ``# expect: CODE LINE:COL``: ``validate`` reports exactly these errors;
* ``# expect-generate: failed | skipped | use_control``: the spec is valid, and
  generating it fails the item (under the prompt's ``on_fail``) because its
  template went past its rendering budget;
* ``# expect-generate: refused``: generation stops with one input error (exit 1);
* ``# expect-generate: renders TEXT``: every item's prompt is ``TEXT``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from expc import compile_file
from expc.compiler.pipeline import check_file
from expc.runtime.generate.jobs import pieces
from expc.runtime.generate.runner import GenerateOptions, GenerationInputError, generate

HOSTILE = Path(__file__).resolve().parents[2] / "fixtures" / "hostile"
TEMPLATES = sorted((HOSTILE / "templates").glob("*.yaml"))
EXPECT = re.compile(r"#\s*expect:\s*([EW]\d{3})\s+(\d+):(\d+)\s*\Z")
EXPECT_GENERATE = re.compile(r"#\s*expect-generate:\s*(failed|skipped|use_control|refused|renders)\b\s*(.*)\Z")
#: Wall-clock bound for any hostile template, validation and generation together (the budget is 1 s a render).
BOUND_SECONDS = 5.0


def headers(path: Path) -> tuple[set[tuple[str, int, int]], tuple[str, str] | None]:
    errors: set[tuple[str, int, int]] = set()
    generation = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := EXPECT.match(line.strip()):
            errors.add((m[1], int(m[2]), int(m[3])))
        elif m := EXPECT_GENERATE.match(line.strip()):
            generation = (m[1], m[2])
    return errors, generation


def test_the_corpus_covers_the_issue() -> None:
    names = {p.stem for p in TEMPLATES}
    assert {"nested-loops-print-nothing", "power-tower", "power-from-variables", "lipsum-after-dead-set",
            "segment-update", "attribute-named-items", "range-billion", "loops-four-deep"} <= names
    for path in TEMPLATES:
        errors, generation = headers(path)
        assert bool(errors) != bool(generation), f"{path.name}: give either `expect` or `expect-generate`"


def test_every_template_fixture_is_listed_in_the_readme() -> None:
    readme = (HOSTILE / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in TEMPLATES if f"`templates/{p.name}`" not in readme] == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_hostile_template_has_its_outcome_within_seconds(path: Path, tmp_path: Path) -> None:
    errors, generation = headers(path)
    start = time.perf_counter()
    result = check_file(path)
    found = {(d.code, d.line, d.col) for d in result.diagnostics if d.is_error}
    if errors:
        assert found == errors, result.diagnostics
    else:
        assert result.ok(), result.diagnostics
        outcome, text = generation
        plan = compile_file(path)
        if outcome == "refused":
            with pytest.raises(GenerationInputError) as info:
                generate(plan, None, tmp_path / "s.sqlite", GenerateOptions(offline=True))
            assert info.value.exit_code == 1 and "\n" not in str(info.value)
        elif outcome == "renders":
            prompts = {dict(p.messages)["user"] for p in pieces(plan, None) if p.prompt}
            assert prompts == {text}
        else:
            made = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions(offline=True))
            treated = [i for i in made.items if i.variant == "treatment"]
            assert treated and {i.status for i in treated} == {outcome}
            assert all(i.reason.startswith("template not rendered:") for i in treated)
            assert made.calls == 0
    assert time.perf_counter() - start < BOUND_SECONDS
