"""A result store written directly, without training: for report, figure and statistics tests.

:func:`write_store` fills a real :class:`cellbench.run.store.Store` through its own API (records, samples, folds,
jobs and per-sample predictions) with seeded simulated predictions: each model has a *skill*, the probability
that a sample is classified right, so a better model has better metrics on every fold. Folds are made by the
harness's own :func:`cellbench.run.cv.make_folds` and jobs get their real keys, so what the leaderboard reads
looks exactly like a run's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cellbench.core.types import ImbalanceSpec, Importance, Job, JobExtra, JobResult, ModelSpec
from cellbench.run.cv import make_folds
from cellbench.run.records import DataSetRecord
from cellbench.run.store import Store
from cellbench.stats.metrics import compute_metrics, predict_labels

DEEP = ("cnn", "cnn_tiny", "mobilenet_v2", "mobilenet_v2_ft", "mobilenet_v2_scratch")
SKILLS = {("logistic_regression", "none"): 0.85, ("naive_bayes", "none"): 0.75, ("dummy", "none"): 0.5}


@dataclass(frozen=True, kw_only=True)
class FakeData:
    """One simulated (data set, extraction): ``n`` samples of two classes (``share`` positive), ``patients``
    groups (``None``: no ids), ``folds`` patient-disjoint folds, and per model × strategy a skill."""

    name: str = "alpha"
    extraction: str = "given"
    n: int = 60
    share: float = 0.35
    patients: int | None = 12
    folds: int = 5
    skills: Mapping[tuple[str, str], float] = field(default_factory=lambda: dict(SKILLS))
    importance: bool = False  # classical rows get permutation and native importance
    warnings: Mapping[str, Sequence[str]] = field(default_factory=dict)  # model -> warnings of each of its jobs
    # the inner-validation balanced accuracy each model × strategy stores (nested selection reads it); default: skill
    inner: Mapping[tuple[str, str], float] = field(default_factory=dict)
    not_converged: frozenset[str] = frozenset()  # deep models whose jobs say they stopped at max_epochs
    inner_grouped: bool = True  # False: the jobs say their inner split fell back to a split of samples


def write_store(folder: Path, data: Sequence[FakeData] = (FakeData(),), *, suite: str = "fake", seed: int = 0) -> Path:
    """Write a store with every (model, strategy, fold) of ``data`` into ``folder``; return ``folder``."""
    folder = Path(folder)
    with Store.open(folder) as store:
        run_id = store.start_run(suite, {"suite": suite, "seed": seed, "suite_file": "fake.toml"})
        for d in data:
            _write_data(store, d, suite=suite, seed=seed, run_id=run_id)
        store.finish_run(run_id)
    return folder


def _write_data(store: Store, d: FakeData, *, suite: str, seed: int, run_id: int) -> None:
    rng = np.random.default_rng([seed, len(d.name)])
    classes = ("pos", "neg")
    y = (rng.random(d.n) >= d.share).astype(np.int64)  # 0 = pos, the positive class
    y[:2] = (0, 1)  # both classes, whatever the draw
    ids = [f"{d.name}-{i:03d}" for i in range(d.n)]
    groups = [f"p{i % d.patients:02d}" for i in range(d.n)] if d.patients else None
    scheme = "group_kfold" if groups else "stratified_kfold"
    folds = make_folds(ids=ids, y=y, groups=groups, predefined=None, scheme=scheme, n_splits=d.folds, seed=seed,
                       context=d.name)  # fmt: skip
    record = DataSetRecord(
        dataset=d.name,
        extraction=d.extraction,
        fingerprint=f"fp-{d.name}",
        title=f"Simulated {d.name}",
        classes=classes,
        positive_class="pos",
        n_samples=d.n,
        class_counts={c: int((y == i).sum()) for i, c in enumerate(classes)},
        n_groups=d.patients,
        group_kind="patient" if d.patients else None,
        cv=folds.description,
        cv_scheme=folds.scheme,
        n_features=3,
    )
    store.save_data_set(record)
    store.save_folds(folds, dataset=d.name, extraction=d.extraction)
    store.save_samples(d.name, d.extraction, ids, groups or [None] * d.n, [classes[i] for i in y])
    for (model, strategy), skill in d.skills.items():
        kind = "deep" if model in DEEP else "classical"
        for f in range(len(folds)):
            job = Job(suite=suite, dataset=d.name, extraction=d.extraction, model=ModelSpec(name=model, kind=kind),
                      imbalance=ImbalanceSpec(name=strategy), fold=f, seed=seed, cv=folds.scheme,
                      data_fingerprint=record.fingerprint, folds_key=folds.key)  # fmt: skip
            train, test = folds.train_test(f)
            result = _result(job, test, y, ids, classes, skill=skill, rng=rng, n_train=len(train), data=d)
            store.write_result(result, run_id=run_id, spec=job.canonical())


def _result(job: Job, test, y, ids, classes, *, skill: float, rng, n_train: int, data: FakeData) -> JobResult:
    right = rng.random(len(test)) < skill
    p_true = np.where(right, rng.uniform(0.55, 0.99, len(test)), rng.uniform(0.01, 0.45, len(test)))
    proba = np.empty((len(test), 2))
    proba[np.arange(len(test)), y[test]] = p_true
    proba[np.arange(len(test)), 1 - y[test]] = 1 - p_true
    y_pred = predict_labels(proba, positive=0)
    preds = pd.DataFrame({"sample_id": np.asarray(ids)[test], "y_true": y[test], "y_pred": y_pred})
    for c, name in enumerate(classes):
        preds[f"proba_{name}"] = proba[:, c]
    importance = None
    if data.importance and job.model.kind == "classical":
        names = ("morph_area", "haralick_contrast_d1_mean", "int_hem_mean")
        importance = Importance(permutation={n: float(rng.normal(0.02 * i, 0.005)) for i, n in enumerate(names)},
                                native={n: (i + 1) / 6 for i, n in enumerate(names)})  # fmt: skip
    history = None
    if job.model.kind == "deep" and job.fold == 0:
        history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55], "accuracy": [0.5, 0.7, 0.8],
                   "val_accuracy": [0.5, 0.65, 0.7], "lr": [1e-3, 1e-3, 5e-4]}  # fmt: skip
    inner = data.inner.get((job.model.name, job.imbalance.name), skill)
    deep = job.model.kind == "deep"
    extra = JobExtra(threshold=0.5, n_train=n_train, n_test=len(test), importance=importance, history=history,
                     warnings=tuple(data.warnings.get(job.model.name, ())),
                     inner={"balanced_accuracy": float(inner + 0.001 * job.fold)}, inner_grouped=data.inner_grouped,
                     converged=(job.model.name not in data.not_converged) if deep else None)  # fmt: skip
    return JobResult(
        key=job.key,
        coordinates={**job.coordinates(), "folds_key": job.folds_key},
        status="ok",
        metrics=compute_metrics(y[test], proba, y_pred, positive=0),
        predictions=preds,
        timings={"fit_s": 0.01, "predict_s": 0.001, "total_s": 0.02},
        extra=extra,
    )
