"""Executors run jobs and stream results back to the driver, which alone writes the store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from cellbench.core.errors import ConfigError
from cellbench.core.types import Job, JobResult
from cellbench.core.workers import THREAD_VARS, default_workers, process_pool, single_threaded
from cellbench.run.jobs import JobOptions, WorkItem, run_job

POOL_START_FAILED = (
    "the worker processes died twice before running any job, so they were not started again: a script that runs "
    'cellbench must call it under `if __name__ == "__main__":` (workers import the script), and every plugin it '
    "registers must import in a fresh process"
)
JobFunction = Callable[[Job, str, "JobOptions | None"], JobResult]


def run_local(
    items: Sequence[WorkItem],
    *,
    workers: int | None = None,
    options: JobOptions | None = None,
    fn: JobFunction = run_job,
    **_ignored,
) -> Iterator[JobResult]:
    """Run jobs in a process pool (or in this process when ``workers == 1``), yielding results as they finish.

    Each worker uses one BLAS/OpenMP thread, so ``workers`` processes use ``workers`` cores. A worker that
    dies (killed, out of memory) breaks the pool and every job it held: those jobs run again in a fresh
    pool. Only a job that was running when its worker died counts the loss (a marker file says which were
    running); a job lost twice is returned as an error result. A pool whose workers die twice before any job starts
    (a script without a ``__main__`` guard, a plugin that cannot be imported) is not restarted: its jobs come back as
    error results naming the cause. ``fn`` runs one job (tests replace it).
    """
    workers = workers or default_workers()
    if workers < 1:
        raise ConfigError(f"--jobs must be at least 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        for job, path in items:
            with single_threaded():  # as in a worker process: same numerics wherever a job runs
                result = fn(job, path, options)
            yield result
        return
    pending = list(items)
    attempts: dict[str, int] = {}
    failed_starts = 0
    with tempfile.TemporaryDirectory(prefix="cellbench-running-") as marks:
        while pending:
            broken: list[WorkItem] = []
            size = min(workers, len(pending))
            with process_pool(size) as pool:
                futures = {
                    pool.submit(_run_marked, fn, job, path, options, marks): (job, path) for job, path in pending
                }
                todo = set(futures)
                while todo:
                    done, todo = wait(todo, return_when=FIRST_COMPLETED)
                    for fut in done:
                        item = futures[fut]
                        try:
                            yield fut.result()
                        except BrokenProcessPool:
                            broken.append(item)
            pending = []
            started = any(Path(marks).glob("*.running"))
            failed_starts = 0 if started or len(broken) < len(futures) else failed_starts + 1
            if failed_starts >= 2:  # workers die before any job starts: a fresh pool would too (no end)
                for job, _ in broken:
                    yield lost_result(job, POOL_START_FAILED)
                return
            for job, path in broken:
                mark = Path(marks) / f"{job.key}.running"
                if mark.exists():  # it was running when a worker died
                    mark.unlink()
                    attempts[job.key] = attempts.get(job.key, 0) + 1
                if attempts.get(job.key, 0) >= 2:
                    yield lost_result(job, "the worker running this job died twice (killed or out of memory)")
                else:
                    pending.append((job, path))


def _run_marked(fn: JobFunction, job: Job, path: str, options: JobOptions | None, marks: str) -> JobResult:
    """Run ``fn`` with a marker file present while it runs (left behind if the process is killed)."""
    mark = Path(marks) / f"{job.key}.running"
    mark.touch()
    try:
        return fn(job, path, options)
    finally:
        mark.unlink(missing_ok=True)


def _run_single_threaded(fn: JobFunction, job: Job, path: str, options: JobOptions | None) -> JobResult:
    """Run a job on a Dask worker with a pool worker's thread limits. Without them OpenCV runs multi-threaded there,
    and deep jobs' augmentation came out differently on every run (cnn_tiny class_weight fold 0: ROC AUC 0.23,
    then 0.16, against 0.76 in a local worker)."""
    with single_threaded():
        return fn(job, path, options)


def lost_result(job: Job, why: str) -> JobResult:
    return JobResult(
        key=job.key, coordinates={**job.coordinates(), "folds_key": job.folds_key}, status="error", error=why
    )


def run_dask(
    items: Sequence[WorkItem],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    gpu_for_deep: bool = False,
    options: JobOptions | None = None,
    fn: JobFunction = run_job,
    connect_timeout: str | None = None,
) -> Iterator[JobResult]:
    """Run jobs on a Dask cluster, yielding results as they finish.

    With ``scheduler`` (``tcp://HOST:PORT``) jobs go to an existing cluster whose workers read the task
    files from the same shared path; without it a ``LocalCluster`` of ``workers`` single-threaded processes
    is started. Jobs are pure functions of their spec and the task file, and run with the thread limits of a local
    worker (:func:`cellbench.core.workers.single_threaded`), so a store is the same under either executor. A worker
    lost mid-job makes the
    scheduler retry the job once on another worker; a job lost twice comes back as an error result.
    Deep jobs ask for a ``GPU`` worker resource when ``gpu_for_deep`` is set (start such workers with
    ``dask worker ADDRESS --resources GPU=1``). ``connect_timeout`` bounds the wait for ``scheduler``; by default
    Dask's ``distributed.comm.timeouts.connect`` (30 s; ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s`` changes
    it). ``fn`` runs one job (tests replace it).
    """
    import dask  # Dask is imported only when asked for: it adds seconds to every other command
    from dask.distributed import Client, LocalCluster, as_completed

    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = None
        if scheduler:
            connect_timeout = connect_timeout or dask.config.get("distributed.comm.timeouts.connect")
            try:
                client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:  # refused, unreachable, or no answer in time
                raise ConfigError(
                    f"cannot reach the Dask scheduler {scheduler} within {connect_timeout}: {exc}; check the "
                    "address (tcp://HOST:PORT) and that `dask scheduler` is running there"
                ) from None
        else:
            cluster = LocalCluster(
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            )
            client = Client(cluster)
        try:
            futures = {}
            for job, path in items:
                resources = {"GPU": 1} if gpu_for_deep and job.model.kind == "deep" else None
                fut = client.submit(
                    _run_single_threaded, fn, job, path, options, key=f"job-{job.key}", pure=False, resources=resources
                )
                futures[fut] = job
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    yield fut.result()
                except Exception as exc:  # KilledWorker after the retry, or a lost connection
                    yield lost_result(job, f"lost on the Dask cluster after one retry: {type(exc).__name__}: {exc}")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


EXECUTORS: dict[str, Callable[..., Iterator[JobResult]]] = {"local": run_local, "dask": run_dask}
