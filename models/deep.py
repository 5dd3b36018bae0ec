"""Deep models on pixels: a custom CNN and ImageNet transfer backbones, trained per fold.

Every model takes raw RGB in [0, 255] (each backbone's own preprocessing is a layer of the model, so a
saved ``.keras`` file needs nothing else), ends in a linear Dense layer named ``logits`` (Grad-CAM works
on it) and outputs probabilities from an Activation layer named ``probs`` (one sigmoid unit for binary
tasks, softmax otherwise). TensorFlow (and Keras) is imported only when a model is built or trained, never when
this module is imported, so listing the entries (:data:`DEEP_MODELS`) costs nothing on classical code paths.
"""

from __future__ import annotations

import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from cellbench.core.errors import CellbenchError, ConfigError
from cellbench.core.files import atomic_path
from cellbench.core.paths import checkout_root
from cellbench.models.entry import ModelEntry, applies
from cellbench.models.fold import Fitted, Fold
from cellbench.models.imbalance import builtin_strategy
from cellbench.models.losses import make_loss
from cellbench.models.pixels import AugmentConfig, make_dataset
from cellbench.models.threshold import tune_threshold
from cellbench.models.weights import packaged as packaged_weights

TRAINING_DEFAULTS: dict[str, Any] = {
    "size": 96,
    "max_epochs": 30,
    "batch_size": 32,
    "patience": 5,
    "min_delta": 1e-3,  # a lower validation loss counts as progress only by more than this (early stopping)
    "warmup": 3,
    "learning_rate": 1e-3,
    "augment": True,
    "refit": True,
    "refit_ema": 0.95,  # the refit's final weights: moving average over ~20 steps (0 or false: the last step's)
    "hed_augment": 0.0,  # HED colour augmentation of training batches (models.pixels.hed_jitter); 0: none
}
WEIGHTS = ("imagenet", "random")
DEEP_STRATEGIES = ("none", "class_weight", "oversample", "undersample", "focal", "threshold")


class BatchTooLargeError(CellbenchError):
    """A training or prediction batch did not fit in memory."""


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` backbone: constructor, ImageNet weight file, preprocessing, limits."""

    app: str  # constructor in keras.applications
    title: str
    weights_file: Callable[[Mapping[str, Any]], str]
    preprocess: Literal["tf", "torch", "caffe", "none"]  # as the backbone's own preprocess_input
    finetune_layers: int  # layers unfrozen at the top for fine-tuning (BatchNorm excluded)
    alpha: float | None = None  # default width multiplier (MobileNets)
    min_size: int = 32
    url: str = ""  # folder the weight files are downloaded from (as keras.applications does)


_MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
_MOBILENET_ALPHAS = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}


def _mobilenet_v2_file(p: Mapping[str, Any]) -> str:
    alpha = float(p["alpha"])
    if alpha not in _MOBILENET_V2_ALPHAS:
        raise ConfigError(f"MobileNetV2 alpha must be one of {', '.join(map(str, _MOBILENET_V2_ALPHAS))}; got {alpha}")
    # Keras names the file by input size; the 224 px weights are convolutional and fit any size
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"


def _mobilenet_file(p: Mapping[str, Any]) -> str:
    alpha = float(p["alpha"])
    if alpha not in _MOBILENET_ALPHAS:
        raise ConfigError(f"MobileNet alpha must be one of {', '.join(map(str, _MOBILENET_ALPHAS))}; got {alpha}")
    return f"mobilenet_{_MOBILENET_ALPHAS[alpha]}_224_tf_no_top.h5"


_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(
        "MobileNetV2", "MobileNetV2", _mobilenet_v2_file, "tf", 30, alpha=0.35, url=_KERAS_APPS + "mobilenet_v2/"
    ),
    "mobilenet": Backbone(
        "MobileNet", "MobileNet", _mobilenet_file, "tf", 12, alpha=0.25, url=_KERAS_APPS + "mobilenet/"
    ),
    "resnet50": Backbone(
        "ResNet50",
        "ResNet50",
        lambda p: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "caffe",
        33,
        url=_KERAS_APPS + "resnet/",
    ),
    "efficientnet_b0": Backbone(
        "EfficientNetB0",
        "EfficientNetB0",
        lambda p: "efficientnetb0_notop.h5",
        "none",
        30,
        url="https://storage.googleapis.com/keras-applications/",
    ),
    "densenet121": Backbone(
        "DenseNet121",
        "DenseNet121",
        lambda p: "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "torch",
        50,
        url=_KERAS_APPS + "densenet/",
    ),
}


# ---------------------------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class _Builder:
    """``build(params, seed, n_classes=2)`` of a deep entry: the untrained Keras model (see :func:`build_model`)."""

    name: str

    def __call__(self, params: Mapping[str, Any], seed: int, n_classes: int = 2):
        return build_model(self.name, params, n_classes=n_classes, seed=seed)[0]


def _entry(name: str, defaults: Mapping[str, Any], description: str) -> ModelEntry:
    return ModelEntry(name, "deep", "pixels", _Builder(name), {**TRAINING_DEFAULTS, **defaults}, "param", description)


def _backbone_entries(key: str, bb: Backbone) -> tuple[ModelEntry, ...]:
    """A backbone frozen on ImageNet weights, trained from scratch (``_scratch``) and fine-tuned (``_ft``)."""
    base = {"weights": "imagenet", "dropout": 0.2, **({"alpha": bb.alpha} if bb.alpha else {})}
    width = f" α={bb.alpha}" if bb.alpha else ""
    return (
        _entry(key, base, f"{bb.title}{width}, ImageNet weights, frozen backbone + trained head"),
        _entry(
            f"{key}_scratch",
            {**base, "weights": "random"},
            f"{bb.title}{width}, random initialisation, every layer trained from scratch (compare with {key} to "
            "see what ImageNet brings)",
        ),
        _entry(
            f"{key}_ft",
            {**base, "finetune_layers": bb.finetune_layers, "finetune_lr_factor": 0.1, "finetune_epochs": None},
            f"{bb.title}{width}, ImageNet weights, head trained, then the top {bb.finetune_layers} layers "
            "fine-tuned at a 10× lower learning rate",
        ),
    )


DEEP_MODELS: tuple[ModelEntry, ...] = (
    _entry(
        "cnn",
        {"filters": [32, 64, 128, 256], "dense": 128, "dropout": 0.3},
        "custom CNN: 4 conv blocks (32→256 filters, batch norm, ReLU, max-pooling), dense + dropout",
    ),
    _entry(
        "cnn_tiny",
        {"filters": [8, 16], "dense": 16, "dropout": 0.1, "size": 32, "max_epochs": 3},
        "tiny custom CNN (2 conv blocks, 8→16 filters) for smoke tests",
    ),
    *(entry for key, bb in BACKBONES.items() for entry in _backbone_entries(key, bb)),
)
_DEEP = {e.name: e for e in DEEP_MODELS}
_ADDED: dict[str, ModelEntry] = {}  # deep models added at run time (suite factories, plug-ins)


def add_deep_model(entry: ModelEntry) -> ModelEntry:
    """Make a deep ``entry`` from outside the catalog trainable here: :func:`build_model` calls its
    ``build(params, seed, n_classes=...)``, and it trains as the built-in CNNs do (one head phase, no backbone)."""
    if entry.kind != "deep" or entry.name in _DEEP:
        raise ConfigError(f"{entry.name!r} is a built-in or not a deep model; deep models: {', '.join(deep_models())}")
    _ADDED[entry.name] = entry
    return entry


def deep_entry(name: str) -> ModelEntry:
    """The entry of deep model ``name``, or a :class:`ConfigError` listing the deep models."""
    entry = _DEEP.get(name) or _ADDED.get(name)
    if entry is None:
        raise ConfigError(f"{name!r} is not a deep model; deep models: {', '.join(deep_models())}")
    return entry


def backbone_name(name: str) -> str:
    """The ``BACKBONES`` key of a model name: ``mobilenet_v2_ft`` and ``mobilenet_v2_scratch`` -> ``mobilenet_v2``."""
    return name.removesuffix("_ft").removesuffix("_scratch")


def is_transfer(name: str) -> bool:
    """Whether ``name`` is built on a ``keras.applications`` backbone (frozen, fine-tuned or from scratch)."""
    return backbone_name(name) in BACKBONES


def is_finetune(name: str) -> bool:
    return name.endswith("_ft") and is_transfer(name)


def min_input_size(name: str, params: Mapping[str, Any]) -> int:
    """The smallest input size ``name`` accepts (CNN: one pixel left after every pooling)."""
    if is_transfer(name):
        return BACKBONES[backbone_name(name)].min_size
    return 2 ** len(params["filters"])


def weights_path(name: str, params: Mapping[str, Any]) -> str:
    """The ImageNet weight file of a transfer model: found where Keras caches it, else downloaded there.

    The file is looked for in ``$KERAS_HOME/models`` (``~/.keras/models`` when ``KERAS_HOME`` is unset), then
    among the files shipped with cellbench (:mod:`cellbench.models.weights`: MobileNetV2 α=0.35, used only if
    its SHA-256 matches), then, in a development checkout, in ``../shared/weights/keras/models``. If absent it is
    downloaded into the first the usual Keras way (``keras.utils.get_file``), unless ``CELLBENCH_OFFLINE=1``.
    Always the 224 px file: its convolutional weights fit any input size, so every input size uses the same
    weights.

    Raises
    ------
    CellbenchError
        When the file is absent and cannot be downloaded (offline, or the download failed): a transfer
        model never trains from random weights under its name (ask for ``weights = "random"`` explicitly).
        When the shipped copy is damaged (its SHA-256 does not match), naming the file and both hashes.
    """
    bb = BACKBONES[backbone_name(name)]
    file = bb.weights_file(params)
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    if (home / "models" / file).is_file():
        return str(home / "models" / file)
    shipped = packaged_weights(file)  # None when not shipped; refuses a damaged copy
    if shipped is not None:
        return str(shipped)
    # a development checkout keeps small offline weights in ../shared/weights/keras
    root = checkout_root()
    shared = root.parent / "shared" / "weights" / "keras" / "models" if root is not None else None
    if shared is not None and (shared / file).is_file():
        return str(shared / file)
    where = f"ImageNet weights for {bb.title} not found in {home / 'models'} (file {file})"
    if os.environ.get("CELLBENCH_OFFLINE") == "1":
        raise CellbenchError(
            f"{where} and CELLBENCH_OFFLINE=1 forbids downloading them; put the file there (or set KERAS_HOME to "
            "a folder whose models/ holds it), or unset CELLBENCH_OFFLINE"
        )
    import keras

    try:
        return str(keras.utils.get_file(file, origin=bb.url + file, cache_subdir="models"))
    except Exception as exc:  # no network, proxy, HTTP error: one clear message instead of a traceback
        raise CellbenchError(
            f"{where} and downloading {bb.url + file} failed ({type(exc).__name__}: {exc}); put the file there "
            "or set KERAS_HOME to a folder whose models/ holds it"
        ) from None


# ---------------------------------------------------------------------------------------------------- models


def build_model(name: str, params: Mapping[str, Any], *, n_classes: int, seed: int):
    """Build the Keras model for ``name``: raw RGB (size × size × 3, 0-255) -> class probabilities.

    Returns
    -------
    (keras.Model, keras.Model | None)
        The model and, for transfer models, the backbone inside it (``None`` for the custom CNNs and for models
        added by :func:`add_deep_model`).

    Raises
    ------
    ConfigError
        For an input size below the model's minimum, an unknown ``weights`` value or a bad ``alpha``.
    CellbenchError
        When ImageNet weights are asked for and cannot be had (see :func:`weights_path`).
    """
    import keras

    entry = deep_entry(name)
    if n_classes < 2:
        raise ConfigError(f"n_classes must be at least 2, got {n_classes}")
    if name in _ADDED:  # a suite's factory or a plug-in: it builds (and checks) its own model
        return entry.build(params, seed, n_classes=n_classes), None
    size = int(params["size"])
    minimum = min_input_size(name, params)
    if size < minimum:
        raise ConfigError(
            f"input size {size} px is below the minimum of {minimum} px for {name}; use size >= {minimum}"
        )
    inputs = keras.Input((size, size, 3), name="image")
    backbone = None
    if is_transfer(name):
        backbone = make_backbone(backbone_name(name), params, size)
        x = preprocess_layers(BACKBONES[backbone_name(name)].preprocess)(inputs)
        if params["weights"] == "imagenet":
            x = backbone(x, training=False)  # BatchNorm keeps ImageNet statistics, also when fine-tuning
        else:
            x = backbone(x)  # from scratch: BatchNorm learns its statistics
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
        for i, filters in enumerate(params["filters"], start=1):
            x = keras.layers.Conv2D(int(filters), 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            # momentum 0.9, not Keras' 0.99: with few batches per epoch the moving statistics otherwise lag
            # the weights, and the model collapses to constant predictions at validation time
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = keras.layers.Activation("relu", name=f"relu{i}")(x)
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dense(int(params["dense"]), activation="relu", name="dense")(x)
    x = keras.layers.Dropout(float(params["dropout"]), seed=seed, name="dropout")(x)
    logits = keras.layers.Dense(1 if n_classes == 2 else n_classes, name="logits")(x)
    probs = keras.layers.Activation("sigmoid" if n_classes == 2 else "softmax", name="probs")(logits)
    return keras.Model(inputs, probs, name=name), backbone


def deep_models() -> list[str]:
    """Names of the deep models, in catalog order, then those added at run time."""
    return [e.name for e in DEEP_MODELS] + list(_ADDED)


def make_backbone(key: str, params: Mapping[str, Any], size: int):
    """The ``keras.applications`` backbone ``key`` (a :data:`BACKBONES` key) without its top, for ``size`` px input:
    ImageNet weights (``params["weights"] == "imagenet"``, see :func:`weights_path`) or random ones."""
    import keras

    bb = BACKBONES[key]
    if params["weights"] not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}; got {params['weights']!r}")
    kwargs = {"alpha": float(params["alpha"])} if bb.alpha else {}
    if params["weights"] == "imagenet":
        weights = weights_path(key, params)
    else:
        weights = None
        if bb.alpha:
            bb.weights_file(params)  # validates alpha
    ctor = getattr(keras.applications, bb.app)
    backbone = ctor(include_top=False, weights=weights, input_shape=(size, size, 3), **kwargs)
    if weights is None:
        # trained from scratch, BatchNorm learns its statistics: with Keras' momentum 0.99 they lag the weights
        # over the few hundred steps of a small data set and the model collapses to one class at test time
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    return backbone


# ImageNet statistics used by keras.applications.imagenet_utils.preprocess_input
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def preprocess_layers(mode: Literal["tf", "torch", "caffe", "none"]):
    """A layer (or identity) doing what the backbone's ``preprocess_input`` does to 0-255 RGB.

    ``tf``: scale to [-1, 1]; ``torch``: scale to [0, 1], normalise with ImageNet mean/std; ``caffe``:
    RGB -> BGR and subtract the ImageNet BGR mean (a frozen 1×1 linear map, so no custom layer is needed
    to load a saved model); ``none``: the backbone preprocesses itself (EfficientNet).
    """
    import keras

    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    if mode == "torch":
        return keras.Sequential(
            [
                keras.layers.Rescaling(1 / 255.0),
                keras.layers.Normalization(mean=list(_TORCH_MEAN), variance=[s**2 for s in _TORCH_STD]),
            ],
            name="preprocess",
        )
    if mode == "caffe":
        layer = keras.layers.Dense(3, trainable=False, name="preprocess")
        layer.build((None, None, None, 3))
        layer.set_weights([np.eye(3, dtype=np.float32)[::-1], -np.asarray(_CAFFE_MEAN_BGR, np.float32)])
        return layer
    if mode == "none":
        return keras.layers.Identity(name="preprocess")
    raise ConfigError(f"unknown preprocessing mode {mode!r}; allowed: tf, torch, caffe, none")


def set_phase(
    backbone, *, phase: Literal["head", "finetune"], finetune_layers: int = 0, from_scratch: bool = False
) -> None:
    """Freeze the backbone (``head``) or unfreeze its top ``finetune_layers`` layers but BatchNorm (``finetune``).

    A backbone trained ``from_scratch`` (random initialisation) is trainable in every phase: freezing random
    weights would measure random features, not the architecture.
    """
    import keras

    if backbone is None:
        return
    if from_scratch:
        backbone.trainable = True
        for layer in backbone.layers:
            layer.trainable = True
        return
    if phase == "head":
        backbone.trainable = False
        return
    if phase != "finetune":
        raise ConfigError(f"unknown training phase {phase!r}; allowed: head, finetune")
    if finetune_layers < 1:
        raise ConfigError(f"finetune_layers must be at least 1, got {finetune_layers}")
    backbone.trainable = True
    cut = max(0, len(backbone.layers) - int(finetune_layers))
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)


def compile_model(model, *, loss, learning_rate: float, n_classes: int, ema: float | None = None) -> None:
    """Compile with Adam and an ``accuracy`` metric (threshold 0.5 for the binary unit).

    With ``ema`` the weights at the end of training are an exponential moving average of the weights over the last
    steps (momentum ``ema``), as Keras' ``use_ema`` does: a refit without a validation set to pick its best epoch
    then does not end on a noisy one.
    """
    import keras

    metric = (
        keras.metrics.BinaryAccuracy(name="accuracy")
        if n_classes == 2
        else keras.metrics.CategoricalAccuracy(name="accuracy")
    )
    optimizer = (
        keras.optimizers.Adam(float(learning_rate), use_ema=True, ema_momentum=float(ema))
        if ema
        else keras.optimizers.Adam(float(learning_rate))
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C++ start-up lines (absl "oneDNN custom operations are on" and the like) muted.

    They are written to file descriptor 2 before ``TF_CPP_MIN_LOG_LEVEL`` applies, once per worker process,
    and would interleave with the progress bar; Python-level warnings and errors after the import still show.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): import as is
        import tensorflow

        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def setup_tensorflow(seed: int) -> None:
    """A fresh Keras session with every seed set and deterministic ops (bit-identical runs on CPU).

    Training always uses one intra-op thread, as in the executors' worker processes: with deterministic ops the
    result still depends on how reductions are split over threads, so a job run in the driver (``--jobs 1``, a
    retrain for ``explain``) gives the same predictions as one run in a worker.
    """
    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() != 1:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already running in this process with its own setting
            warnings.warn(
                "TensorFlow was initialised in this process before cellbench could set one intra-op thread; deep "
                "results may differ in the last digits from runs in worker processes",
                stacklevel=2,
            )

    keras.backend.clear_session()
    tf.get_logger().setLevel("ERROR")  # a new model per fold would otherwise warn about retracing
    keras.utils.set_random_seed(int(seed))
    _private_default_seeds(int(seed))
    tf.config.experimental.enable_op_determinism()


def _private_default_seeds(seed: int) -> None:
    """Give Keras its own seeded stream for the seeds of layers and initializers built without one.

    Keras draws those from the process-wide ``random`` module, which other threads of the process also draw from:
    on a Dask worker its heartbeat and retry jitter did, between ``set_random_seed`` and model building, so the same
    deep job gave other weights on some runs (cnn_tiny on the smoke set: fold 1 ROC AUC 0.18 once, 0.68 otherwise).
    A private ``random.Random(seed)`` makes every default seed a function of the job's seed alone.
    """
    from keras.src.random import seed_generator  # Keras' internal module: checked, so an upgrade cannot fail quietly

    if not callable(getattr(getattr(seed_generator, "python_random", None), "randint", None)):
        raise RuntimeError(
            "this Keras no longer draws default seeds from seed_generator.python_random; update cellbench"
        )
    seed_generator.python_random = random.Random(seed)


# ---------------------------------------------------------------------------------------------------- training


def targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Training targets: a 0/1 column for the binary unit, one-hot rows otherwise."""
    y = np.asarray(y, dtype=np.int64)
    return y.astype(np.float32).reshape(-1, 1) if n_classes == 2 else np.eye(n_classes, dtype=np.float32)[y]


def resample_indices(y: np.ndarray, strategy: str, *, seed: int) -> np.ndarray:
    """Positions into ``y`` after resampling: ``oversample`` draws every class up to the largest with
    replacement (balanced batches), ``undersample`` draws every class down to the smallest; other
    strategies keep all positions. Seeded, and shuffled."""
    y = np.asarray(y)
    if strategy not in ("oversample", "undersample"):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    target = counts.max() if strategy == "oversample" else counts.min()
    parts = [
        np.r_[np.flatnonzero(y == c), rng.choice(np.flatnonzero(y == c), target - n, replace=True)]
        if strategy == "oversample"
        else rng.choice(np.flatnonzero(y == c), target, replace=False)
        for c, n in zip(classes, counts)
    ]
    return rng.permutation(np.concatenate(parts))


def balanced_class_weight(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Keras ``class_weight`` for the classes present in ``y``: n / (k · n_c) (scikit-learn's 'balanced')."""
    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    return {int(c): float(w) for c, w in zip(present, weights)}


def train_predict(
    name: str,
    fold: Fold,
    *,
    params: Mapping[str, Any],
    strategy: str,
    seed: int,
    strategy_params: Mapping[str, Any] | None = None,
    save_path: str | os.PathLike | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> Fitted:
    """Train ``name`` on the fold's training rows (its images) and predict its test rows.

    Two stages, so that deep models learn from the same samples as classical pipelines:

    1. *Inner*: train on the inner training part with early stopping on the inner validation part (best weights
       restored, no stopping during the first ``warmup`` epochs, ReduceLROnPlateau). This chooses the epoch count per
       phase, gives the inner-validation probabilities (``Fitted.inner_proba``, read by nested model selection) and,
       for ``threshold``, the decision threshold. A phase that ran all its ``max_epochs`` while the validation loss
       still improved within the last ``patience`` epochs is *not converged* (``Fitted.converged``).
    2. *Refit* (``refit = true``, the default): a fresh model from the same seed trains on the whole training fold
       (resampled for ``strategy``) for the chosen number of epochs per phase, replaying the learning rates of stage
       1 epoch by epoch; it predicts the test rows. With ``refit = false`` the stage-1 model predicts them.

    The test rows are never seen before prediction. Transfer ``_ft`` models train the head first, then unfreeze the
    top layers at a 10× lower learning rate. ``on_epoch(epoch, logs)`` reports progress (``logs["phase"]`` is
    ``head``, ``finetune`` or ``refit``); ``save_path`` keeps the model that predicted the test rows.

    Raises
    ------
    ConfigError
        For a strategy that does not apply, bad parameters or an inner split that is not one split.
    BatchTooLargeError
        When a batch does not fit in memory (the message names the batch size to lower).
    """
    params = _training_params(name, params, strategy, strategy_params=strategy_params, positive=fold.positive)
    n_classes, positive = fold.n_classes, fold.positive
    y = np.asarray(fold.y, dtype=np.int64)
    train_idx = np.asarray(fold.train)
    split = _inner_split(y, train_idx, fold.inner or (), strategy=strategy, seed=seed)
    batch = int(params["batch_size"])
    augment = AugmentConfig.from_param(params["augment"])
    if params.get("hed_augment"):
        augment = replace(augment, hed=float(params["hed_augment"]))
    plan = _phase_plan(name, params)
    data = _Data(fold.inputs, targets(y, n_classes), batch=batch, augment=augment, seed=seed)

    def stage(rows: np.ndarray, *, val_rows: np.ndarray | None, epochs: Sequence[int] | None, lrs=None):
        setup_tensorflow(seed)
        model, backbone = build_model(name, params, n_classes=n_classes, seed=seed)
        loss = make_loss(strategy, n_classes=n_classes, y_train=y[rows])
        class_weight = balanced_class_weight(y[rows], n_classes) if strategy == "class_weight" else None
        val_ds = data.make(val_rows, training=False) if val_rows is not None else None
        steps = plan if epochs is None else [(ph, lr, n) for (ph, lr, _), n in zip(plan, epochs)]
        history, phases = _fit_phases(
            model, backbone, steps, params=params, train_ds=data.make(rows, training=True), val_ds=val_ds, loss=loss,
            class_weight=class_weight, n_classes=n_classes, on_epoch=on_epoch, lrs=lrs,
        )  # fmt: skip
        return model, history, phases, val_ds

    t_fit = time.perf_counter()
    with _oom_guard(name, batch):
        model, history, phases, val_ds = stage(split.fit, val_rows=split.val, epochs=None)
        inner_proba = probabilities(model.predict(val_ds, verbose=0), n_classes)
        threshold = 0.5
        if strategy == "threshold":
            threshold = tune_threshold(y[split.val] == positive, inner_proba[:, positive])
        best = _best_epochs(history, phases, params)
        converged = _converged(history, phases, plan, params)
        refit_epochs = None
        if params["refit"]:
            refit_epochs = dict(zip(phases, best))
            full = train_idx[resample_indices(y[train_idx], strategy, seed=seed)]
            model, _, _, _ = stage(full, val_rows=None, epochs=best, lrs=_replayed_rates(history, phases, best))
        fit_s = time.perf_counter() - t_fit
        t_pred = time.perf_counter()
        proba = np.zeros((0, n_classes))  # a final model's refit has no rows to predict
        if len(fold.test):
            test_ds = data.make(np.asarray(fold.test), training=False, labels=False)
            proba = probabilities(model.predict(test_ds, verbose=0), n_classes)
        predict_s = time.perf_counter() - t_pred
    if save_path is not None:
        save_model(model, save_path)
    return Fitted(proba=proba, threshold=threshold, fit_s=fit_s, predict_s=predict_s, n_train=split.n_train,
                  history=history, epochs=len(history["loss"]), phases=phases, n_fit=len(split.fit),
                  n_val=len(split.val), inner_rows=split.val, inner_proba=inner_proba, converged=converged,
                  refit_epochs=refit_epochs)  # fmt: skip


def _phase_starts(phases: Mapping[str, int]) -> list[int]:
    starts, at = [], 0
    for n in phases.values():
        starts.append(at)
        at += n
    return starts


def _best_epochs(history, phases: Mapping[str, int], params: Mapping[str, Any]) -> list[int]:
    """Epochs per phase up to the best validation loss as early stopping tracks it (a new best only when lower by
    more than ``min_delta``; none during the head's warm-up), at least one."""
    delta = float(params.get("min_delta", 0.0))
    out = []
    for (phase, n), start in zip(phases.items(), _phase_starts(phases)):
        losses = np.asarray(history["val_loss"][start : start + n], dtype=float)
        warm = min(int(params["warmup"]), n - 1) if phase == "head" else 0
        best_at, best = None, np.inf
        for i in range(max(warm, 0), n):
            if np.isfinite(losses[i]) and losses[i] < best - delta:
                best_at, best = i, losses[i]
        out.append(best_at + 1 if best_at is not None else max(1, n))
    return out


def _converged(history, phases: Mapping[str, int], plan, params: Mapping[str, Any]) -> bool:
    """``False`` when a phase used all its epochs while its best validation loss came in its last ``patience``."""
    patience = int(params["patience"])
    for (n, (_, _, planned)), best in zip(zip(phases.values(), plan), _best_epochs(history, phases, params)):
        if n >= planned and best > n - patience:
            return False
    return True


def _replayed_rates(history, phases: Mapping[str, int], best: Sequence[int]) -> list[list[float]]:
    """The learning rate of each epoch of stage 1, per phase, cut to the refit's epoch counts."""
    return [[float(v) for v in history["lr"][start : start + n]] for start, n in zip(_phase_starts(phases), best)]


def _training_params(
    name: str, params: Mapping[str, Any], strategy: str, *, strategy_params: Mapping[str, Any] | None,
    positive: int | None,
) -> dict[str, Any]:  # fmt: skip
    """The model's parameters (its defaults, then ``params``), once ``strategy`` is known to apply."""
    entry = deep_entry(name)
    params = entry.resolve(params)
    chosen = builtin_strategy(strategy)
    ok, why = applies(entry, chosen)
    if not ok:
        raise ConfigError(f"strategy {strategy!r} does not apply to model {name!r}: {why}")
    chosen.resolve(strategy_params or {})
    if strategy not in DEEP_STRATEGIES:
        raise ConfigError(f"strategy {strategy!r} has no deep form; deep strategies: {', '.join(DEEP_STRATEGIES)}")
    if strategy == "threshold" and positive is None:
        raise ConfigError("threshold tuning applies to binary tasks only")
    return params


@dataclass(frozen=True, kw_only=True)
class _Split:
    """Rows to fit on (after resampling) and to validate on, and the training fold's size."""

    fit: np.ndarray
    val: np.ndarray
    n_train: int


def _inner_split(
    y: np.ndarray, train_idx: np.ndarray, inner: Sequence[tuple[np.ndarray, np.ndarray]], *, strategy: str, seed: int
) -> _Split:
    """The one inner (train, validation) split as rows of ``y``, the training rows resampled for ``strategy``."""
    if len(inner) != 1:
        raise ConfigError(f"deep models need exactly one inner (train, validation) split, got {len(inner)}")
    ((tr_pos, va_pos),) = inner
    fit_idx, val_idx = train_idx[np.asarray(tr_pos)], train_idx[np.asarray(va_pos)]
    if len(fit_idx) == 0 or len(val_idx) == 0:
        raise ConfigError(f"empty inner split ({len(fit_idx)} training, {len(val_idx)} validation samples)")
    fit_idx = fit_idx[resample_indices(y[fit_idx], strategy, seed=seed)]
    return _Split(fit=fit_idx, val=val_idx, n_train=len(train_idx))


def _phase_plan(name: str, params: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(phase, learning rate, epochs): the head, then for ``_ft`` models fine-tuning at a lower rate."""
    plan = [("head", float(params["learning_rate"]), int(params["max_epochs"]))]
    if is_finetune(name):
        ft_epochs = params["finetune_epochs"] if params["finetune_epochs"] is not None else params["max_epochs"]
        plan.append(("finetune", float(params["learning_rate"]) * float(params["finetune_lr_factor"]), int(ft_epochs)))
    return plan


def _fit_phases(
    model,
    backbone,
    plan: Sequence[tuple[str, float, int]],
    *,
    params: Mapping[str, Any],
    train_ds,
    val_ds,
    loss,
    class_weight: dict[int, float] | None,
    n_classes: int,
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
    lrs: Sequence[Sequence[float]] | None = None,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Train through the phases of ``plan``; the per-epoch history (phases appended) and the epochs per phase.

    With ``lrs`` (a refit: no validation set) every phase runs its epochs at the given per-epoch learning rates,
    without early stopping.
    """
    history: dict[str, list[float]] = {k: [] for k in ("loss", "val_loss", "accuracy", "val_accuracy", "lr")}
    phases: dict[str, int] = {}
    for i, (phase, lr, epochs) in enumerate(plan):
        set_phase(
            backbone,
            phase=phase,
            finetune_layers=int(params.get("finetune_layers", 0)),
            from_scratch=params.get("weights") == "random",
        )
        ema = float(params["refit_ema"]) if lrs is not None and params.get("refit_ema") else None
        compile_model(model, loss=loss, learning_rate=lr, n_classes=n_classes, ema=ema)
        h = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            callbacks=_callbacks(
                params, on_epoch, phase=phase, offset=len(history["loss"]), rates=lrs[i] if lrs is not None else None
            ),
            class_weight=class_weight,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            verbose=0,
        )
        for k in history:
            history[k].extend(float(v) for v in h.history.get(k, []))
        phases[phase] = len(h.history.get("loss", []))
    return history, phases


def save_model(model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file, atomically (:func:`cellbench.core.files.atomic_path`)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ConfigError(f"model files end in .keras, got {path.name}")
    with atomic_path(path) as tmp:  # the temporary name keeps the .keras suffix Keras chooses the format by
        model.save(tmp)
    return path


@dataclass(frozen=True)
class _Data:
    images: np.ndarray
    targets: np.ndarray
    batch: int
    augment: Any
    seed: int

    def make(self, idx: np.ndarray, *, training: bool, labels: bool = True):
        return make_dataset(
            self.images,
            self.targets if labels else None,
            indices=idx,
            batch_size=self.batch,
            training=training,
            augment=self.augment,
            seed=self.seed,
        )


def probabilities(raw: np.ndarray, n_classes: int) -> np.ndarray:
    """Class-probability columns from the model output (one sigmoid unit for binary tasks)."""
    raw = np.asarray(raw, dtype=np.float64)
    if n_classes == 2:
        p = np.clip(raw[:, 0], 0.0, 1.0)
        return np.c_[1 - p, p]
    return raw / raw.sum(axis=1, keepdims=True)


@contextmanager
def _oom_guard(name: str, batch: int):
    """Re-raise TensorFlow's out-of-memory error as one naming the batch size to lower."""
    import_tensorflow_quietly()  # the first import of a worker's first deep job: its start-up lines muted
    import tensorflow as tf

    try:
        yield
    except tf.errors.ResourceExhaustedError as exc:
        raise BatchTooLargeError(
            f"out of memory running {name} with batch size {batch}; lower batch_size "
            f"(e.g. batch_size = {max(1, batch // 2)} in the suite's [deep] table)"
        ) from exc


def _callbacks(params: Mapping[str, Any], on_epoch, *, phase: str, offset: int,
               rates: Sequence[float] | None = None) -> list:  # fmt: skip
    import keras

    patience = int(params["patience"])
    if rates is not None:  # a refit replays stage 1's learning rates; nothing to validate on
        cbs = [
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: float(rates[min(epoch, len(rates) - 1)])),
            _lr_logger(),
        ]
        shown = "refit"
    else:
        shown = phase
        cbs = [
            _lr_logger(),  # before ReduceLROnPlateau: records the rate the epoch ran with
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=patience,
                min_delta=float(params.get("min_delta", 0.0)),
                restore_best_weights=True,
                start_from_epoch=int(params["warmup"]) if phase == "head" else 0,
            ),
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=max(1, patience // 2), min_lr=1e-6
            ),
        ]
    if on_epoch is not None:
        cbs.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(offset + epoch, {**(logs or {}), "phase": shown})
            )
        )
        if getattr(on_epoch, "batches", False):  # it takes within-epoch status too (cellbench.run.progress)
            cbs.append(_batch_reporter(on_epoch, phase=shown, offset=offset))
    return cbs


def _batch_reporter(on_epoch, *, phase: str, offset: int, every_s: float = 1.0):
    """A callback passing ``{"batch", "batches", "phase"}`` to ``on_epoch`` at most every ``every_s`` seconds, so the
    driver's bar moves within an epoch (a status file write per batch would cost more than the batch)."""
    import time

    import keras

    class BatchReporter(keras.callbacks.Callback):
        epoch, last = 0, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self.last >= every_s:
                self.last = now
                steps = (self.params or {}).get("steps")
                on_epoch(offset + self.epoch, {"phase": phase, "batch": batch + 1, "batches": steps or 0})

    return BatchReporter()


def _lr_logger():
    import keras

    class LearningRateLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    return LearningRateLogger()
