"""Frozen ImageNet backbones as feature extractors, and the heads fitted on their embeddings.

The linear-probe protocol of eva (kaiko.ai) and Patho-Bench: a frozen backbone's global-average-pooled output is
computed once per image (:func:`embed`; the run layer caches it like the handcrafted features), then small heads —
logistic regression and a one-hidden-layer MLP — are fitted per fold through the same ``imblearn`` pipeline as the
classical models, so every imbalance strategy, SMOTE included, applies.

Embedders (:data:`EMBEDDERS`) name a backbone of :data:`cellbench.models.deep.BACKBONES` with its width, or
``keras`` for any other ``keras.applications`` constructor (``app``, ``preprocess``; its weights are downloaded
the usual Keras way). The head entries are ``<embedder>_lr`` and ``<embedder>_mlp`` (input ``embeddings``),
``user_lr``/``user_mlp`` on a file of vectors the user supplies (input ``user_embeddings``, see
:mod:`cellbench.datasets.embeddings`) and ``combined_lr``/``combined_mlp`` on handcrafted features ∥ the
embeddings of their ``embedder`` (input ``combined``). TensorFlow is imported only by :func:`embed`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import stable_hash
from cellbench.models.deep import BACKBONES, make_backbone, preprocess_layers, setup_tensorflow, weights_path
from cellbench.models.entry import ModelEntry
from cellbench.models.heads import HeadMLP

EMBEDDING_VERSION = 1  # bump when the embedding computation changes
HEAD_INPUT_DTYPE = "float32"  # what the heads read: the embeddings as computed (part of a head job's key)


@dataclass(frozen=True)
class Embedder:
    """A frozen backbone: ``backbone`` a :data:`~cellbench.models.deep.BACKBONES` key (``""`` for ``keras``)."""

    name: str
    backbone: str
    alpha: float | None
    description: str


EMBEDDERS: dict[str, Embedder] = {
    e.name: e
    for e in (
        Embedder("mobilenet_v2", "mobilenet_v2", 0.35, "MobileNetV2 α=0.35 (ImageNet weights ship with cellbench)"),
        Embedder("mobilenet_v2_a050", "mobilenet_v2", 0.5, "MobileNetV2 α=0.5"),
        Embedder("mobilenet", "mobilenet", 0.25, "MobileNet α=0.25"),
        Embedder("resnet50", "resnet50", None, "ResNet50"),
        Embedder("efficientnet_b0", "efficientnet_b0", None, "EfficientNetB0"),
        Embedder("densenet121", "densenet121", None, "DenseNet121"),
        Embedder("keras", "", None, "any keras.applications backbone: app = constructor, preprocess = its mode"),
    )
}
# 224 px, the resolution the ImageNet weights were trained at: on ALL-IDB2 (257 px cells) a linear probe's balanced
# accuracy was 0.896 at 96 px and 0.962 at 224 px, on idc_dev (50 px patches, upsampled) 0.777 and 0.794
EMBEDDING_DEFAULTS: dict[str, Any] = {"size": 224, "batch_size": 64}
_KERAS_DEFAULTS = {"app": "", "preprocess": "tf"}
HEADS: dict[str, tuple[Mapping[str, Any], str]] = {
    # C = 0.01: 1,280 embedding dimensions against a few thousand rows want a strong L2; C = 1 overfitted on idc_dev
    # (balanced accuracy 0.720 against 0.777, at 3x the fit time) and was not better on ALL-IDB2 (0.954 vs 0.962)
    "lr": ({"C": 0.01, "max_iter": 5000}, "L2 logistic regression (linear probe)"),
    "mlp": (
        {"hidden": 64, "l2": 1e-2, "max_iter": 200, "learning_rate_init": 1e-3, "early_stopping": "auto",
         "patience": 10, "validation": "inner"},
        "MLP head: one hidden ReLU layer, Adam, L2, early stopping on the inner split from 1,000 training rows",
    ),
}  # fmt: skip
# parameters that choose the embedding, not the head (the head builder leaves them out)
_INPUT_KEYS = ("embedder", "size", "batch_size", "alpha", "app", "preprocess")


@dataclass(frozen=True)
class _Head:
    """``build(params, seed)`` of a head entry: the scikit-learn estimator, embedding parameters left out."""

    head: str

    def __call__(self, params: Mapping[str, Any], seed: int):
        p = {k: v for k, v in params.items() if k not in _INPUT_KEYS}
        if self.head == "lr":
            return LogisticRegression(**p, random_state=seed)
        p.pop("class_weight", None)  # weights reach the MLP as sample_weight (see the entry)
        return HeadMLP(**p, random_state=seed)


def _head_entry(name: str, head: str, input_kind: str, defaults: Mapping[str, Any], what: str) -> ModelEntry:
    head_defaults, head_text = HEADS[head]
    return ModelEntry(
        name,
        "classical",
        input_kind,
        _Head(head),
        {**defaults, **head_defaults},
        "param" if head == "lr" else "sample_weight",
        f"{head_text} on {what}",
        stops_on_inner=head == "mlp",
    )


def _embedder_defaults(e: Embedder) -> dict[str, Any]:
    out: dict[str, Any] = {"embedder": e.name, **EMBEDDING_DEFAULTS}
    if e.alpha is not None:
        out["alpha"] = e.alpha
    if not e.backbone:
        out.update(_KERAS_DEFAULTS)
    return out


HEAD_MODELS: tuple[ModelEntry, ...] = (
    *(
        _head_entry(f"{e.name}_{h}", h, "embeddings", _embedder_defaults(e), f"frozen {e.description} embeddings")
        for e in EMBEDDERS.values()
        for h in HEADS
    ),
    *(_head_entry(f"user_{h}", h, "user_embeddings", {}, "the user's embeddings file") for h in HEADS),
    *(
        _head_entry(
            f"combined_{h}",
            h,
            "combined",
            {**_embedder_defaults(EMBEDDERS["mobilenet_v2"]), "embedder": "mobilenet_v2"},
            "handcrafted features ∥ frozen-backbone embeddings (embedder = any embedder, or user)",
        )
        for h in HEADS
    ),
)


def embedding_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide an embedding (embedder, size, width, ``keras`` constructor), validated."""
    name = params.get("embedder", "")
    if name not in EMBEDDERS:
        raise ConfigError(f"unknown embedder {name!r}; embedders: {', '.join(EMBEDDERS)}")
    e = EMBEDDERS[name]
    out = {"embedder": name, "size": int(params.get("size", EMBEDDING_DEFAULTS["size"]))}
    if e.alpha is not None:
        out["alpha"] = float(params.get("alpha", e.alpha))
    if not e.backbone:
        out["app"], out["preprocess"] = str(params.get("app", "")), str(params.get("preprocess", "tf"))
        if not out["app"]:
            raise ConfigError("the keras embedder needs app = a keras.applications constructor, e.g. 'ConvNeXtTiny'")
    return out


def embedding_id(params: Mapping[str, Any]) -> str:
    """A short readable id of an embedding: ``mobilenet_v2-a0.35-96px``."""
    p = embedding_params(params)
    parts = [p.get("app") or p["embedder"]]
    if "alpha" in p:
        parts.append(f"a{p['alpha']:g}")
    parts.append(f"{p['size']}px")
    return "-".join(parts)


def weights_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the ImageNet weight file the embedding uses (``keras`` embedders: the constructor's name)."""
    p = embedding_params(params)
    e = EMBEDDERS[p["embedder"]]
    if not e.backbone:
        return f"keras.applications.{p['app']}"
    path = weights_path(e.backbone, {"alpha": p.get("alpha"), "weights": "imagenet"})
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def embedding_key(params: Mapping[str, Any], *, pixels_key: str) -> str:
    """Cache key of an embedding: the pixels it is computed from, the embedder, its weights, library versions."""
    versions = {lib: _version(lib) for lib in ("tensorflow", "tensorflow-cpu", "keras")}
    return stable_hash(
        {
            "pixels": pixels_key,
            "embedding": embedding_params(params),
            "weights": weights_digest(params),
            "versions": versions,
            "v": EMBEDDING_VERSION,
        }
    )


def _version(lib: str) -> str:
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return ""


def embed(images: np.ndarray, params: Mapping[str, Any], *, seed: int = 0, progress=None) -> np.ndarray:
    """Pooled embeddings (N × D, float32) of N × S × S × 3 uint8 ``images`` by the frozen backbone of ``params``.

    ``progress(done)`` is called after every batch. The forward pass runs with one intra-op thread and
    deterministic ops (:func:`cellbench.models.deep.setup_tensorflow`), as deep jobs do.
    """
    p = embedding_params(params)
    size = p["size"]
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ConfigError(f"embeddings need N × {size} × {size} × 3 images, got shape {images.shape}")
    setup_tensorflow(seed)
    model = _model(p)
    batch = int(params.get("batch_size", EMBEDDING_DEFAULTS["batch_size"]))
    out = np.empty((len(images), model.output_shape[-1]), dtype=np.float32)
    for start in range(0, len(images), batch):
        chunk = np.asarray(images[start : start + batch], dtype=np.float32)
        out[start : start + len(chunk)] = model.predict_on_batch(chunk)
        if progress is not None:
            progress(start + len(chunk))
    return out


def _model(p: Mapping[str, Any]):
    import keras

    size, e = p["size"], EMBEDDERS[p["embedder"]]
    inputs = keras.Input((size, size, 3), name="image")
    if e.backbone:
        backbone = make_backbone(e.backbone, {"alpha": p.get("alpha"), "weights": "imagenet"}, size)
        mode = BACKBONES[e.backbone].preprocess
    else:
        ctor = getattr(keras.applications, p["app"], None)
        if ctor is None or not callable(ctor):
            raise ConfigError(f"keras.applications has no constructor {p['app']!r}")
        backbone = ctor(include_top=False, weights="imagenet", input_shape=(size, size, 3))
        mode = p["preprocess"]
    backbone.trainable = False
    x = preprocess_layers(mode)(inputs)
    x = backbone(x, training=False)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x), name=f"embed_{p['embedder']}")
