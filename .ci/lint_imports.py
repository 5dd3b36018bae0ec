"""Run import-linter (``lint-imports``) on cellbench's import tree.

cellbench's import package is assembled by setuptools' ``package-dir`` mapping (``cellbench`` = ``bench/``,
``cellbench.features`` = ``features/``, ...), which static import analysis cannot follow through a checkout. This
script copies the mapped folders into a temporary folder laid out as the installed package (as a wheel installs
it), then runs ``lint-imports`` with the contracts in ``pyproject.toml`` on that copy. Extra arguments go to
``lint-imports``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mirror(into: Path) -> Path:
    """Copy every mapped package folder to its place under ``into``; return ``into``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    for package in sorted(mapping, key=lambda p: p.count(".")):  # parents first
        target = into.joinpath(*package.split("."))
        shutil.copytree(ROOT / mapping[package], target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cellbench-imports-") as tmp:
        site = mirror(Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        cmd = ["lint-imports", str(ROOT / "pyproject.toml"), "--no-cache", *sys.argv[1:]]
        return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
