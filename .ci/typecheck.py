"""Type-check the installed package layout: `expc`, with `expc.compiler` and `expc.runtime` where setuptools puts them.

The source folders compiler/ and runtime/ are installed as expc.compiler and
expc.runtime (pyproject's package-dir mapping), which no type checker can
follow from the source tree. This script lays the package out as it is
installed, as symbolic links in a temporary folder, and runs mypy (configured
in pyproject.toml's [tool.mypy]) on it; paths in its messages are those of the
source tree. Exit code: mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {"expc": ROOT / "expc", "expc/compiler": ROOT / "compiler", "expc/runtime": ROOT / "runtime"}


def main() -> int:
    """Lay out the package, run mypy on it, and print its findings with source-tree paths."""
    with tempfile.TemporaryDirectory(prefix="expc-typecheck-") as tmp:
        top = Path(tmp)
        for name, source in LAYOUT.items():
            target = top / name
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    os.symlink(entry, target / entry.name)
        proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                               "-p", "expc"], cwd=top, capture_output=True, text=True)
        out = proc.stdout.replace("expc/compiler/", "compiler/").replace("expc/runtime/", "runtime/")
        sys.stdout.write(out)
        sys.stderr.write(proc.stderr)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
