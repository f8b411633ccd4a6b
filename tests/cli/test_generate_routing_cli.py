"""`expc generate` with a prompt's deployments: each row names its deployment; stderr gives the cost per deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from expc.cli import main

sys.path.insert(0, str(ROOT / "tests" / "runtime" / "generate"))
from fakellm import FakeLLM
from gen_helpers import spec_text


def test_rows_name_their_deployment_and_stderr_sums_each_ones_cost(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLM() as east, FakeLLM() as west:
        monkeypatch.setenv("EXPC_ALLOWED_API_BASES", f"{east.url},{west.url}")
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        extra = ("temperature: 0.5\n    deployments:\n"
                 f"      - {{id: east, model: openai/gpt-4o-mini, api_base: '{east.url}'}}\n"
                 f"      - {{id: west, model: openai/gpt-4o-mini, api_base: '{west.url}'}}\n    fallbacks: [west]\n")
        spec = tmp_path / "spec.yaml"
        spec.write_text(spec_text(model="openai/gpt-4o-mini", extra=extra), encoding="utf-8")
        units = tmp_path / "units.csv"
        units.write_text("user_id,first_name\n" + "".join(f"u{i},Name{i}\n" for i in range(5)), encoding="utf-8")
        east.always("500")
        args = ["generate", str(spec), "--units", str(units), "--store", str(tmp_path / "s.sqlite")]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r.get("deployment") for r in rows if r["variant"] == "treatment"} == {"west"}
    assert "By deployment: west $" in result.stderr and "on 5 calls" in result.stderr
