"""Core types: frozen, keyword-built dataclasses shared by every package.

They carry data only; behaviour lives in the modules that use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cellbench.core.hashing import stable_hash

DataKind = Literal["cell", "crop", "patch"]
#: What a data set's images are: the kinds, in order, with what each means (cards and errors say it).
DATA_KINDS: Mapping[str, str] = {
    "cell": "single cells (one cell per image, centred)",
    "crop": "multi-cell crops (several cells and background per image)",
    "patch": "tissue or image patches (no single cell)",
}


@dataclass(frozen=True, kw_only=True, eq=False)
class Sample:
    """One cell or patch.

    ``label`` is a class name from the data set's ``classes``; ``group`` is the patient, slide or field
    id where the data say it, else ``None`` (never invented). Pixels come from ``image``, else
    ``image_source`` (a lazy reader such as one row of an HDF5 file or a centre crop of a file, see
    :class:`cellbench.datasets.io.ImageSource`; readers pass it to :func:`cellbench.datasets.io.read_image`), else
    ``image_path``; an optional cell mask from ``mask_path`` or ``mask`` (non-zero = cell). ``meta`` holds
    adapter-specific values, e.g. ``meta["fold"]`` for a predefined fold and ``meta["split"]`` for the
    release's own train/validation/test split.
    """

    id: str
    label: str
    group: str | None = None
    image_path: Path | None = None
    image: np.ndarray | None = None
    mask_path: Path | None = None
    mask: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    image_source: Any = None  # datasets.io.ImageSource; typed loosely to keep datasets out of this module


@dataclass(frozen=True, kw_only=True, eq=False)
class Annotation:
    """One annotated cell in a field: a mask, a box (x0, y0, x1, y1) or a centroid (x, y), with a class."""

    label: str
    mask: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None
    centroid: tuple[float, float] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, eq=False)
class Field:
    """A whole microscopy image with per-cell annotations."""

    id: str
    image_path: Path
    annotations: tuple[Annotation, ...] = ()
    label: str | None = None
    group: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """Dataset metadata as data (MedMNIST-style INFO record)."""

    name: str
    title: str
    description: str
    task: Literal["binary", "multiclass"]
    kind: DataKind
    classes: tuple[str, ...]
    positive_class: str | None
    primary_metric: str
    default_cv: str
    source: str
    licence: str
    citation: str
    expected_counts: Mapping[str, int] = field(default_factory=dict)
    expected_split_counts: Mapping[str, int] = field(default_factory=dict)  # per release split (train/val/test)
    group_kind: str | None = None  # "patient", "slide", "field" or None when unknown
    image_size: str = ""
    layout: str = ""
    download: str = ""
    folder_names: tuple[str, ...] = ()
    synthetic: bool = False
    families: tuple[str, ...] = ()  # default handcrafted feature families; empty: those of the data kind

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """A loaded data set: single-cell ``samples`` and/or whole ``fields``."""

    name: str
    classes: tuple[str, ...]
    positive_class: str | None
    info: DatasetInfo
    fingerprint: str
    samples: tuple[Sample, ...] = ()
    fields: tuple[Field, ...] = ()
    root: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def has_groups(self) -> bool:
        return bool(self.samples) and all(s.group is not None for s in self.samples)

    @property
    def has_predefined_folds(self) -> bool:
        return bool(self.samples) and all(s.meta.get("fold") is not None for s in self.samples)

    def class_counts(self) -> dict[str, int]:
        """Samples per class; for a data set of whole fields only, annotated cells per class."""
        counts = dict.fromkeys(self.classes, 0)
        for s in self.samples:
            counts[s.label] = counts.get(s.label, 0) + 1
        if not self.samples:
            for f in self.fields:
                for a in f.annotations:
                    if a.label in counts:
                        counts[a.label] += 1
        return counts


@dataclass(frozen=True, kw_only=True, eq=False)
class FeatureSet:
    """Named feature columns for a list of sample ids; ``skipped`` lists unreadable sample ids."""

    key: str
    X: np.ndarray
    names: tuple[str, ...]
    ids: tuple[str, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model by registry name; ``kind`` and ``input`` come from the registry entry."""

    name: str
    kind: Literal["classical", "deep"] = "classical"
    input: Literal["features", "pixels", "embeddings", "user_embeddings", "combined"] = "features"
    params: Mapping[str, Any] = field(default_factory=dict)
    plugin: Mapping[str, str] = field(default_factory=dict)  # {"estimator": "module:Class"} of a suite-named model

    def canonical(self) -> dict[str, Any]:
        # the plugin appears only when set, so the keys of catalogued models' jobs stay as they were
        extra = {"plugin": dict(self.plugin)} if self.plugin else {}
        return {"name": self.name, "kind": self.kind, "input": self.input, "params": dict(self.params), **extra}


@dataclass(frozen=True, kw_only=True)
class ImbalanceSpec:
    """An imbalance strategy by registry name with its parameters."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True, kw_only=True)
class Job:
    """One coordinate of the grid: a model × strategy × training-ratio on one fold of one data set.

    ``ratio`` is ``None`` for the natural class ratio, else the minority:majority ratio the training
    fold is subsampled to (imbalance sweep), e.g. ``"1:3"``. ``data_fingerprint`` and ``folds_key`` tie the
    job to the exact data and folds it ran on.
    """

    suite: str
    dataset: str
    extraction: str
    model: ModelSpec
    imbalance: ImbalanceSpec
    fold: int
    seed: int
    cv: str
    ratio: str | None = None
    data_fingerprint: str = ""
    folds_key: str = ""
    explain: bool = False
    external: str = ""  # key of an external test set the job also scores (see bench.external); fold -1: refit
    inputs: str = ""  # cache key of the embeddings an embedding head reads (backbone weights, pixels, user file)
    stain: str = ""  # stain normalisation and its per-fold references (cellbench.run.stain); "" for none
    features: str = ""  # key of a feature set other than its kind's keyless one (run.prepare.feature_set_key); or ""

    def canonical(self) -> dict[str, Any]:
        # the suite name is left out: the same computation in two suites is the same job; optional keys
        # appear only when set, so the keys of jobs without them stay as they were
        extra = {"explain": True} if self.explain else {}
        if self.external:
            extra["external"] = self.external
        if self.inputs:
            extra["inputs"] = self.inputs
        if self.stain:
            extra["stain"] = self.stain
        if self.features:
            extra["features"] = self.features
        return {
            **extra,
            "dataset": self.dataset,
            "data_fingerprint": self.data_fingerprint,
            "extraction": self.extraction,
            "model": self.model.canonical(),
            "imbalance": self.imbalance.canonical(),
            "ratio": self.ratio,
            "fold": self.fold,
            "seed": self.seed,
            "cv": self.cv,
            "folds_key": self.folds_key,
        }

    @property
    def key(self) -> str:
        return stable_hash(self.canonical(), length=24)

    def coordinates(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "dataset": self.dataset,
            "extraction": self.extraction,
            "model": self.model.name,
            "kind": self.model.kind,
            "imbalance": self.imbalance.name,
            "ratio": self.ratio or "natural",
            "fold": self.fold,
            "seed": self.seed,
            "cv": self.cv,
        }


@dataclass(frozen=True, kw_only=True)
class Importance:
    """Named-feature importance of one classical fold model: permutation (on the test fold) and model-native."""

    permutation: Mapping[str, float]
    native: Mapping[str, float] | None = None


@dataclass(frozen=True, kw_only=True)
class ExternalScore:
    """A CV fold model's metrics on the data set's external test set (``n`` samples)."""

    metrics: Mapping[str, Any]
    n: int


@dataclass(frozen=True, kw_only=True)
class JobExtra:
    """What a job records besides its metrics and predictions (stored as JSON, only the fields that are set).

    ``threshold`` is the decision threshold its predictions used; ``n_train``/``n_test`` the sizes of its training
    and test part (the corrected t-test reads them); ``train_counts`` the training samples per class (classical);
    ``history``/``epochs``/``n_val`` the deep training curves, epochs run and inner-validation size;
    ``importance`` named-feature importance; ``external`` the fold model's score on the external test set;
    ``inner`` the metrics on the inner validation part of a model fitted on the inner training part (what nested
    model selection ranks by; never the test fold); ``inner_grouped`` whether that inner split kept patients apart
    (``False``: it fell back to a split of samples, see :func:`cellbench.run.cv.inner_split`; ``None``: no groups
    known); ``converged`` ``False`` for a deep model stopped by ``max_epochs`` while still improving;
    ``refit_epochs`` the epochs per phase a deep model was refitted for on the whole training fold;
    ``warnings`` the distinct warnings the job raised; ``traceback`` where an unexpected error came from.
    """

    threshold: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    train_counts: tuple[int, ...] | None = None
    importance: Importance | None = None
    history: Mapping[str, Sequence[float]] | None = None
    epochs: int | None = None
    n_val: int | None = None
    external: ExternalScore | None = None
    inner: Mapping[str, Any] | None = None
    inner_grouped: bool | None = None
    converged: bool | None = None
    refit_epochs: Mapping[str, int] | None = None
    warnings: tuple[str, ...] = ()
    traceback: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stored JSON: the fields that are set, nested records as objects."""
        out: dict[str, Any] = {}
        for name in ("threshold", "n_train", "n_test", "epochs", "n_val", "inner_grouped", "converged"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.train_counts is not None:
            out["train_counts"] = list(self.train_counts)
        if self.importance is not None:
            out["importance"] = {"permutation": dict(self.importance.permutation), "native": self.importance.native}
        if self.history is not None:
            out["history"] = {k: list(v) for k, v in self.history.items()}
        if self.external is not None:
            out["external"] = {"metrics": dict(self.external.metrics), "n": self.external.n}
        if self.inner is not None:
            out["inner"] = dict(self.inner)
        if self.refit_epochs is not None:
            out["refit_epochs"] = dict(self.refit_epochs)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.traceback:
            out["traceback"] = self.traceback
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobExtra:
        """Read :meth:`as_json`'s output back (keys it does not know are ignored)."""
        imp, ext = data.get("importance"), data.get("external")
        counts = data.get("train_counts")
        return cls(
            threshold=data.get("threshold"),
            n_train=data.get("n_train"),
            n_test=data.get("n_test"),
            train_counts=tuple(counts) if counts is not None else None,
            importance=Importance(permutation=imp["permutation"], native=imp.get("native")) if imp else None,
            history=data.get("history"),
            epochs=data.get("epochs"),
            n_val=data.get("n_val"),
            external=ExternalScore(metrics=ext["metrics"], n=int(ext["n"])) if ext else None,
            inner=data.get("inner"),
            inner_grouped=data.get("inner_grouped"),
            converged=data.get("converged"),
            refit_epochs=data.get("refit_epochs"),
            warnings=tuple(data.get("warnings", ())),
            traceback=data.get("traceback", ""),
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class JobResult:
    """What a job produced. ``predictions`` has columns sample_id, y_true, y_pred and proba_<class>."""

    key: str
    coordinates: Mapping[str, Any]
    status: Literal["ok", "error"]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    predictions: Any = None  # pandas.DataFrame; typed loosely to keep pandas out of this module
    timings: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    extra: JobExtra = field(default_factory=JobExtra)
    external_predictions: Any = None  # a fold model's predictions of the external test set, same columns
