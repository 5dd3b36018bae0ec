"""Worker processes shared by feature extraction and the local executor: one thread each, modules preloaded.

Both pools use the ``forkserver`` start method on Linux (``spawn`` elsewhere). The fork server is started
once per driver, by whichever pool comes first, and imports the modules every job needs once (``PRELOAD``)
instead of in every worker. Thread limits are applied in each worker by :func:`init_worker`, not in the
driver's environment: a driver running jobs itself (one worker) keeps every core for them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",  # read when a deep job first imports TensorFlow, after this initializer ran
)
# imported by every classical job and by feature extraction; TensorFlow is left out (most jobs never need it)
PRELOAD = (
    "bench.jobs",
    "features.batch",
    "models.pipeline",
    "imblearn.pipeline",
    "sklearn.ensemble",
    "sklearn.svm",
    "xgboost",
)


def pool_context():
    """The multiprocessing context for worker pools (use with ``initializer=init_worker``)."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def init_worker() -> None:
    """Pool initializer: one thread per worker for BLAS, OpenMP, OpenCV and TensorFlow (the pool uses every core).

    Libraries the fork server preloaded have sized their thread pools already; ``threadpool_limits`` resizes them.
    """
    for var in THREAD_VARS:
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run a job in this process with a worker's thread limits (BLAS/OpenMP, OpenCV; TensorFlow sets its own)."""
    import cv2
    from threadpoolctl import threadpool_limits

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        cv2.setNumThreads(threads)
