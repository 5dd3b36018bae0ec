"""Reproducibility: identical reruns, local vs Dask executors, seed sensitivity, --reproduce."""

from __future__ import annotations

import pytest

from cellbench.run.runner import run_suite
from cellbench.run.suite import parse_suite
from cellbench.tools.repro import compare_stores, reproduce


def _suite(seed=0):
    return parse_suite(
        {
            "name": "r",
            "seed": seed,
            "strategies": ["none", "smote"],
            "cv": {"folds": 3},
            "datasets": {"synthetic": {"n_patients": 9, "fields_per_patient": 2}},
            "models": {
                "logistic_regression": {},
                "random_forest": {"n_estimators": 30},
                "xgboost": {"n_estimators": 20},
            },
        },
        source="test",
    )


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    run_suite(_suite(), results_root=root, workers=2, progress=False)
    return root / "r"


def test_rerun_in_a_fresh_folder_is_identical(local_run, tmp_path):
    run_suite(_suite(), results_root=tmp_path, workers=1, progress=False)
    assert compare_stores(local_run, tmp_path / "r") == []


def test_a_changed_seed_is_noticed(local_run, tmp_path):
    run_suite(_suite(seed=1), results_root=tmp_path, workers=2, progress=False)
    diffs = compare_stores(local_run, tmp_path / "r")
    assert diffs and any("only in" in d or "differ" in d for d in diffs)


def test_dask_executor_gives_the_same_store(local_run, tmp_path):
    pytest.importorskip("distributed")
    run_suite(_suite(), results_root=tmp_path, workers=2, executor="dask", progress=False)
    assert compare_stores(local_run, tmp_path / "r") == []


def test_reproduce_from_the_manifest(local_run):
    out, diffs = reproduce(local_run, data_root=None, workers=2, progress=False)
    assert diffs == []
    assert (out / "store.sqlite").is_file()


@pytest.mark.slow  # two command-line runs that each start TensorFlow in the driver and in two workers: ~40 s
def test_deep_jobs_give_the_same_predictions_in_the_driver_and_in_worker_processes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    suite = tmp_path / "d.toml"
    suite.write_text(
        'name = "d"\n[cv]\nfolds = 2\n[datasets.synthetic]\nn_patients = 6\nfields_per_patient = 2\n'
        '[models]\ncnn_tiny = {}\n[deep]\nmax_epochs = 2\nstrategies = ["class_weight"]\n'
    )
    env = {**os.environ, "CELLBENCH_CACHE": str(tmp_path / "cache")}
    repo = Path(__file__).resolve().parents[1]
    for where, jobs in (("pool", "2"), ("driver", "1")):  # 1 thread per worker process / in the driver itself
        cmd = [sys.executable, "-m", "bench", "run", "--suite", str(suite), "--jobs", jobs, "--quiet"]
        subprocess.run([*cmd, "--results", str(tmp_path / where)], cwd=repo, env=env, check=True, capture_output=True)
    assert compare_stores(tmp_path / "pool" / "d", tmp_path / "driver" / "d") == []


@pytest.mark.slow  # two command-line runs with deep jobs: about two minutes on 2 cores
def test_a_smoke_run_with_a_deep_model_gives_the_same_store_under_dask(tmp_path):
    """The smoke suite's data and every kind of job (classical, sweep, cnn_tiny with none and class_weight), run
    by the local pool and by a two-worker Dask cluster: the stores must be identical."""
    pytest.importorskip("distributed")
    import os
    import subprocess
    import sys
    from pathlib import Path

    suite = tmp_path / "d.toml"
    suite.write_text(
        'name = "d"\nstrategies = ["none", "class_weight", "smote"]\n[cv]\nfolds = 2\n'
        "[datasets.synthetic]\nn_patients = 6\nfields_per_patient = 2\n"
        "[models]\nlogistic_regression = {}\nxgboost = { n_estimators = 20 }\ncnn_tiny = {}\n"
        '[deep]\nmax_epochs = 2\nstrategies = ["none", "class_weight"]\n'
    )
    env = {**os.environ, "CELLBENCH_CACHE": str(tmp_path / "cache")}
    repo = Path(__file__).resolve().parents[1]
    base = [sys.executable, "-m", "bench", "run", "--suite", str(suite), "--quiet"]
    for where, extra in (("local", ["--jobs", "2"]), ("dask", ["--executor", "dask", "--workers", "2"])):
        subprocess.run([*base, *extra, "--results", str(tmp_path / where)], cwd=repo, env=env, check=True,
                       capture_output=True)  # fmt: skip
    assert compare_stores(tmp_path / "local" / "d", tmp_path / "dask" / "d") == []
