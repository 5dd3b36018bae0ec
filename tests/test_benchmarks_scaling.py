"""Scaling benchmarks (run with `tox -e bench`): the classical grid on 1 and 2 local workers and a 2-worker Dask
LocalCluster, and feature extraction over 1x, 2x and 4x the cells with its peak traced memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from bench.runner import run_suite
from bench.suite import parse_suite

pytestmark = pytest.mark.benchmark

GRID = {
    "name": "scaling",
    "strategies": ["none", "class_weight", "smote"],
    "cv": {"folds": 5},
    "datasets": {"synthetic": {}},
    "models": {"random_forest": {}, "svm": {}, "xgboost": {}, "logistic_regression": {}, "knn": {},
               "naive_bayes": {}},
}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """Generate the data and extract features once, so the timed runs measure the grid only."""
    root = tmp_path_factory.mktemp("warm")
    run_suite(parse_suite({**GRID, "models": {"dummy": {}}}, source="bench"), results_root=root, workers=2,
              progress=False)


@pytest.mark.parametrize(("executor", "workers"), [("local", 1), ("local", 2), ("dask", 2)])
def test_classical_grid_scaling(benchmark, warm_cache, tmp_path, executor, workers):
    suite = parse_suite(GRID, source="bench")
    runs = iter(range(100))

    def run():
        summary = run_suite(suite, results_root=tmp_path / str(next(runs)), workers=workers, executor=executor,
                            progress=False)
        assert summary.failed == 0
        return summary

    summary = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"executor": executor, "workers": workers, "jobs": summary.planned,
                                 "jobs_per_s": round(summary.planned / benchmark.stats.stats.mean, 2)})


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_feature_extraction_scaling(benchmark, tmp_path, monkeypatch, factor):
    from datasets.synthetic import load_synthetic
    from features import FeatureConfig
    from features.batch import extract_feature_set

    monkeypatch.setenv("CELLBENCH_CACHE", str(tmp_path))
    samples = load_synthetic(n_patients=10 * factor, fields_per_patient=4).samples
    runs = iter(range(100))

    def run():
        tracemalloc.start()
        t0 = time.perf_counter()
        extract_feature_set(samples, config=FeatureConfig(), dataset_fingerprint=f"scaling{factor}",
                            extraction=f"run{next(runs)}", kind="cell", cache_dir=tmp_path / "c", n_jobs=1,
                            progress=False)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return elapsed, peak

    elapsed, peak = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"cells": len(samples), "ms_per_cell": round(1000 * elapsed / len(samples), 2),
                                 "peak_traced_mb": round(peak / 2**20, 1)})
