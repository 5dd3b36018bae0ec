"""Final models: each arm's champion refit on all development data and saved with its model card (``--final``).

With ``--final`` (or ``[final] enabled = true``) every natural-ratio model × strategy is also refit on the whole
development set (fold -1: the jobs an external test set already adds, :mod:`cellbench.run.external`; without an
external set they predict nothing), with the settings CV used — the same inner validation split rule for early
stopping, threshold tuning and the inner score. Per (data set, extraction) and arm, the final model is the refit
with the best inner-validation score of the primary metric: the rule nested selection applies inside every outer
training fold (:func:`cellbench.stats.nested.arm_champions`), applied once more to all development data, so the
nested CV estimate is the estimate of exactly this procedure. No test fold and no external score chooses.

Under ``<results>/<suite>/final/``: ``<job key>.skops|.keras`` with its card ``<job key>.json``
(:mod:`cellbench.run.artifacts`) extended by a ``final`` block (arm, how it was chosen, training data
fingerprint, CV scores, external scores when present), and ``index.json`` naming the current final model of each
(data set, extraction, arm). Refits that are not champions lose their files once the champions are known; a
champion whose file is missing or changed is refit again under the same job key, so a rerun of a finished run
trains nothing and rewrites nothing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core import paths
from cellbench.core.errors import DataError
from cellbench.core.files import write_json
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Job
from cellbench.core.values import as_float, json_safe
from cellbench.run.artifacts import MODEL_SUFFIXES, check_model_file, model_file
from cellbench.run.external import REFIT_FOLD
from cellbench.run.jobs import WorkItem
from cellbench.run.prepare import Prepared
from cellbench.run.store import Store
from cellbench.run.task import load_task
from cellbench.stats.metrics import METRICS
from cellbench.stats.nested import ARM_TITLES, Champion, arm_champions, arm_of

FOLDER = "final"
INDEX = "index.json"
INDEX_FORMAT = 1
SELECTION = (
    "the arm's refit (on all development data) with the best inner-validation {metric} among its {n} model × "
    "strategy refits: a model fitted on an inner training part of the development data, scored on its inner "
    "validation part — the rule nested selection applies inside every outer training fold; no test fold or "
    "external score chose"
)


def final_folder(results_dir: str | Path) -> Path:
    """``<results>/<suite>/final``, checked to lie inside the results folder."""
    return paths.inside(results_dir, FOLDER, what="final models folder")


def add_final_jobs(items: list[WorkItem], prepared: Sequence[Prepared]) -> list[WorkItem]:
    """One refit on the whole development set per natural-ratio model × strategy of data sets without an external
    test set (those have theirs already)."""
    with_external = {(p.dataset, p.extraction) for p in prepared if p.record.external is not None}
    seen = {j.key for j, _ in items}
    refits = []
    for job, path in items:
        if job.ratio is not None or job.fold < 0 or (job.dataset, job.extraction) in with_external:
            continue
        refit = replace(job, fold=REFIT_FOLD, explain=False)
        if refit.key not in seen:
            seen.add(refit.key)
            refits.append((refit, path))
    return items + refits


@dataclass(frozen=True, kw_only=True, eq=False)
class FinalChoice:
    """One arm's final model of one (data set, extraction): its refit job and how it was chosen.

    ``candidates`` counts the arm's refits with an inner score; ``cv`` is the arm's nested champion over the outer
    folds (its mean is the CV estimate of this final model's procedure), ``None`` where CV jobs lack inner scores.
    """

    dataset: str
    extraction: str
    arm: str
    item: WorkItem
    primary: str
    inner: float
    candidates: int
    cv: Champion | None

    @property
    def job(self) -> Job:
        return self.item[0]


def choose(store: Store, items: Sequence[WorkItem], prepared: Sequence[Prepared]) -> tuple[FinalChoice, ...]:
    """Each arm's final model per prepared (data set, extraction), from the planned jobs' stored results."""
    planned = {j.key: (j, path) for j, path in items if j.ratio is None}
    jobs = store.jobs(status="ok")
    jobs = jobs[jobs.key.isin(planned)]
    out = []
    for p in prepared:
        sub = jobs[(jobs.dataset == p.dataset) & (jobs.extraction == p.extraction)]
        refits, cv = sub[sub.fold < 0], sub[sub.fold >= 0]
        primary = p.record.primary_metric
        with warnings.catch_warnings():  # refits without an external set have no outer score: NaN means
            warnings.simplefilter("ignore", RuntimeWarning)
            cv_champions = {c.arm: c for c in arm_champions(cv, primary=primary)}
            champions = arm_champions(refits, primary=primary)
        for c in champions:
            best = c.folds.iloc[0]
            arm_rows = refits[[arm_of(m, k) == c.arm for m, k in zip(refits.model, refits.kind)]]
            n = sum(bool(e.inner) and primary in e.inner for e in arm_rows.extra)
            out.append(FinalChoice(dataset=p.dataset, extraction=p.extraction, arm=c.arm, item=planned[best.key],
                                   primary=primary, inner=float(best.inner), candidates=n,
                                   cv=cv_champions.get(c.arm)))  # fmt: skip
    return tuple(out)


def needs_refit(choice: FinalChoice, folder: Path) -> bool:
    """Whether the champion's saved model is missing, has no card or no longer matches its card."""
    path = model_file(folder, choice.job)
    card = path.with_suffix(".json")
    if not path.is_file() or not card.is_file():
        return True
    try:
        check_model_file(path, json.loads(card.read_text()))
    except (DataError, ValueError):
        return True
    return False


def write_finals(store: Store, choices: Sequence[FinalChoice], items: Sequence[WorkItem],
                 prepared: Sequence[Prepared], *, folder: Path) -> Path:  # fmt: skip
    """Complete each final model's card, write ``index.json`` and remove the files of refits that are not final.

    ``items`` are the run's planned jobs (the CV scores on the cards are theirs). Entries of (data set,
    extraction)s not prepared by this run are kept. Returns the index's path.
    """
    jobs = store.jobs(status="ok")
    jobs = jobs[jobs.key.isin({j.key for j, _ in items})].set_index("key")
    entries = []
    for c in choices:
        path = model_file(folder, c.job)
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text())
        card["final"] = final_block(c, jobs, store)
        if json.loads(json.dumps(json_safe(card))) != json.loads(card_path.read_text()):
            write_json(card_path, json_safe(card), indent=1, sort_keys=True)
        entries.append(
            {
                "dataset": c.dataset,
                "extraction": c.extraction,
                "arm": c.arm,
                "model": c.job.model.name,
                "strategy": c.job.imbalance.name,
                "job": c.job.key,
                "file": path.name,
                "card": card_path.name,
            }
        )
    index_path = folder / INDEX
    redone = {(p.dataset, p.extraction) for p in prepared}
    kept = [e for e in read_index(folder) if (e["dataset"], e["extraction"]) not in redone]
    index = {"format": INDEX_FORMAT, "finals": sorted([*kept, *entries], key=_order)}
    if not index_path.is_file() or json.loads(index_path.read_text()) != index:
        write_json(index_path, index, indent=1, sort_keys=True)
    _prune(folder, {e["job"] for e in index["finals"]})
    return index_path


def read_index(folder: Path) -> list[dict[str, Any]]:
    """The entries of ``folder/index.json`` (none when it is absent)."""
    path = folder / INDEX
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"unreadable final model index {path}: {exc}") from None
    if doc.get("format") != INDEX_FORMAT:
        raise DataError(f"final model index {path} has format {doc.get('format')!r}; this version reads {INDEX_FORMAT}")
    return list(doc["finals"])


def _order(entry: dict[str, Any]) -> tuple:
    arms = list(ARM_TITLES)
    return entry["dataset"], entry["extraction"], arms.index(entry["arm"]) if entry["arm"] in arms else len(arms)


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove the model files and cards of refits that are no final model."""
    for f in folder.iterdir():
        if f.suffix in (*MODEL_SUFFIXES, ".json") and f.name != INDEX and f.stem not in keep:
            f.unlink()


def final_block(c: FinalChoice, jobs: pd.DataFrame, store: Store) -> dict[str, Any]:
    """The card's ``final`` block: arm, selection, training data, CV and external scores."""
    job, task_path = c.item
    row = jobs.loc[job.key]
    task = load_task(str(task_path))
    train, _ = task.split(REFIT_FOLD)
    y = task.y[train]
    same = jobs[
        (jobs.dataset == job.dataset)
        & (jobs.extraction == job.extraction)
        & (jobs.fold >= 0)
        & (jobs.ratio == "natural")
        & (jobs.model == job.model.name)
        & (jobs.imbalance == job.imbalance.name)
    ]
    record = store.data_sets().get((job.dataset, job.extraction))
    external = None
    if record is not None and record.external is not None:
        external = {
            "key": record.external.key,
            "rule": record.external.rule,
            "n": int(row.extra.n_test or 0),
            "metrics": dict(row.metrics),
        }
    return {
        "arm": c.arm,
        "arm_title": ARM_TITLES.get(c.arm, c.arm),
        "dataset": job.dataset,
        "extraction": job.extraction,
        "model": job.model.name,
        "strategy": job.imbalance.name,
        "primary_metric": c.primary,
        "selection": SELECTION.format(metric=c.primary, n=c.candidates),
        "inner": dict(row.extra.inner or {}),
        "training": {
            "data_fingerprint": job.data_fingerprint,
            "folds_key": job.folds_key,
            "n_samples": len(train),
            "class_counts": {name: int((y == i).sum()) for i, name in enumerate(task.classes)},
            "ids_blake2b": stable_hash(sorted(task.ids[train].tolist()), length=64),  # of the sorted sample ids
        },
        "cv": {
            "nested_mean": c.cv.mean if c.cv is not None else None,
            "nested_choices": c.cv.choices if c.cv is not None else None,
            "nested_folds": len(c.cv.folds) if c.cv is not None else 0,
            "config": _config_scores(same),
        },
        "external": external,
    }


def _config_scores(rows: pd.DataFrame) -> dict[str, Any]:
    """Mean and standard deviation over the outer folds of this model × strategy's CV jobs, per metric."""
    out: dict[str, Any] = {"folds": len(rows)}
    for m in METRICS:
        values = np.array([as_float(mt.get(m)) for mt in rows.metrics], dtype=float)
        values = values[np.isfinite(values)]
        out[m] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
        }
    return out
