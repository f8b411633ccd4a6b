"""Settings in one place: the precedence flag > environment > settings file > spec, the files, --env-file.

The precedence is read where it lands: the options `expc generate` hands to
generation (its generate function is replaced by one that records them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_run_cli import _environment, expc, write_spec  # noqa: F401 - the fixture applies here too

from expc.settings import (
    ENV_VARS,
    KEYS,
    Settings,
    SettingsError,
    env_default,
    find_settings,
    load_env_file,
    load_settings,
    runs_root,
)

ALLOWED = "EXPC_ALLOWED_API_BASES"
VALUES: dict[str, tuple[str, Any, Any, Any]] = {  # key: (flag, flag value, environment value, file value)
    "model": ("--model", "openai/flag-model", "openai/env-model", "openai/file-model"),
    "api_base": ("--api-base", "http://flag.example/v1", "http://env.example/v1", "http://file.example/v1"),
    "concurrency": ("--concurrency", 3, 5, 7),
    "max_cost": ("--max-cost", 1.5, 2.5, 3.5),
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*ENV_VARS.values(), ALLOWED]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git checkout with a spec, worked in from a subfolder."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / "sub").mkdir()
    write_spec(root / "sub")
    monkeypatch.chdir(root / "sub")
    return root


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `expc generate` asks of generation: its options, its store and the environment then."""
    seen: dict[str, Any] = {}

    def fake(plan: Any, units: Any, store: Path, opts: Any, progress: Any = None) -> Any:
        seen.update(opts=opts, store=store, environ=dict(os.environ))
        raise KeyboardInterrupt  # ends the command (exit 3) before anything is generated

    monkeypatch.setattr("expc.runtime.generate.runner.generate", fake)
    return seen


def toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def generate(*args: str) -> Any:
    done = expc("generate", "spec.yaml", "--quiet", *args)
    return done


# ====================================================================== the precedence matrix


@pytest.mark.parametrize("key", sorted(VALUES))
@pytest.mark.parametrize("given", ["flag env file", "env file", "file", "flag file", "flag env", "env", "nothing"])
def test_flag_beats_environment_beats_settings_file_beats_the_spec(
        key: str, given: str, project: Path, captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    flag, at_flag, at_env, at_file = VALUES[key]
    monkeypatch.setenv(ALLOWED, "file.example")
    args = [flag, str(at_flag)] if "flag" in given else []
    if "env" in given:
        monkeypatch.setenv(ENV_VARS[key], str(at_env))
    if "file" in given:
        (project / "expc.toml").write_text(f"{key} = {toml_value(at_file)}\n", encoding="utf-8")
    done = generate(*args)
    assert done.exit_code == 3, done.stderr  # the fake generation was reached
    expected = at_flag if "flag" in given else at_env if "env" in given else at_file if "file" in given else None
    assert getattr(captured["opts"], key) == expected


def test_every_setting_at_once_from_pyproject(project: Path, captured: dict[str, Any], monkeypatch) -> None:
    monkeypatch.setenv(ALLOWED, "http://file.example")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.expc]\nmodel = "openai/file-model"\napi_base = "http://file.example/v1"\n'
        'concurrency = 7\nmax_cost = 3\nrun_dir_root = "build/runs"\n', encoding="utf-8")
    assert generate().exit_code == 3
    opts = captured["opts"]
    assert (opts.model, opts.api_base, opts.concurrency, opts.max_cost) == (
        "openai/file-model", "http://file.example/v1", 7, 3.0)
    assert captured["store"] == project / "build" / "runs" / "run-cli" / "content.sqlite"


def test_the_run_directory_root(project: Path, captured: dict[str, Any], monkeypatch, tmp_path: Path) -> None:
    (project / "expc.toml").write_text('run_dir_root = "runs"\n', encoding="utf-8")
    assert runs_root() == project / "runs"
    monkeypatch.setenv("EXPC_RUN_DIR_ROOT", str(tmp_path / "env-runs"))
    assert runs_root() == tmp_path / "env-runs"
    assert runs_root("flag-runs") == Path("flag-runs")
    assert generate("--store", "mine.sqlite").exit_code == 3 and captured["store"] == Path("mine.sqlite")
    assert generate().exit_code == 3 and captured["store"] == tmp_path / "env-runs" / "run-cli" / "content.sqlite"
    monkeypatch.delenv("EXPC_RUN_DIR_ROOT")
    (project / "expc.toml").unlink()
    assert runs_root() == Path(".expc/runs")


def test_expc_run_writes_under_the_settings_root(project: Path) -> None:
    (project / "expc.toml").write_text('run_dir_root = "out/runs"\n', encoding="utf-8")
    spec = write_spec(project / "sub", model="offline/copywriter")
    done = expc("run", spec, "--quiet")
    assert done.exit_code == 0, done.stderr
    assert (project / "out" / "runs" / "run-cli" / "report.json").is_file()
    assert not (project / "sub" / ".expc").exists()
    listed = expc("runs")
    assert listed.exit_code == 0 and "run-cli" in listed.stdout


# ====================================================================== finding the file


def test_expc_toml_wins_over_pyproject_in_one_folder_and_the_nearest_folder_wins(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.expc]\nconcurrency = 1\n', encoding="utf-8")
    (project / "expc.toml").write_text("concurrency = 2\n", encoding="utf-8")
    assert load_settings().concurrency == 2 and load_settings().source == project / "expc.toml"
    (project / "sub" / "pyproject.toml").write_text('[tool.expc]\nconcurrency = 3\n', encoding="utf-8")
    assert load_settings().concurrency == 3
    (project / "sub" / "pyproject.toml").write_text('[project]\nname = "no-settings-here"\n', encoding="utf-8")
    assert load_settings().concurrency == 2  # a pyproject.toml without [tool.expc] is passed over


def test_nothing_above_the_git_root_and_outside_a_checkout_only_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "expc.toml").write_text("concurrency = 9\n", encoding="utf-8")
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "a").mkdir()
    assert find_settings(tmp_path / "repo" / "a") is None
    (tmp_path / "loose" / "b").mkdir(parents=True)
    assert find_settings(tmp_path / "loose" / "b") is None
    assert load_settings(tmp_path).concurrency == 9


# ====================================================================== hostile settings files


BAD = [
    ("expc.toml", "modle = 'openai/x'\n", "expc.toml:1: has no setting `modle` (did you mean `model`?)"),
    ("expc.toml", "# c\n\nsecret_sauce = 1\n", "expc.toml:3: has no setting `secret_sauce`; the settings are"),
    ("pyproject.toml", "[tool.expc]\nconcurrency = 2\napi_key_env = 'X'\n",
     "pyproject.toml:3: [tool.expc] has no setting `api_key_env`"),
    ("pyproject.toml", "[tool.expc.models]\nline = 'x'\n", "pyproject.toml:1: [tool.expc] has no setting `models`"),
    ("pyproject.toml", "[tool]\nexpc = 5\n", "`tool.expc` must be a table"),
    ("expc.toml", "concurrency = 0\n", "expc.toml:1: `concurrency` must be a whole number from 1 to 1024"),
    ("expc.toml", "concurrency = true\n", "`concurrency` must be a whole number"),
    ("expc.toml", "max_cost = -1\n", "`max_cost` must be a number of US dollars"),
    ("expc.toml", "max_cost = nan\n", "`max_cost` must be a number of US dollars"),
    ("expc.toml", "model = 'https://evil.example/x'\n", "`model` a model id holds no URL"),
    ("expc.toml", "model = 'opnai/gpt'\n", "litellm knows no provider `opnai`"),
    ("expc.toml", "api_base = 'http://evil.example/v1'\n", "is not on your allow-list"),
    ("expc.toml", "api_base = 'http://user:pw@evil.example/'\n", "must be a plain http(s)"),
    ("expc.toml", "run_dir_root = '/tmp/elsewhere'\n", "leaves the project"),
    ("expc.toml", "run_dir_root = '../up'\n", "leaves the project"),
    ("expc.toml", "concurrency = [\n", "expc.toml: is not valid TOML"),
    ("expc.toml", b"\xff\xfe = 1", "expc.toml: is not UTF-8 text"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[m[:30] for _, _, m in BAD])
def test_a_bad_settings_file_is_one_line_naming_file_and_key_exit_2(
        name: str, text: str | bytes, message: str, project: Path, captured: dict[str, Any]) -> None:
    path = project / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.exit_code == 2 and message in str(caught.value) and str(path) in str(caught.value)
    done = generate("--model", "openai/flag")
    assert done.exit_code == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert "opts" not in captured
    assert expc("validate", "spec.yaml").exit_code == 0  # commands that take no setting never read the file


def test_an_allowed_api_base_passes_and_a_run_root_through_a_link_does_not(project: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    (project / "expc.toml").write_text("api_base = 'https://proxy.internal:8443/v1'\n", encoding="utf-8")
    monkeypatch.setenv(ALLOWED, "proxy.internal:8443")
    assert load_settings().api_base == "https://proxy.internal:8443/v1"
    os.symlink(tmp_path, project / "escape")
    (project / "expc.toml").write_text("run_dir_root = 'escape/runs'\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="symbolic link"):
        load_settings()


def test_the_api_base_of_the_environment_or_a_flag_needs_no_allow_list(project: Path, captured, monkeypatch) -> None:
    (project / "expc.toml").write_text("concurrency = 2\n", encoding="utf-8")
    monkeypatch.setenv("EXPC_API_BASE", "http://localhost:11434/v1")
    assert generate().exit_code == 3 and captured["opts"].api_base == "http://localhost:11434/v1"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("EXPC_CONCURRENCY", "many", "EXPC_CONCURRENCY: 'many' is not a whole number from 1 to 1024"),
    ("EXPC_MAX_COST", "-2", "EXPC_MAX_COST: '-2' is not a number of US dollars"),
    ("EXPC_MODEL", "http://x/y", "EXPC_MODEL: a model id holds no URL"),
])
def test_a_bad_environment_value_names_the_variable(name: str, value: str, message: str, project: Path,
                                                    monkeypatch) -> None:
    monkeypatch.setenv(name, value)
    done = generate()
    assert done.exit_code == 2 and message in done.stderr and done.stderr.count("\n") == 1


def test_env_default_reads_the_file_only_when_the_environment_is_silent() -> None:
    def boom() -> Settings:
        raise AssertionError("the settings file was read")

    assert env_default("concurrency", boom, {"EXPC_CONCURRENCY": "4"}) == 4
    assert env_default("max_cost", Settings(max_cost=1.0), {}) == 1.0
    assert set(ENV_VARS) == set(KEYS)


# ====================================================================== --env-file


@pytest.fixture
def forget() -> Iterator[list[str]]:
    """Names to remove from os.environ after the test (what an env file put there)."""
    names: list[str] = []
    yield names
    for name in names:
        os.environ.pop(name, None)


def test_an_env_file_puts_keys_in_this_process_only(project: Path, captured, forget: list[str],
                                                     monkeypatch) -> None:
    forget += ["EXPC_TEST_KEY", "EXPC_TEST_SECOND", "EXPC_TEST_KEPT"]
    monkeypatch.setenv("EXPC_TEST_KEPT", "from the shell")
    env = project / "keys.env"
    env.write_text("# keys\nEXPC_TEST_KEY=sk-secret-1\nexport EXPC_TEST_SECOND='two words'\n"
                   "EXPC_TEST_KEPT=from the file\n", encoding="utf-8")
    before = sorted(p for p in project.rglob("*"))
    done = generate("--env-file", str(env))
    assert done.exit_code == 3, done.stderr
    seen = captured["environ"]
    assert seen["EXPC_TEST_KEY"] == "sk-secret-1" and seen["EXPC_TEST_SECOND"] == "two words"
    assert seen["EXPC_TEST_KEPT"] == "from the shell"  # the environment wins
    assert "sk-secret-1" not in done.stdout + done.stderr
    assert sorted(p for p in project.rglob("*")) == before  # nothing written
    assert env.read_text(encoding="utf-8").startswith("# keys")


def test_an_env_file_can_set_the_settings_variables(project: Path, captured, forget: list[str]) -> None:
    forget.append("EXPC_MODEL")
    (project / "expc.toml").write_text("model = 'openai/file-model'\n", encoding="utf-8")
    (project / ".env").write_text("EXPC_MODEL=openai/env-file-model\n", encoding="utf-8")
    assert generate("--env-file", str(project / ".env")).exit_code == 3
    assert captured["opts"].model == "openai/env-file-model"


@pytest.mark.parametrize("name", ["EXPC_ALLOWED_API_BASES", "EXPC_ALLOWED_KEY_ENVS"])
def test_an_env_file_cannot_widen_the_allow_lists(name: str, project: Path) -> None:
    """Where keys may go is the job's environment's to say, not a file's (a committed .env.ci, say)."""
    env = project / ".env.ci"
    env.write_text(f"OPENAI_API_KEY=sk-x\n{name}=https://evil.example/v1\n", encoding="utf-8")
    target: dict[str, str] = {}
    with pytest.raises(SettingsError, match=f"sets {name}, an allow-list"):
        load_env_file(env, target)
    assert target == {}  # nothing is set, the key neither
    done = generate("--env-file", str(env))
    assert done.exit_code == 2 and f"sets {name}" in done.stderr and "evil.example" not in done.stderr


def test_a_bad_env_file_names_the_line_but_never_its_content(project: Path, tmp_path: Path) -> None:
    env = project / "bad.env"
    env.write_text("GOOD=1\nsk-secret-in-a-broken-line\n", encoding="utf-8")
    quoted = project / "quoted.env"
    quoted.write_text("GOOD=1\nA='sk-secret unclosed\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="line 2 cannot be parsed") as broken:
        load_env_file(quoted, {})
    assert "sk-secret" not in str(broken.value)
    target: dict[str, str] = {}
    with pytest.raises(SettingsError, match="line 2 is not NAME=value") as caught:
        load_env_file(env, target)
    assert "sk-secret" not in str(caught.value) and target == {}
    done = generate("--env-file", str(env))
    assert done.exit_code == 2 and "bad.env: line 2" in done.stderr and "sk-secret" not in done.stderr
    missing = generate("--env-file", str(tmp_path / "nope.env"))
    assert missing.exit_code == 2 and "no such env file" in missing.stderr
    folder = generate("--env-file", str(tmp_path))
    assert folder.exit_code == 2 and "cannot be read as an env file" in folder.stderr


def test_env_file_values_without_a_value_are_skipped() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ".env"
        path.write_text("A_NAME\nB_NAME=\n", encoding="utf-8")
        target: dict[str, str] = {}
        assert load_env_file(path, target) == ["B_NAME"] and target == {"B_NAME": ""}


def test_generate_approve_and_run_agree_on_the_settings_model_and_store(project: Path) -> None:
    from test_review_cli import write_spec as review_spec

    (project / "expc.toml").write_text("model = 'offline/house-style'\nrun_dir_root = 'runs'\n", encoding="utf-8")
    spec = review_spec(project / "sub")
    assert expc("generate", spec, "--quiet").exit_code == 0
    assert (project / "runs" / "review-cli" / "content.sqlite").is_file()
    approved = expc("approve", spec, "--reviewer", "alice")
    assert approved.exit_code == 0, approved.stderr
    done = expc("run", spec, "--require-approval", "--quiet")
    assert done.exit_code == 0, done.stderr
    assert (project / "runs" / "review-cli" / "report.md").is_file()
