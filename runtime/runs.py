"""The runs under a runs root (``.expc/runs/`` by default): what ``expc runs`` lists and ``expc open`` opens.

Listing only reads: it writes, locks and deletes nothing, so it is safe while
a run works in one of the folders. Every file it reads is hand-editable and
treated as hostile: read only when it is a regular file (never through a
link), within a size limit, and every value is checked for its type before it
is shown. A folder that is not a run (no ``state.json`` of expc, a link, a
plain file, a folder that cannot be read) is listed as such with a note, never
a traceback. The work is bounded: at most :data:`MAX_ENTRIES` entries of the
root and of each ``looks`` folder are examined, and the files of at most
``limit`` runs (newest first) are read.

:func:`resolve_run` finds the folder of ``expc open RUN`` (a run's name under
the root, or the path of a run directory) and :func:`report_file` its
report.html, refusing anything that is not a run's own regular file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from expc.compiler.errors import EXIT_INVALID, ExpcError
from expc.compiler.model import ID_PATTERN
from expc.compiler.sources import read_regular
from expc.compiler.textsafe import terminal_safe

from .rundir import LOOKS, STORE_FILES

__all__ = ["DEFAULT_LIMIT", "DEFAULT_ROOT", "MAX_ENTRIES", "MAX_LIMIT", "Listing", "RunEntry", "RunsError",
           "browser_available", "format_age", "list_runs", "open_report", "read_entry", "render_text",
           "report_file", "resolve_run"]

DEFAULT_ROOT = Path(".expc") / "runs"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_ENTRIES = 10_000  # entries of the root (and of one looks folder) examined
STATE_BYTES = 1 << 20
LOOK_BYTES = 16 << 20
REPORT_BYTES = 64 << 20
TEXT_CHARS = 80  # any text from a run's files is cut to this
CELL_CHARS = 60  # a cell of the text table (a folder's name) is cut to this; JSON has it whole

_LOOK = re.compile(r"^look-([0-9]{3,9})\.json$")
_ID = re.compile(ID_PATTERN)


class RunsError(ExpcError):
    """``expc runs`` or ``expc open`` cannot do what was asked (exit 1 by default: a missing or bad input)."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class RunEntry:
    """One entry of the runs root: a run (``kind == "run"``) or something else, said in ``note``.

    ``kind`` is ``run``, ``not_a_run`` (a folder without a state of expc),
    ``store`` (a folder holding only a content store, as ``expc generate``
    leaves), ``link``, ``file`` or ``unreadable``. ``modified`` is the POSIX
    time of the last change seen (the folder's, or its looks folder's).
    """

    name: str
    path: str
    kind: str
    modified: float | None = None
    experiment: str | None = None
    mode: str | None = None  # "simulated" or "real"
    status: str | None = None  # "finished" or "unfinished" (stopped or still running)
    look: int | None = None
    day: float | None = None
    as_of: str | None = None
    decision: str | None = None
    variant: str | None = None
    spent: float | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self, now: float) -> dict[str, Any]:
        """The entry as JSON-ready values, with ``age_seconds`` measured at ``now``."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["age_seconds"] = None if self.modified is None else max(0, round(now - self.modified))
        return out


@dataclass(frozen=True)
class Listing:
    """What :func:`list_runs` found: the entries shown (newest first) and how many there were."""

    root: str
    runs: list[RunEntry] = field(default_factory=list)
    total: int = 0  # entries examined in the root
    capped: bool = False  # the root holds more than MAX_ENTRIES entries; the rest were not examined
    missing: bool = False  # the root does not exist (no run yet)

    def to_dict(self, now: float) -> dict[str, Any]:
        """``expc runs --format json``: the root, the entries and the counts."""
        return {"root": self.root, "exists": not self.missing, "total": self.total, "shown": len(self.runs),
                "capped": self.capped, "runs": [r.to_dict(now) for r in self.runs]}


# ====================================================================== reading one folder


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _read(path: Path, limit: int) -> tuple[Any, str | None]:
    """The JSON of a regular file (never through a link) of at most ``limit`` bytes: (data, None) or (None, why)."""
    st = _lstat(path)
    if st is None:
        return None, "missing"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    try:
        return json.loads(read_regular(path, limit).decode("utf-8")), None
    except (OSError, UnicodeDecodeError):
        return None, "unreadable"
    except ValueError:
        return None, "not JSON"


def _text(value: Any, limit: int = TEXT_CHARS) -> str | None:
    """A string from a file, on one line and cut; None for anything that is not a non-empty string."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _last_look(looks: Path) -> tuple[int, Path] | None:
    """The highest-numbered ``look-NNN.json`` in ``looks`` (at most MAX_ENTRIES names examined)."""
    st = _lstat(looks)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return None
    best: tuple[int, Path] | None = None
    try:
        with os.scandir(looks) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_ENTRIES:
                    break
                m = _LOOK.match(entry.name)
                if m and (best is None or int(m[1]) > best[0]):
                    best = (int(m[1]), Path(entry.path))
    except OSError:
        return None
    return best


def _modified(folder: Path, st: os.stat_result) -> float:
    looks = _lstat(folder / LOOKS)
    times = [st.st_mtime] + ([looks.st_mtime] if looks is not None and stat.S_ISDIR(looks.st_mode) else [])
    return max(times)


def _state(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A run's state (as rundir checks it: ``identity`` and ``done``) or why the folder is not a run."""
    state, why = _read(folder / "state.json", STATE_BYTES)
    if why == "missing":
        return None, "no state.json"
    if why is not None:
        return None, f"state.json is {why}"
    if isinstance(state, dict) and isinstance(state.get("identity"), dict) and isinstance(state.get("done"), list):
        return state, None
    return None, "state.json is not the state of an expc run"


def _only_a_store(folder: Path) -> bool:
    """Whether ``folder`` holds a content store and nothing of a run (what ``expc generate`` leaves)."""
    names: set[str] = set()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                names.add(entry.name)
                if len(names) > len(STORE_FILES) + 2:
                    return False
    except OSError:
        return False
    return STORE_FILES[0] in names and names <= {*STORE_FILES, ".expc.lock", LOOKS}


def _decision(block: Any) -> tuple[str | None, str | None]:
    if not isinstance(block, dict):
        return None, None
    return _text(block.get("action"), 40), _text(block.get("variant"))


def read_entry(folder: Path, st: os.stat_result | None = None) -> RunEntry:
    """What one entry of the runs root is; for a run, its experiment, mode, status, last look, decision and spend."""
    name, path = folder.name, str(folder)
    st = st if st is not None else _lstat(folder)
    if st is None:
        return RunEntry(name, path, "unreadable", notes=("cannot be read",))
    if stat.S_ISLNK(st.st_mode):
        return RunEntry(name, path, "link", st.st_mtime, notes=("a symbolic link: not followed",))
    if not stat.S_ISDIR(st.st_mode):
        return RunEntry(name, path, "file", st.st_mtime, notes=("not a folder",))
    modified = _modified(folder, st)
    if not os.access(folder, os.R_OK | os.X_OK):
        return RunEntry(name, path, "unreadable", modified, notes=("this folder cannot be read",))
    state, why = _state(folder)
    if state is None:
        if why == "no state.json" and _only_a_store(folder):
            return RunEntry(name, path, "store", modified, notes=("a content store only (expc generate), no run",))
        return RunEntry(name, path, "not_a_run", modified, notes=(f"not an expc run: {why}",))
    identity = state["identity"]
    simulated = identity.get("simulated")
    mode = "simulated" if simulated is True else "real" if simulated is False else None
    notes: list[str] = []
    finished = "report" in state["done"]
    look = day = as_of = decision = variant = spent = None
    last = _last_look(folder / LOOKS)
    if last is not None:
        data, problem = _read(last[1], LOOK_BYTES)
        if isinstance(data, dict):
            look, day, as_of = last[0], _number(data.get("day")), _text(data.get("as_of"), 40)
            decision, variant = _decision(data.get("decision"))
        else:
            notes.append(f"{last[1].name} is {problem or 'not a look'}")
    report, problem = _read(folder / "report.json", REPORT_BYTES)
    if isinstance(report, dict):
        if finished:  # the report is the last word of a finished run
            decision, variant = _decision(report.get("decision")) if report.get("decision") else (decision, variant)
        generation = report.get("generation")
        spent = _number(generation.get("spent")) if isinstance(generation, dict) else None
    elif finished:
        notes.append(f"report.json is {problem or 'not a report'}")
    if not finished:
        notes.append("not finished: stopped (run the same command again to resume) or still running")
    return RunEntry(name, path, "run", modified, experiment=_text(identity.get("experiment")), mode=mode,
                    status="finished" if finished else "unfinished", look=look, day=day, as_of=as_of,
                    decision=decision, variant=variant, spent=spent, notes=tuple(notes))


# ====================================================================== the listing


def list_runs(root: Path, limit: int = DEFAULT_LIMIT) -> Listing:
    """The entries of ``root``, newest first, the files of at most ``limit`` of them read (see the module docs).

    Raises :class:`RunsError` when ``root`` exists but is not a folder that can be read.
    """
    root = Path(root)
    limit = max(1, min(int(limit), MAX_LIMIT))
    st = _lstat(root)
    if st is None:
        return Listing(str(root), missing=True)
    try:
        is_dir = stat.S_ISDIR(os.stat(root).st_mode)
    except OSError:
        is_dir = False
    if not is_dir:
        raise RunsError(f"{root}: is not a folder; give the folder that holds the run directories "
                        "(--run-dir-root)")
    found: list[tuple[float, str, os.stat_result | None]] = []
    capped = False
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if len(found) >= MAX_ENTRIES:
                    capped = True
                    break
                entry_st = _lstat(Path(entry.path))
                found.append((_sort_time(Path(entry.path), entry_st), entry.name, entry_st))
    except OSError as exc:
        raise RunsError(f"{root}: cannot be read ({exc.strerror or exc})") from None
    found.sort(key=lambda item: (-item[0], item[1]))
    runs = [read_entry(root / name, entry_st) for _, name, entry_st in found[:limit]]
    return Listing(str(root), runs, total=len(found), capped=capped)


def _sort_time(path: Path, st: os.stat_result | None) -> float:
    if st is None:
        return 0.0
    if stat.S_ISDIR(st.st_mode):
        return _modified(path, st)
    return st.st_mtime


def format_age(seconds: float | None) -> str:
    """An age for people: ``45s``, ``12m``, ``3h``, ``5d``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_KIND_LABEL = {"not_a_run": "not a run", "store": "store only", "link": "link", "file": "file",
               "unreadable": "unreadable"}


def _cell(text: str) -> str:
    """A name on one line: line breaks, tabs and other controls as escapes (so the columns stay aligned), cut."""
    one = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    one = terminal_safe(one)
    return one if len(one) <= CELL_CHARS else one[: CELL_CHARS - 1] + "…"


def _row(entry: RunEntry, now: float) -> list[str]:
    age = format_age(None if entry.modified is None else now - entry.modified)
    if entry.kind != "run":
        return [entry.name, "—", "—", _KIND_LABEL.get(entry.kind, entry.kind), "—", "—", "—", age]
    if entry.look is not None:
        look = f"{entry.look}" + (f" (day {entry.day:g})" if entry.day is not None else "")
    else:
        look = "—"
    decision = (entry.decision or "—") + (f" {entry.variant}" if entry.decision and entry.variant else "")
    spent = f"${entry.spent:,.4f}" if entry.spent is not None else "—"
    return [entry.name, entry.experiment or "—", entry.mode or "—", entry.status or "—", look, decision, spent, age]


def render_text(listing: Listing, now: float | None = None) -> str:
    """``expc runs``: one aligned row per entry, then the notes and how many were left out (not yet escaped)."""
    now = time.time() if now is None else now
    if listing.missing:
        return f"no runs yet: {listing.root} does not exist (expc run creates it)\n"
    if not listing.runs:
        return f"no runs in {listing.root}\n"
    header = ["RUN", "EXPERIMENT", "MODE", "STATUS", "LAST LOOK", "DECISION", "SPENT", "AGE"]
    rows = [[_cell(c) for c in _row(entry, now)] for entry in listing.runs]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip() for r in [header, *rows]]
    notes = [f"{_cell(e.name)}: {note}" for e in listing.runs for note in e.notes]
    if notes:
        lines += [""] + notes
    left = listing.total - len(listing.runs)
    if left > 0:
        lines += ["", f"{len(listing.runs)} of {listing.total:,} shown, newest first; --limit N shows more"]
    if listing.capped:
        lines += [f"{listing.root} holds more than {MAX_ENTRIES:,} entries; only {MAX_ENTRIES:,} were examined"]
    return "\n".join(lines) + "\n"


# ====================================================================== expc open


def _is_run(folder: Path) -> bool:
    st = _lstat(folder)
    return st is not None and stat.S_ISDIR(st.st_mode) and _state(folder)[0] is not None


def _inside(path: Path, folder: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def resolve_run(run: str, root: Path) -> Path:
    """The run directory ``expc open RUN`` means: a run's name under ``root``, or the path of a run directory.

    A name is looked up under ``root`` only. A path must be an existing folder
    (never a link) whose ``state.json`` is a run's, inside the root or not: an
    explicit run directory. Anything else raises :class:`RunsError` (exit 1).
    """
    root = Path(root)
    if _ID.match(run) and os.sep not in run and run not in (".", ".."):
        candidate = root / run
        if _lstat(candidate) is not None or not os.path.lexists(run):
            return _checked_run(candidate, f"no run named {run!r} in {root} (expc runs lists them)")
    return _checked_run(Path(run), f"{run}: no such folder")


def _checked_run(folder: Path, missing: str) -> Path:
    st = _lstat(folder)
    if st is None:
        raise RunsError(missing)
    if stat.S_ISLNK(st.st_mode):
        raise RunsError(f"{folder}: is a symbolic link; give the run directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise RunsError(f"{folder}: is not a folder; give a run directory or a run's name (expc runs lists them)")
    if not _is_run(folder):
        raise RunsError(f"{folder}: is not an expc run directory (no state.json of a run); nothing was opened")
    return folder


def report_file(run_dir: Path) -> Path:
    """The absolute path of ``run_dir``'s report.html: a regular file of the run itself, never a link.

    Raises :class:`RunsError` (exit 1) when the run has no report yet or the
    name holds something else.
    """
    path = Path(run_dir) / "report.html"
    st = _lstat(path)
    if st is None:
        raise RunsError(f"{run_dir}: has no report.html yet (the run has not finished): run the same `expc run` "
                        "command again to finish it")
    if not stat.S_ISREG(st.st_mode) or not _inside(path, run_dir):
        raise RunsError(f"{path}: is not a regular file of the run (a link or something else); nothing was opened")
    return Path(os.path.realpath(path))


def browser_available(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a graphical browser can be expected: macOS, Windows, a display, or a BROWSER the user set; not in CI."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if env.get("CI"):
        return False
    if env.get("BROWSER"):
        return True
    return platform in ("darwin", "win32") or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_report(path: Path, opener: Callable[[str], bool] | None = None,
                environ: Mapping[str, str] | None = None) -> bool:
    """Open ``path`` (a report from :func:`report_file`) in a browser; False when none is available or it failed."""
    if not browser_available(environ):
        return False
    if opener is None:
        import webbrowser

        opener = webbrowser.open
    try:
        return bool(opener(Path(path).as_uri()))
    except Exception:  # webbrowser.Error, or a browser command that cannot start: the path is printed instead
        return False
