"""Running one job: a pure function of its spec and the prepared task file.

Failures are caught and returned as ``error`` results (as scikit-learn's cross-validation records a
failed fit), so one bad fold never stops a run.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cellbench.core.errors import CellbenchError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import ExternalScore, Importance, Job, JobExtra, JobResult
from cellbench.core.values import json_safe
from cellbench.models import fit_predict
from cellbench.models.deep import train_predict
from cellbench.models.embeddings import HEAD_INPUT_DTYPE, embedding_id
from cellbench.models.fold import Fitted, Fold
from cellbench.models.imbalance import sweep_subsample
from cellbench.models.plugins import ensure as ensure_model
from cellbench.run.artifacts import model_file, save_classical, write_card
from cellbench.run.cv import inner_split_grouped
from cellbench.run.external import external_positions
from cellbench.run.progress import clear_status, epoch_reporter
from cellbench.run.task import TaskData, load_task
from cellbench.stats.importance import native_importances, permutation_importances
from cellbench.stats.metrics import compute_metrics, predict_labels

WorkItem = tuple[Job, str]  # (job, task file path): what executors run


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """Where a job writes besides its result: ``save_dir`` keeps fold models, ``final_dir`` the models of refits on
    the whole development set (fold -1; the final models' candidates, :mod:`cellbench.run.final`), ``status_dir``
    per-epoch status."""

    save_dir: str | None = None
    final_dir: str | None = None
    status_dir: str | None = None

    def models_dir(self, job: Job) -> str | None:
        """Where ``job`` saves its fitted model (``None``: it does not)."""
        return self.final_dir if job.fold < 0 and self.final_dir else self.save_dir


@dataclass(frozen=True, kw_only=True, eq=False)
class FoldOutput:
    """What a model produced on one job's fold, before scoring.

    ``proba`` holds the class probabilities of the task rows ``test``; ``external_rows``/``external_proba``
    those of the external test set that a CV fold model also predicts (empty when there is none).
    """

    test: np.ndarray
    proba: np.ndarray
    threshold: float
    fit_s: float
    predict_s: float
    extra: JobExtra
    external_rows: np.ndarray
    external_proba: np.ndarray | None = None


def derive_seed(seed: int, key: str) -> int:
    """A per-job seed from the suite seed and the job's key (both recorded, so it can be rebuilt)."""
    return int(stable_hash({"seed": seed, "key": key}), 16) % (2**31 - 1)


def run_job(job: Job, task_path: str, options: JobOptions | None = None) -> JobResult:
    """Fit and evaluate ``job``; never raises for a failure inside the job."""
    t_start = time.perf_counter()
    coords = {**job.coordinates(), "folds_key": job.folds_key}
    try:
        with warnings.catch_warnings(record=True) as caught:  # stored with the job, not printed between bars
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", DeprecationWarning)  # library internals, not about this job's data
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            ensure_model(job.model)  # a suite's import-path model, rebuilt in this worker (an import error: this job's)
            task = load_task(str(task_path))
            arm = _run_classical if job.model.kind == "classical" else _run_deep
            out = arm(job, task, options or JobOptions())
    except Exception as exc:  # recorded, not fatal: the run goes on
        known = isinstance(exc, CellbenchError)
        extra = JobExtra(
            traceback="" if known else traceback.format_exc(limit=6),
            warnings=tuple(job_warnings(caught)),  # what it warned about before failing can explain the failure
        )
        return JobResult(
            key=job.key,
            coordinates=coords,
            status="error",
            error=str(exc) if known else f"{type(exc).__name__}: {exc}",
            timings={"total_s": time.perf_counter() - t_start},
            extra=extra,
        )
    if len(out.test):
        preds, metrics = score_predictions(task, out.test, out.proba, threshold=out.threshold)
    else:  # a final model's refit without an external test set predicts nothing
        preds, metrics = None, {}
    extra = replace(out.extra, threshold=out.threshold, n_test=len(out.test), warnings=tuple(job_warnings(caught)))
    external_preds = None
    if len(out.external_rows):  # the fold model's predictions of the external test set (cellbench.run.external)
        external_preds, ext_metrics = score_predictions(
            task, out.external_rows, out.external_proba, threshold=out.threshold
        )
        extra = replace(extra, external=ExternalScore(metrics=json_safe(ext_metrics), n=len(out.external_rows)))
    return JobResult(
        key=job.key,
        coordinates=coords,
        status="ok",
        metrics=metrics,
        predictions=preds,
        timings={"fit_s": out.fit_s, "predict_s": out.predict_s, "total_s": time.perf_counter() - t_start},
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


@dataclass(frozen=True, kw_only=True, eq=False)
class _Split:
    """The rows a job trains on and predicts: training fold (after a sweep subsample), test fold, external set."""

    train: np.ndarray
    test: np.ndarray
    external: np.ndarray
    seed: int

    @property
    def predicted(self) -> np.ndarray:
        """The rows the model predicts: the test fold, then the external test set."""
        return np.concatenate([self.test, self.external])


def _split(job: Job, task: TaskData) -> _Split:
    seed = derive_seed(job.seed, job.key)
    train, test = task.split(job.fold)
    if job.ratio:
        if task.positive is None:
            raise CellbenchError("the imbalance sweep applies to binary tasks only")
        train = train[sweep_subsample(task.y[train], ratio=job.ratio, positive=task.positive, seed=seed)]
    return _Split(train=train, test=test, external=external_positions(job, task), seed=seed)


def _fold(task: TaskData, split: _Split, inputs: np.ndarray) -> tuple[Fold, bool | None]:
    """What the model sees: every row's inputs and labels, the training rows, the rows to predict and one inner
    (train, validation) split of the training fold (group-aware where groups are known), with whether that split
    kept the groups apart."""
    groups = task.groups[split.train] if task.groups is not None else None
    inner, grouped = inner_split_grouped(task.y[split.train], groups, seed=split.seed)
    fold = Fold(
        inputs=inputs,
        y=task.y,
        train=split.train,
        test=split.predicted,
        n_classes=len(task.classes),
        positive=task.positive,
        inner=inner,
    )
    return fold, grouped


def _inner_extra(task: TaskData, out: Fitted, grouped: bool | None) -> dict:
    """The inner-validation metrics of ``out`` (at its own threshold) and how the inner split was made."""
    if out.inner_rows is None or out.inner_proba is None:
        return {"inner_grouped": grouped}
    y_true = task.y[out.inner_rows]
    y_pred = predict_labels(out.inner_proba, positive=task.positive, threshold=out.threshold)
    metrics = compute_metrics(y_true, out.inner_proba, y_pred, positive=task.positive)
    return {"inner": json_safe(metrics), "inner_grouped": grouped}


def _fold_output(split: _Split, out: Fitted, *, extra: JobExtra) -> FoldOutput:
    n = len(split.test)
    return FoldOutput(
        test=split.test,
        proba=out.proba[:n],
        threshold=out.threshold,
        fit_s=float(out.fit_s),
        predict_s=float(out.predict_s),
        extra=extra,
        external_rows=split.external,
        external_proba=out.proba[n:] if len(split.external) else None,
    )


def model_inputs(job: Job, task: TaskData) -> tuple[np.ndarray, tuple[str, ...]]:
    """What a classical job's model reads, with column names: handcrafted features, embeddings, or both."""
    kind = job.model.input
    X = task.features(job.fold) if kind in ("features", "combined") else None  # per fold where stain-normalised
    if kind in ("features", "combined") and X is None:
        raise CellbenchError("no features were extracted for this task")
    if kind == "features":
        return X, task.feature_names
    spec = job.model
    name = "user" if kind == "user_embeddings" or spec.params.get("embedder") == "user" else embedding_id(spec.params)
    # float32 as computed: the MLP head fitted 1.7x faster than on float64 on idc_dev (part of Job.inputs' key)
    emb = np.asarray(task.embedding(name, job.fold), dtype=HEAD_INPUT_DTYPE)
    names = tuple(f"emb_{i:04d}" for i in range(emb.shape[1]))
    if kind == "combined":
        return np.hstack([X.astype(HEAD_INPUT_DTYPE), emb]), (*task.feature_names, *names)
    return emb, names


def _run_classical(job: Job, task: TaskData, options: JobOptions) -> FoldOutput:
    X, names = model_inputs(job, task)
    split = _split(job, task)
    fold, grouped = _fold(task, split, X)
    out = fit_predict(job.model.name, job.imbalance.name, fold, seed=split.seed, model_params=job.model.params,
                      strategy_params=job.imbalance.params)  # fmt: skip
    importance = None
    if job.explain:
        test = split.test
        importance = Importance(
            permutation=permutation_importances(out.model, X[test], task.y[test], names=names, seed=split.seed),
            native=native_importances(out.model, names=names),
        )
    if save_dir := options.models_dir(job):
        path = save_classical(out.model, model_file(save_dir, job))
        write_card(path, job=job, task=task, threshold=out.threshold)
    counts = np.bincount(fold.y_train, minlength=len(task.classes))
    extra = JobExtra(n_train=out.n_train, train_counts=tuple(counts.tolist()), importance=importance,
                     **_inner_extra(task, out, grouped))  # fmt: skip
    return _fold_output(split, out, extra=extra)


def _run_deep(job: Job, task: TaskData, options: JobOptions) -> FoldOutput:
    split = _split(job, task)
    fold, grouped = _fold(task, split, np.asarray(task.images(int(job.model.params["size"]), job.fold)))
    save_dir = options.models_dir(job)
    out = train_predict(
        job.model.name,
        fold,
        params=job.model.params,
        strategy=job.imbalance.name,
        seed=split.seed,
        save_path=model_file(save_dir, job) if save_dir else None,
        # per-epoch status for the driver's progress bar (cellbench.run.progress)
        on_epoch=epoch_reporter(options.status_dir, job) if options.status_dir else None,
    )
    if options.status_dir:
        clear_status(options.status_dir, job)
    if save_dir:
        write_card(model_file(save_dir, job), job=job, task=task, threshold=out.threshold)
    extra = JobExtra(
        n_train=out.n_train,
        history=out.history,
        epochs=out.epochs,
        n_val=out.n_val,
        converged=out.converged,
        refit_epochs=out.refit_epochs,
        **_inner_extra(task, out, grouped),
    )
    return _fold_output(split, out, extra=extra)
