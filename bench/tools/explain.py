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
   (:mod:`cellbench.models.regions`), the share of each map's energy inside the nucleus, the cytoplasm and outside the
   cell over every test cell of the fold;
4. rewrites the leaderboard, which lists the galleries of each section (:func:`render_galleries`).

Nothing is written into the store.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.errors import CellbenchError, ConfigError

log = logging.getLogger("cellbench")

PREFIX = "explain-"
TARGETS = ("predicted", "true")
SANITY_IMAGES = 32
MAX_ROWS = 24  # gallery rows at most (cells per class are reduced for many classes)
# keys of a suite's data-set table that the runner reads itself (not adapter options)
RUNNER_KEYS = ("extractions", "optional", "test", "max_per_class", "max_groups")
FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class Gallery:
    """A written gallery: the PNG, the JSON beside it and the JSON's content."""

    png: Path
    json: Path
    summary: Mapping[str, Any]


def slug(*parts: str) -> str:
    """File-name-safe join (as :attr:`cellbench.report.leaderboard.Section.slug`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def explain_suite(
    *,
    suite: str | os.PathLike,
    dataset: str,
    models: Sequence[str],
    strategy: str = "none",
    extractions: Sequence[str] | None = None,
    fold: int = 0,
    methods: str | Sequence[str] = "all",
    results_root: str | os.PathLike = "results",
    data_root: Path | None = None,
    n: int = 4,
    target: str = "predicted",
    target_layer: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Gallery]:
    """Write a gallery (PNG + JSON) per model and extraction; see the module docstring.

    ``extractions`` defaults to every extraction the suite lists for ``dataset`` (``given`` when none).

    Raises
    ------
    ConfigError
        For a classical model, an unknown name, a fold out of range or a bad option.
    CellbenchError
        When the fold model cannot be had (its retraining failed: the message says why).
    """
    from cellbench.models import MODELS
    from cellbench.models.cam import parse_methods
    from cellbench.report.leaderboard import write_leaderboard
    from cellbench.run.runner import plan, prepare, results_folder
    from cellbench.run.store import STORE_NAME, Store
    from cellbench.run.suite import load_suite, validate

    methods = parse_methods(methods)
    if target not in TARGETS:
        raise ConfigError(f"unknown explained class {target!r}; allowed: {', '.join(TARGETS)}")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a positive number of cells per class and outcome, got {n!r}")
    for m in models:
        if MODELS[m].kind != "deep":
            raise ConfigError(
                f"{m!r} is a classical model; CAMs explain deep models (deep: "
                f"{', '.join(x for x in MODELS.names() if MODELS[x].kind == 'deep')}). Classical models are "
                "explained by named-feature importance: list them under the suite's [explain] models"
            )
    base = load_suite(suite)
    options = dict(base.datasets.get(dataset, {}))
    listed = list(options.get("extractions", ["given"]))
    chosen = list(extractions) if extractions else listed
    narrowed = base.narrow(datasets=[dataset], models=list(models), strategies=[strategy])
    narrowed = replace(narrowed, datasets={dataset: {**options, "extractions": chosen}})
    validate(narrowed)
    folder = results_folder(results_root, narrowed)
    prepared = prepare(narrowed, data_root=data_root, progress=progress)
    items, _ = plan(narrowed, prepared)
    stored = None
    if (folder / STORE_NAME).is_file():
        with Store.open(folder, write=False) as store:
            jobs = store.jobs(status="ok")
            keys = {j.key for j, _ in items} & set(jobs.key)
            stored = store.predictions(sorted(keys)) if keys else None
    out = []
    for p in prepared:
        for model in models:
            jobs_here = [
                (j, t)
                for j, t in items
                if j.extraction == p.extraction
                and j.model.name == model
                and j.imbalance.name == strategy
                and j.ratio is None
            ]
            if not jobs_here:
                raise ConfigError(f"{model} × {strategy} is not run on {dataset}/{p.extraction} in suite {base.name}")
            folds = sorted(j.fold for j, _ in jobs_here if j.fold >= 0)  # < 0: refits for an external test
            if fold not in folds:
                raise ConfigError(f"fold {fold} does not exist for {dataset}/{p.extraction}; folds: 0..{folds[-1]}")
            job, task_path = next((j, t) for j, t in jobs_here if j.fold == fold)
            preds = None if stored is None else stored[stored.job_key == job.key]
            out.append(
                explain_job(
                    job,
                    task_path,
                    folder=folder,
                    info=p.info,
                    stored=preds if preds is not None and len(preds) else None,
                    methods=methods,
                    n=n,
                    target=target,
                    target_layer=target_layer,
                    data_root=data_root,
                    dataset_options={k: v for k, v in options.items() if k not in RUNNER_KEYS},
                    seed=seed,
                )
            )
    if (folder / STORE_NAME).is_file():
        with Store.open(folder, write=False) as store:
            write_leaderboard(store, out_dir=folder)
    return out


def explain_job(
    job,
    task_path: str,
    *,
    folder: Path,
    info: Mapping[str, Any],
    stored: pd.DataFrame | None,
    methods: Sequence[str],
    n: int,
    target: str,
    target_layer: str | None,
    data_root: Path | None,
    dataset_options: Mapping[str, Any],
    seed: int,
) -> Gallery:
    """The gallery of one deep job (its fold model saved or retrained); see the module docstring."""
    from cellbench.models.cam import CamExplainer, sanity_check
    from cellbench.run.task import load_task

    task = load_task(str(task_path))
    model, source, preds = fold_model(job, task_path, task=task, folder=folder, stored=stored)
    size = int(job.model.params["size"])
    test = task.tests[job.fold]
    pos = {sid: i for i, sid in enumerate(task.ids)}
    preds = preds.set_index("sample_id").loc[task.ids[test]].reset_index()
    rows = np.array([pos[s] for s in preds.sample_id])
    images = np.asarray(task.images(size))[rows]
    y_true, y_pred = preds.y_true.to_numpy(int), preds.y_pred.to_numpy(int)
    explained = y_pred if target == "predicted" else y_true
    per = max(1, min(n, MAX_ROWS // (2 * len(task.classes))))  # keeps the figure readable for many classes
    if per < n:
        log.info("%d classes: %d correct and %d wrong cells per class shown (at most %d rows)", len(task.classes),
                 per, per, MAX_ROWS)  # fmt: skip
    picks = select_cells(preds, n_classes=len(task.classes), n=per)

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per randomised copy would warn about retracing
    explainer = CamExplainer(model, target_layer=target_layer, methods=methods)
    t0 = time.perf_counter()
    all_maps = explainer.explain(images, explained)
    maps_s = time.perf_counter() - t0
    log.info("%s: %d test images explained in %.1f s", job.model.name, len(rows), maps_s)

    regions = test_regions(
        job, task, preds.sample_id.tolist(), size=size, data_root=data_root, options=dataset_options, kind=task.kind
    )
    energy = energy_summary(all_maps, regions, y_true=y_true, classes=task.classes) if regions else None

    sanity_idx = sanity_indices(picks, len(rows), limit=SANITY_IMAGES)
    sanity = sanity_check(
        model,
        images[sanity_idx],
        explained[sanity_idx],
        maps={m: all_maps[m][sanity_idx] for m in explainer.methods},
        target_layer=explainer.target_layer,
        methods=explainer.methods,
        seed=seed,
    )
    parts = [job.dataset, job.extraction, job.model.name, job.imbalance.name, f"fold{job.fold}"]
    if target_layer:  # a named layer gets its own gallery beside the default one
        parts.append(explainer.target_layer.rsplit("/", 1)[-1])
    stem = PREFIX + slug(*parts)
    fig_dir = folder / "figures"
    cells = []
    for k in picks:
        cell = {
            "sample_id": str(preds.sample_id[k]),
            "true": task.classes[y_true[k]],
            "predicted": task.classes[y_pred[k]],
            "explained": task.classes[explained[k]],
            "correct": bool(y_true[k] == y_pred[k]),
            "proba": [round(float(v), 4) for v in preds.proba[k]],
            "p_predicted": round(float(preds.proba[k][y_pred[k]]), 4),
        }
        if regions:
            cell["nucleus_energy"] = {m: _round(regions["energy"][m]["nucleus"][k]) for m in explainer.methods}
        cells.append(cell)
    summary = {
        "format": FORMAT,
        "dataset": job.dataset,
        "extraction": job.extraction,
        "title": info.get("title", ""),
        "model": job.model.name,
        "strategy": job.imbalance.name,
        "fold": job.fold,
        "job": job.key,
        "model_source": source,
        "target_layer": explainer.target_layer,
        "target_shape": [int(v) for v in explainer.graph.outputs[0].shape[1:]],
        "logit_layer": explainer.logit_layer,
        "guided_activations": explainer.n_guided,
        "explained_class": target,
        "methods": list(explainer.methods),
        "method_maps": {m: _description(m) for m in explainer.methods},
        "available": available_cells(preds, task.classes),
        "cells": cells,
        "per_class": per,
        "n_test": len(rows),
        "energy": energy,
        "sanity": sanity,
        "maps_per_s": round(len(rows) / maps_s, 1) if maps_s > 0 else None,
        "png": f"{stem}.png",
    }
    png = draw_gallery(
        fig_dir / f"{stem}.png",
        images=images[picks],
        maps={m: all_maps[m][picks] for m in explainer.methods},
        cells=cells,
        outlines=None if not regions else (regions["nucleus"][picks], regions["cell"][picks]),
        title=f"{job.model.name} / {job.imbalance.name} on {job.dataset} ({job.extraction}), fold {job.fold}: maps of "
        f"the {target} class's logit; target layer {explainer.target_layer}",
    )
    path = _write_json(fig_dir / f"{stem}.json", summary)
    return Gallery(png=png, json=path, summary=summary)


# ---------------------------------------------------------------------------------------------------- the model


def fold_model(job, task_path: str, *, task, folder: Path, stored: pd.DataFrame | None):
    """The fitted model of ``job``, how it was had, and the test predictions to choose cells from.

    The model's own test-fold predictions are always computed; when the store has the job they are compared
    with the stored ones (recorded in the source dict) and the stored ones are used.

    Returns (keras.Model, source dict, predictions with ``sample_id``, ``y_true``, ``y_pred``, ``proba``).
    """
    from cellbench.models.deep import import_tensorflow_quietly

    import_tensorflow_quietly()  # before keras: TensorFlow's C++ start-up lines would interleave with output
    import keras

    from cellbench.models.deep import _proba
    from cellbench.stats.metrics import predict_labels

    path = folder / "models" / f"{job.key}.keras"
    source: dict[str, Any] = {"file": f"models/{path.name}"}
    threshold = None
    if path.is_file():
        source["how"] = "saved"
    else:
        from cellbench.run.jobs import derive_seed, run_job

        seed = derive_seed(job.seed, job.key)
        log.info("no saved model for %s fold %d: retraining it (seed %d)", job.model.name, job.fold, seed)
        result = run_job(job, str(task_path), options={"save_dir": str(path.parent)})
        if result.status != "ok":
            raise CellbenchError(f"retraining {job.model.name} fold {job.fold} failed: {result.error}")
        if not path.is_file():
            raise CellbenchError(f"retraining {job.model.name} fold {job.fold} did not save {path}")
        source.update(how="retrained", seed=seed)
        threshold = float(result.extra.get("threshold", 0.5))
    card = path.with_suffix(".json")
    if threshold is None and card.is_file():
        threshold = json.loads(card.read_text()).get("threshold")
    if threshold is None:
        if job.imbalance.name == "threshold" and stored is None:
            raise CellbenchError(f"the decision threshold of {path.name} is unknown (no card beside it, no stored job)")
        threshold = 0.5
    model = keras.models.load_model(path, compile=False)
    test = task.tests[job.fold]
    images = np.asarray(task.images(int(job.model.params["size"])))[test].astype(np.float32)
    proba = _proba(model.predict(images, batch_size=64, verbose=0), len(task.classes))
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


def test_regions(job, task, ids: Sequence[str], *, size: int, data_root, options, kind: str) -> dict[str, Any] | None:
    """Nucleus and cell masks of the test cells at the model's input size, or None when there are none."""
    from cellbench.datasets import load_dataset
    from cellbench.datasets.extraction import run_extraction, split_options
    from cellbench.models.regions import sample_regions

    if kind == "patch":
        return None
    options, tables = split_options(options)  # the suite's [datasets.D.manual|segmentation] parameters
    dataset = load_dataset(job.dataset, data_root=data_root, **options)
    extracted = run_extraction(job.extraction, dataset, options=tables.get(job.extraction), progress=False)
    by_id = {s.id: s for s in extracted.samples}
    nuclei, cells, sources = [], [], set()
    for sid in ids:
        r = sample_regions(by_id[sid], kind=kind)
        if r is None:
            return None
        f = r.fitted(size, keep_aspect=kind == "cell")
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
    from cellbench.models.cam import energy_fractions

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


def _description(method: str) -> str:
    from cellbench.models.cam import DESCRIPTIONS

    return DESCRIPTIONS[method]


# ---------------------------------------------------------------------------------------------------- files


def draw_gallery(
    path: Path,
    *,
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    cells: Sequence[Mapping[str, Any]],
    outlines: tuple[np.ndarray, np.ndarray] | None,
    title: str,
) -> Path:
    """One row per cell: the image (nucleus outlined in cyan, cell in white where known), then each map
    (scaled to its own maximum; guided maps to their 99th percentile) over the image."""
    import matplotlib

    from cellbench.models.cam import LABELS, normalise
    from cellbench.report.figures import STYLE, _figure

    shown = {m: normalise(v, percentile=99.0 if m.startswith("guided") else 100.0) for m, v in maps.items()}
    rows, cols = len(cells), 1 + len(maps)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = _figure(1.3 * cols + 0.6, 1.3 * max(rows, 1) + 0.5)
        axes = np.atleast_2d(fig.subplots(max(rows, 1), cols, squeeze=False))
        for i, cell in enumerate(cells):
            ax = axes[i, 0]
            ax.imshow(images[i], interpolation="nearest")  # blocky pixels keep the PNG small
            if outlines is not None:
                ax.contour(outlines[1][i], levels=[0.5], colors="white", linewidths=0.6)
                ax.contour(outlines[0][i], levels=[0.5], colors="cyan", linewidths=0.6)
            mark = "correct" if cell["correct"] else "WRONG"
            p = cell.get("p_predicted", max(cell["proba"]))
            ax.set_ylabel(
                f"{cell['sample_id'][-18:]}\ntrue {cell['true']}\npred {cell['predicted']} ({p:.2f})\n{mark}",
                fontsize=6,
            )
            for j, m in enumerate(maps, start=1):
                ax = axes[i, j]
                ax.imshow(images[i], interpolation="nearest")
                ax.imshow(shown[m][i], cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="nearest")
                if "nucleus_energy" in cell and cell["nucleus_energy"].get(m) is not None:
                    ax.text(
                        1,
                        1,
                        f"nuc {cell['nucleus_energy'][m]:.2f}",
                        color="white",
                        fontsize=6,
                        va="top",
                        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
                    )
        for j, m in enumerate(["image", *maps]):
            axes[0, j].set_title(LABELS.get(m, m))
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        if not cells:
            axes[0, 0].text(0.5, 0.5, "no test cells", ha="center", va="center")
        fig.suptitle(title, fontsize=8)
        return _save_palette(fig, path)


def _save_palette(fig, path: Path) -> Path:
    """Save ``fig`` as a 256-colour PNG (a third of the RGB file's size for these overlays), atomically."""
    from PIL import Image

    from cellbench.report.figures import write_atomic

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=0)
    return write_atomic(path, lambda fh: image.save(fh, format="PNG", optimize=True))


def _write_json(path: Path, obj: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------- leaderboard


def find_galleries(fig_dir: Path, section_slug: str) -> list[dict[str, Any]]:
    """The gallery JSONs of one leaderboard section (data set × extraction), sorted by file name."""
    out = []
    for p in sorted(Path(fig_dir).glob(f"{PREFIX}{section_slug}-*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if doc.get("format") == FORMAT and slug(doc.get("dataset", ""), doc.get("extraction", "")) == section_slug:
            if (p.parent / doc.get("png", "")).is_file():
                out.append({**doc, "link": f"{p.parent.name}/{doc['png']}"})
    return out


def render_galleries(
    galleries: Sequence[Mapping[str, Any]], importance: Mapping[str, pd.DataFrame] | None = None
) -> list[str]:
    """Markdown for a section's galleries: what each map is, the image, energy shares and the sanity check."""
    from tabulate import tabulate

    if not galleries:
        return []
    from cellbench.models.cam import LABELS

    methods = list(dict.fromkeys(m for g in galleries for m in g["methods"]))
    maps = {m: d for g in galleries for m, d in g["method_maps"].items()}
    lines = [
        "### Where the deep models look — class activation maps",
        "",
        "Galleries written by `python -m bench explain`. Rows: up to the given number of correctly and wrongly "
        "classified test cells per true class (the most confident of each) of one fold; first column the image "
        "(nucleus outlined in cyan, cell in white where masks exist), then each map over it, scaled to its own "
        "maximum (guided maps to their 99th percentile). Every map is computed on the class **logit** "
        "(before the sigmoid/softmax) of the class named in the gallery's title. The maps:",
        "",
        *[f"- *{LABELS.get(m, m)}*: {maps[m]}." for m in methods],
        "",
        "*Energy*: share of a map's total (non-negative) mass inside the nucleus, the cytoplasm and outside the "
        "cell, mean ± std over every test cell of the fold; *area* is the share of the image each region covers "
        "(what a map spread evenly would give). *Sanity check* (Adebayo et al. 2018): Spearman rank correlation "
        "between the trained model's maps and those of the same model with randomised top layers (cascading "
        "from the logits; *top-only*: the logit layer re-initialised, *cascade*: every weighted layer down to "
        "the target layer's convolution). Near 1 means the map does not depend on what those layers learnt.",
        "",
    ]
    for g in galleries:
        src = g["model_source"]
        how = "saved fold model" if src.get("how") == "saved" else f"fold model retrained (seed {src.get('seed')})"
        if "same_labels_as_stored" in src:
            how += (
                f"; same predicted labels as the stored run for {src['same_labels_as_stored']:.1%} of the test "
                f"cells, max |Δp| {src['max_abs_proba_diff']:.1e}"
            )
        stages = g["sanity"]["stages"]
        first, last = stages[0], stages[-1]
        shape = g.get("target_shape")
        grid = f" ({shape[0]}×{shape[1]} × {shape[2]} channels)" if shape else ""
        shown = "; ".join(
            f"{c}: {sum(1 for x in g['cells'] if x['true'] == c and x['correct'])} of {a['correct']} correct, "
            f"{sum(1 for x in g['cells'] if x['true'] == c and not x['correct'])} of {a['wrong']} wrong"
            for c, a in g["available"].items()
        )
        lines += [
            f"**{g['model']} / {g['strategy']}**, fold {g['fold']} — target layer `{g['target_layer']}`{grid}, "
            f"maps of the {g['explained_class']} class's logit (`{g['logit_layer']}`); {how}.",
            "",
            f"![CAM gallery {g['model']} / {g['strategy']}]({g['link']})",
            "",
            f"Cells shown (true class: shown of available test cells): {shown}.",
            "",
        ]
        energy = g.get("energy")
        head = ["map"]
        if energy:
            head += ["energy: nucleus", "cytoplasm", "outside cell"]
        head += [f"sanity top-only ({len(first['layers'])} layer)", f"sanity cascade ({len(last['layers'])} layers)"]
        rows = []
        for m in g["methods"]:
            row = [LABELS.get(m, m)]
            if energy:
                e = energy["methods"][m]
                row += [_ms(e["nucleus"]), _ms(e["cytoplasm"]), _ms(e["outside"])]
            row += [_ms(first["methods"][m]), _ms(last["methods"][m])]
            rows.append(row)
        if energy:
            a = energy["area_share"]
            rows.append(["*area*", _ms(a["nucleus"]), _ms(a["cytoplasm"]), _ms(a["outside"]), "", ""])
        lines += [tabulate(rows, headers=head, tablefmt="github", disable_numparse=True), ""]
        n_sanity = max(first["methods"][m]["n"] + first["methods"][m]["n_constant"] for m in g["methods"])
        layers = last["layers"]
        cascade = (
            ", ".join(f"`{p}`" for p in layers)
            if len(layers) <= 4
            else f"{len(layers)} weighted layers from `{layers[0]}` down to `{layers[-1]}`"
        )
        note = f"Sanity check on {n_sanity} test cells; cascade re-initialised {cascade}."
        if energy:
            note += f" Energy over {energy['n_cells']} test cells; regions from {'; '.join(energy['source'])}."
        lines += [note, ""]
    if importance:
        lines += _side_by_side(importance, galleries)
    return lines


def _side_by_side(importance: Mapping[str, pd.DataFrame], galleries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The classical models' importance by feature family next to the CNNs' nucleus energy."""
    lines = [
        "**Side by side**: where the classical models' evidence lies (share of the positive permutation "
        "importance per feature family) and where the CNNs look (Grad-CAM energy in the nucleus).",
        "",
    ]
    for name, df in importance.items():
        fam = df.perm_mean.clip(lower=0).groupby(df.family).sum()
        total = fam.sum()
        if total > 0:
            lines.append(
                f"- {name}: " + ", ".join(f"{k} {v / total:.0%}" for k, v in fam.sort_values(ascending=False).items())
            )
    for g in galleries:
        e = (g.get("energy") or {}).get("methods", {}).get("gradcam")
        if e and e["nucleus"]["mean"] is not None:
            a = g["energy"]["area_share"]["nucleus"]["mean"]
            lines.append(
                f"- {g['model']} / {g['strategy']} (`{g['target_layer'].rsplit('/', 1)[-1]}`): Grad-CAM energy in the "
                f"nucleus {e['nucleus']['mean']:.0%} "
                f"(nucleus area {a:.0%} of the image), in the cytoplasm {e['cytoplasm']['mean']:.0%}"
            )
        elif not g.get("energy"):
            lines.append(f"- {g['model']} / {g['strategy']}: no nucleus masks for these images, so no energy shares")
    return [*lines, ""]


def _ms(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}" if stat.get("std") is not None else f"{stat['mean']:.2f}"
