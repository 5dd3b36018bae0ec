"""Fold models a run keeps (``save_models = true``): where they go, how they are saved and loaded safely, and the
card that says how to feed them.

Every job keeps its fitted model under ``<results>/<suite>/models/<job key>.keras`` (deep) or ``.skops``
(classical pipeline: scaler, sampler, estimator), beside a ``<job key>.json`` card: classes, positive class,
decision threshold, data kind, the feature configuration and columns (classical) or input size (deep), and the
model file's SHA-256. :mod:`cellbench.tools.predict` reads them back.

No file is trusted to run code. Classical models are written with skops, whose loader builds only the types it is
told to trust: here the types of scikit-learn, imbalanced-learn, XGBoost and cellbench's own models
(:data:`TRUSTED_MODULES`); a file naming anything else is refused with the list. Keras files are loaded with
``safe_mode`` (no Python lambdas deserialised). Before either loader runs, the file's SHA-256 is checked against
its card, so a file swapped or damaged after the run is refused too. joblib/pickle files, which run code when
loaded, are not read at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cellbench.core.errors import DataError
from cellbench.core.files import atomic_path, write_json
from cellbench.core.hashing import file_sha256
from cellbench.core.types import Job

CARD_FORMAT = 2
MODEL_SUFFIXES = (".keras", ".skops")
TRUSTED_MODULES = ("sklearn", "imblearn", "xgboost", "cellbench.models")


def model_file(folder: str | os.PathLike, job: Job) -> Path:
    """Where a job's fitted model is saved."""
    return Path(folder) / f"{job.key}{'.keras' if job.model.kind == 'deep' else '.skops'}"


def write_card(model_path: str | os.PathLike, *, job: Job, task, threshold: float) -> Path:
    """Write the JSON card beside a saved model (atomically), with the model file's SHA-256."""
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "job": job.key,
        "coordinates": job.coordinates(),
        "model": job.model.canonical(),
        "file": Path(model_path).name,
        "sha256": file_sha256(model_path),
        "classes": list(task.classes),
        "positive": task.positive,
        "threshold": float(threshold),
        "kind": task.kind,
    }
    if task.by_fold is not None:  # the reference new images must be normalised to before this model reads them
        card["stain"] = json.loads(task.fold_inputs(job.fold).reference)
    if job.model.kind == "deep":
        card["size"] = int(job.model.params["size"])
    else:
        card["feature_config"] = json.loads(task.feature_config) if task.feature_config else None
        card["feature_names"] = list(task.feature_names)
    return write_json(Path(model_path).with_suffix(".json"), card, indent=1, sort_keys=True)


def save_classical(pipeline, path: str | os.PathLike) -> Path:
    """Write a fitted classical pipeline with skops, atomically."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(pipeline, tmp)
    return Path(path)


def check_model_file(path: str | os.PathLike, card: dict[str, Any]) -> None:
    """Refuse a model file whose bytes are not those its card recorded.

    Raises
    ------
    DataError
        When the card has no ``sha256`` or the file's differs.
    """
    expected = card.get("sha256")
    if not expected:
        raise DataError(f"the card of {path} records no SHA-256; the model file cannot be checked, so it is not read")
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"saved model {path} was changed after it was saved (SHA-256 {actual[:12]}…, its card says "
            f"{expected[:12]}…); rerun the suite to save it again"
        )


def untrusted_types(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The types a skops file names beyond skops' defaults: (trusted here, refused)."""
    import skops.io as sio

    try:
        named = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip that skops cannot parse: any of several exception types
        raise DataError(f"cannot read saved model {path}: {type(exc).__name__}: {exc}") from None
    ok = [t for t in named if any(t.startswith(f"{m}.") for m in TRUSTED_MODULES)]
    return ok, [t for t in named if t not in ok]


def load_classical(path: str | os.PathLike, card: dict[str, Any]):
    """A saved classical pipeline, after its checksum and the types it names are checked.

    Raises
    ------
    DataError
        When the file was changed, cannot be parsed, or names a type outside :data:`TRUSTED_MODULES`
        (the message lists them).
    """
    import skops.io as sio

    check_model_file(path, card)
    trusted, refused = untrusted_types(path)
    if refused:
        raise DataError(
            f"saved model {path} names types cellbench does not load: {', '.join(refused)}; "
            f"only types from {', '.join(TRUSTED_MODULES)} are trusted"
        )
    try:
        return sio.load(path, trusted=trusted)
    except Exception as exc:
        raise DataError(f"cannot load saved model {path}: {type(exc).__name__}: {exc}") from None


def load_keras(path: str | os.PathLike, card: dict[str, Any] | None):
    """A saved Keras model loaded with ``safe_mode`` (after its checksum where a card is given).

    Raises
    ------
    DataError
        When the file was changed or Keras cannot load it (with Keras' reason).
    """
    import keras

    if card is not None:
        check_model_file(path, card)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, KeyError… for a bad file
        raise DataError(f"cannot load saved Keras model {path}: {type(exc).__name__}: {exc}") from None
