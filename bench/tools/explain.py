"""``python -m bench explain``: CAM galleries of a deep fold model, its sanity check and where it looks.

For one (suite, data set, extraction, deep model, strategy, fold) this

1. finds the fold model: the ``<results>/<suite>/models/<job key>.keras`` a run with ``save_models = true`` kept,
   or else retrains that fold exactly as the run did (same job spec, so the same key and seed,
   :func:`cellbench.run.jobs.derive_seed`; TensorFlow op determinism) and saves it there for next time. When the
   store holds the job, the retrained model's test predictions are compared with the stored ones and the
   agreement is recorded;
2. picks, from the stored (or retrained) test-fold predictions, up to ``n`` correctly and ``n`` wrongly
   classified cells per true class (the most confident of each);
3. computes the maps of :mod:`cellbench.models.cam` for the explained class (default: the predicted class) on its
   logit, draws a gallery PNG into ``<results>/<suite>/figures/`` and writes a JSON beside it with
   the model-randomisation sanity check (:func:`cellbench.models.cam.sanity_check`) and, where nucleus masks exist
   (:mod:`cellbench.models.regions`), the share of each map's energy inside the nucleus, the cytoplasm and outside
   the cell over every test cell of the fold;
4. rewrites the leaderboard, which lists the galleries of each section
   (:func:`cellbench.report.galleries.render_galleries`).

Nothing is written into the store.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core import paths
from cellbench.core.errors import CellbenchError, ConfigError
from cellbench.core.files import write_json
from cellbench.core.types import Job
from cellbench.datasets import load_dataset
from cellbench.datasets.extraction import run_extraction, split_options
from cellbench.models import MODELS
from cellbench.models.cam import DESCRIPTIONS, CamExplainer, energy_fractions, parse_methods, sanity_check
from cellbench.models.deep import import_tensorflow_quietly, probabilities
from cellbench.models.regions import sample_regions
from cellbench.report.galleries import FORMAT, PREFIX, draw_gallery
from cellbench.report.leaderboard import write_leaderboard
from cellbench.report.summary import slug
from cellbench.run.artifacts import load_keras
from cellbench.run.jobs import JobOptions, derive_seed, run_job
from cellbench.run.plan import plan
from cellbench.run.prepare import RUNNER_KEYS, Prepared, Settings, prepare
from cellbench.run.records import DataSetRecord
from cellbench.run.selection import results_folder
from cellbench.run.store import STORE_NAME, Store
from cellbench.run.suite import Suite, load_suite, validate
from cellbench.run.task import TaskData, load_task
from cellbench.stats.metrics import predict_labels

log = logging.getLogger("cellbench")

TARGETS = ("predicted", "true")
SANITY_IMAGES = 32
MAX_ROWS = 24  # gallery rows at most (cells per class are reduced for many classes)


@dataclass(frozen=True, kw_only=True)
class Gallery:
    """A written gallery: the PNG, the JSON beside it and the JSON's content."""

    png: Path
    json: Path
    summary: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ExplainOptions:
    """What a gallery shows: the map ``methods`` (names, comma-separated or ``all``), ``n`` correct and ``n`` wrong
    cells per class, the explained class (``predicted`` or ``true``), the target layer (``None``: the last
    convolutional block's output) and the seed of the sanity check's randomisation."""

    methods: str | Sequence[str] = "all"
    n: int = 4
    target: str = "predicted"
    target_layer: str | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(parse_methods(self.methods)))
        if self.target not in TARGETS:
            raise ConfigError(f"unknown explained class {self.target!r}; allowed: {', '.join(TARGETS)}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"--n must be a positive number of cells per class and outcome, got {self.n!r}")


def explain_suite(
    *,
    suite: str | os.PathLike,
    dataset: str,
    models: Sequence[str],
    strategy: str = "none",
    extractions: Sequence[str] | None = None,
    fold: int = 0,
    options: ExplainOptions | None = None,
    results_root: str | os.PathLike = "results",
    data_root: Path | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    selected: Suite | None = None,
) -> list[Gallery]:
    """Write a gallery (PNG + JSON) per model and extraction; see the module docstring.

    ``extractions`` defaults to every extraction the suite lists for ``dataset`` (``given`` when none);
    ``options`` to :class:`ExplainOptions`' defaults; ``cache`` is the cache folder (default
    :func:`cellbench.core.paths.cache_dir`). ``selected`` is the suite as ``run``'s data-selection flags narrowed it
    (``--datasets``, ``--option``, ``--positive-class``, …): its data are read as that run read them and its results
    folder is the run's (:mod:`cellbench.run.selection`).

    Raises
    ------
    ConfigError
        For a classical model, an unknown name, a fold out of range or a bad option.
    CellbenchError
        When the fold model cannot be had (its retraining failed: the message says why).
    """
    options = options or ExplainOptions()
    _check_deep(models)
    base = selected if selected is not None else load_suite(suite)
    if selected is not None and dataset not in selected.datasets:
        raise ConfigError(f"data set {dataset!r} is not in the selection; it holds: {', '.join(selected.datasets)}")
    narrowed = _narrowed(base, dataset, models=models, strategy=strategy, extractions=extractions)
    # the store of the run that holds this data set: the selection's, the suite's own, or `run --datasets DATASET`'s
    where = selected if selected is not None else base if dataset in base.datasets else narrowed
    folder = results_folder(results_root, where, data_root=data_root)
    settings = Settings(cache_dir=paths.cache_dir(cache), progress=progress)
    prepared = prepare(narrowed, data_root=data_root, settings=settings)
    items, _ = plan(narrowed, prepared)
    stored = _stored_predictions(folder, {j.key for j, _ in items})
    adapter_options = {k: v for k, v in base.datasets.get(dataset, {}).items() if k not in RUNNER_KEYS}
    regions = _RegionSource(data_root=data_root, options=adapter_options, cache_dir=settings.cache_dir)
    out = []
    for p in prepared:
        for model in models:
            job, task_path = _fold_job(items, p, model=model, strategy=strategy, fold=fold, suite=base.name)
            preds = None if stored is None else stored[stored.job_key == job.key]
            out.append(explain_job(job, task_path, folder=folder, record=p.record, options=options,
                                   stored=preds if preds is not None and len(preds) else None,
                                   regions_from=regions))  # fmt: skip
    if (folder / STORE_NAME).is_file():
        with Store.open(folder, write=False) as store:
            write_leaderboard(store, out_dir=folder)
    return out


def _check_deep(models: Sequence[str]) -> None:
    for m in models:
        if MODELS[m].kind != "deep":
            raise ConfigError(
                f"{m!r} is a classical model; CAMs explain deep models (deep: "
                f"{', '.join(x for x in MODELS.names() if MODELS[x].kind == 'deep')}). Classical models are "
                "explained by named-feature importance: list them under the suite's [explain] models"
            )


def _narrowed(base: Suite, dataset: str, *, models: Sequence[str], strategy: str,
              extractions: Sequence[str] | None) -> Suite:  # fmt: skip
    """The suite narrowed to one data set (which need not be in it), the models and the strategy."""
    options = dict(base.datasets.get(dataset, {}))
    chosen = list(extractions) if extractions else list(options.get("extractions", ["given"]))
    narrowed = base.narrow(datasets=[dataset], models=list(models), strategies=[strategy])
    narrowed = replace(narrowed, datasets={dataset: {**options, "extractions": chosen}})
    validate(narrowed)
    return narrowed


def _stored_predictions(folder: Path, keys: set[str]) -> pd.DataFrame | None:
    """The stored test predictions of the jobs ``keys`` that finished, or ``None`` without a store."""
    if not (folder / STORE_NAME).is_file():
        return None
    with Store.open(folder, write=False) as store:
        done = keys & set(store.jobs(status="ok").key)
        return store.predictions(sorted(done)) if done else None


def _fold_job(items, p: Prepared, *, model: str, strategy: str, fold: int, suite: str) -> tuple[Job, str]:
    here = [
        (j, t)
        for j, t in items
        if j.extraction == p.extraction and j.model.name == model and j.imbalance.name == strategy and j.ratio is None
    ]
    if not here:
        raise ConfigError(f"{model} × {strategy} is not run on {p.dataset}/{p.extraction} in suite {suite}")
    folds = sorted(j.fold for j, _ in here if j.fold >= 0)  # < 0: refits for an external test
    if fold not in folds:
        raise ConfigError(f"fold {fold} does not exist for {p.dataset}/{p.extraction}; folds: 0..{folds[-1]}")
    return next((j, t) for j, t in here if j.fold == fold)


@dataclass(frozen=True, kw_only=True)
class _RegionSource:
    """Where the samples' nucleus masks come from: the data set loaded and extracted again as the run did."""

    data_root: Path | None
    options: Mapping[str, Any]
    cache_dir: Path


@dataclass(frozen=True, kw_only=True, eq=False)
class _TestCells:
    """A fold's test cells in the order of their predictions, with their pixels at the model's input size."""

    preds: pd.DataFrame
    images: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray


def _test_cells(job: Job, task: TaskData, preds: pd.DataFrame) -> _TestCells:
    test = task.tests[job.fold]
    pos = {sid: i for i, sid in enumerate(task.ids)}
    preds = preds.set_index("sample_id").loc[task.ids[test]].reset_index()
    rows = np.array([pos[s] for s in preds.sample_id])
    images = np.asarray(task.images(int(job.model.params["size"]), job.fold))[rows]
    return _TestCells(preds=preds, images=images, y_true=preds.y_true.to_numpy(int), y_pred=preds.y_pred.to_numpy(int))


def explain_job(
    job: Job,
    task_path: str,
    *,
    folder: Path,
    record: DataSetRecord,
    stored: pd.DataFrame | None,
    options: ExplainOptions,
    regions_from: _RegionSource,
) -> Gallery:
    """The gallery of one deep job (its fold model saved or retrained); see the module docstring."""
    import tensorflow as tf  # TensorFlow only here: the maps need it, nothing else of this module does

    task = load_task(str(task_path))
    model, source, preds = fold_model(job, task_path, task=task, folder=folder, stored=stored)
    cells = _test_cells(job, task, preds)
    explained = cells.y_pred if options.target == "predicted" else cells.y_true
    per = max(1, min(options.n, MAX_ROWS // (2 * len(task.classes))))  # keeps the figure readable for many classes
    if per < options.n:
        log.info("%d classes: %d correct and %d wrong cells per class shown (at most %d rows)", len(task.classes),
                 per, per, MAX_ROWS)  # fmt: skip
    picks = select_cells(cells.preds, n_classes=len(task.classes), n=per)

    tf.get_logger().setLevel("ERROR")  # one tf.function per randomised copy would warn about retracing
    explainer = CamExplainer(model, target_layer=options.target_layer, methods=options.methods)
    t0 = time.perf_counter()
    all_maps = explainer.explain(cells.images, explained)
    maps_s = time.perf_counter() - t0
    log.info("%s: %d test images explained in %.1f s", job.model.name, len(cells.preds), maps_s)

    regions = test_regions(job, task, cells.preds.sample_id.tolist(), source=regions_from)
    energy = energy_summary(all_maps, regions, y_true=cells.y_true, classes=task.classes) if regions else None
    sanity_idx = sanity_indices(picks, len(cells.preds), limit=SANITY_IMAGES)
    sanity = sanity_check(
        model,
        cells.images[sanity_idx],
        explained[sanity_idx],
        maps={m: all_maps[m][sanity_idx] for m in explainer.methods},
        target_layer=explainer.target_layer,
        methods=explainer.methods,
        seed=options.seed,
    )
    parts = [job.dataset, job.extraction, job.model.name, job.imbalance.name, f"fold{job.fold}"]
    if options.target_layer:  # a named layer gets its own gallery beside the default one
        parts.append(explainer.target_layer.rsplit("/", 1)[-1])
    stem = PREFIX + slug(*parts)
    shown = _shown_cells(cells, picks, explained, classes=task.classes, regions=regions, methods=explainer.methods)
    summary = {
        "format": FORMAT,
        "dataset": job.dataset,
        "extraction": job.extraction,
        "title": record.title,
        "model": job.model.name,
        "strategy": job.imbalance.name,
        "fold": job.fold,
        "job": job.key,
        "model_source": source,
        "target_layer": explainer.target_layer,
        "target_shape": [int(v) for v in explainer.graph.outputs[0].shape[1:]],
        "logit_layer": explainer.logit_layer,
        "guided_activations": explainer.n_guided,
        "explained_class": options.target,
        "methods": list(explainer.methods),
        "method_maps": {m: DESCRIPTIONS[m] for m in explainer.methods},
        "available": available_cells(cells.preds, task.classes),
        "cells": shown,
        "per_class": per,
        "n_test": len(cells.preds),
        "energy": energy,
        "sanity": sanity,
        "maps_per_s": round(len(cells.preds) / maps_s, 1) if maps_s > 0 else None,
        "png": f"{stem}.png",
    }
    fig_dir = folder / "figures"
    png = draw_gallery(
        fig_dir / f"{stem}.png",
        images=cells.images[picks],
        maps={m: all_maps[m][picks] for m in explainer.methods},
        cells=shown,
        outlines=None if not regions else (regions["nucleus"][picks], regions["cell"][picks]),
        title=f"{job.model.name} / {job.imbalance.name} on {job.dataset} ({job.extraction}), fold {job.fold}: maps of "
        f"the {options.target} class's logit; target layer {explainer.target_layer}",
    )
    path = write_json(fig_dir / f"{stem}.json", summary, indent=1, sort_keys=True, allow_nan=False, newline=True)
    return Gallery(png=png, json=path, summary=summary)


def _shown_cells(cells: _TestCells, picks: Sequence[int], explained: np.ndarray, *, classes: Sequence[str],
                 regions: Mapping[str, Any] | None, methods: Sequence[str]) -> list[dict[str, Any]]:  # fmt: skip
    """The gallery's cells as JSON: ids, true/predicted/explained class, probabilities, nucleus energy."""
    out = []
    preds = cells.preds
    for k in picks:
        cell = {
            "sample_id": str(preds.sample_id[k]),
            "true": classes[cells.y_true[k]],
            "predicted": classes[cells.y_pred[k]],
            "explained": classes[explained[k]],
            "correct": bool(cells.y_true[k] == cells.y_pred[k]),
            "proba": [round(float(v), 4) for v in preds.proba[k]],
            "p_predicted": round(float(preds.proba[k][cells.y_pred[k]]), 4),
        }
        if regions:
            cell["nucleus_energy"] = {m: _round(regions["energy"][m]["nucleus"][k]) for m in methods}
        out.append(cell)
    return out


# ---------------------------------------------------------------------------------------------------- the model


def fold_model(job, task_path: str, *, task, folder: Path, stored: pd.DataFrame | None):
    """The fitted model of ``job``, how it was had, and the test predictions to choose cells from.

    The model's own test-fold predictions are always computed; when the store has the job they are compared
    with the stored ones (recorded in the source dict) and the stored ones are used.

    Returns (keras.Model, source dict, predictions with ``sample_id``, ``y_true``, ``y_pred``, ``proba``).
    """
    import_tensorflow_quietly()  # before keras: TensorFlow's C++ start-up lines would interleave with output

    path = folder / "models" / f"{job.key}.keras"
    source: dict[str, Any] = {"file": f"models/{path.name}"}
    threshold = None
    if path.is_file():
        source["how"] = "saved"
    else:
        seed = derive_seed(job.seed, job.key)
        log.info("no saved model for %s fold %d: retraining it (seed %d)", job.model.name, job.fold, seed)
        result = run_job(job, str(task_path), options=JobOptions(save_dir=str(path.parent)))
        if result.status != "ok":
            raise CellbenchError(f"retraining {job.model.name} fold {job.fold} failed: {result.error}")
        if not path.is_file():
            raise CellbenchError(f"retraining {job.model.name} fold {job.fold} did not save {path}")
        source.update(how="retrained", seed=seed)
        threshold = float(result.extra.threshold if result.extra.threshold is not None else 0.5)
    card = path.with_suffix(".json")
    if threshold is None and card.is_file():
        threshold = json.loads(card.read_text()).get("threshold")
    if threshold is None:
        if job.imbalance.name == "threshold" and stored is None:
            raise CellbenchError(f"the decision threshold of {path.name} is unknown (no card beside it, no stored job)")
        threshold = 0.5
    model = load_keras(path, json.loads(card.read_text()) if card.is_file() else None)
    test = task.tests[job.fold]
    images = np.asarray(task.images(int(job.model.params["size"]), job.fold))[test].astype(np.float32)
    proba = probabilities(model.predict(images, batch_size=64, verbose=0), len(task.classes))
    own = pd.DataFrame(
        {
            "sample_id": task.ids[test],
            "y_true": task.y[test],
            "y_pred": predict_labels(proba, positive=task.positive, threshold=threshold),
            "proba": list(proba),
        }
    )
    if stored is None:
        return model, source, own
    preds = _stored_frame(stored)
    a = preds.set_index("sample_id").loc[own.sample_id]
    source["same_labels_as_stored"] = float(np.mean(a.y_pred.to_numpy() == own.y_pred.to_numpy()))
    source["max_abs_proba_diff"] = float(np.max(np.abs(np.stack(a.proba.to_numpy()) - proba)))
    return model, source, preds


def _stored_frame(stored: pd.DataFrame) -> pd.DataFrame:
    df = stored[["sample_id", "y_true", "y_pred", "proba"]].copy()
    df["proba"] = [np.asarray(p, dtype=float) for p in df.proba]
    return df.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------- choices


def select_cells(preds: pd.DataFrame, *, n_classes: int, n: int) -> list[int]:
    """Positions of up to ``n`` correct and ``n`` wrong predictions per true class, most confident first
    (correct: highest probability of the true class; wrong: lowest), ties by sample id."""
    y_true, y_pred = preds.y_true.to_numpy(int), preds.y_pred.to_numpy(int)
    p_true = np.array([p[t] for p, t in zip(preds.proba, y_true)], dtype=float)
    ids = preds.sample_id.astype(str).to_numpy()
    out: list[int] = []
    for c in range(n_classes):
        for correct in (True, False):
            idx = np.flatnonzero((y_true == c) & ((y_pred == c) == correct))
            order = np.lexsort((ids[idx], p_true[idx] if not correct else -p_true[idx]))
            out += idx[order][:n].tolist()
    return out


def available_cells(preds: pd.DataFrame, classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Test cells per true class that were classified correctly and wrongly."""
    y_true, y_pred = preds.y_true.to_numpy(int), preds.y_pred.to_numpy(int)
    return {
        c: {"correct": int(((y_true == i) & (y_pred == i)).sum()), "wrong": int(((y_true == i) & (y_pred != i)).sum())}
        for i, c in enumerate(classes)
    }


def sanity_indices(picks: Sequence[int], n_total: int, *, limit: int) -> np.ndarray:
    """The gallery cells, then the first other test cells, up to ``limit``."""
    rest = [i for i in range(n_total) if i not in set(picks)]
    return np.asarray((list(picks) + rest)[:limit], dtype=int)


# ---------------------------------------------------------------------------------------------------- regions


def test_regions(job: Job, task: TaskData, ids: Sequence[str], *, source: _RegionSource) -> dict[str, Any] | None:
    """Nucleus and cell masks of the test cells at the model's input size, or None when there are none."""
    kind, size = task.kind, int(job.model.params["size"])
    if kind == "patch":
        return None
    options, tables = split_options(source.options)  # the suite's [datasets.D.manual|segmentation] parameters
    dataset = load_dataset(job.dataset, data_root=source.data_root, cache_dir=source.cache_dir, **options)
    extracted = run_extraction(job.extraction, dataset, options=tables.get(job.extraction), progress=False,
                               cache_dir=source.cache_dir)  # fmt: skip
    by_id = {s.id: s for s in extracted.samples}
    nuclei, cells, sources = [], [], set()
    for sid in ids:
        r = sample_regions(by_id[sid], kind=kind)
        if r is None:
            return None
        f = r.fitted(size, keep_aspect=kind != "patch")
        nuclei.append(f.nucleus)
        cells.append(f.cell)
        sources.add(r.source)
    return {
        "nucleus": np.stack(nuclei),
        "cell": np.stack(cells),
        "source": sorted(sources),
        "extraction": job.extraction,
    }


def describe_source(source: str, extraction: str) -> str:
    """What a region source means for the samples of ``extraction``."""
    if source == "mask":
        whose = {
            "manual": "cut from the annotations' (expert) masks",
            "segmentation": "found by the automatic segmentation",
        }.get(extraction, "of the data set")
        return f"the cells' nucleus/cytoplasm masks (0/128/255) {whose}"
    return {
        "generator": "the synthetic generator's exact nuclei (re-rendered)",
        "colour": "colour-based masks (the cell mask, its nucleus by Otsu's threshold on green)",
    }.get(source, source)


def energy_summary(
    maps: Mapping[str, np.ndarray], regions: dict[str, Any], *, y_true: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Per method, mean ± std over test cells of the energy shares in nucleus, cytoplasm and outside the cell;
    the area shares of the same regions (what a map spread evenly would give). Stores per-cell values in
    ``regions["energy"]`` for the gallery."""
    nucleus, cell = regions["nucleus"], regions["cell"]
    parts = {"nucleus": nucleus, "cytoplasm": cell & ~nucleus, "outside": ~cell}
    area = {k: v.reshape(len(v), -1).mean(axis=1) for k, v in parts.items()}
    regions["energy"] = {}
    out: dict[str, Any] = {
        "source": [describe_source(s, regions["extraction"]) for s in regions["source"]],
        "n_cells": len(nucleus),
        "area_share": {k: _stat(v) for k, v in area.items()},
        "methods": {},
    }
    for m, arr in maps.items():
        if m == "logits":
            continue
        frac = energy_fractions(arr, parts)
        regions["energy"][m] = frac
        out["methods"][m] = {
            **{k: _stat(v) for k, v in frac.items()},
            "by_class": {c: _stat(frac["nucleus"][y_true == i]) for i, c in enumerate(classes)},
        }
    return out


def _stat(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return {
        "mean": _round(v.mean()) if len(v) else None,
        "std": _round(v.std(ddof=1)) if len(v) > 1 else None,
        "n": len(v),
    }


def _round(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)
