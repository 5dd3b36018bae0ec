"""Prediction on new images with a final model or a saved fold model (``python -m bench predict``).

A run with ``--final`` keeps each arm's final model (:mod:`cellbench.run.final`); :func:`find_finals` reads them
back from the results folder's index, :func:`predict_finals` predicts with each. A run with ``save_models = true``
keeps every fold's model and a card beside it (:mod:`cellbench.run.artifacts`), found by :func:`find_saved`.
:func:`predict_images` reads images, extracts features or fits pixels the way training did, and returns the class
and its probability per image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.errors import ConfigError
from cellbench.datasets.io import as_rgb8, read_image, read_mask
from cellbench.datasets.stain import StainReference, normalise
from cellbench.features import FeatureConfig
from cellbench.features.extract import feature_names, feature_vector
from cellbench.models.deep import import_tensorflow_quietly, probabilities
from cellbench.models.pipeline import full_proba
from cellbench.models.pixels import fit_to_square
from cellbench.run.artifacts import CARD_FORMAT, MODEL_SUFFIXES, load_classical, load_keras
from cellbench.run.final import final_folder, read_index
from cellbench.stats.metrics import predict_labels


@dataclass(frozen=True, kw_only=True)
class SavedModel:
    """A saved fold model and its card."""

    path: Path
    card: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return self.card["model"]["kind"]

    def describe(self) -> str:
        c = self.card["coordinates"]
        return (
            f"{self.card['job'][:12]}  {c['dataset']}/{c['extraction']}  {c['model']} × {c['imbalance']}"
            f"  ratio {c['ratio']}  fold {c['fold']}"
        )


def find_saved(spec: str | os.PathLike, *, job: str | None = None) -> SavedModel:
    """The saved model named by ``spec``: a model file, or a results folder with ``job`` (a key prefix).

    Raises
    ------
    ConfigError
        When nothing or more than one model matches (the message lists the saved models to choose from).
    """
    p = Path(spec)
    if p.is_file():
        if p.suffix not in MODEL_SUFFIXES:
            old = (
                " (joblib files, which run code when loaded, are no longer read: rerun the suite)"
                if p.suffix in (".joblib", ".pkl", ".pickle")
                else ""
            )
            raise ConfigError(f"{p} is not a saved model; model files end in {' or '.join(MODEL_SUFFIXES)}{old}")
        return _load_card(p)
    if not p.is_dir():
        raise ConfigError(f"no saved model or results folder at {p}")
    folder = p / "models" if (p / "models").is_dir() else p
    saved = [_load_card(f) for f in sorted(folder.iterdir()) if f.suffix in MODEL_SUFFIXES]
    if not saved:
        raise ConfigError(
            f"no saved models in {folder}; run the suite with `save_models = true` to keep each fold's model"
        )
    matches = [s for s in saved if job is None or s.card["job"].startswith(job)]
    if len(matches) == 1:
        return matches[0]
    listing = "\n".join(f"  {s.describe()}" for s in saved[:50]) + ("\n  ..." if len(saved) > 50 else "")
    what = (
        f"no saved model's job key starts with {job!r}"
        if job is not None and not matches
        else (f"{len(matches)} saved models match; choose one with --job KEY (a key prefix)")
    )
    raise ConfigError(f"{what} in {folder}:\n{listing}")


@dataclass(frozen=True, kw_only=True)
class FinalModel:
    """One arm's final model: the saved model and its entry in the final models' index."""

    saved: SavedModel
    entry: Mapping[str, Any]

    @property
    def arm(self) -> str:
        return self.entry["arm"]

    @property
    def config(self) -> str:
        """``logistic_regression / threshold``: the model × strategy the arm's selection chose."""
        return f"{self.entry['model']} / {self.entry['strategy']}"

    def describe(self) -> str:
        e = self.entry
        return f"{e['dataset']}/{e['extraction']}  {self.arm}: {self.config}  ({self.saved.path})"


def find_finals(results_dir: str | os.PathLike, *, dataset: str | None = None, arm: str | None = None,
                suite: str = "SUITE") -> tuple[FinalModel, ...]:  # fmt: skip
    """The final models of one (data set, extraction) of a results folder (``<results>/<suite>``), in arm order.

    ``dataset`` (``NAME`` or ``NAME/EXTRACTION``) is needed when the folder has final models of more than one;
    ``arm`` keeps one arm's. ``suite`` is named in the message that says how to make final models.

    Raises
    ------
    ConfigError
        When there is no final model, or ``dataset``/``arm`` match none or leave a choice (naming the ones there).
    """
    folder = final_folder(results_dir)
    entries = read_index(folder)
    if not entries:
        raise ConfigError(
            f"no final model in {folder}; make them with `cellbench run --suite {suite} --final` (or "
            "`[final] enabled = true` in the suite file), or give a saved model with --model FILE"
        )
    sets = sorted({f"{e['dataset']}/{e['extraction']}" for e in entries})
    if dataset is not None:
        entries = [e for e in entries if dataset in (e["dataset"], f"{e['dataset']}/{e['extraction']}")]
        if not entries:
            raise ConfigError(f"no final model of data set {dataset!r} in {folder}; there are: {', '.join(sets)}")
        sets = sorted({f"{e['dataset']}/{e['extraction']}" for e in entries})
    if len(sets) > 1:
        raise ConfigError(f"{folder} has final models of {len(sets)} data sets; choose one with --dataset: "
                          f"{', '.join(sets)}")  # fmt: skip
    if arm is not None:
        arms = [e["arm"] for e in entries]
        entries = [e for e in entries if e["arm"] == arm]
        if not entries:
            raise ConfigError(f"no final model of arm {arm!r} in {folder}; arms there: {', '.join(arms)}")
    return tuple(FinalModel(saved=_load_card(folder / e["file"]), entry=e) for e in entries)


def predict_finals(
    finals: Sequence[FinalModel],
    images: Sequence[str | os.PathLike],
    *,
    masks: Sequence[str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """:func:`predict_images` of every final model, one row per image and arm (``arm`` and ``model`` columns
    after ``image``); ``masks`` go to classical models only."""
    frames = []
    for f in finals:
        table = predict_images(f.saved, images, masks=masks if f.saved.kind != "deep" else None)
        table.insert(1, "arm", f.arm)
        table.insert(2, "model", f.config)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _load_card(path: Path) -> SavedModel:
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        raise ConfigError(f"saved model {path} has no card {card_path.name} beside it; it cannot be fed safely")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"unreadable model card {card_path}: {exc}") from None
    if card.get("format") != CARD_FORMAT:
        raise ConfigError(f"model card {card_path} has format {card.get('format')!r}; this version reads {CARD_FORMAT}")
    return SavedModel(path=path, card=card)


def predict_images(
    saved: SavedModel, images: Sequence[str | os.PathLike], *, masks: Sequence[str | os.PathLike] | None = None
) -> pd.DataFrame:
    """Class and probability per image, prepared as the model's training data were.

    ``masks`` (cell masks, non-zero = cell; classical cell models only) align with ``images``; without
    them the cell is found by the same colour-based mask the features use.

    Returns
    -------
    pandas.DataFrame
        ``image``, ``class``, ``probability`` (of that class) and ``proba_<class>`` for every class.
    """
    card = saved.card
    if not images:
        raise ConfigError("no images given to predict")
    if masks is not None and len(masks) != len(images):
        raise ConfigError(f"{len(masks)} masks for {len(images)} images; give one mask per image or none")
    if masks is not None and saved.kind == "deep":
        raise ConfigError("masks apply to classical models on cell features; deep models read the pixels only")
    arrays = [read_image(p) for p in images]
    if saved.kind == "deep":
        proba = _deep_proba(saved, arrays)
    else:
        cell_masks = [read_mask(m) > 0 for m in masks] if masks is not None else [None] * len(arrays)
        proba = _classical_proba(saved, arrays, cell_masks, [str(p) for p in images])
    classes = list(card["classes"])
    labels = predict_labels(proba, positive=card["positive"], threshold=card["threshold"])
    out = pd.DataFrame(
        {
            "image": [str(p) for p in images],
            "class": [classes[i] for i in labels],
            "probability": proba[np.arange(len(labels)), labels],
        }
    )
    for c, name in enumerate(classes):
        out[f"proba_{name}"] = proba[:, c]
    return out


def _classical_proba(saved: SavedModel, images, masks, names) -> np.ndarray:
    pipeline = load_classical(saved.path, saved.card)
    return full_proba(pipeline, classical_inputs(saved, images, masks, names), len(saved.card["classes"]))


def classical_inputs(saved: SavedModel, images, masks, names) -> np.ndarray:
    """The feature rows a classical model reads for ``images`` (``masks``: a cell mask or ``None`` per image)."""
    card = saved.card
    if not card.get("feature_config"):
        raise ConfigError(f"model card of {saved.path} has no feature configuration")
    config = FeatureConfig(**card["feature_config"])
    if list(feature_names(config)) != list(card["feature_names"]):
        raise ConfigError(
            f"the features this version of cellbench computes for {saved.path.name} differ from those it was "
            "trained on; retrain it with this version"
        )
    images = stain_normalised(saved, images)
    return np.stack(
        [feature_vector(img, m, config=config, kind=card["kind"], sample=n) for img, m, n in zip(images, masks, names)]
    )


def _deep_proba(saved: SavedModel, images) -> np.ndarray:
    model = load_deep(saved)
    raw = model.predict(deep_inputs(saved, images).astype(np.float32), verbose=0, batch_size=32)
    return probabilities(raw, len(saved.card["classes"]))


def load_deep(saved: SavedModel):
    """The saved Keras model (TensorFlow imported here, quietly)."""
    import_tensorflow_quietly()  # before keras: TensorFlow's C++ start-up lines would interleave with output
    return load_keras(saved.path, saved.card)


def deep_inputs(saved: SavedModel, images) -> np.ndarray:
    """The N × S × S × 3 uint8 batch a deep model reads for ``images``, fitted to its input size as in training."""
    size = int(saved.card["size"])
    images = stain_normalised(saved, images)
    return np.stack([fit_to_square(img, size, keep_aspect=saved.card["kind"] != "patch") for img in images])


def stain_normalised(saved: SavedModel, images) -> list:
    """``images`` normalised to the stain reference the model's training fold had (as they are where it had none)."""
    stain = saved.card.get("stain")
    if not stain:
        return list(images)
    reference = StainReference(method=stain["method"], values=tuple(stain["values"]), n_images=stain["n_images"])
    if reference.key != stain["key"]:
        raise ConfigError(
            f"the stain normalisation of this version of cellbench differs from the one {saved.path.name} was "
            "trained with; retrain it with this version"
        )
    return [normalise(as_rgb8(img), reference) for img in images]
