"""The install shadows nothing: cellbench takes only the import name ``cellbench`` and works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cellbench

REPO = Path(__file__).resolve().parents[1]
IMPOSTOR = "raise ImportError('the {name} package of another project was imported')\n"


def _run(code_or_args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *code_or_args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})  # fmt: skip


def test_folders_named_datasets_models_and_features_are_not_imported(tmp_path):
    """From a folder of another ML project (its own datasets/, models/, features/ packages, also on PYTHONPATH, as
    Hugging Face ``datasets`` would be installed), every cellbench module imports and the CLI runs."""
    for name in ("datasets", "models", "features", "bench"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(IMPOSTOR.format(name=name))
    code = (
        "import importlib, pkgutil, cellbench\n"
        "for pkg in ('cellbench', 'cellbench.core', 'cellbench.stats', 'cellbench.run', 'cellbench.report',\n"
        "            'cellbench.tools', 'cellbench.datasets', 'cellbench.features', 'cellbench.models'):\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.iter_modules(m.__path__):\n"
        "        if info.name != '__main__':\n"
        "            importlib.import_module(f'{pkg}.{info.name}')\n"
        "import sys\n"
        "assert not {'datasets', 'models', 'features', 'bench'} & set(sys.modules), sorted(sys.modules)\n"
        "print('ok')\n"
    )
    done = _run(["-c", code], tmp_path, PYTHONPATH=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    card = _run(["-m", "cellbench", "datasets", "show", "synthetic"], tmp_path, PYTHONPATH=str(tmp_path))
    assert card.returncode == 0, card.stderr[-2000:]
    assert "Synthetic blood-smear white cells" in card.stdout


def test_version_is_the_distributions():
    done = _run(["-m", "cellbench", "--version"], REPO)
    assert done.returncode == 0 and done.stdout.strip() == f"cellbench {cellbench.__version__}"


def test_python_m_bench_runs_from_the_checkout_only():
    assert _run(["-m", "bench", "--version"], REPO).stdout.strip() == f"cellbench {cellbench.__version__}"


def test_every_subpackage_is_in_the_distribution():
    """A package folder missing from pyproject's list would be left out of the wheel (the editable install works)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *rel)))
    data_only = {"cellbench.suites"}  # the built-in suite files, no Python code
    assert found == listed - data_only
    assert all(p.suffix == ".toml" for p in (REPO / "bench" / "suites").iterdir())


def test_the_report_templates_are_package_data():
    """The HTML report's jinja2 templates ship with the wheel (package data matching every template file)."""
    import fnmatch

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["cellbench.report"]
    templates = [
        p.relative_to(REPO / "bench" / "report").as_posix() for p in (REPO / "bench/report/templates").iterdir()
    ]
    assert templates and all(any(fnmatch.fnmatch(t, pat) for pat in patterns) for t in templates)


def test_a_run_in_the_checkout_writes_only_ignored_files():
    """The quick start writes results/<suite>/ (ignored by git); the committed examples live where no run writes."""
    import shutil

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["results/quick/LEADERBOARD.md", "results/quick/store.sqlite", "results/quick/figures/cd_diagram.png",
               "results/quick/export/csv/jobs.csv"]  # fmt: skip
    out = subprocess.run(["git", "check-ignore", *written], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.split() == written
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=REPO, capture_output=True, text=True).stdout
    assert tracked == ""
    assert (REPO / "docs" / "example-results" / "quick" / "LEADERBOARD.md").is_file()
