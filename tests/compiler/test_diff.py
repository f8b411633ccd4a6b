"""compiler/diff.py: every edit of a spec classified (safe, re-randomises, analysis, content), and the run digest."""

from __future__ import annotations

import pytest
from conftest import check_text

from expc.compiler.compile import compile_plan
from expc.compiler.diff import (
    KINDS,
    REGISTRY,
    Change,
    field_of,
    guarded,
    plan_changes,
    plan_digest,
    what_changed,
)
from expc.compiler.plan import Plan

SPEC = """\
version: 1
experiment:
  id: welcome
  name: Welcome email
  description: Which subject line works.
  unit: user_id
attributes:
  user_id: string
  country: string
audiences:
  us:
    where:
      country: US
prompts:
  subject:
    model: offline/copywriter
    system: You write subject lines.
    template: "Write a subject line for {{ user.country }}."
    temperature: 0.7
    checks:
      max_chars: 60
variants:
  - id: control
    description: The current line.
    content: Welcome!
  - id: ai
    prompt: subject
    generate: {per: segment, segment_by: [country]}
    weight: 1
allocation:
  audience: us
  coverage: 100%
  layer: {id: email, range: [0, 0.5]}
  hash_version: 2
metrics:
  - id: opened
    name: Opened
    kind: proportion
    event: opened
    window: 2d
    role: primary
    mde: 5%
    baseline: 0.2
  - id: unsubscribed
    kind: proportion
    event: unsubscribed
    role: guardrail
    margin: 1%
    direction: decrease
    baseline: 0.01
analysis:
  method: sequential
  alpha: 0.05
  correction: holm
stopping:
  looks: daily
  max_days: 14
  rules:
    - {when: primary_significant, then: stop_ship_winner}
    - {when: max_days, then: stop_inconclusive}
simulation:
  units_per_day: 1000
  seed: 1
generation:
  max_cost_usd: 5
"""


def compiled(text: str, name: str = "head.yaml") -> tuple[Plan, object]:
    result = check_text(text, name)
    assert result.ok(), [f"{d.line}: {d.message}" for d in result.diagnostics if d.is_error]
    return compile_plan(result.doc, result.spec), result.doc


def edit(old: str, new: str, text: str = SPEC) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def changes_of(head_text: str, base_text: str = SPEC) -> list[Change]:
    base, _ = compiled(base_text, "base.yaml")
    head, doc = compiled(head_text)
    return plan_changes(base, head, doc)  # type: ignore[arg-type]


# ---------------------------------------------------------------- edits that change nothing

NOTHING = {
    "a comment": edit("analysis:\n", "# why: the subject line matters\nanalysis:  # the statistics\n"),
    "keys reordered": edit("  id: welcome\n  name: Welcome email\n", "  name: Welcome email\n  id: welcome\n"),
    "mapping order": edit("  user_id: string\n  country: string\n", "  country: string\n  user_id: string\n"),
    "flow style": edit("  user_id: string\n  country: string\n", "  {user_id: string, country: string}\n"
                       ).replace("attributes:\n  {", "attributes: {").replace("}\n", "}\n", 1),
    "quoting and percent": edit("coverage: 100%", 'coverage: "1.0"').replace('"1.0"', "1.0"),
    "metrics reordered": SPEC.replace(
        SPEC[SPEC.index("  - id: opened"):SPEC.index("analysis:")],
        SPEC[SPEC.index("  - id: unsubscribed"):SPEC.index("analysis:")]
        + SPEC[SPEC.index("  - id: opened"):SPEC.index("  - id: unsubscribed")]),
}


@pytest.mark.parametrize("name", sorted(NOTHING))
def test_an_edit_that_changes_no_meaning_is_no_change_and_keeps_the_digest(name: str) -> None:
    base, _ = compiled(SPEC)
    head, doc = compiled(NOTHING[name])
    assert head.spec_sha256 != base.spec_sha256  # the bytes did change
    assert plan_changes(base, head, doc) == []  # type: ignore[arg-type]
    assert plan_digest(head) == plan_digest(base)


# ---------------------------------------------------------------- the matrix

CONTROL = "  - id: control\n    description: The current line.\n    content: Welcome!\n"
AI = "  - id: ai\n    prompt: subject\n    generate: {per: segment, segment_by: [country]}\n"

MATRIX = [
    # (what, edited spec, kind, path)
    ("description", edit("Which subject line works.", "Which line opens best."), "safe", "experiment.description"),
    ("name", edit("name: Welcome email", "name: Welcome mail"), "safe", "experiment.name"),
    ("metric name", edit("name: Opened", "name: Opens"), "safe", "metrics.opened.name"),
    ("variant description", edit("The current line.", "Today's line."), "safe", "variants.control.description"),
    ("status", edit("  unit: user_id\n", "  unit: user_id\n  status: running\n"), "safe", "experiment.status"),
    ("budget", edit("max_cost_usd: 5", "max_cost_usd: 50"), "safe", "generation.max_cost_usd"),
    ("simulation seed", edit("  seed: 1\n", "  seed: 2\n"), "safe", "simulation.seed"),
    ("attribute added", edit("  country: string\n", "  country: string\n  plan: string\n"), "safe",
     "attributes.plan"),
    # re-randomises
    ("experiment id", edit("id: welcome", "id: welcome-2"), "rerandomises", "experiment.id"),
    ("seed", edit("  unit: user_id\n", "  unit: user_id\n  seed: salt-2\n"), "rerandomises", "experiment.seed"),
    ("weight", edit("    weight: 1\n", "    weight: 2\n"), "rerandomises", "variants.ai.weight"),
    ("coverage", edit("coverage: 100%", "coverage: 50%"), "rerandomises", "assignment.coverage"),
    ("audience condition", edit("country: US", "country: FR"), "rerandomises", "assignment.condition.country"),
    ("audience dropped", edit("  audience: us\n", ""), "rerandomises", "assignment.audience"),
    ("layer range", edit("range: [0, 0.5]", "range: [0, 0.6]"), "rerandomises", "assignment.namespace.end"),
    ("hash version", edit("hash_version: 2", "hash_version: 1"), "rerandomises", "assignment.hash_version"),
    ("variant added", edit("    weight: 1\n", "    weight: 1\n  - id: ai2\n    content: Hey!\n"), "rerandomises",
     "variants.ai2"),
    ("variant renamed", edit("  - id: ai\n", "  - id: gpt\n"), "rerandomises", "variants.ai"),
    ("variants reordered", edit(CONTROL + AI, AI + CONTROL.replace("\n", "\n    control: true\n", 1)),
     "rerandomises", "variants.control.index"),
    ("unit", edit("  unit: user_id\n", "  unit: country\n"), "rerandomises", "experiment.unit"),
    # changes the analysis
    ("primary metric", edit("    role: primary\n", "    role: secondary\n").replace(
        "    role: guardrail\n    margin: 1%\n", "    role: primary\n    mde: 10%\n"),
     "analysis", "metrics.opened.role"),
    ("alpha", edit("alpha: 0.05", "alpha: 0.1"), "analysis", "analysis.alpha"),
    ("method", edit("method: sequential", "method: fixed"), "analysis", "analysis.method"),
    ("correction", edit("correction: holm", "correction: bonferroni"), "analysis", "analysis.correction"),
    ("window", edit("window: 2d", "window: 3d"), "analysis", "metrics.opened.window_seconds"),
    ("looks", edit("looks: daily", "looks: weekly"), "analysis", "schedule.every_seconds"),
    ("max days", edit("max_days: 14", "max_days: 21"), "analysis", "stopping.max_days"),
    ("stopping rule", edit("    - {when: primary_significant, then: stop_ship_winner}\n", ""), "analysis",
     "stopping.rules"),
    ("metric event", edit("event: opened", "event: email_opened"), "analysis", "metrics.opened.event"),
    ("metric mde", edit("mde: 5%", "mde: 4%"), "analysis", "metrics.opened.mde"),
    ("metric added", edit("analysis:\n", "  - {id: clicked, kind: proportion, event: clicked, baseline: 0.1}\n"
                                       "analysis:\n"),
     "analysis", "metrics.clicked"),
    ("control", edit("    prompt: subject\n", "    prompt: subject\n    control: true\n"), "analysis", "control"),
    # changes the content
    ("template", edit("Write a subject line", "Write a short subject line"), "content",
     "prompts.subject.template"),
    ("model", edit("offline/copywriter", "offline/writer"), "content", "prompts.subject.model"),
    ("system", edit("You write subject lines.", "You write short subject lines."), "content",
     "prompts.subject.system"),
    ("temperature", edit("temperature: 0.7", "temperature: 0.2"), "content", "prompts.subject.temperature"),
    ("checks", edit("max_chars: 60", "max_chars: 50"), "content", "prompts.subject.checks.max_chars"),
    ("static content", edit("content: Welcome!", "content: Hello!"), "content", "variants.control.content"),
    ("generated per unit", edit("{per: segment, segment_by: [country]}", "{per: unit}"),
     "content", "variants.ai.generate.per"),
]


@pytest.mark.parametrize(("what", "head", "kind", "path"), MATRIX, ids=[row[0] for row in MATRIX])
def test_each_edit_is_classified(what: str, head: str, kind: str, path: str) -> None:
    found = changes_of(head)
    assert path in {c.path for c in found}, [c.describe() for c in found]
    assert next(c for c in found if c.path == path).kind == kind
    # nothing more serious comes with it (derived fields, such as bucket ranges, are not reported)
    assert min(KINDS.index(c.kind) for c in found) == KINDS.index(kind)  # type: ignore[arg-type]


def test_a_changed_field_points_at_its_line_in_the_head_spec() -> None:
    head = edit("window: 2d", "window: 3d")
    (change,) = changes_of(head)
    assert change.line == head.splitlines().index("    window: 3d") + 1
    weight = edit("    weight: 1\n", "    weight: 2\n")
    lines = {c.path: c.line for c in changes_of(weight)}
    assert lines["variants.ai.weight"] == weight.splitlines().index("    weight: 2") + 1
    # the control has no weight key: its variant's line
    assert lines["variants.control.weight"] == weight.splitlines().index("  - id: control") + 1
    cond = {c.path: c.line for c in changes_of(edit("country: US", "country: FR"))}
    assert cond["assignment.condition.country"] == SPEC.splitlines().index("      country: US") + 1
    looks = {c.path: c.line for c in changes_of(edit("looks: daily", "looks: weekly"))}
    assert looks["schedule.every_seconds"] == SPEC.splitlines().index("  looks: daily") + 1


def test_a_rename_is_a_removal_and_an_addition_with_their_values() -> None:
    found = {c.path: c for c in changes_of(edit("  - id: ai\n", "  - id: gpt\n"))}
    assert found["variants.ai"].action == "removed" and found["variants.ai"].old["prompt"] == "subject"
    assert found["variants.gpt"].action == "added" and found["variants.gpt"].new["weight"] == 0.5
    assert found["variants.ai"].kind == found["variants.gpt"].kind == "rerandomises"


def test_weights_are_compared_normalised() -> None:
    head = edit("    weight: 1\n", "    weight: 1\n").replace("    content: Welcome!\n",
                                                            "    content: Welcome!\n    weight: 1\n")
    assert changes_of(head) == []
    doubled = head.replace("weight: 1", "weight: 3")
    assert changes_of(doubled) == []


def test_a_description_a_template_reads_changes_the_content() -> None:
    reads = edit("Write a subject line for", "Write a subject line ({{ experiment.description }}) for")
    changed = edit("Which subject line works.", "Which line opens best.", reads)
    (change,) = changes_of(changed, reads)
    assert (change.path, change.kind, change.identity) == ("experiment.description", "content", True)
    base, _ = compiled(reads)
    head, _ = compiled(changed)
    assert plan_digest(base) != plan_digest(head)
    # a template that uses the whole object reads every field of it
    whole = edit("Write a subject line for", "Write a subject line ({{ variant }}) for")
    (change,) = changes_of(edit("The current line.", "Today's line.", whole), whole)
    assert change.kind == "content"


def test_the_digest_keeps_what_changes_meaning_and_drops_what_does_not() -> None:
    base, _ = compiled(SPEC)
    for what, head, kind, _ in MATRIX:
        plan, _ = compiled(head)
        same = plan_digest(plan) == plan_digest(base)
        assert same == all(not c.identity for c in plan_changes(base, plan)), what
        if kind != "safe":
            assert not same, what
    assert all(not c.identity for c in changes_of(edit("max_cost_usd: 5", "max_cost_usd: 50")))


def test_every_field_of_a_plan_has_a_row_in_the_registry() -> None:
    for name in Plan.model_fields:
        assert field_of((name,)) is not None, f"the plan field `{name}` has no row in compiler.diff.REGISTRY"
    for name in Plan.model_fields["experiment"].annotation.model_fields:  # type: ignore[union-attr]
        row = field_of(("experiment", name))
        assert row is not None and row.pattern != "experiment", f"experiment.{name} is not classified"
    patterns = [row.pattern for row in REGISTRY]
    assert len(patterns) == len(set(patterns))


def test_what_changed_names_the_most_serious_first_and_cuts_long_lists() -> None:
    head = edit("Which subject line works.", "Other.", edit("    weight: 1\n", "    weight: 3\n"))
    text = what_changed(changes_of(head), limit=2)
    assert text.startswith("re-randomises: variants.control.weight 0.5 -> 0.25")
    assert text.endswith("and 1 more")
    assert what_changed(changes_of(edit("  seed: 1\n", "  seed: 2\n"))) == "simulation.seed 1 -> 2"


def test_long_values_are_cut_and_guarded_keeps_only_the_three_kinds() -> None:
    long = edit("Write a subject line", "Write " + "a very long line " * 20)
    (change,) = changes_of(long)
    assert len(change.describe(40)) < 120 and "…" in change.describe(40)
    assert guarded(changes_of(edit("name: Opened", "name: Opens"))) == []
    assert [c.kind for c in guarded(changes_of(long))] == ["content"]
    assert change.to_dict()["label"] == "changes the content"
