"""`expc diff`: exit codes, running experiments (status or a run on real data), formats, and git revisions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import ROOT, plan_of_text

from expc.cli import main
from expc.runtime.rundir import open_run_dir, release_run_dir, started_run

SPEC = """\
version: 1
experiment:
  id: welcome
  description: Which line works.
  unit: user_id
attributes:
  user_id: string
prompts:
  line:
    model: offline/copywriter
    template: "Write a welcome line."
variants:
  - id: control
    content: Welcome!
  - id: ai
    prompt: line
    weight: 1
metrics:
  - id: opened
    kind: proportion
    event: opened
    role: primary
    mde: 5%
    baseline: 0.2
"""
RUNNING = SPEC.replace("  unit: user_id\n", "  unit: user_id\n  status: running\n")


def expc(*args: str | Path) -> Result:
    """Run the command line in this process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own folder: the default run directory (.expc/runs) is relative to it."""
    monkeypatch.chdir(tmp_path)


def line_of(text: str, start: str) -> int:
    """The 1-based line of ``text`` that starts with ``start``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def pair(base: str, head: str) -> tuple[Path, Path]:
    return write(Path("base.yaml"), base), write(Path("head.yaml"), head)


# ---------------------------------------------------------------- exit codes and running experiments


def test_a_change_to_a_draft_passes_and_names_its_kind() -> None:
    done = expc("diff", *pair(SPEC, SPEC.replace("weight: 1", "weight: 3")))
    assert done.exit_code == 0, done.output
    assert "re-randomises (2):" in done.stdout
    assert f"head.yaml:{line_of(SPEC, '    weight: 1')}: variants.ai.weight 0.5 -> 0.75" in done.stdout
    assert "is not running" in done.stdout.splitlines()[-1]


def test_a_guarded_change_to_a_running_experiment_fails() -> None:
    for edit in (("weight: 1", "weight: 3"), ("mde: 5%", "mde: 4%"), ("a welcome line", "a warm welcome line")):
        done = expc("diff", *pair(RUNNING, RUNNING.replace(*edit)))
        assert done.exit_code == 1, (edit, done.output)
        assert "touch the running experiment `welcome` (the base says `status: running`)" in done.stdout


def test_a_safe_change_or_a_comment_to_a_running_experiment_passes() -> None:
    done = expc("diff", *pair(RUNNING, RUNNING.replace("Which line works.", "Which line works best.")))
    assert done.exit_code == 0
    assert "all safe for the running experiment" in done.stdout
    commented = "# reviewed by growth\n" + RUNNING.replace("  id: welcome\n", "  id: welcome  # never change\n")
    done = expc("diff", *pair(RUNNING, commented))
    assert (done.exit_code, done.stdout.splitlines()[-1]) == (
        0, "no change in meaning (comments, key order and formatting are not compared)")


def test_starting_an_experiment_with_a_new_design_passes_and_stopping_one_does_not_free_it() -> None:
    assert expc("diff", *pair(SPEC, RUNNING.replace("weight: 1", "weight: 3"))).exit_code == 0
    stopped = RUNNING.replace("status: running", "status: stopped")
    assert expc("diff", *pair(RUNNING, stopped.replace("weight: 1", "weight: 3"))).exit_code == 1
    assert expc("diff", *pair(RUNNING, stopped)).exit_code == 0


def start_run(plan: Any, run_dir: Path, simulated: bool) -> dict[str, Any]:
    """A run directory as `expc run` leaves it once started (its identity in state.json); the identity."""
    identity = {"state_version": 1, "plan_digest": "x", "experiment": "welcome", "simulated": simulated,
                "seed": 0, "inputs": {}}
    try:
        open_run_dir(plan, run_dir, identity, fresh=True)
    finally:
        release_run_dir(run_dir)
    (run_dir / "state.json").write_text(json.dumps({"identity": identity, "done": []}))
    return identity


def test_a_run_on_real_data_in_the_default_run_dir_makes_it_running() -> None:
    plan = plan_of_text(SPEC)
    base, head = pair(SPEC, SPEC.replace("weight: 1", "weight: 3"))
    for simulated, code in ((True, 0), (False, 1)):
        run_dir = Path(".expc/runs/welcome")
        identity = start_run(plan, run_dir, simulated)
        assert started_run(run_dir) == identity
        done = expc("diff", base, head)
        assert done.exit_code == code, done.output
    assert "a run on real data is in .expc/runs/welcome" in done.stdout


def test_a_run_in_the_settings_run_dir_root_makes_it_running() -> None:
    """`run_dir_root` in expc.toml moves the runs; `expc diff` looks where `expc run` writes."""
    Path("expc.toml").write_text('run_dir_root = "runs"\n')
    start_run(plan_of_text(SPEC), Path("runs/welcome"), simulated=False)
    done = expc("diff", *pair(SPEC, SPEC.replace("weight: 1", "weight: 3")))
    assert done.exit_code == 1 and "runs/welcome" in done.stdout


def test_a_run_dir_reached_through_a_link_or_a_huge_state_is_not_read(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "welcome").mkdir(parents=True)
    (elsewhere / "welcome" / "state.json").write_text(
        json.dumps({"identity": {"simulated": False}, "done": []}))
    Path(".expc").mkdir()
    Path(".expc/runs").symlink_to(elsewhere)
    assert started_run(Path(".expc/runs/welcome")) is None
    assert started_run(elsewhere / "welcome") == {"simulated": False}
    (elsewhere / "welcome" / "state.json").write_text(" " * (2 << 20) + "{}")
    assert started_run(elsewhere / "welcome") is None


def test_a_side_that_does_not_compile_is_one_line_per_error_and_exit_1() -> None:
    broken = SPEC.replace("kind: proportion", "kind: proportoin").replace("weight: 1", "wieght: 1")
    done = expc("diff", *pair(SPEC, broken))
    assert done.exit_code == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("head.yaml:") and "error[E0" in line for line in lines)
    assert "Traceback" not in done.output
    github = expc("diff", "base.yaml", "head.yaml", "--format", "github")
    assert github.exit_code == 1 and github.stdout.startswith("::error file=head.yaml,line=")
    missing = expc("diff", "nowhere.yaml", "head.yaml")
    assert missing.exit_code == 1 and "nowhere.yaml:1:1: error[E001]" in missing.stdout


@pytest.mark.parametrize("args", [["one.yaml"], ["a.yaml", "b.yaml", "c.yaml"], ["a.yaml", "b.yaml", "--against",
                                                                               "HEAD"]])
def test_a_wrong_number_of_specs_is_a_usage_error(args: list[str]) -> None:
    done = expc("diff", *args)
    assert done.exit_code == 2 and "give BASE and HEAD" in done.output


# ---------------------------------------------------------------- formats


def test_json_lists_every_change_with_its_kind_path_values_and_line() -> None:
    done = expc("diff", *pair(RUNNING, RUNNING.replace("mde: 5%", "mde: 4%")), "--format", "json")
    data = json.loads(done.stdout)
    assert done.exit_code == 1 and data["running"] is True and data["blocking"] == 1
    (change,) = [c for c in data["changes"] if c["path"] == "metrics.opened.mde"]
    assert change == {"kind": "analysis", "label": "changes the analysis", "path": "metrics.opened.mde",
                      "action": "changed", "old": 0.05, "new": 0.04, "line": line_of(RUNNING, "    mde: 5%")}


def test_github_annotations_are_errors_on_a_running_experiment_and_escaped() -> None:
    base = write(Path("base.yaml"), RUNNING)
    head = write(Path("a,b:c.yaml"), RUNNING.replace("Write a welcome line.", "Write 100% of a line:"))
    done = expc("diff", base, head, "--format", "github")
    assert done.exit_code == 1
    first = done.stdout.splitlines()[0]
    line = line_of(RUNNING, "    template: ")
    assert first.startswith(f"::error file=a%2Cb%3Ac.yaml,line={line},title=expc diff (changes the content)::")
    assert "100%25 of a line" in first and "\n" not in first
    write(Path("base.yaml"), SPEC)  # the same change, the base a draft
    draft = expc("diff", "base.yaml", head, "--format", "github")
    assert draft.exit_code == 0 and draft.stdout.startswith(f"::warning file=a%2Cb%3Ac.yaml,line={line},")


def test_text_output_escapes_terminal_controls() -> None:
    done = expc("diff", *pair(SPEC, SPEC.replace("Which line works.", '"Which \\u001b[31mline"')))
    assert done.exit_code == 0 and "\x1b" not in done.stdout and "\\u001b[31m" in done.stdout


# ---------------------------------------------------------------- git revisions


def git(*args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], check=True,
                   capture_output=True)


@pytest.fixture
def repo() -> Path:
    """A git repository in the test's folder whose one commit holds specs/welcome.yaml, running."""
    git("init", "-q")
    Path("specs").mkdir()
    spec = write(Path("specs/welcome.yaml"), RUNNING)
    git("add", "specs/welcome.yaml")
    git("commit", "-q", "-m", "welcome")
    return spec


def test_against_a_revision_compares_the_file_as_it_was(repo: Path) -> None:
    write(repo, RUNNING.replace("weight: 1", "weight: 3"))
    done = expc("diff", repo, "--against", "HEAD")
    assert done.exit_code == 1, done.output
    assert done.stdout.startswith("expc diff HEAD:specs/welcome.yaml -> specs/welcome.yaml")
    assert f"specs/welcome.yaml:{line_of(RUNNING, '    weight: 1')}: variants.ai.weight 0.5 -> 0.75" in done.stdout
    write(repo, RUNNING.replace("Which line works.", "Which line works best."))
    assert expc("diff", repo, "--against", "HEAD").exit_code == 0
    # from another folder, and a spec in a folder of the repository: the path is the file's own
    assert expc("diff", Path.cwd() / repo, "--against", "HEAD").exit_code == 0


def test_a_spec_new_in_the_change_has_nothing_to_compare(repo: Path) -> None:
    new = write(Path("specs/new.yaml"), RUNNING.replace("id: welcome", "id: new"))
    done = expc("diff", new, "--against", "HEAD")
    assert done.exit_code == 0 and "not in HEAD: a new experiment" in done.stdout


@pytest.mark.parametrize("revision", ["--output=/tmp/expc-diff-hostile", "-p", "HEAD:specs", "HEAD\nmain", " ",
                                      "x" * 300, "HEAD\x1b[2J"])
def test_a_revision_that_could_be_an_option_or_a_path_is_refused(repo: Path, revision: str) -> None:
    done = expc("diff", repo, f"--against={revision}")
    assert done.exit_code == 2
    assert done.output.count("\n") == 1 and "not a git revision" in done.output and "\x1b" not in done.output
    assert not Path("/tmp/expc-diff-hostile").exists()


def test_a_missing_revision_or_repository_or_git_is_one_line_and_exit_2(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = expc("diff", repo, "--against", "no-such-branch")
    assert done.exit_code == 2 and done.output.count("\n") == 1
    assert "--against no-such-branch: not a revision of the repository" in done.output
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    write(outside / "spec.yaml", SPEC)
    done = expc("diff", outside / "spec.yaml", "--against", "HEAD")
    assert done.exit_code == 2 and done.output.count("\n") == 1 and "not a git repository" in done.output
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    done = expc("diff", repo, "--against", "HEAD")
    assert done.exit_code == 2 and "--against needs git, which is not installed" in done.output


def test_a_base_that_does_not_compile_is_named_by_revision(repo: Path) -> None:
    write(repo, "version: 1\nexperiment: {id: welcome}\n")
    git("commit", "-q", "-am", "broken")
    write(repo, RUNNING)
    done = expc("diff", repo, "--against", "HEAD")
    assert done.exit_code == 1 and done.stdout.startswith("HEAD:specs/welcome.yaml:")


def test_a_base_larger_than_a_spec_may_be_is_not_read(repo: Path) -> None:
    write(repo, RUNNING + "#" * (1 << 20))
    git("commit", "-q", "-am", "huge")
    write(repo, RUNNING)
    done = expc("diff", repo, "--against", "HEAD")
    assert done.exit_code == 1 and "E002" in done.output and done.output.count("\n") == 1


def test_diff_imports_nothing_heavy() -> None:
    probe = ("import json, sys\nfrom expc.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
             "    pass\nprint(json.dumps(sorted(sys.modules)))\n")
    spec = ROOT / "specs" / "welcome-email.yaml"
    proc = subprocess.run([sys.executable, "-c", probe, "diff", str(spec), str(spec)], capture_output=True,
                          text=True, check=True)
    modules = json.loads(proc.stdout.splitlines()[-1])
    assert [m for m in modules if m.split(".")[0] in ("litellm", "scipy", "numpy", "pandas", "duckdb")] == []
