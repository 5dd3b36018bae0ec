"""Worker processes: one pool setup for every parallel step (feature extraction, field extraction, jobs).

Pools use the ``forkserver`` start method on Linux (``spawn`` elsewhere). The fork server is started once per
driver, by whichever pool comes first, and imports the modules given to :func:`preload` once instead of in every
worker: call it before the first pool starts (the runner does, with the modules its jobs need). Every worker is
limited to one thread for BLAS, OpenMP, OpenCV and TensorFlow by :func:`init_worker`, so ``n`` workers use ``n``
cores; the driver's own environment is left as it is, so a driver running a job itself keeps every core.

Workers die with their driver: each watches the driver's pid (:func:`init_worker`) and exits when it is gone, so
a driver killed with ``kill -9`` leaves no workers behind (and with them goes the resource tracker, which lives
while any process holds its pipe, and the fork server, which exits when the driver's end of its pipe closes).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import cv2
from threadpoolctl import threadpool_limits

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",  # read when a deep job first imports TensorFlow, after the initializer ran
)
_PRELOAD: list[str] = []
WATCH_S = 1.0  # how often a worker checks that its driver is alive


def preload(*modules: str) -> None:
    """Have the fork server import ``modules`` (dotted names) once; effective until the server has started."""
    for m in modules:
        if m not in _PRELOAD:
            _PRELOAD.append(m)


def default_workers() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def pool_context():
    """The multiprocessing context of every worker pool (use with ``initializer=init_worker``)."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(_PRELOAD))
    return ctx


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` single-threaded processes (:func:`pool_context`, :func:`init_worker`)."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=pool_context(), initializer=init_worker, initargs=(_identity(os.getpid()),)
    )


def init_worker(driver: tuple[int, str | None] | None = None) -> None:
    """Pool initializer: one thread per worker for BLAS, OpenMP, OpenCV and TensorFlow (the pool uses every core),
    and a watchdog that ends the worker when the process ``driver`` (:func:`_identity`) is gone.

    Libraries the fork server preloaded have sized their thread pools already; ``threadpool_limits`` resizes them.
    """
    if driver is not None:
        threading.Thread(target=_watch_driver, args=driver, name="cellbench-watchdog", daemon=True).start()
    for var in THREAD_VARS:
        os.environ[var] = "1"

    cv2.setNumThreads(1)
    threadpool_limits(1)


def _identity(pid: int) -> tuple[int, str | None]:
    """``(pid, start time)``: the start time (from ``/proc``, Linux) tells the process from a later one that reuses
    its pid."""
    return pid, _proc_stat(pid)[1]


def _proc_stat(pid: int) -> tuple[str | None, str | None]:
    """(state, start time) of ``pid`` from ``/proc/<pid>/stat``; ``(None, None)`` where there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # the command name in parentheses may hold spaces
    except OSError:
        return None, None
    return fields[0], fields[19]


def _driver_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid exists, owned by someone else: a reused pid
        return False
    if started is None:
        return True
    state, now = _proc_stat(pid)
    return state not in (None, "Z", "X") and now == started  # a zombie is dead; another start time, another process


def _watch_driver(pid: int, started: str | None) -> None:
    while True:
        time.sleep(WATCH_S)
        if not _driver_alive(pid, started):
            os._exit(1)  # the driver died without shutting its pool down: nobody will read this worker's results


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run a job in this process with a worker's thread limits (BLAS/OpenMP, OpenCV; TensorFlow sets its own)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        cv2.setNumThreads(threads)
