"""The driver: prepare data and folds, plan jobs, run the ones not yet stored, store every result.

:func:`run_suite` returns a :class:`RunSummary`; writing the leaderboard from the store is the caller's step
(:func:`cellbench.report.leaderboard.write_leaderboard`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cellbench.core import paths
from cellbench.core.errors import ConfigError
from cellbench.core.types import JobResult
from cellbench.core.workers import default_workers, preload
from cellbench.features import batch
from cellbench.models import pipeline
from cellbench.run import final, jobs
from cellbench.run.executors import EXECUTORS
from cellbench.run.jobs import JobOptions, WorkItem
from cellbench.run.manifest import build_manifest
from cellbench.run.plan import plan
from cellbench.run.prepare import Prepared, Settings, prepare
from cellbench.run.progress import EpochWatcher, JobProgress, job_work
from cellbench.run.selection import record as record_selection
from cellbench.run.selection import results_folder, selection
from cellbench.run.store import Store
from cellbench.run.suite import Suite
from cellbench.run.task import load_task

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """What a run did: jobs planned, already stored, run and failed, and its wall time."""

    suite: str
    results_dir: Path
    planned: int
    skipped_done: int
    ran: int
    failed: int
    wall_s: float
    warned: int = 0  # finished jobs that raised warnings (stored with the job and listed in the leaderboard)
    finals: int = 0  # final models saved (cellbench.run.final), listed in ``final_index``
    final_index: Path | None = None


def run_suite(
    suite: Suite,
    *,
    results_root: str | Path = "results",
    cache: str | os.PathLike | None = None,
    data_root: Path | None = None,
    workers: int | None = None,
    executor: str = "local",
    executor_options: Mapping[str, Any] | None = None,
    on_bad_image: str = "raise",
    progress: bool = True,
    argv: list[str] | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> RunSummary:
    """Run ``suite``, skipping jobs already stored as ``ok``; every result is stored as soon as it arrives.

    ``cache`` is the cache folder (default :func:`cellbench.core.paths.cache_dir`).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; known executors: {', '.join(EXECUTORS)}")
    # the fork server imports what every job needs once, not every worker again
    preload(jobs.__name__, batch.__name__, pipeline.__name__, "imblearn.pipeline", "sklearn.ensemble", "sklearn.svm",
            "xgboost")  # fmt: skip
    settings = Settings(cache_dir=paths.cache_dir(cache), workers=workers, on_bad_image=on_bad_image, progress=progress)
    t0 = time.perf_counter()
    chosen = selection(suite, data_root=data_root)
    folder = results_folder(results_root, suite, data_root=data_root)
    with Store.open(folder) as store:  # takes the lock before any work
        record_selection(folder, chosen)
        prepared = prepare(suite, data_root=data_root, settings=settings)
        items, notes = plan(suite, prepared)
        _save_data(store, prepared, notes)
        done = store.done_keys()
        todo = [(j, path) for j, path in items if j.key not in done]
        options = _job_options(suite, todo, folder=folder, settings=settings)
        manifest = build_manifest(suite=suite, fingerprints={p.dataset: p.fingerprint for p in prepared}, argv=argv)
        run_id = store.start_run(suite.name, {**manifest, "planned_jobs": len(items)})
        counts = {"ran": 0, "failed": 0, "warned": 0}
        status = "interrupted"
        finals: tuple[final.FinalChoice, ...] = ()
        index = None

        def execute(work: Sequence[WorkItem], desc: str) -> None:
            results = EXECUTORS[executor](
                work,
                workers=workers,
                options=options,
                **({"gpu_for_deep": suite.deep_gpu} if executor == "dask" else {}),
                **(executor_options or {}),
            )
            _store_results(results, work, store=store, run_id=run_id, counts=counts, options=options,
                           progress=progress, desc=desc, on_result=on_result, sizes=_training_sizes(prepared),
                           workers=default_workers() if workers is None else workers)  # fmt: skip

        try:
            execute(todo, f"jobs {suite.name}")
            if suite.final:
                finals = final.choose(store, items, prepared)
                again = [c.item for c in finals if final.needs_refit(c, Path(options.final_dir))]
                if again:  # a champion's file was removed, or its refit ran before final models were asked for
                    execute(again, f"final models {suite.name}")
                index = final.write_finals(store, finals, items, prepared, folder=Path(options.final_dir))
            status = "finished"
        finally:
            try:
                store.finish_run(run_id, status)
            except sqlite3.Error as exc:  # e.g. the disk filled up: the next run marks this one interrupted
                log.warning("could not record the end of run %d (%s): %s", run_id, status, exc)
            if options.status_dir:
                shutil.rmtree(options.status_dir, ignore_errors=True)
    return RunSummary(
        suite=suite.name,
        results_dir=folder,
        planned=len(items),
        skipped_done=len(items) - len(todo),
        wall_s=time.perf_counter() - t0,
        finals=len(finals),
        final_index=index,
        **counts,
    )


def _save_data(store: Store, prepared: Sequence[Prepared], notes: list[str]) -> None:
    """The records, folds and samples (ids, groups, labels) of every prepared (data set, extraction)."""
    for p in prepared:
        store.save_data_set(replace(p.record, plan_notes=tuple(notes)))
        store.save_folds(p.folds, dataset=p.dataset, extraction=p.extraction)
        task = load_task(str(p.task_path))
        store.save_samples(
            p.dataset,
            p.extraction,
            task.ids.tolist(),
            task.groups.tolist() if task.groups is not None else [None] * len(task.ids),
            [task.classes[i] for i in task.y],
        )


def _job_options(suite: Suite, todo: Sequence[WorkItem], *, folder: Path, settings: Settings) -> JobOptions:
    save_dir = str(paths.inside(folder, "models", what="models folder")) if suite.save_models else None
    final_dir = str(final.final_folder(folder)) if suite.final else None
    status_dir = None
    if settings.progress and any(j.model.kind == "deep" for j, _ in todo):  # epochs of running deep jobs in the bar
        status_dir = str(
            paths.inside(settings.cache_dir, "status", f"{os.getpid()}-{suite.name}", what="status folder")
        )
    return JobOptions(save_dir=save_dir, final_dir=final_dir, status_dir=status_dir)


def _training_sizes(prepared: Sequence[Prepared]) -> dict[tuple[str, str, int], int]:
    """Training-fold sizes by (data set, extraction, fold); fold -1 (a refit on all development data) is all."""
    out = {}
    for p in prepared:
        n = len(p.folds.ids)
        out[(p.dataset, p.extraction, -1)] = n
        out.update({(p.dataset, p.extraction, f): n - len(t) for f, t in enumerate(p.folds.test)})
    return out


def _stored_timings(store: Store) -> list[tuple[str, str, float, float]]:
    """(model, kind, seconds, work) of the jobs stored ``ok`` (work: see :func:`cellbench.run.progress.job_work`)."""
    stored = store.jobs(status="ok")
    out = []
    for model, kind, timing, spec, extra in zip(stored.model, stored.kind, stored.timings, stored.spec, stored.extra):
        params = json.loads(spec).get("model", {}).get("params", {}) if kind == "deep" else {}
        out.append((model, kind, float(timing.get("total_s", 0.0)), job_work(kind, params, extra.n_train or 1)))
    return out


def _store_results(results, todo: Sequence[WorkItem], *, store: Store, run_id: int, counts: dict[str, int],
                   options: JobOptions, progress: bool, desc: str, on_result, workers: int = 1,
                   sizes: Mapping[tuple[str, str, int], int] | None = None) -> None:  # fmt: skip
    """Write each result as it arrives (one transaction each), counting and showing progress."""
    by_key = {j.key: j for j, _ in todo}
    sizes = sizes or {}
    pending = [(j.key, j.model.name, j.model.kind,
                job_work(j.model.kind, j.model.params, sizes.get((j.dataset, j.extraction, j.fold), 1)))
               for j, _ in todo]  # fmt: skip
    bar = JobProgress(pending, timings=_stored_timings(store), workers=workers, desc=desc, enabled=progress)
    watcher = EpochWatcher(bar, options.status_dir) if options.status_dir else contextlib.nullcontext()
    try:
        with watcher:
            for result in results:
                store.write_result(result, run_id=run_id, spec=by_key[result.key].canonical())
                counts["ran"] += 1
                counts["failed"] += result.status != "ok"
                counts["warned"] += bool(result.extra.warnings) and result.status == "ok"
                if on_result is not None:
                    on_result(result)
                c = result.coordinates
                status = f"{c['model']}/{c['imbalance']} fold {c['fold']}" + (" ERROR" if result.status != "ok" else "")
                bar.finished(result.key, seconds=result.timings.get("total_s") if result.status == "ok" else None,
                             status=status)  # fmt: skip
    finally:
        bar.close()
