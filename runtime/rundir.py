"""The run directory: where a run keeps its state, and the rules that keep a run inside it.

A run lives in one folder (``.expc/runs/<experiment-id>/`` by default)::

    plan.json          the compiled plan the run was made from
    state.json         what the run is (the plan's digest, mode, seed, inputs) and which steps are done
    assignments.parquet  every unit's variant
    content.sqlite     the content store (and SQLite's -wal, -shm, -journal beside it)
    content.jsonl      the generated items
    selection.json     the candidates a `top_k` judge kept, chosen before assignment (runtime/selection.py)
    exposures.parquet, events.parquet   the outcomes (simulated runs write them)
    looks/look-NNN.json  one evaluation per look
    report.json, report.md, report.html
    .expc.lock         held by the run that is using the folder

These names (:data:`RUN_FILES`, :data:`STORE_FILES`, the looks, the lock) and
the temporary files of :mod:`expc.runtime.files` that stand for them are the
only entries expc ever writes or deletes in a run directory. The rules:

* **A folder that is not a run is never touched.** A folder is a run when its
  ``state.json`` is a run state written by expc. A folder without one may be
  used only if it holds nothing but a content store (or nothing at all);
  anything else is refused with one line (exit 1), ``--fresh`` included,
  before anything is written or deleted.
* **``--fresh`` deletes only a run's own files** (the store survives: it is
  keyed by what was asked, so it cannot mix); any other file in the folder
  stays.
* **No write follows a symbolic link out of the folder.** A link (or anything
  but a regular file) at one of the run's names, or a ``looks`` that is not a
  real folder, is refused with one line (exit 1): expc neither writes through
  it nor removes it, since it did not create it. The run directory itself is
  not a link either, and when it is given relative to the working folder
  (as the default ``.expc/runs/<id>`` is) no part of that path is: a checkout
  can hold links, and a spec must not choose where its run writes.
* **The experiment id names one folder.** An id that is not a plain name
  (``../x``, ``/x``, a hand-edited plan) is refused before anything is written.
* **One run at a time.** A run holds an exclusive lock (``flock``) on
  ``.expc.lock`` while it works; a second run on the same folder is refused at
  once (exit 3: run it again when the first is done), never interleaved.
* **Temporary files left by a killed run are removed** when the next run opens
  the folder (it holds the lock, so no other writer can own them).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expc.compiler.errors import EXIT_RUN, ExpcError
from expc.compiler.model import ID_PATTERN

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

from .files import OutputError, output_error, reason, system_tree, temp_owner, write_atomic

__all__ = ["LOCK_NAME", "RUN_FILES", "STATE_VERSION", "STORE_FILES", "STORE_NAME", "RunError", "default_run_dir",
           "is_done", "mark_done", "open_run_dir", "read_json", "release_run_dir",
           "started_run", "write_json_atomic"]

STATE_VERSION = 2
"""2: a run is keyed on its plan's meaning (``plan_digest``); 1: on the spec's bytes (still resumed)."""
MAX_STATE_BYTES = 1 << 20  #: a state.json larger than this is not one expc wrote
STORE_NAME = "content.sqlite"
STORE_FILES = (STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm", f"{STORE_NAME}-journal")
RUN_FILES = ("plan.json", "state.json", "assignments.parquet", "content.jsonl", "exposures.parquet",
             "events.parquet", "report.json", "report.md", "report.html", "selection.json")
LOOKS = "looks"
LOCK_NAME = ".expc.lock"
_LOOK = re.compile(r"^look-[0-9]{3,}\.json$")
_ID = re.compile(ID_PATTERN)

_held = threading.local()  # this thread's locks: {real path of a run directory: open lock file}


class RunError(ExpcError):
    """A run that cannot go on, with a message for a person and the exit code to leave with (3 by default)."""

    exit_code = EXIT_RUN


# ====================================================================== where


def default_run_dir(plan: Plan, root: Path | None = None) -> Path:
    """``<root>/<experiment-id>``; the root is ``.expc/runs`` under the current folder by default.

    Raises :class:`RunError` (exit 1) when the id is not a plain name (a
    hand-edited plan with ``../x``), or when a part of that path is a symbolic link.
    """
    run_id = plan.experiment.id
    if not _ID.match(run_id):
        raise RunError(f"the plan's experiment id {run_id!r} is not a plain name (letters, digits, '.', '_', '-'), "
                       "so it cannot name a run directory; compile the spec again", 1)
    path = (Path(".expc") / "runs" if root is None else Path(root)) / run_id
    _refuse_links(path)
    return path


def _refuse_links(run_dir: Path) -> None:
    """Refuse a run directory that is a link, or is reached through one when given relative to the working folder."""
    parts = [run_dir] if run_dir.is_absolute() else [Path(*run_dir.parts[:i]) for i in range(1, len(run_dir.parts) + 1)]
    for part in parts:
        if part.is_symlink():
            raise RunError(f"{part}: is a symbolic link; a run directory is never reached through a link (a checkout "
                           "can plant one): give the real folder with --run-dir", 1)


# ====================================================================== the state


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that it appears complete or not at all (:class:`OutputError` when it cannot)."""
    from expc.runtime.report.write import report_json

    write_atomic(path, report_json(data))


def mark_done(run_dir: Path, step: str) -> None:
    """Record in state.json that ``step`` is done."""
    state = read_json(Path(run_dir) / "state.json") or {}
    done = state.setdefault("done", [])
    if step not in done:
        done.append(step)
    write_json_atomic(Path(run_dir) / "state.json", state)


def is_done(run_dir: Path, step: str) -> bool:
    """Whether state.json says ``step`` is done."""
    return step in ((read_json(Path(run_dir) / "state.json") or {}).get("done") or [])


def _run_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's state when ``state.json`` is a regular file holding one that expc wrote, else None."""
    path = run_dir / "state.json"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    state = read_json(path)
    if isinstance(state, dict) and isinstance(state.get("identity"), dict) and isinstance(state.get("done"), list):
        return state
    return None


def started_run(run_dir: Path) -> dict[str, Any] | None:
    """The identity of the expc run in ``run_dir`` (mode, seed, inputs), or None when it holds none.

    Only reads, and only what a run wrote: no part of a relative ``run_dir`` may
    be a link, and ``state.json`` must be a regular file of at most 1 MiB.
    """
    run_dir = Path(run_dir)
    parts = [] if run_dir.is_absolute() else [Path(*run_dir.parts[:i]) for i in range(1, len(run_dir.parts) + 1)]
    try:
        if any(part.is_symlink() for part in parts) or os.lstat(run_dir / "state.json").st_size > MAX_STATE_BYTES:
            return None
    except OSError:
        return None
    state = _run_state(run_dir)
    return state["identity"] if state is not None else None


# ====================================================================== opening


def open_run_dir(plan: Plan, run_dir: Path, identity: dict[str, Any], fresh: bool = False) -> bool:
    """Create or reuse ``run_dir`` and lock it; True when an earlier run of the same identity is resumed.

    Follows the module's rules: refuses (:class:`RunError`, exit 1) a folder
    that is not a run, a link at a run's name, and a folder holding another
    run (naming what differs and the two ways out, ``--fresh`` or
    ``--run-dir``); refuses (exit 3) a folder another run is using. With
    ``fresh``, deletes the run's own files except the content store. Removes
    temporary files a killed run left. The lock is held until
    :func:`release_run_dir`. Raises :class:`OutputError` when the folder
    cannot be written.
    """
    run_dir = Path(run_dir)
    _refuse_links(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: exists and is not a folder; choose another --run-dir", 1)
    tree = system_tree(run_dir / "state.json")
    if tree:
        raise RunError(f"{run_dir}: is in {tree}, which holds kernel settings, not files; choose another --run-dir", 1)
    if run_dir.is_dir():
        _refuse_foreign(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(run_dir, exc) from None
    _lock(run_dir)
    try:
        _refuse_foreign(run_dir)  # again: another process may have written it before we held the lock
        _refuse_planted(run_dir)
        _remove_temporaries(run_dir)
        if fresh and _run_state(run_dir) is not None:
            _clear(run_dir)
        state = _run_state(run_dir)
        if state is not None:
            differences = _differences(state["identity"], identity, run_dir, plan)
            if differences:
                raise RunError(f"{run_dir}: holds a run made from something else ({', '.join(differences)}); "
                               "rerun with --fresh to start over there, or give another --run-dir", 1)
            if state["identity"].get("plan_digest") is None and identity.get("plan_digest") is not None:
                write_json_atomic(run_dir / "state.json", {**state, "identity": identity})  # a version 1 state
        looks = run_dir / LOOKS
        try:
            looks.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{looks}: cannot write: {reason(exc)}", looks) from None
        if state is None:
            write_json_atomic(run_dir / "state.json", {"identity": identity, "done": []})
        if state is None or not (run_dir / "plan.json").is_file():
            write_json_atomic(run_dir / "plan.json", plan.to_dict())
        return state is not None
    except BaseException:
        release_run_dir(run_dir)
        raise


def _differences(old: dict[str, Any], new: dict[str, Any], run_dir: Path, plan: Plan) -> list[str]:
    """What makes the run in ``run_dir`` (identity ``old``) another run than this one (``new``), for a person.

    The spec counts by its meaning (``plan_digest``); a state of version 1
    (keyed on the spec's bytes) is the same run when the bytes are the same.
    """
    version = old.get("state_version")
    out = []
    if version not in (1, STATE_VERSION):
        out.append("another version of expc")
    elif version == STATE_VERSION:
        if old.get("plan_digest") != new.get("plan_digest"):
            out.append(_spec_changed(run_dir, plan))
    elif old.get("spec_sha256") != new.get("spec_sha256"):  # version 1: its plan.json says what the bytes meant
        from expc.compiler.diff import plan_digest

        before = _run_plan(run_dir, plan)
        if before is None or plan_digest(before) != new.get("plan_digest"):
            out.append(_spec_changed(run_dir, plan))
    what = {"simulated": "simulated vs real data", "seed": "another --seed", "inputs": "other data files"}
    return out + [text for key, text in what.items() if old.get(key) != new.get(key)]


def _run_plan(run_dir: Path, plan: Plan) -> Plan | None:
    """The plan the run in ``run_dir`` was made from (its plan.json), or None when it cannot be read as one."""
    from expc.compiler.plan import Plan, PlanError
    from expc.compiler.sources import read_regular

    if not isinstance(plan, Plan):  # a stand-in of a test: nothing to compare with
        return None
    try:
        return Plan.from_json(read_regular(run_dir / "plan.json", 16 << 20), "plan.json")
    except (OSError, PlanError, ValueError, RecursionError):
        return None


def _spec_changed(run_dir: Path, plan: Plan) -> str:
    """``the spec changed``, naming what changed in meaning since the run's plan.json (:mod:`expc.compiler.diff`)."""
    from expc.compiler.diff import plan_changes, what_changed

    before = _run_plan(run_dir, plan)
    changes = [c for c in plan_changes(before, plan) if c.identity] if before is not None else []
    return f"the spec changed: {what_changed(changes)}" if changes else "the spec changed"


def _refuse_foreign(run_dir: Path) -> None:
    """Refuse a folder that is not a run of expc and holds something besides a content store."""
    if _run_state(run_dir) is not None:
        return
    if (run_dir / "state.json").is_symlink():
        _planted(run_dir / "state.json", "a regular file")
    if (run_dir / "state.json").exists():
        raise RunError(f"{run_dir}: its state.json is not the state of an expc run; nothing was changed: "
                       "choose another --run-dir", 1)
    others = [name for name in sorted(os.listdir(run_dir))
              if name not in STORE_FILES and name != LOCK_NAME and not _ours_temporary(name)
              and not (name == LOOKS and _empty_folder(run_dir / LOOKS))]
    if others:
        raise RunError(f"{run_dir}: this folder is not an expc run directory (it has no state.json, and holds "
                       f"{_names(others)}); nothing was changed: choose another --run-dir, or empty it", 1)


def _empty_folder(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir() and not any(path.iterdir())


def _names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ours_temporary(name: str, looks: bool = False) -> bool:
    owner = temp_owner(name.removeprefix("tmp_"))  # DuckDB's COPY may have made tmp_<our temporary name>
    return owner is not None and (bool(_LOOK.match(owner)) if looks else owner in RUN_FILES)


def _refuse_planted(run_dir: Path) -> None:
    """Refuse a link, or anything but a regular file, at one of the run's names (and a ``looks`` that is no folder)."""
    entries = [run_dir / name for name in (*RUN_FILES, *STORE_FILES, LOCK_NAME)]
    looks = run_dir / LOOKS
    if looks.is_symlink() or (looks.exists() and not looks.is_dir()):
        _planted(looks, "a folder")
    if looks.is_dir():
        entries += [looks / name for name in os.listdir(looks) if _LOOK.match(name)]
    for path in entries:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            _planted(path, "a regular file")


def _planted(path: Path, expected: str) -> None:
    what = "a symbolic link" if path.is_symlink() else "not " + expected
    raise RunError(f"{path}: is {what}, where a run keeps {expected} of its own; expc neither writes through it nor "
                   "removes it: remove it yourself, or choose another --run-dir", 1)


def _remove_temporaries(run_dir: Path) -> None:
    """Remove the temporary files of our atomic writer that a killed run left (we hold the lock)."""
    for folder, looks in ((run_dir, False), (run_dir / LOOKS, True)):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for name in os.listdir(folder):
            if _ours_temporary(name, looks) and stat.S_ISREG(os.lstat(folder / name).st_mode):
                _unlink(folder / name)


def _clear(run_dir: Path) -> None:
    """``--fresh``: delete the run's own files, keeping the content store and anything that is not the run's."""
    for name in RUN_FILES:
        _unlink(run_dir / name)
    looks = run_dir / LOOKS
    if looks.is_dir() and not looks.is_symlink():
        for name in os.listdir(looks):
            if _LOOK.match(name):
                _unlink(looks / name)


def _unlink(path: Path) -> None:
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot delete: {reason(exc)}", path) from None


# ====================================================================== the lock


def _lock(run_dir: Path) -> None:
    """Take the run directory's exclusive lock, or refuse at once (exit 3) when another run holds it."""
    path = run_dir / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _planted(path, "a regular file")
        raise OutputError(f"{run_dir}: cannot write: {reason(exc)}", run_dir) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunError(f"{run_dir}: another expc run is using this run directory; wait for it to finish and "
                           "run the same command again, or give another --run-dir", 3) from None
        raise OutputError(f"{path}: cannot lock: {reason(exc)}", path) from None
    locks = getattr(_held, "locks", None)
    if locks is None:
        locks = _held.locks = {}
    locks[os.path.realpath(run_dir)] = fd


def release_run_dir(run_dir: Path) -> None:
    """Release this thread's lock on ``run_dir`` (nothing when it holds none)."""
    fd = getattr(_held, "locks", {}).pop(os.path.realpath(run_dir), None)
    if fd is not None:
        os.close(fd)  # closing the file releases the flock
