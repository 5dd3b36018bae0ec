"""Deep models on pixels: a custom CNN and ImageNet transfer backbones, trained per fold.

Every model outputs **logits** (a final Dense layer named ``logits``); probabilities are the sigmoid or
softmax of them, and Grad-CAM style explanations work on the logit. Preprocessing is part of the model,
so a saved ``.keras`` model takes raw 0-255 RGB. TensorFlow is imported only when a deep model is
built, never when this module is imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import CellbenchError, ConfigError
from models.classical import register_model

TRAINING_DEFAULTS = {
    "size": 96,
    "max_epochs": 30,
    "batch_size": 32,
    "patience": 5,
    "warmup": 3,
    "learning_rate": 1e-3,
    "augment": True,
}


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` backbone: constructor name, weight file, preprocessing mode."""

    app: str
    module: str
    weights_file: Callable[[Mapping[str, Any]], str]
    preprocess: str  # "tf" ([-1, 1]), "torch" (ImageNet mean/std), "caffe" (BGR - mean), "none"
    min_size: int = 32
    title: str = ""


def _mobilenet_v2_file(p):
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{p['alpha']:g}_224_no_top.h5"


def _mobilenet_file(p):
    text = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}.get(float(p["alpha"]))
    if text is None:
        raise ConfigError(f"MobileNet alpha must be one of 0.25, 0.5, 0.75, 1.0, got {p['alpha']}")
    return f"mobilenet_{text}_224_tf_no_top.h5"


BACKBONES = {
    "mobilenet_v2": Backbone("MobileNetV2", "mobilenet_v2", _mobilenet_v2_file, "tf", title="MobileNetV2"),
    "mobilenet": Backbone("MobileNet", "mobilenet", _mobilenet_file, "tf", title="MobileNet"),
    "resnet50": Backbone(
        "ResNet50",
        "resnet50",
        lambda p: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "caffe",
        title="ResNet50",
    ),
    "efficientnet_b0": Backbone(
        "EfficientNetB0", "efficientnet", lambda p: "efficientnetb0_notop.h5", "none", title="EfficientNetB0"
    ),
    "densenet121": Backbone(
        "DenseNet121",
        "densenet",
        lambda p: "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "torch",
        title="DenseNet121",
    ),
}


def _register_deep(name: str, defaults: Mapping[str, Any], description: str) -> None:
    register_model(
        name,
        defaults={**TRAINING_DEFAULTS, **defaults},
        class_weight="param",
        description=description,
        kind="deep",
        input="pixels",
    )(lambda params, seed, _n=name: _n)


_register_deep(
    "cnn",
    {"filters": [32, 64, 128, 256], "dense": 128, "dropout": 0.4},
    "custom CNN: 4 conv blocks (32→256 filters), batch norm, dense + dropout",
)
_register_deep(
    "cnn_tiny",
    {"filters": [8, 16], "dense": 16, "dropout": 0.2, "max_epochs": 3, "size": 32},
    "tiny CNN for smoke tests",
)
for _key, _bb in BACKBONES.items():
    _alpha = {"mobilenet_v2": {"alpha": 0.35}, "mobilenet": {"alpha": 0.25}}.get(_key, {})
    _register_deep(
        _key,
        {**_alpha, "weights": "imagenet", "dropout": 0.2},
        f"{_bb.title}, ImageNet weights, frozen backbone + trained head",
    )
    _register_deep(
        f"{_key}_ft",
        {**_alpha, "weights": "imagenet", "dropout": 0.2, "finetune_layers": 30, "finetune_lr": 1e-4},
        f"{_bb.title}, ImageNet weights, head trained then the top layers fine-tuned",
    )


def is_transfer(name: str) -> bool:
    return name.removesuffix("_ft") in BACKBONES


def weights_path(name: str, params: Mapping[str, Any]) -> str | None:
    """Where the ImageNet weight file is: ``$KERAS_HOME/models`` or ``~/.keras/models``.

    Returns ``None`` when it is absent and ``CELLBENCH_ALLOW_DOWNLOAD=1`` lets Keras download it.

    Raises
    ------
    CellbenchError
        When the file is absent and downloading is not allowed (never train from random weights under a
        transfer model's name).
    """
    from bench.paths import REPO_ROOT

    bb = BACKBONES[name.removesuffix("_ft")]
    file = bb.weights_file(params)
    homes = [
        Path(os.environ["KERAS_HOME"]) if os.environ.get("KERAS_HOME") else None,
        Path.home() / ".keras",
        REPO_ROOT.parent / "shared" / "weights" / "keras",  # the development checkout's offline weights
    ]
    for home in [h for h in homes if h is not None]:
        if (home / "models" / file).is_file():
            return str(home / "models" / file)
    if os.environ.get("CELLBENCH_ALLOW_DOWNLOAD") == "1":
        return None
    where = " or ".join(str(h / "models") for h in homes if h is not None)
    raise CellbenchError(
        f"ImageNet weights for {bb.title} not found in {where} (file {file}); set KERAS_HOME to a folder whose "
        "models/ holds it, or allow download with CELLBENCH_ALLOW_DOWNLOAD=1"
    )


def build_model(name: str, params: Mapping[str, Any], *, n_classes: int, seed: int):
    """The Keras model for ``name``: raw RGB in [0, 255] -> logits. Returns ``(model, backbone_or_None)``."""
    import keras

    size = int(params["size"])
    units = 1 if n_classes == 2 else n_classes
    inputs = keras.Input((size, size, 3), name="image")
    if name.startswith("cnn"):
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        for i, f in enumerate(params["filters"]):
            x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
            x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
            x = keras.layers.MaxPooling2D(name=f"pool{i + 1}")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(int(params["dense"]), activation="relu")(x)
        x = keras.layers.Dropout(float(params["dropout"]), seed=seed)(x)
        return keras.Model(inputs, keras.layers.Dense(units, name="logits")(x), name=name), None
    bb = BACKBONES[name.removesuffix("_ft")]
    if size < bb.min_size:
        raise ConfigError(f"input size {size} is below {bb.title}'s minimum of {bb.min_size} px")
    if params["weights"] not in ("imagenet", "random"):
        raise ConfigError(f"weights must be 'imagenet' or 'random', got {params['weights']!r}")
    weights = weights_path(name, params) if params["weights"] == "imagenet" else None
    if params["weights"] == "imagenet" and weights is None:
        weights = "imagenet"
    kwargs = {"alpha": float(params["alpha"])} if "alpha" in params else {}
    ctor = getattr(keras.applications, bb.app)
    backbone = ctor(include_top=False, weights=weights, input_shape=(size, size, 3), **kwargs)
    x = _preprocess(inputs, bb.preprocess)
    x = backbone(x, training=False)  # BatchNorm statistics stay ImageNet's, also when fine-tuning
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(float(params["dropout"]), seed=seed)(x)
    return keras.Model(inputs, keras.layers.Dense(units, name="logits")(x), name=name), backbone


def _preprocess(x, mode: str):
    import keras

    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    if mode == "torch":
        x = keras.layers.Rescaling(1 / 255.0)(x)
        return keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.229**2, 0.224**2, 0.225**2])(x)
    if mode == "caffe":
        x = ChannelReverse()(x)
        return keras.layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0])(x)
    return x


_CHANNEL_REVERSE = None


def ChannelReverse():  # noqa: N802 - a layer factory; the class is defined lazily to keep TF out of imports
    """A layer turning RGB into BGR (Caffe-style backbones), serialisable in ``.keras`` files."""
    global _CHANNEL_REVERSE
    if _CHANNEL_REVERSE is None:
        import keras

        @keras.saving.register_keras_serializable(package="cellbench")
        class _ChannelReverse(keras.layers.Layer):
            def call(self, x):
                return x[..., ::-1]

        _CHANNEL_REVERSE = _ChannelReverse
    return _CHANNEL_REVERSE()


def setup_tensorflow(seed: int, *, threads: int | None = None) -> None:
    """Seeds and deterministic ops for one job (bit-identical training on CPU for the same seed)."""
    import keras
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _loss(strategy: str, n_classes: int, y_train: np.ndarray):
    import keras

    if strategy == "focal":
        if n_classes == 2:
            alpha = float(1 - np.mean(y_train))  # weight of the positive class: the rarer, the larger
            return keras.losses.BinaryFocalCrossentropy(
                apply_class_balancing=True, alpha=alpha, gamma=2.0, from_logits=True
            )
        return keras.losses.CategoricalFocalCrossentropy(gamma=2.0, from_logits=True)
    if n_classes == 2:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    return keras.losses.CategoricalCrossentropy(from_logits=True)


def _targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    return y.astype(np.float32).reshape(-1, 1) if n_classes == 2 else np.eye(n_classes, dtype=np.float32)[y]


def _metric(n_classes: int):
    import keras

    return (
        keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")
        if n_classes == 2
        else (keras.metrics.CategoricalAccuracy(name="accuracy"))
    )


def resample_indices(y: np.ndarray, strategy: str, *, seed: int) -> np.ndarray:
    """Training positions after the pixel-level resampling strategies (balanced batches or under-sampling)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if strategy == "oversample":
        target = counts.max()
        parts = [rng.choice(np.flatnonzero(y == c), target, replace=n < target) for c, n in zip(classes, counts)]
    elif strategy == "undersample":
        target = counts.min()
        parts = [rng.choice(np.flatnonzero(y == c), target, replace=False) for c in classes]
    else:
        return np.arange(len(y))
    return rng.permutation(np.concatenate(parts))


def probabilities(logits: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities from logits (sigmoid for one binary unit, softmax otherwise)."""
    logits = np.asarray(logits, dtype=np.float64)
    if n_classes == 2:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        return np.c_[1 - p, p]
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_predict(
    name: str,
    *,
    params: Mapping[str, Any],
    strategy: str,
    images: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    inner: Sequence[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    positive: int | None,
    seed: int,
    save_path: str | Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """Train ``name`` on the training fold and predict the test fold.

    Early stopping (after ``warmup`` epochs, best weights restored), ReduceLROnPlateau and threshold
    tuning look only at the inner validation split (``inner`` holds positions within ``train_idx``).

    Returns
    -------
    dict
        ``proba`` (n_test × n_classes), ``threshold``, ``fit_s``, ``predict_s``, ``history`` (per-epoch
        loss, val_loss, accuracy, val_accuracy, lr; fine-tuning epochs appended) and ``epochs``.
    """
    import keras

    from bench.pixels import AugmentConfig, make_dataset

    setup_tensorflow(seed)
    ((tr_pos, va_pos),) = inner
    fit_idx, val_idx = train_idx[tr_pos], train_idx[va_pos]
    y_fit = y[fit_idx]
    fit_idx = fit_idx[resample_indices(y_fit, strategy, seed=seed)]
    y_fit = y[fit_idx]
    batch = int(params["batch_size"])
    augment = AugmentConfig(enabled=bool(params["augment"]))
    train_ds = make_dataset(
        images[fit_idx], _targets(y_fit, n_classes), batch_size=batch, training=True, augment=augment, seed=seed
    )
    val_ds = make_dataset(
        images[val_idx], _targets(y[val_idx], n_classes), batch_size=batch, training=False, augment=augment, seed=seed
    )
    class_weight = None
    if strategy == "class_weight":
        counts = np.bincount(y_fit, minlength=n_classes).astype(float)
        class_weight = {c: float(len(y_fit) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}
    model, backbone = build_model(name, params, n_classes=n_classes, seed=seed)
    if backbone is not None:
        backbone.trainable = False
    history: dict[str, list[float]] = {}
    callbacks = _callbacks(params, on_epoch)
    t0 = time.perf_counter()
    loss = _loss(strategy, n_classes, y_fit)
    model.compile(
        optimizer=keras.optimizers.Adam(float(params["learning_rate"])), loss=loss, metrics=[_metric(n_classes)]
    )
    try:
        h = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=int(params["max_epochs"]),
            callbacks=callbacks,
            class_weight=class_weight,
            verbose=0,
        )
        _extend(history, h.history)
        if name.endswith("_ft") and backbone is not None:
            backbone.trainable = True
            n = int(params["finetune_layers"])
            for layer in backbone.layers[:-n]:
                layer.trainable = False
            for layer in backbone.layers[-n:]:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
            model.compile(
                optimizer=keras.optimizers.Adam(float(params["finetune_lr"])), loss=loss, metrics=[_metric(n_classes)]
            )
            h = model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=int(params["max_epochs"]),
                callbacks=_callbacks(params, on_epoch),
                class_weight=class_weight,
                verbose=0,
            )
            _extend(history, h.history)
    except Exception as exc:
        if type(exc).__name__ == "ResourceExhaustedError":
            raise CellbenchError(
                f"out of memory training {name} with batch size {batch}; lower batch_size in the suite's [deep]"
            ) from None
        raise
    fit_s = time.perf_counter() - t0
    threshold = 0.5
    if strategy == "threshold" and positive is not None:
        val_proba = probabilities(model.predict(val_ds, verbose=0), n_classes)
        threshold = tune_threshold(y[val_idx], val_proba[:, positive], positive=positive)
    t0 = time.perf_counter()
    test_ds = make_dataset(images[test_idx], None, batch_size=batch, training=False, augment=augment, seed=seed)
    proba = probabilities(model.predict(test_ds, verbose=0), n_classes)
    predict_s = time.perf_counter() - t0
    if save_path is not None:
        Path(save_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(save_path).with_suffix(".tmp.keras")
        model.save(tmp)
        tmp.replace(save_path)
    return {
        "proba": proba,
        "threshold": threshold,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "history": history,
        "epochs": len(history.get("loss", [])),
        "n_train": len(fit_idx),
        "n_val": len(val_idx),
    }


def tune_threshold(y_val: np.ndarray, score: np.ndarray, *, positive: int) -> float:
    """The decision threshold with the best balanced accuracy on the validation split."""
    from sklearn.metrics import balanced_accuracy_score

    candidates = np.unique(np.r_[0.5, np.quantile(score, np.linspace(0.02, 0.98, 49))])
    truth = y_val == positive
    scores = [balanced_accuracy_score(truth, score >= t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def _callbacks(params, on_epoch):
    import keras

    cbs = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=int(params["patience"]),
            restore_best_weights=True,
            start_from_epoch=int(params["warmup"]),
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, int(params["patience"]) // 2)
        ),
    ]
    if on_epoch is not None:
        cbs.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {}))))
    return cbs


def _extend(history: dict[str, list[float]], new: Mapping[str, Sequence[float]]) -> None:
    for k, v in new.items():
        key = "lr" if k in ("lr", "learning_rate") else k
        history.setdefault(key, []).extend(float(x) for x in v)
