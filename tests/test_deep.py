"""Deep arm: registry, pixel cache, tf.data pipeline, models, training discipline and imbalance strategies.

Tiny models, 16-32 px images and one to three epochs keep the file fast on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from cellbench.core.errors import CellbenchError, ConfigError, DataError
from cellbench.core.types import Sample

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights" / "keras"
MOBILENET_V2_FILE = WEIGHTS / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
MOBILENET_FILE = WEIGHTS / "models" / "mobilenet_2_5_224_tf_no_top.h5"
BACKBONE_NAMES = ("mobilenet_v2", "mobilenet", "resnet50", "efficientnet_b0", "densenet121")
DEEP = ["cnn", "cnn_tiny"] + [f"{b}{s}" for b in BACKBONE_NAMES for s in ("", "_ft", "_scratch")]


def blobs(n: int = 48, size: int = 16, *, n_classes: int = 2, seed: int = 0):
    """Dark noisy images; class c has a centred blob of brightness 80 + 80·c (trivially separable)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    images = rng.integers(0, 50, (n, size, size, 3)).astype(np.uint8)
    q = size // 4
    for c in range(1, n_classes):
        images[y == c, q : size - q, q : size - q] += np.uint8(80 * c)
    return images, y


def split(n: int):
    """Training fold = first 3/4, test = the rest; inner validation = last quarter of the training fold."""
    train, test = np.arange(n * 3 // 4), np.arange(n * 3 // 4, n)
    cut = len(train) * 3 // 4
    return train, test, [(np.arange(cut), np.arange(cut, len(train)))]


def run(name="cnn_tiny", strategy="none", *, n=48, size=16, n_classes=2, params=None, **kw):
    from cellbench.models.deep import train_predict
    from cellbench.models.fold import Fold

    images, y = blobs(n, size, n_classes=n_classes)
    train, test, inner = split(n)
    fold = Fold(inputs=images, y=y, train=train, test=test, n_classes=n_classes,
                positive=1 if n_classes == 2 else None, inner=inner)  # fmt: skip
    params = {"size": size, "max_epochs": 2, "batch_size": 16, **(params or {})}
    out = train_predict(name, fold, params=params, strategy=strategy, seed=7, **kw)
    return out, y[test], inner


# --------------------------------------------------------------------------------------------- registry


def test_registry_has_deep_pixel_models_and_importing_them_skips_tensorflow():
    import subprocess
    import sys

    from cellbench.models import MODELS

    for name in DEEP:
        assert MODELS[name].kind == "deep" and MODELS[name].input == "pixels", name
    code = (
        "import sys, cellbench.models, cellbench.models.deep, cellbench.models.pixels; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow  # a fresh process that imports TensorFlow and trains: ~10 s
def test_a_fresh_processs_first_deep_job_prints_no_tensorflow_start_up_lines():
    """A worker's first deep job imports TensorFlow; its C++ start-up lines (oneDNN, CPU features) stay muted."""
    import os
    import subprocess
    import sys

    code = "from tests.test_deep import run; run('cnn_tiny', n=16, params={'max_epochs': 1})"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the harness' own default applies
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=env)
    assert "oneDNN" not in out.stderr and "cpu_feature_guard" not in out.stderr, out.stderr[-2000:]


def test_focal_is_refused_for_classical_models_and_smote_for_deep_ones():
    from cellbench.models import applicable

    assert not applicable("random_forest", "focal")[0]
    assert applicable("cnn", "focal")[0]
    ok, why = applicable("cnn", "smote")
    assert not ok and "pixel" in why


# --------------------------------------------------------------------------------------------- pixel cache


def _png(path: Path, image: np.ndarray) -> Path:
    from cellbench.datasets.io import write_png

    write_png(path, image)
    return path


def test_pixel_cache_is_built_once_then_read_without_reading_images(tmp_path, monkeypatch):
    from cellbench.models import pixels as pixels_module
    from cellbench.models.pixels import pixel_cache

    rng = np.random.default_rng(0)
    shapes = [(20, 30, 3), (50, 10), (12, 12, 4), (33, 47, 3)]  # mixed sizes, grey and RGBA
    samples = []
    for i, shape in enumerate(shapes):
        img = rng.integers(0, 255, shape).astype(np.uint8)
        samples.append(Sample(id=f"s{i}", label="a", image_path=_png(tmp_path / f"{i}.png", img)))
    kw = dict(size=24, dataset_fingerprint="fp", extraction="given", cache_dir=tmp_path / "cache", progress=False)
    first = pixel_cache(samples, **kw)
    pixels = first.load()
    assert pixels.shape == (4, 24, 24, 3) and pixels.dtype == np.uint8
    assert isinstance(pixels, np.memmap) and first.ids == ("s0", "s1", "s2", "s3")

    def no_reading(path):
        raise AssertionError(f"image {path} read again")

    monkeypatch.setattr(pixels_module, "read_image", no_reading)
    second = pixel_cache(samples, **kw)
    assert second.path == first.path and np.array_equal(second.load(), pixels)
    assert not list((tmp_path / "cache" / "pixels").glob(".*tmp*"))  # written atomically


def test_cells_keep_their_aspect_ratio_and_are_padded(tmp_path):
    from cellbench.models.pixels import fit_to_square, pixel_cache

    bar = np.zeros((40, 10, 3), np.uint8)
    bar[:] = (200, 0, 0)
    out = fit_to_square(bar, 32, keep_aspect=True, pad="zeros")
    assert out[:, :12].max() == 0 and out[:, 20:].max() == 0
    assert (out[:, 12:20] == (200, 0, 0)).all()  # 10 × 40 -> 8 × 32, centred

    framed = np.full((30, 60, 3), (10, 20, 30), np.uint8)
    framed[5:-5, 5:-5] = 255
    out = fit_to_square(framed, 32, keep_aspect=True)
    assert (out[0] == (10, 20, 30)).all() and (out[-1] == (10, 20, 30)).all()  # padded with the border colour

    stretched = pixel_cache(
        [Sample(id="p", label="a", image=bar)],
        size=32,
        kind="patch",
        dataset_fingerprint="fp",
        extraction="given",
        cache_dir=tmp_path,
        progress=False,
    ).load()
    assert (stretched[0] == (200, 0, 0)).all()  # patches are resized as they are


def test_pixel_cache_bad_images_raise_or_are_skipped(tmp_path):
    from cellbench.models.pixels import pixel_cache

    good = Sample(id="good", label="a", image=np.zeros((8, 8, 3), np.uint8))
    bad = Sample(id="bad", label="a", image_path=tmp_path / "missing.png")
    kw = dict(size=16, dataset_fingerprint="fp", extraction="given", cache_dir=tmp_path, progress=False)
    with pytest.raises(DataError, match="missing.png.*on-bad-image skip"):
        pixel_cache([good, bad], **kw)
    ps = pixel_cache([good, bad], on_bad_image="skip", **kw)
    assert ps.ids == ("good",) and ps.skipped == ("bad",) and ps.load().shape[0] == 1
    with pytest.raises(ConfigError, match="from 8 to 1024"):
        pixel_cache([good], **{**kw, "size": 4})


# --------------------------------------------------------------------------------------------- tf.data pipeline


def test_augmentation_only_in_training_and_seeded():
    from cellbench.models.pixels import AugmentConfig, make_dataset

    images, y = blobs(20, 16)
    images[:, :4] = 255  # asymmetric, so flips and turns show
    aug = AugmentConfig()

    def batches(training, seed=1, epochs=1, **kw):
        ds = make_dataset(images, y, batch_size=8, training=training, augment=aug, seed=seed, **kw)
        return [np.concatenate([x.numpy() for x, _ in ds]) for _ in range(epochs)]

    (plain,) = batches(False)
    assert plain.dtype == np.float32 and np.array_equal(plain, images.astype(np.float32))  # unchanged, in order
    first, second = batches(True, epochs=2)
    assert not np.array_equal(first, images[: len(first)].astype(np.float32))
    assert not np.array_equal(first, second)  # new shuffle and augmentation each epoch
    again = batches(True, epochs=2)
    assert np.array_equal(again[0], first) and np.array_equal(again[1], second)  # same seed, same batches
    assert not np.array_equal(batches(True, seed=2)[0], first)
    rows = np.array([3, 3, 5])
    picked = np.concatenate(
        [x.numpy() for x, _ in make_dataset(images, y, batch_size=8, training=False, augment=aug, seed=1, indices=rows)]
    )
    assert np.array_equal(picked, images[rows].astype(np.float32))


def test_augment_images_are_dihedral_turns_with_mild_colour_jitter():
    from cellbench.models.pixels import AugmentConfig, augment_images

    img = np.random.default_rng(0).integers(0, 255, (1, 12, 12, 3)).astype(np.uint8)
    geometric = AugmentConfig(brightness=0, contrast=0, hue=0)
    seen = {augment_images(img, rng=np.random.default_rng(s), config=geometric)[0].tobytes() for s in range(60)}
    d4 = {np.ascontiguousarray(f(np.rot90(img[0], k))).tobytes() for k in range(4) for f in (lambda a: a, np.fliplr)}
    assert seen == d4
    jittered = augment_images(img, rng=np.random.default_rng(1), config=AugmentConfig(flips=False, rot90=False))
    assert 0 < np.abs(jittered.astype(int) - img).mean() < 40
    with pytest.raises(ConfigError, match="hue must be between 0 and 0.5"):
        AugmentConfig(hue=2.0)


# --------------------------------------------------------------------------------------------- models


def test_cnn_head_has_a_logits_layer_and_sizes_below_the_minimum_are_refused():
    from cellbench.models import resolve_params
    from cellbench.models.deep import build_model

    model, backbone = build_model("cnn", resolve_params("cnn", {"size": 32}), n_classes=2, seed=0)
    assert backbone is None and model.output_shape == (None, 1)
    assert model.get_layer("logits").activation.__name__ == "linear"
    assert model.get_layer("probs").activation.__name__ == "sigmoid"
    assert model.get_layer("bn1").momentum == 0.9
    multi, _ = build_model("cnn_tiny", resolve_params("cnn_tiny", {}), n_classes=3, seed=0)
    assert multi.output_shape == (None, 3) and multi.get_layer("probs").activation.__name__ == "softmax"
    with pytest.raises(ConfigError, match="below the minimum of 16 px for cnn"):
        build_model("cnn", resolve_params("cnn", {"size": 12}), n_classes=2, seed=0)
    with pytest.raises(ConfigError, match="minimum of 32 px for mobilenet_v2"):
        build_model("mobilenet_v2", resolve_params("mobilenet_v2", {"size": 24}), n_classes=2, seed=0)


@pytest.mark.parametrize(("mode", "module"), [("tf", "mobilenet_v2"), ("torch", "densenet"), ("caffe", "resnet50")])
def test_in_model_preprocessing_matches_the_backbones_own(mode, module):
    import importlib

    import keras

    from cellbench.models.deep import preprocess_layers

    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = importlib.import_module(f"keras.applications.{module}").preprocess_input(x.copy())
    got = keras.ops.convert_to_numpy(preprocess_layers(mode)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_mobilenet_v2_loads_imagenet_weights_offline(monkeypatch):
    if not MOBILENET_V2_FILE.is_file():
        pytest.skip(f"offline ImageNet weights not found at {MOBILENET_V2_FILE}")
    import h5py

    from cellbench.models import resolve_params
    from cellbench.models.deep import build_model, weights_path

    monkeypatch.setenv("KERAS_HOME", str(WEIGHTS))
    params = resolve_params("mobilenet_v2", {"size": 32})
    assert weights_path("mobilenet_v2", params) == str(MOBILENET_V2_FILE)
    _, backbone = build_model("mobilenet_v2", params, n_classes=2, seed=0)
    with h5py.File(MOBILENET_V2_FILE) as f:
        kernel = f["Conv1"]["Conv1"]["kernel:0"][()]
    np.testing.assert_array_equal(backbone.get_layer("Conv1").get_weights()[0], kernel)
    _, random = build_model("mobilenet_v2", {**params, "weights": "random"}, n_classes=2, seed=0)
    assert not np.array_equal(random.get_layer("Conv1").get_weights()[0], kernel)


def test_transfer_model_without_weights_fails_clearly(tmp_path, monkeypatch):
    from cellbench.models import resolve_params
    from cellbench.models.deep import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CELLBENCH_OFFLINE", "1")
    with pytest.raises(CellbenchError, match=r"ImageNet weights for ResNet50 not found in .*CELLBENCH_OFFLINE=1"):
        build_model("resnet50", resolve_params("resnet50", {"size": 32}), n_classes=2, seed=0)
    # online, a failed download is one clear error too (here: an address that refuses connections)
    import cellbench.models.deep as deep

    monkeypatch.delenv("CELLBENCH_OFFLINE")
    bad = dataclasses.replace(deep.BACKBONES["resnet50"], url="http://127.0.0.1:9/")
    monkeypatch.setitem(deep.BACKBONES, "resnet50", bad)
    with pytest.raises(CellbenchError, match=r"downloading http://127\.0\.0\.1:9/resnet50_.* failed"):
        build_model("resnet50", resolve_params("resnet50", {"size": 32}), n_classes=2, seed=0)
    with pytest.raises(ConfigError, match="weights must be one of imagenet, random"):
        build_model("resnet50", resolve_params("resnet50", {"size": 32, "weights": "bogus"}), n_classes=2, seed=0)


def test_out_of_memory_names_the_batch_size():
    import tensorflow as tf

    from cellbench.models.deep import BatchTooLargeError, _oom_guard

    with pytest.raises(BatchTooLargeError, match="batch size 64; lower batch_size"):
        with _oom_guard("cnn", 64):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


# --------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def twice():
    """The same job run twice with the same seed."""
    params = {"max_epochs": 8, "learning_rate": 0.01, "warmup": 8, "augment": False}
    return [run(n=64, params=params)[:2] for _ in range(2)]


def test_cnn_learns_a_trivially_separable_task(twice):
    from sklearn.metrics import roc_auc_score

    (out, y_test), _ = twice
    assert out.proba.shape == (len(y_test), 2)
    np.testing.assert_allclose(out.proba.sum(axis=1), 1.0)
    assert roc_auc_score(y_test, out.proba[:, 1]) > 0.8
    assert set(out.history) == {"loss", "val_loss", "accuracy", "val_accuracy", "lr"}
    assert out.epochs == len(out.history["val_loss"]) >= 1


def test_same_seed_gives_identical_predictions(twice):
    (a, _), (b, _) = twice
    np.testing.assert_array_equal(a.proba, b.proba)
    assert a.history == b.history


@pytest.mark.parametrize(
    "strategy",
    # oversample takes undersample's path (a resampled fold); in the slow tests only, to keep the default run short
    ["class_weight", pytest.param("oversample", marks=pytest.mark.slow), "undersample", "focal", "threshold"],
)
def test_strategies_run_early_stopping_sees_only_the_inner_split_and_the_refit_the_whole_fold(
    strategy, monkeypatch, tmp_path
):
    import keras

    seen = []
    fit = keras.Model.fit

    def spy(self, x, *args, validation_data=None, callbacks=(), **kw):
        seen.append(
            {
                "train": sum(int(b[0].shape[0]) for b in x),
                "val": sum(int(b[0].shape[0]) for b in validation_data) if validation_data is not None else None,
                "stopper": [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)],
            }
        )
        return fit(self, x, *args, validation_data=validation_data, callbacks=callbacks, **kw)

    monkeypatch.setattr(keras.Model, "fit", spy)
    n_classes = 3 if strategy == "focal" else 2  # focal on softmax too
    epochs = []
    out, y_test, inner = run(
        strategy=strategy,
        n_classes=n_classes,
        save_path=tmp_path / "m.keras" if strategy == "threshold" else None,
        on_epoch=lambda e, logs: epochs.append((e, logs["phase"])),
    )
    ((tr, va),) = inner
    assert seen[0]["val"] == len(va) == out.n_val
    assert seen[0]["train"] == out.n_fit
    stopper = seen[0]["stopper"][0]
    assert stopper.monitor == "val_loss" and stopper.restore_best_weights
    assert out.proba.shape == (len(y_test), n_classes)
    # stage 2: a fresh model on the whole training fold (resampled alike) for the epochs stage 1 chose
    assert len(seen) == 2 and seen[1]["val"] is None and not seen[1]["stopper"]
    refit = out.refit_epochs["head"]
    assert 1 <= refit <= out.epochs
    assert epochs == [(e, "head") for e in range(out.epochs)] + [(e, "refit") for e in range(refit)]
    n_train = len(tr) + len(va)
    assert out.inner_proba.shape == (len(va), n_classes) and len(out.inner_rows) == len(va)
    if strategy == "oversample":
        assert out.n_fit > len(tr) and seen[1]["train"] > n_train
    elif strategy == "undersample":
        assert out.n_fit < len(tr) and seen[1]["train"] < n_train
    else:
        assert seen[1]["train"] == n_train
    if strategy == "threshold":
        assert 0.0 <= out.threshold <= 1.0
        reloaded = keras.saving.load_model(tmp_path / "m.keras")
        assert reloaded.get_layer("logits") is not None
    else:
        assert out.threshold == 0.5


def test_smote_and_multiclass_threshold_are_refused():
    with pytest.raises(ConfigError, match="does not apply"):
        run(strategy="smote")
    with pytest.raises(ConfigError, match="binary tasks only"):
        run(strategy="threshold", n_classes=3)


def test_focal_loss_is_alpha_balanced():
    import keras

    from cellbench.models.losses import balanced_alpha, make_loss

    np.testing.assert_allclose(balanced_alpha(np.array([0, 0, 0, 1]), 2), [0.25, 0.75])
    loss = make_loss("focal", n_classes=2, y_train=np.array([0, 0, 0, 1]))
    assert isinstance(loss, keras.losses.BinaryFocalCrossentropy) and loss.alpha == 0.75 and loss.gamma == 2.0


def test_tune_threshold_maximises_balanced_accuracy():
    from cellbench.models.threshold import tune_threshold

    score = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.6])
    truth = np.array([0, 0, 0, 1, 1, 1])
    t = tune_threshold(truth, score)
    assert 0.2 < t <= 0.3


def test_fine_tuning_trains_the_head_then_the_top_layers(monkeypatch):
    if not MOBILENET_FILE.is_file():
        pytest.skip(f"offline ImageNet weights not found at {MOBILENET_FILE}")
    monkeypatch.setenv("KERAS_HOME", str(WEIGHTS))
    phases = []
    out, _, _ = run(
        "mobilenet_ft",  # MobileNet α=0.25: the smallest backbone, quickest to trace
        n=32,
        size=32,
        params={"max_epochs": 1, "finetune_epochs": 1, "warmup": 0},
        on_epoch=lambda e, logs: phases.append((e, logs["phase"], logs["lr"])),
    )
    # the refit replays both phases on the whole training fold at the rates they ran with
    assert [p[:2] for p in phases] == [(0, "head"), (1, "finetune"), (0, "refit"), (1, "refit")]
    assert phases[1][2] == pytest.approx(phases[0][2] / 10)
    assert [p[2] for p in phases[2:]] == pytest.approx([p[2] for p in phases[:2]])
    assert out.phases == {"head": 1, "finetune": 1} and out.refit_epochs == {"head": 1, "finetune": 1}


def test_set_phase_unfreezes_only_the_top_layers_without_batch_norm():
    import keras

    from cellbench.models.deep import set_phase

    backbone = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(32, 32, 3))
    set_phase(backbone, phase="head")
    assert not backbone.trainable_weights
    set_phase(backbone, phase="finetune", finetune_layers=10)
    trainable = [layer for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable and all(backbone.layers.index(layer) >= len(backbone.layers) - 10 for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    set_phase(backbone, phase="head", from_scratch=True)  # random weights: the whole backbone trains
    assert backbone.trainable and all(layer.trainable for layer in backbone.layers)


def test_a_phase_cut_by_max_epochs_while_still_improving_is_not_converged():
    from cellbench.models.deep import _best_epochs, _converged

    params = {"patience": 3, "warmup": 1}
    plan = [("head", 1e-3, 6)]
    falling = {"val_loss": [2.6, 2.0, 1.7, 1.4, 1.2, 1.09]}  # cut at 6 of 6 epochs, best in the last one
    assert _best_epochs(falling, {"head": 6}, params) == [6]
    assert not _converged(falling, {"head": 6}, plan, params)
    stopped = {"val_loss": [1.0, 0.8, 0.7, 0.75, 0.76, 0.77]}  # early stopping after 3 epochs without progress
    assert _best_epochs(stopped, {"head": 6}, params) == [3]
    assert _converged(stopped, {"head": 6}, [("head", 1e-3, 30)], params)
    plateau = {"val_loss": [1.0, 0.5, 0.6, 0.6, 0.6, 0.6]}  # all epochs used, but the best came long before the end
    assert _converged(plateau, {"head": 6}, plan, params)
    warm = {"val_loss": [0.1, 0.5, 0.4, 0.45, 0.5, 0.6]}  # no best during the warm-up (early stopping's rule)
    assert _best_epochs(warm, {"head": 6}, params) == [3]


def test_a_plateau_at_the_lowest_learning_rate_is_converged_not_still_improving():
    from cellbench.models.deep import _converged

    params = {"patience": 3, "warmup": 1, "min_delta": 1e-3}
    crawling = {"val_loss": [0.5, 0.2, 0.18, 0.1801, 0.1800, 0.1799, 0.1798]}  # gains below min_delta: no progress
    assert _converged(crawling, {"head": 7}, [("head", 1e-3, 7)], params)
