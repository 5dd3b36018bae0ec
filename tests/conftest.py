"""Shared fixtures: an isolated cache per test session and the path to ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CELLBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never write into the user's cache unless CELLBENCH_CACHE is set (tox sets it per env)."""
    if "CELLBENCH_CACHE" not in os.environ:
        os.environ["CELLBENCH_CACHE"] = str(tmp_path_factory.mktemp("cellbench-cache"))
    yield


@pytest.fixture
def one_core():
    """OpenCV and BLAS/OpenMP limited to one thread while a benchmark runs (per-core throughput)."""
    from cellbench.core.workers import single_threaded

    with single_threaded():
        yield


def shared(name: str) -> Path:
    """Path of a shared data set, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data set {name} not found at {path} (set CELLBENCH_SHARED_DATA)")
    return path


def leaderboard(summary) -> str:
    """Write the leaderboard of a finished run (``run_suite``'s summary) from its store; return its text."""
    from cellbench.report.leaderboard import write_leaderboard
    from cellbench.run.store import Store

    with Store.open(summary.results_dir, write=False) as store:
        return write_leaderboard(store, out_dir=summary.results_dir).read_text()
