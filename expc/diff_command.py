"""``expc diff``: what a change to a spec does to its experiment, and whether CI should let it through.

Both sides are checked and compiled with the compiler, and their plans compared
(:mod:`expc.compiler.diff` classifies each change). The BASE side is a second
spec file, or the same spec at a git revision (``--against origin/main``), read
with ``git show`` run without a shell: the revision is refused when it could be
read as an option, and the file's size is known before it is read.

An experiment is *running* when the BASE side says ``experiment.status:
running``, or when a run on real data of it exists in the default run directory
(``.expc/runs/<experiment-id>``). A change that re-randomises units, changes the
analysis or changes the content of a running experiment makes the command exit
1; anything else exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expc.compiler.diagnostics import Diagnostic, _escape_data, _escape_property
from expc.compiler.errors import EXIT_INVALID, EXIT_USAGE, ExpcError
from expc.compiler.loader import MAX_BYTES
from expc.compiler.pipeline import CheckResult, check_bytes, check_file
from expc.compiler.textsafe import json_safe, terminal_safe

if TYPE_CHECKING:
    from expc.compiler.diff import Change
    from expc.compiler.loader import Document
    from expc.compiler.plan import Plan

__all__ = ["DiffResult", "compare", "git_revision_text", "render", "running_reasons"]

MAX_REVISION = 256  #: characters of a revision name (refs, hashes, `HEAD~3`, `origin/main@{1}` fit)
GIT_TIMEOUT = 30  #: seconds a git command may take
RUNS = Path(".expc") / "runs"


@dataclass
class DiffResult:
    """What ``expc diff`` found: the changes, whether the experiment is running, or why it could not compare."""

    base: str
    head: str
    experiment: str | None = None
    changes: list[Change] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    """Why the experiment counts as running (empty: it does not)."""
    errors: list[Diagnostic] = field(default_factory=list)
    """Errors of a side that does not compile (then nothing is compared)."""
    new: bool = False
    """The spec is not in the BASE revision: a new experiment, nothing to compare."""

    @property
    def blocking(self) -> list[Change]:
        """The changes that fail the check: guarded kinds, on a running experiment."""
        from expc.compiler.diff import guarded

        return guarded(self.changes) if self.running else []

    @property
    def exit_code(self) -> int:
        """0 when the change may go in; 1 when a side does not compile or a running experiment is touched."""
        return EXIT_INVALID if self.errors or self.blocking else 0


# ====================================================================== reading the two sides


def git_revision_text(spec: Path, revision: str) -> bytes | None:
    """The bytes of ``spec`` at a git ``revision``, or None when the file is not in it (a new spec).

    Raises :class:`ExpcError` (exit 2) when the revision cannot be a revision
    (an option, blank, a control character or a ``:``), when git is not
    installed, when the spec is not in a git repository or the revision does not
    exist; exit 1 when the file there is larger than a spec may be.
    """
    if (not revision or revision.startswith("-") or len(revision) > MAX_REVISION
            or any(c.isspace() or not c.isprintable() or c == ":" for c in revision)):
        raise ExpcError(f"--against {revision!r}: not a git revision (a branch, tag or commit: no leading '-', "
                        f"no space or ':', at most {MAX_REVISION} characters)", EXIT_USAGE)
    git = shutil.which("git")
    if git is None:
        raise ExpcError("--against needs git, which is not installed (or not on PATH)", EXIT_USAGE)
    folder = str(spec.parent) if str(spec.parent) else "."
    if not Path(folder).is_dir():
        raise ExpcError(f"{spec}: no such folder, so no git repository to read {revision} from", EXIT_USAGE)
    commit = _git(git, folder, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"])
    if commit.returncode != 0:
        why = _first_line(commit.stderr) or "no such revision"
        raise ExpcError(f"--against {revision}: not a revision of the repository of {spec} ({why})", EXIT_USAGE)
    blob = f"{revision}:./{spec.name}"
    found = _git(git, folder, ["cat-file", "--batch-check"], stdin=blob + "\n")
    parts = found.stdout.decode("utf-8", "replace").split()
    if found.returncode != 0 or not parts or parts[-1] == "missing":
        return None
    if len(parts) != 3 or parts[1] != "blob" or not parts[2].isdigit():
        raise ExpcError(f"{revision}:{spec}: not a file in that revision", EXIT_USAGE)
    if int(parts[2]) > MAX_BYTES:
        raise ExpcError(f"{revision}:{spec}: error[E002] the spec there is {int(parts[2]):,} bytes; a spec may be "
                        f"at most {MAX_BYTES:,}", EXIT_INVALID)
    shown = _git(git, folder, ["show", "--no-textconv", "--end-of-options", blob])
    if shown.returncode != 0:
        raise ExpcError(f"{revision}:{spec}: git cannot show it ({_first_line(shown.stderr)})", EXIT_USAGE)
    return bytes(shown.stdout[: MAX_BYTES + 1])


def _git(git: str, folder: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``folder`` with an argument list (no shell, no pager, no prompt); exit 2 when it cannot run."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run([git, "--no-pager", "-C", folder, *args], input=stdin.encode() if stdin else None,
                              capture_output=True, timeout=GIT_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExpcError(f"git could not run ({exc})", EXIT_USAGE) from None


def _first_line(raw: bytes) -> str:
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ")[:200] if lines else ""


def _compiled(result: CheckResult) -> tuple[Plan, Document] | list[Diagnostic]:
    """A checked side's plan and document, or its errors."""
    from expc.compiler.compile import compile_plan

    if not result.ok() or result.doc is None or result.spec is None:
        return [d for d in result.diagnostics if d.is_error]
    return compile_plan(result.doc, result.spec), result.doc


# ====================================================================== running or not


def running_reasons(base: Plan | None, head: Plan, runs: Path = RUNS) -> list[str]:
    """Why the experiment counts as running: the BASE side's ``status: running``, or a run on real data in ``runs``.

    The HEAD side's status does not count: a change that starts the
    experiment (``draft`` to ``running``) may set its design at the same time.
    """
    from expc.runtime.rundir import started_run

    reasons = []
    if base is not None and base.experiment.status == "running":
        reasons.append("the base says `status: running`")
    for run_id in dict.fromkeys(p.experiment.id for p in (base, head) if p is not None):
        identity = started_run(runs / run_id)
        if identity is not None and identity.get("simulated") is False:
            reasons.append(f"a run on real data is in {runs / run_id}")
    return reasons


# ====================================================================== the comparison


def compare(head_path: str, base_path: str | None = None, against: str | None = None, runs: Path = RUNS) -> DiffResult:
    """Compare the HEAD spec with a BASE spec file or with itself at a git revision."""
    from expc.compiler.diff import plan_changes

    if against is not None:
        base_name = f"{against}:{head_path}"
        raw = git_revision_text(Path(head_path), against)
        if raw is None:
            head_side = _compiled(check_file(head_path, head_path))
            if isinstance(head_side, list):
                return DiffResult(base_name, head_path, errors=head_side)
            return DiffResult(base_name, head_path, experiment=head_side[0].experiment.id, new=True)
        base_result = check_bytes(raw, base_name)
    else:
        assert base_path is not None
        base_name = base_path
        base_result = check_file(base_path, base_path)
    base_side = _compiled(base_result)
    head_side = _compiled(check_file(head_path, head_path))
    errors = (base_side if isinstance(base_side, list) else []) + (head_side if isinstance(head_side, list) else [])
    if isinstance(base_side, list) or isinstance(head_side, list):
        return DiffResult(base_name, head_path, errors=errors)
    (base, _), (head, doc) = base_side, head_side
    return DiffResult(base_name, head_path, experiment=head.experiment.id,
                      changes=plan_changes(base, head, doc), running=running_reasons(base, head, runs))


# ====================================================================== output


def render(result: DiffResult, fmt: str) -> str:
    """The result as ``text`` (for people), ``json`` or ``github`` (workflow commands); escaped."""
    return {"text": _text, "json": _json, "github": _github}[fmt](result)


def _verdict(result: DiffResult) -> str:
    """The last line: what the changes mean for this experiment."""
    if result.new:
        return f"{result.head}: not in {result.base.split(':', 1)[0]}: a new experiment, nothing to compare"
    if not result.changes:
        return "no change in meaning (comments, key order and formatting are not compared)"
    n = len(result.changes)
    counted = f"{n} change{'s' * (n != 1)}"
    if result.blocking:
        kinds = ", ".join(dict.fromkeys(c.label for c in result.blocking))
        return (f"{counted}; {len(result.blocking)} of them ({kinds}) touch the running experiment "
                f"`{result.experiment}` ({'; '.join(result.running)}): stop it first (`status: stopped`), "
                "or make it a new experiment with another id")
    if result.running:
        return f"{counted}, all safe for the running experiment `{result.experiment}`"
    return f"{counted}; the experiment `{result.experiment}` is not running (no `status: running`, no run on real data)"


def _error_line(d: Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.col}: error[{d.code}] {d.message}" + (f" (hint: {d.hint})" if d.hint else "")


def _text(result: DiffResult) -> str:
    from expc.compiler.diff import by_kind

    if result.errors:
        return "\n".join(terminal_safe(_error_line(d)) for d in result.errors) + "\n"
    out = [f"expc diff {result.base} -> {result.head}"]
    for changes in by_kind(result.changes).values():
        out.append(f"{changes[0].label} ({len(changes)}):")
        for c in changes:
            where = f"{result.head}:{c.line}: " if c.line else ""
            out.append(f"  {where}{c.describe()}")
    out.append(_verdict(result))
    return "\n".join(terminal_safe(line) for line in out) + "\n"


def _json(result: DiffResult) -> str:
    from dataclasses import asdict

    data: dict[str, Any] = {
        "base": result.base, "head": result.head, "experiment": result.experiment,
        "new": result.new, "running": bool(result.running), "running_because": result.running,
        "blocking": len(result.blocking), "changes": [c.to_dict() for c in result.changes],
        "errors": [asdict(d) for d in result.errors], "summary": None if result.errors else _verdict(result),
    }
    return json_safe(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str)) + "\n"


def _github(result: DiffResult) -> str:
    from expc.compiler.diagnostics import format_github
    from expc.compiler.diff import GUARDED

    if result.errors:
        return format_github(result.errors) + "\n"
    out = []
    for c in result.changes:
        if c.kind not in GUARDED:
            continue
        command = "error" if result.running else "warning"
        props = [("file", result.head), *([("line", str(c.line))] if c.line else []),
                 ("title", f"expc diff ({c.label})")]
        state = (f"the experiment `{result.experiment}` is running ({'; '.join(result.running)})" if result.running
                 else f"fine while `{result.experiment}` is not running")
        message = f"{c.describe()} ({c.label}: {state})"
        out.append(f"::{command} {','.join(f'{k}={_escape_property(v)}' for k, v in props)}::{_escape_data(message)}")
    out.append(_escape_data(_verdict(result)))
    return "\n".join(out) + "\n"
