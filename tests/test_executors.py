"""Executors: a worker killed mid-job costs only that job one retry; a job lost twice becomes an error result."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cellbench.core.errors import ConfigError
from cellbench.core.types import ImbalanceSpec, Job, JobResult, ModelSpec
from cellbench.run.executors import run_dask, run_local

KILLER = 3  # the fold whose job kills its own worker process, every time it runs


def fake_job(job: Job, path: str, options) -> JobResult:
    """Importable by worker processes: sleeps a little, or dies like an out-of-memory kill for fold KILLER."""
    if job.fold == KILLER:
        time.sleep(0.3)  # let the other workers pick up jobs, so they are in flight when this one dies
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return JobResult(key=job.key, coordinates=job.coordinates(), status="ok", metrics={"fold": job.fold})


def _items(n: int = 8):
    return [
        (
            Job(
                suite="t",
                dataset="d",
                extraction="given",
                model=ModelSpec(name="dummy"),
                imbalance=ImbalanceSpec(name="none"),
                fold=f,
                seed=0,
                cv="kfold",
            ),
            "unused",
        )
        for f in range(n)
    ]


def _check(results, items):
    by_fold = {r.coordinates["fold"]: r for r in results}
    assert sorted(by_fold) == list(range(len(items))) and len(results) == len(items)  # each job exactly once
    assert by_fold[KILLER].status == "error"
    assert all(r.status == "ok" for f, r in by_fold.items() if f != KILLER)


def test_local_pool_retries_a_killed_job_once_and_spares_the_others():
    items = _items()
    results = list(run_local(items, workers=2, fn=fake_job))
    _check(results, items)
    assert "died twice" in next(r for r in results if r.coordinates["fold"] == KILLER).error


@pytest.mark.slow
def test_dask_retries_a_killed_job_once_then_stores_an_error():
    items = _items(4)
    results = list(run_dask(items, workers=2, fn=fake_job))
    _check(results, items)
    assert "after one retry" in next(r for r in results if r.coordinates["fold"] == KILLER).error


def test_an_unreachable_dask_scheduler_is_one_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler tcp://127\.0\.0\.1:9 within 2s"):
        list(run_dask([], scheduler="tcp://127.0.0.1:9", connect_timeout="2s", fn=fake_job))
