"""Running one job: a pure function of its spec and the prepared task file.

Failures are caught and returned as ``error`` results (as scikit-learn's cross-validation records a
failed fit), so one bad fold never stops a run.
"""

from __future__ import annotations

import time
import traceback
import warnings
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.errors import CellbenchError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Job, JobResult
from cellbench.stats.metrics import compute_metrics, predict_labels


def derive_seed(seed: int, key: str) -> int:
    """A per-job seed from the suite seed and the job's key (both recorded, so it can be rebuilt)."""
    return int(stable_hash({"seed": seed, "key": key}), 16) % (2**31 - 1)


def run_job(job: Job, task_path: str, options: dict[str, Any] | None = None) -> JobResult:
    """Fit and evaluate ``job``; never raises for a failure inside the job."""
    from cellbench.run.task import load_task

    t_start = time.perf_counter()
    coords = {**job.coordinates(), "folds_key": job.folds_key}
    try:
        with warnings.catch_warnings(record=True) as caught:  # stored with the job, not printed between bars
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", DeprecationWarning)  # library internals, not about this job's data
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            task = load_task(str(task_path))
            runner = _run_classical if job.model.kind == "classical" else _run_deep
            out = runner(job, task, options or {})
    except Exception as exc:  # recorded, not fatal: the run goes on
        message = str(exc) if isinstance(exc, CellbenchError) else f"{type(exc).__name__}: {exc}"
        detail = "" if isinstance(exc, CellbenchError) else traceback.format_exc(limit=6)
        extra = {"traceback": detail} if detail else {}
        if caught:  # what the job warned about before it failed can explain the failure
            extra["warnings"] = job_warnings(caught)
        return JobResult(
            key=job.key,
            coordinates=coords,
            status="error",
            error=message,
            timings={"total_s": time.perf_counter() - t_start},
            extra=extra,
        )
    test, threshold = out["test"], out.get("threshold", 0.5)
    preds, metrics = score_predictions(task, test, out["proba"], threshold=threshold)
    timings = {k: float(out[k]) for k in ("fit_s", "predict_s") if k in out}
    timings["total_s"] = time.perf_counter() - t_start
    extra = {"threshold": threshold, "n_train": int(out["n_train"]), "n_test": len(test), **out.get("extra", {})}
    if caught:
        extra["warnings"] = job_warnings(caught)
    external_preds = None
    if "external" in out:  # the fold model's predictions of the external test set (bench.external)
        from cellbench.run.external import finite

        rows = out["external"]
        external_preds, ext_metrics = score_predictions(task, rows, out["external_proba"], threshold=threshold)
        extra["external"] = {"metrics": finite(ext_metrics), "n": len(rows)}
    return JobResult(
        key=job.key,
        coordinates=coords,
        status="ok",
        metrics=metrics,
        predictions=preds,
        timings=timings,
        extra=extra,
        external_predictions=external_preds,
    )


def job_warnings(caught: list[warnings.WarningMessage], *, limit: int = 10) -> list[str]:
    """The distinct warnings a job raised, ``"Category: first line (×n)"``, at most ``limit``."""
    counts: dict[str, int] = {}
    for w in caught:
        message = str(w.message).strip()
        text = f"{w.category.__name__}: {message.splitlines()[0] if message else ''}"
        counts[text] = counts.get(text, 0) + 1
    return [f"{t} (×{n})" if n > 1 else t for t, n in list(counts.items())[:limit]]


def score_predictions(task, rows: np.ndarray, proba: np.ndarray, *, threshold: float) -> tuple[pd.DataFrame, dict]:
    """Per-sample predictions (sample_id, y_true, y_pred, proba_<class>) and metrics of ``task``'s ``rows``."""
    y_true = task.y[rows]
    y_pred = predict_labels(proba, positive=task.positive, threshold=threshold)
    metrics = compute_metrics(y_true, proba, y_pred, positive=task.positive)
    preds = pd.DataFrame({"sample_id": task.ids[rows], "y_true": y_true, "y_pred": y_pred})
    for c, name in enumerate(task.classes):
        preds[f"proba_{name}"] = proba[:, c]
    return preds, metrics


def _run_classical(job: Job, task, options: dict[str, Any]) -> dict[str, Any]:
    from cellbench.models import fit_predict
    from cellbench.models.imbalance import sweep_subsample
    from cellbench.run.cv import inner_split
    from cellbench.run.external import external_positions, split_external_proba

    if task.X is None:
        raise CellbenchError("no features were extracted for this task")
    seed = derive_seed(job.seed, job.key)
    train, test = task.split(job.fold)
    ext = external_positions(job, task)  # a CV job's fold model also predicts the external test set
    if job.ratio:
        if task.positive is None:
            raise CellbenchError("the imbalance sweep applies to binary tasks only")
        train = train[sweep_subsample(task.y[train], ratio=job.ratio, positive=task.positive, seed=seed)]
    y_train = task.y[train]
    groups = task.groups[train] if task.groups is not None else None
    inner = inner_split(y_train, groups, seed=seed) if job.imbalance.name == "threshold" else None
    out = fit_predict(
        job.model.name,
        job.imbalance.name,
        X_train=task.X[train],
        y_train=y_train,
        X_test=task.X[np.concatenate([test, ext])],
        seed=seed,
        n_classes=len(task.classes),
        positive=task.positive,
        inner_split=inner,
        model_params=job.model.params,
        strategy_params=job.imbalance.params,
    )
    extra: dict[str, Any] = {"train_counts": np.bincount(y_train, minlength=len(task.classes)).tolist()}
    if job.explain:
        from cellbench.stats.importance import native_importances, permutation_importances

        names = task.feature_names
        extra["importance"] = {
            "permutation": permutation_importances(out["model"], task.X[test], task.y[test], names=names, seed=seed),
            "native": native_importances(out["model"], names=names),
        }
    out = split_external_proba(out, len(test), ext)
    fitted = out.pop("model")
    if options.get("save_dir"):
        from cellbench.tools.predict import model_file, save_classical, write_card

        path = save_classical(fitted, model_file(options["save_dir"], job))
        write_card(path, job=job, task=task, threshold=out["threshold"])
    return {**out, "test": test, "n_train": len(train), "extra": extra}


def _run_deep(job: Job, task, options: dict[str, Any]) -> dict[str, Any]:
    from cellbench.models.deep import train_predict
    from cellbench.models.imbalance import sweep_subsample
    from cellbench.run.cv import inner_split
    from cellbench.run.external import external_positions, split_external_proba
    from cellbench.run.progress import clear_status, epoch_reporter
    from cellbench.tools.predict import model_file, write_card

    seed = derive_seed(job.seed, job.key)
    train, test = task.split(job.fold)
    ext = external_positions(job, task)  # a CV job's fold model also predicts the external test set
    if job.ratio:
        if task.positive is None:
            raise CellbenchError("the imbalance sweep applies to binary tasks only")
        train = train[sweep_subsample(task.y[train], ratio=job.ratio, positive=task.positive, seed=seed)]
    groups = task.groups[train] if task.groups is not None else None
    inner = inner_split(task.y[train], groups, seed=seed)
    images = np.asarray(task.images(int(job.model.params["size"])))
    save_dir = options.get("save_dir")
    status_dir = options.get("status_dir")  # per-epoch status for the driver's progress bar (bench.progress)
    out = train_predict(
        job.model.name,
        params=job.model.params,
        strategy=job.imbalance.name,
        images=images,
        y=task.y,
        train_idx=train,
        test_idx=np.concatenate([test, ext]),
        inner=inner,
        n_classes=len(task.classes),
        positive=task.positive,
        seed=seed,
        save_path=model_file(save_dir, job) if save_dir else None,
        on_epoch=epoch_reporter(status_dir, job) if status_dir else None,
    )
    if status_dir:
        clear_status(status_dir, job)
    if save_dir:
        write_card(model_file(save_dir, job), job=job, task=task, threshold=out["threshold"])
    out = split_external_proba(out, len(test), ext)
    extra = {"history": out.pop("history"), "epochs": out.pop("epochs"), "n_val": out.pop("n_val")}
    return {**out, "test": test, "extra": extra}
