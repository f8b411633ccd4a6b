"""Commands that only read specs stay light: no litellm, scipy or numpy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("litellm", "scipy", "numpy", "pandas", "duckdb", "jsonschema")

PROBE = """
import json, sys
from expc.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "specs/welcome-email.yaml"],
        ["compile", "specs/welcome-email.yaml"],
        ["plan", "specs/welcome-email.yaml"],
        ["schema"],
        ["sql", "specs/welcome-email.yaml", "--dialect", "spark"],
        ["init", "--help"],
    ],
)
def test_spec_reading_commands_import_nothing_heavy(args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, check=True)
    modules = json.loads(proc.stdout.splitlines()[-1])
    loaded = [m for m in modules if m.split(".")[0] in HEAVY]
    assert loaded == []
