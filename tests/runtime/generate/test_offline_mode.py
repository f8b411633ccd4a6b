"""An offline run forces litellm's offline mode, whatever the environment says.

The process is the subject here (litellm reads LITELLM_OFFLINE_MODE when it
is imported), so these tests start expc as a subprocess. With the mode off,
litellm fetches its price table from LITELLM_MODEL_COST_MAP_URL when it is
imported: pointed at a loopback server, that fetch is what we watch for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakellm import FakeLLM
from gen_helpers import spec_text

ROOT = Path(__file__).resolve().parents[3]


def _env(server: FakeLLM) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_LOCAL_MODEL_COST_MAP", "OPENAI_API_KEY")}
    return env | {"LITELLM_OFFLINE_MODE": "false", "LITELLM_MODEL_COST_MAP_URL": f"{server.url}/prices.json"}


def _fetches(server: FakeLLM) -> list[tuple[str, str]]:
    return [p for p in server.paths if p[1].endswith("/prices.json")]


@pytest.fixture
def server():
    with FakeLLM() as s:
        yield s


def test_the_watch_sees_litellm_fetch_when_its_offline_mode_is_off(server: FakeLLM) -> None:
    done = subprocess.run([sys.executable, "-c", "import litellm"], env=_env(server), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _fetches(server), "litellm did not fetch its price table: this file's tests would prove nothing"


def test_generate_offline_forces_offline_mode(server: FakeLLM, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(model="openai/gpt-4o-mini"), encoding="utf-8")  # --offline sends it to offline/
    units = tmp_path / "units.csv"
    units.write_text("user_id,first_name\nu1,Ada\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "expc", "generate", str(spec), "--offline", "--units", str(units), "--quiet",
           "--store", str(tmp_path / "content.sqlite"), "-o", str(tmp_path / "out.jsonl")]
    done = subprocess.run(cmd, env=_env(server), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").count("\n") == 2
    assert _fetches(server) == []


def test_a_run_whose_models_are_all_offline_forces_offline_mode(server: FakeLLM, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "expc", "run", str(ROOT / "specs" / "welcome-email.yaml"), "--quiet",
           "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, env=_env(server), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert _fetches(server) == []
