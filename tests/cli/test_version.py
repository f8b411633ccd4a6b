"""`expc --version` names the installed version."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from expc.cli import main


def test_version_prints_the_installed_version() -> None:
    done = CliRunner().invoke(main, ["--version"])
    assert done.exit_code == 0
    assert done.stdout == f"expc, version {version('expc')}\n"
