"""Approved copy: content hashes, the lock file that records who approved them, and the check before exposure.

Every exposed item of generated (or static) copy has a **content hash**, the
SHA-256 of its text (:func:`content_sha256`), and a **scope**: ``all`` (one
text for everyone), ``segment {...}`` (the segment's canonical values, as
:func:`~expc.runtime.generate.jobs.segment_id` writes them) or ``unit`` (copy
written per unit: any unit may be shown any approved text of the variant, so
the lock lists texts, not units). An item is approved when the lock holds an
entry with its variant, scope and hash.

The lock is ``<spec-stem>.approved.yaml`` next to the spec (:func:`lock_path`),
committed with it. It is written only by ``expc approve``
(:func:`write_lock`): atomically, and over an existing file only when that file
is itself a valid lock (:func:`parse_lock`), never through a link. A lock is
untrusted input (it comes with a pull request): it is read with the spec
loader's bounds (size, nodes, no alias bombs), at most :data:`MAX_ENTRIES`
entries, and every problem is one line naming the file, line and column.

The functions here are pure but for :func:`read_lock` and :func:`write_lock`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expc.compiler.errors import EXIT_INVALID, ExpcError

__all__ = ["LOCK_SUFFIX", "MAX_ENTRIES", "Approval", "ApprovalError", "Hashed", "Lock", "approve", "check",
           "content_sha256", "hashed_items", "lock_path", "parse_lock", "read_lock", "render_lock", "require_approved",
           "scope_of", "unapproved", "write_lock"]

LOCK_SUFFIX = ".approved.yaml"
LOCK_VERSION = 1
MARKER = "expc_approvals"  # the key that makes a YAML file a lock of expc
MAX_ENTRIES = 10_000  # entries in a lock (the loader's node bound allows about this many)
MAX_LOCK_BYTES = 4 << 20
MAX_REVIEWER_CHARS = 100
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FIELDS = ("variant", "scope", "sha256", "reviewer", "date")


class ApprovalError(ExpcError):
    """A lock that cannot be read or written, or content that is not approved: one line, exit 1."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class Hashed:
    """One exposed item's identity for approval: variant, scope and content hash (``unit``: for messages only)."""

    variant: str
    scope: str
    sha256: str
    unit: str | None = None

    @property
    def ident(self) -> tuple[str, str, str]:
        """What an approval must match: (variant, scope, sha256)."""
        return (self.variant, self.scope, self.sha256)


@dataclass(frozen=True)
class Approval:
    """One entry of a lock: this text of this variant and scope, approved by ``reviewer`` on ``date``."""

    variant: str
    scope: str
    sha256: str
    reviewer: str
    date: str

    @property
    def ident(self) -> tuple[str, str, str]:
        """(variant, scope, sha256)."""
        return (self.variant, self.scope, self.sha256)


@dataclass(frozen=True)
class Lock:
    """A lock file's content: the experiment it is for and its approvals."""

    experiment: str
    approvals: tuple[Approval, ...] = ()

    def idents(self) -> set[tuple[str, str, str]]:
        """The (variant, scope, sha256) of every approval."""
        return {a.ident for a in self.approvals}


# ================================================================== hashes


def content_sha256(text: str) -> str:
    """The content hash of a text: SHA-256 of its UTF-8 bytes, as hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scope_of(key: None | dict[str, Any] | str) -> str:
    """An item's scope from its key: ``all``, ``segment {...}`` (canonical values) or ``unit``."""
    from expc.runtime.generate.jobs import segment_id

    if key is None:
        return "all"
    if isinstance(key, dict):
        return "segment " + segment_id(key)
    return "unit"


def hashed_items(items: Iterable[Any]) -> list[Hashed]:
    """The hash of every item that shows copy (``variant``, ``key``, ``content``), in order, each identity once.

    Items without content (skipped, failed before any text) expose nothing
    and are left out; an item that fell back to the control's copy is hashed
    as what it shows.
    """
    seen: dict[tuple[str, str, str], Hashed] = {}
    for item in items:
        if item.content is None:
            continue
        unit = item.key if isinstance(item.key, str) else None
        hashed = Hashed(item.variant, scope_of(item.key), content_sha256(item.content), unit)
        seen.setdefault(hashed.ident, hashed)
    return list(seen.values())


# ================================================================== approving and checking


def approve(lock: Lock | None, experiment: str, hashed: Iterable[Hashed], reviewer: str, date: str,
            variants: Collection[str] | None = None) -> Lock:
    """The lock with the current content of ``variants`` (None: every variant in ``hashed``) approved.

    For each of those variants, the entries are exactly its current items:
    an approval already in the lock is kept as it was (its reviewer and
    date), one for a text no longer generated is dropped, and each new text
    is recorded with ``reviewer`` and ``date``. Other variants' entries are
    kept. Raises :class:`ApprovalError` for a lock of another experiment, a
    bad reviewer name or more than :data:`MAX_ENTRIES` entries.
    """
    reviewer = check_reviewer(reviewer)
    if not _DATE.fullmatch(date):
        raise ApprovalError(f"the date {date!r} is not YYYY-MM-DD")
    if lock is not None and lock.experiment != experiment:
        raise ApprovalError(f"the lock is for experiment `{lock.experiment}`, not `{experiment}`")
    current = list(hashed)
    chosen = set(variants) if variants is not None else {h.variant for h in current}
    kept = [a for a in (lock.approvals if lock else ()) if a.variant not in chosen]
    before = {a.ident: a for a in (lock.approvals if lock else ())}
    fresh = [before.get(h.ident) or Approval(h.variant, h.scope, h.sha256, reviewer, date)
             for h in current if h.variant in chosen]
    approvals = tuple(sorted(dict.fromkeys(kept + fresh), key=lambda a: a.ident))  # the order the file has
    if len(approvals) > MAX_ENTRIES:
        raise ApprovalError(f"{len(approvals):,} texts to approve; a lock holds at most {MAX_ENTRIES:,} (copy "
                            "written per unit is approved text by text: approve it for fewer units)")
    return Lock(experiment, approvals)


def check_reviewer(name: str) -> str:
    """A reviewer's name, stripped: one line of printable text, 1 to 100 characters (else :class:`ApprovalError`)."""
    name = name.strip()
    if not name or len(name) > MAX_REVIEWER_CHARS or not name.isprintable():
        raise ApprovalError(f"a reviewer is a name of 1 to {MAX_REVIEWER_CHARS} printable characters on one line")
    return name


def unapproved(lock: Lock | None, hashed: Iterable[Hashed]) -> list[Hashed]:
    """The items whose (variant, scope, sha256) the lock does not approve (every item without a lock)."""
    known = lock.idents() if lock is not None else set()
    return [h for h in hashed if h.ident not in known]


def check(lock: Lock | None, hashed: Iterable[Hashed], path: Path, experiment: str | None = None) -> str | None:
    """One line naming the first unapproved item and its hash (and how many there are), or None when all are approved.

    With ``experiment``, a lock of another experiment approves nothing.
    """
    if lock is not None and experiment is not None and lock.experiment != experiment:
        return f"{path}: the lock is for experiment `{lock.experiment}`, not `{experiment}`"
    missing = unapproved(lock, hashed)
    if not missing:
        return None
    first = missing[0]
    where = {"all": ""}.get(first.scope, f", {first.scope}")
    if first.unit is not None:
        where = f", unit {first.unit}"
    more = f" and {len(missing) - 1:,} more item(s)" if len(missing) > 1 else ""
    lock_note = f"{path} does not approve it" if lock is not None else f"no lock file {path}"
    return (f"content not approved: variant `{first.variant}`{where}, sha256 {first.sha256}{more} "
            f"({lock_note}): review it (`expc generate --format md`) and run `expc approve`")


def require_approved(experiment: str, items: Iterable[Any], path: Path) -> None:
    """Raise :class:`ApprovalError` (one line, exit 1) unless the lock at ``path`` approves every item's copy."""
    message = check(read_lock(path), hashed_items(items), path, experiment)
    if message is not None:
        raise ApprovalError(message)


# ================================================================== the lock file


def lock_path(spec: str | Path) -> Path:
    """Where the lock of a spec (or compiled plan) lives: ``<stem>.approved.yaml`` beside it."""
    spec = Path(spec)
    return spec.with_name(spec.stem + LOCK_SUFFIX)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, every other one as an escape."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif " " <= c <= "~" or (ord(c) >= 0xA0 and c.isprintable() and c not in "\u2028\u2029\ufeff"
                                 and not 0xD800 <= ord(c) <= 0xDFFF):
            out.append(c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def render_lock(lock: Lock) -> str:
    """The lock as YAML, entries sorted (variant, scope, hash) so that its diffs are small."""
    lines = [
        "# Approved content, written by `expc approve`: commit this file with the spec.",
        "# Each entry approves one text (its SHA-256) of a variant for a scope: all, one segment, or any unit.",
        f"{MARKER}: {LOCK_VERSION}",
        f"experiment: {_quoted(lock.experiment)}",
        "approved:" if lock.approvals else "approved: []",
    ]
    for a in sorted(lock.approvals, key=lambda a: a.ident):
        # JSON strings are YAML double-quoted scalars: nothing in a name or a segment can break the document
        lines.append(f"  - variant: {_quoted(a.variant)}")
        lines += [f"    {name}: {_quoted(getattr(a, name))}" for name in _FIELDS[1:]]
    return "\n".join(lines) + "\n"


def parse_lock(raw: bytes, name: str) -> Lock:
    """A lock from its bytes (untrusted): :class:`ApprovalError`, naming file, line and column, when it is not one."""
    from expc.compiler.loader import load_bytes

    if len(raw) > MAX_LOCK_BYTES:
        raise ApprovalError(f"{name}: {len(raw):,} bytes; a lock file is at most {MAX_LOCK_BYTES:,}")
    doc, diagnostics = load_bytes(raw, name)
    if doc is None:
        d = diagnostics[0]
        message = d.message.replace("the spec", "the lock file").replace("a spec", "a lock file")
        raise ApprovalError(f"{name}:{d.line}:{d.col}: {message}")
    data = doc.data

    def fail(path: tuple[Any, ...], message: str, key: bool = False) -> ApprovalError:
        _, line, col = doc.where(path, key)
        return ApprovalError(f"{name}:{line}:{col}: {message}")

    if not isinstance(data, dict) or data.get(MARKER) != LOCK_VERSION:
        raise fail((), f"not a lock file of expc (no `{MARKER}: {LOCK_VERSION}`)")
    unknown = [k for k in data if k not in (MARKER, "experiment", "approved")]
    if unknown:
        raise fail((unknown[0],), f"unknown key `{unknown[0]}` (a lock has {MARKER}, experiment, approved)",
                   key=True)
    experiment = data.get("experiment")
    if not isinstance(experiment, str) or not experiment:
        raise fail(("experiment",), "`experiment` must be the experiment's id")
    entries = data.get("approved")
    if not isinstance(entries, list):
        raise fail(("approved",), "`approved` must be a list of entries")
    if len(entries) > MAX_ENTRIES:
        raise fail(("approved",), f"{len(entries):,} entries; a lock holds at most {MAX_ENTRIES:,}")
    approvals = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise fail(("approved", i), "an entry is a mapping of " + ", ".join(_FIELDS))
        for key in entry:
            if key not in _FIELDS:
                raise fail(("approved", i, key), f"unknown key `{key}` (an entry has {', '.join(_FIELDS)})", key=True)
        for key in _FIELDS:
            if not isinstance(entry.get(key), str):
                raise fail(("approved", i, key) if key in entry else ("approved", i), f"`{key}` must be a string")
        if not _SHA256.fullmatch(entry["sha256"]):
            raise fail(("approved", i, "sha256"), "`sha256` must be 64 lowercase hexadecimal digits")
        scope = entry["scope"]
        if scope not in ("all", "unit") and not scope.startswith("segment {"):
            raise fail(("approved", i, "scope"), "`scope` is `all`, `unit` or `segment {...}`")
        approvals.append(Approval(*(entry[k] for k in _FIELDS)))
    return Lock(experiment, tuple(approvals))


def read_lock(path: Path) -> Lock | None:
    """The lock at ``path`` (a regular file), None when there is none; :class:`ApprovalError` when it is unreadable."""
    from expc.compiler.sources import NotRegularFile, TooLarge, read_regular

    try:
        raw = read_regular(path, MAX_LOCK_BYTES)
    except FileNotFoundError:
        return None
    except (NotRegularFile, TooLarge) as exc:
        raise ApprovalError(str(exc)) from None
    except OSError as exc:
        raise ApprovalError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_lock(raw, str(path))


def write_lock(path: Path, lock: Lock) -> None:
    """Write the lock atomically; an existing file is replaced only when it is a valid lock of expc.

    Raises :class:`ApprovalError` for a file in the way that is not a lock
    (or a link), :class:`~expc.runtime.files.OutputError` when the file
    cannot be written.
    """
    import os
    import stat

    from expc.runtime.files import write_atomic

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISREG(mode):
            raise ApprovalError(f"{path}: is not a regular file; expc writes its lock only over a lock it wrote")
        try:
            read_lock(path)
        except ApprovalError as exc:
            raise ApprovalError(f"{exc}; so it is not a lock file of expc and is left as it is (expc replaces only "
                                "a valid lock of its own): move it away, or fix it") from None
    text = render_lock(lock)
    try:  # the loader's bounds (bytes, nodes) are tighter than MAX_ENTRIES: never write a lock expc cannot read
        parse_lock(text.encode("utf-8"), str(path))
    except ApprovalError as exc:
        raise ApprovalError(f"{path}: not written: {len(lock.approvals):,} approvals make a lock file expc could "
                            f"not read back ({str(exc).split(': ', 1)[-1]}); approve fewer texts (copy written per "
                            "unit is approved text by text: approve it for fewer units)") from None
    write_atomic(path, text)
