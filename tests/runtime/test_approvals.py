"""Approvals: content hashes, the lock file (written, read back, refused when hostile), and the check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import BASE, plan_of_text

from expc.runtime.approvals import (
    MAX_ENTRIES,
    Approval,
    ApprovalError,
    Hashed,
    Lock,
    approve,
    check,
    content_sha256,
    hashed_items,
    lock_path,
    parse_lock,
    read_lock,
    render_lock,
    require_approved,
    scope_of,
    unapproved,
    write_lock,
)
from expc.runtime.generate.runner import GenerateOptions, NotInStore, generate

SHA = "a" * 64


def item(variant: str, key: object, content: str | None) -> SimpleNamespace:
    return SimpleNamespace(variant=variant, key=key, content=content)


ITEMS = [item("control", None, "Welcome!"), item("t", {"country": "US"}, "Hi US"),
         item("t", {"country": "CA"}, "Hi CA"), item("u", "u1", "Hey"), item("u", "u2", "Hey"),
         item("u", "u3", None)]


# ------------------------------------------------------------------ hashes


def test_content_hash_is_the_sha256_of_the_utf8_text() -> None:
    assert content_sha256("Grüße") == hashlib.sha256("Grüße".encode()).hexdigest()
    assert content_sha256("a") != content_sha256("a ")


def test_scopes() -> None:
    assert scope_of(None) == "all"
    assert scope_of({"interests": ["b", "a"], "country": "US"}) == 'segment {"country":"US","interests":["a","b"]}'
    assert scope_of("u1") == "unit"


def test_hashed_items_skip_what_shows_nothing_and_count_each_text_once() -> None:
    hashed = hashed_items(ITEMS)
    assert [(h.variant, h.scope) for h in hashed] == [("control", "all"), ("t", 'segment {"country":"US"}'),
                                                      ("t", 'segment {"country":"CA"}'), ("u", "unit")]
    assert hashed[-1].unit == "u1" and hashed[-1].sha256 == content_sha256("Hey")


# ------------------------------------------------------------------ approving and checking


def test_everything_is_unapproved_without_a_lock_and_approved_after() -> None:
    hashed = hashed_items(ITEMS)
    assert unapproved(None, hashed) == hashed
    lock = approve(None, "demo", hashed, "Ann", "2026-12-03")
    assert unapproved(lock, hashed) == []
    assert check(lock, hashed, Path("x.approved.yaml"), "demo") is None
    assert {a.reviewer for a in lock.approvals} == {"Ann"}


def test_changed_copy_is_named_with_its_variant_scope_and_hash() -> None:
    lock = approve(None, "demo", hashed_items(ITEMS), "Ann", "2026-12-03")
    changed = hashed_items([item("t", {"country": "US"}, "Hi US!"), *ITEMS[1:]])
    message = check(lock, changed, Path("s.approved.yaml"), "demo")
    assert message is not None and "\n" not in message
    assert 'variant `t`, segment {"country":"US"}' in message and content_sha256("Hi US!") in message
    unit = check(lock, hashed_items([item("u", "u9", "other")]), Path("s.approved.yaml"), "demo")
    assert unit is not None and "variant `u`, unit u9" in unit


def test_a_lock_of_another_experiment_approves_nothing() -> None:
    lock = approve(None, "other", hashed_items(ITEMS), "Ann", "2026-12-03")
    assert "not `demo`" in (check(lock, hashed_items(ITEMS), Path("l"), "demo") or "")
    with pytest.raises(ApprovalError, match="not `demo`"):
        approve(lock, "demo", hashed_items(ITEMS), "Ann", "2026-12-03")


def test_approving_again_keeps_earlier_approvals_and_replaces_only_the_chosen_variants() -> None:
    first = approve(None, "demo", hashed_items(ITEMS), "Ann", "2026-12-01")
    changed = [item("control", None, "Welcome back!"), item("t", {"country": "US"}, "Hello US"), *ITEMS[2:]]
    second = approve(first, "demo", hashed_items(changed), "Bob", "2026-12-03", variants=["t"])
    by = {(a.variant, a.scope): a for a in second.approvals}
    assert by[("t", 'segment {"country":"US"}')].reviewer == "Bob"  # new text, new reviewer
    assert by[("t", 'segment {"country":"CA"}')] .reviewer == "Ann"  # unchanged text keeps its approval
    assert by[("control", "all")].sha256 == content_sha256("Welcome!")  # not chosen: left as it was
    assert content_sha256("Hi US") not in {a.sha256 for a in second.approvals}  # the old text is dropped
    assert unapproved(second, hashed_items(changed)) == hashed_items(changed)[:1]


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101, "\x1b[31mred"])
def test_a_reviewer_is_one_printable_line(name: str) -> None:
    with pytest.raises(ApprovalError, match="reviewer"):
        approve(None, "demo", [], name, "2026-12-03")


def test_a_lock_is_bounded() -> None:
    many = [Hashed("u", "unit", f"{i:064x}") for i in range(MAX_ENTRIES + 1)]
    with pytest.raises(ApprovalError, match="at most"):
        approve(None, "demo", many, "Ann", "2026-12-03")


# ------------------------------------------------------------------ the lock file


HOSTILE = ["plain", 'quote " and \\ backslash', "new\nline\ttab", "\x1b[2J\x07", "\u2028\u2029\x85\ufeff",
           "😀 Grüße", "\U000e0001", "key: value # not a comment", "- not a list", "*alias &anchor !tag"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_lock_reads_back_exactly_whatever_its_strings_hold(text: str) -> None:
    lock = Lock(text, (Approval(text, "segment {" + text, SHA, text.replace("\n", " ") or "x", "2026-12-03"),))
    rendered = render_lock(lock)
    assert parse_lock(rendered.encode("utf-8"), "l.yaml") == lock
    assert all(line.isprintable() for line in rendered.splitlines())


@pytest.mark.parametrize(("text", "where", "words"), [
    ("just: yaml\n", ":1:1:", "not a lock file of expc"),
    ("expc_approvals: 1\nexperiment: demo\napproved:\n  - {variant: a, scope: all, sha256: xyz, reviewer: r, "
     "date: '2026-12-03'}\n", ":4:", "64 lowercase hexadecimal"),
    ("expc_approvals: 1\nexperiment: demo\napproved: []\nextra: 1\n", ":4:1:", "unknown key `extra`"),
    (f"expc_approvals: 1\nexperiment: demo\napproved:\n  - {{variant: a, scope: everywhere, sha256: {SHA}, "
     "reviewer: r, date: '2026-12-03'}\n", ":4:", "`scope`"),
    ("expc_approvals: 1\nexperiment: demo\napproved:\n  - [1, 2]\n", ":4:5:", "mapping"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "l.yaml:5:", "the lock file expands to more than"),
    ("expc_approvals: [\n", "l.yaml:", ""),
    # the loader's size bound speaks of the lock file, not of a spec
    ("expc_approvals: 1\nexperiment: demo\napproved: []\n# " + "x" * (1 << 20) + "\n", "l.yaml:1:1:",
     "a lock file may be at most"),
])
def test_a_bad_lock_is_one_line_with_file_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(ApprovalError) as caught:
        parse_lock(text.encode("utf-8"), "l.yaml")
    message = str(caught.value)
    assert message.startswith("l.yaml:") and where in message and words in message and "\n" not in message


def test_lock_path_is_beside_the_spec() -> None:
    assert lock_path("specs/welcome.yaml") == Path("specs/welcome.approved.yaml")
    assert lock_path(Path("build/plan.json")) == Path("build/plan.approved.yaml")


def test_write_lock_replaces_only_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.approved.yaml"
    lock = approve(None, "demo", hashed_items(ITEMS), "Ann", "2026-12-03")
    write_lock(path, lock)
    assert read_lock(path) == lock
    write_lock(path, Lock("demo"))  # its own lock: replaced
    assert read_lock(path) == Lock("demo")
    path.write_text("my notes\n", encoding="utf-8")
    with pytest.raises(ApprovalError, match="not a lock file of expc"):
        write_lock(path, lock)
    assert path.read_text(encoding="utf-8") == "my notes\n"


def test_write_lock_never_writes_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.yaml"
    write_lock(target, Lock("demo"))
    before = target.read_text(encoding="utf-8")
    link = tmp_path / "s.approved.yaml"
    os.symlink(target, link)
    with pytest.raises(ApprovalError, match="not a regular file"):
        write_lock(link, approve(None, "demo", hashed_items(ITEMS), "Ann", "2026-12-03"))
    assert target.read_text(encoding="utf-8") == before and link.is_symlink()


def test_require_approved_reads_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.approved.yaml"
    with pytest.raises(ApprovalError, match="no lock file"):
        require_approved("demo", ITEMS, path)
    write_lock(path, approve(None, "demo", hashed_items(ITEMS), "Ann", "2026-12-03"))
    require_approved("demo", ITEMS, path)
    with pytest.raises(ApprovalError, match="variant `control`"):
        require_approved("demo", [item("control", None, "Changed")], path)


# ------------------------------------------------------------------ the store gives the same hashes back


SEGMENTED = BASE.replace("generate: {per: unit}", "generate: {per: segment, segment_by: [country]}").replace(
    'Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.', "Hello {{ segment.country }}.") + """\
simulation:
  units_per_day: 100
  attributes:
    country: {values: [US, CA]}
  truth:
    control: {activated: 0.1}
"""


def test_generating_again_reproduces_the_hashes_from_the_store(tmp_path: Path) -> None:
    plan = plan_of_text(SEGMENTED)
    store = tmp_path / "c.sqlite"
    first = hashed_items(generate(plan, None, store, GenerateOptions(offline=True)).items)
    again = hashed_items(generate(plan, None, store, GenerateOptions(offline=True, store_only=True)).items)
    assert len(first) == 3 and again == first
    other_seed = hashed_items(generate(plan, None, tmp_path / "d.sqlite", GenerateOptions(offline=True, seed=1))
                              .items)
    assert {h.sha256 for h in other_seed} != {h.sha256 for h in first}  # the hash follows the copy


def test_store_only_makes_no_call_and_creates_no_store(tmp_path: Path) -> None:
    plan = plan_of_text(SEGMENTED)
    with pytest.raises(NotInStore, match="run `expc generate` first"):
        generate(plan, None, tmp_path / "none.sqlite", GenerateOptions(offline=True, store_only=True))
    assert not (tmp_path / "none.sqlite").exists()
    generate(plan, None, tmp_path / "c.sqlite", GenerateOptions(offline=True, variants=("control",)))
    with pytest.raises(NotInStore, match="variant `treatment`"):
        generate(plan, None, tmp_path / "c.sqlite", GenerateOptions(offline=True, store_only=True))


def test_a_lock_too_large_to_read_back_is_not_written(tmp_path: Path) -> None:
    # 9,000 per-unit texts are within MAX_ENTRIES but past the loader's byte bound: refuse, never write it
    approvals = tuple(Approval("ai-1", "unit", f"{i:064x}", "me", "2026-12-03") for i in range(9000))
    path = tmp_path / "s.approved.yaml"
    with pytest.raises(ApprovalError, match="not written.*9,000 approvals.*could not read back"):
        write_lock(path, Lock("demo", approvals))
    assert not path.exists()
    write_lock(path, Lock("demo", approvals[:1000]))
    assert read_lock(path) == Lock("demo", approvals[:1000])
