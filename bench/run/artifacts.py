"""Fold models a run keeps (``save_models = true``): where they go and the card that says how to feed them.

Every job keeps its fitted model under ``<results>/<suite>/models/<job key>.keras`` (deep) or ``.joblib``
(classical pipeline: scaler, sampler, estimator), beside a ``<job key>.json`` card: classes, positive class,
decision threshold, data kind, and the feature configuration and columns (classical) or input size (deep).
:mod:`cellbench.tools.predict` reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import joblib

from cellbench.core.files import atomic_path, write_json
from cellbench.core.types import Job

CARD_FORMAT = 1
MODEL_SUFFIXES = (".keras", ".joblib")


def model_file(folder: str | os.PathLike, job: Job) -> Path:
    """Where a job's fitted model is saved."""
    return Path(folder) / f"{job.key}{'.keras' if job.model.kind == 'deep' else '.joblib'}"


def write_card(model_path: str | os.PathLike, *, job: Job, task, threshold: float) -> Path:
    """Write the JSON card beside a saved model (atomically)."""
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "job": job.key,
        "coordinates": job.coordinates(),
        "model": job.model.canonical(),
        "file": Path(model_path).name,
        "classes": list(task.classes),
        "positive": task.positive,
        "threshold": float(threshold),
        "kind": task.kind,
    }
    if job.model.kind == "deep":
        card["size"] = int(job.model.params["size"])
    else:
        card["feature_config"] = json.loads(task.feature_config) if task.feature_config else None
        card["feature_names"] = list(task.feature_names)
    return write_json(Path(model_path).with_suffix(".json"), card, indent=1, sort_keys=True)


def save_classical(pipeline, path: str | os.PathLike) -> Path:
    """Pickle a fitted classical pipeline with joblib, atomically."""
    with atomic_path(path) as tmp:
        joblib.dump(pipeline, tmp)
    return Path(path)
