"""Scaling benchmarks (run with `tox -e bench`): the classical grid on 1 and 2 local workers and a 2-worker Dask
LocalCluster, feature extraction over 1x, 2x and 4x the cells with its peak traced memory, and the driver's peak
memory over 1x and 3x the jobs (it streams results into the store, so it should not grow with them)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from cellbench.run.runner import run_suite
from cellbench.run.suite import parse_suite

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
    from cellbench.run.store import Store

    with Store.open(summary.results_dir, write=False) as store:  # the job phase, without data prep and report
        r = store.runs().iloc[-1]
    jobs_s = float(r.finished - r.started)
    benchmark.extra_info.update({"executor": executor, "workers": workers, "jobs": summary.planned,
                                 "job_phase_s": round(jobs_s, 2), "jobs_per_s": round(summary.planned / jobs_s, 2)})
    print(f"\n{executor} × {workers}: {summary.planned} jobs, run {benchmark.stats.stats.mean:.1f} s, "
          f"job phase {jobs_s:.1f} s ({summary.planned / jobs_s:.1f} jobs/s)")


@pytest.mark.parametrize("repeats", [1, 3])
def test_driver_memory_does_not_grow_with_the_number_of_jobs(benchmark, warm_cache, tmp_path, repeats):
    suite = parse_suite({**GRID, "cv": {"folds": 5, "repeats": repeats}}, source="bench")
    runs = iter(range(100))

    def run():
        tracemalloc.start()
        summary = run_suite(suite, results_root=tmp_path / str(next(runs)), workers=2, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary.failed == 0
        return summary, peak

    summary, peak = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"jobs": summary.planned, "driver_peak_traced_mb": round(peak / 2**20, 1)})
    print(f"\n{summary.planned} jobs: driver peak traced memory {peak / 2**20:.1f} MiB")


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_feature_extraction_scaling(benchmark, tmp_path, factor):
    from cellbench.datasets.synthetic import load_synthetic
    from cellbench.features import FeatureConfig
    from cellbench.features.batch import extract_feature_set

    samples = load_synthetic(n_patients=10 * factor, fields_per_patient=4, cache_dir=tmp_path).samples
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
    print(f"\n{len(samples)} cells: {1000 * elapsed / len(samples):.2f} ms/cell, peak traced {peak / 2**20:.1f} MiB")
