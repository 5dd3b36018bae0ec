"""Deep arm: models, weights, augmentation, training discipline and determinism (tiny, fast settings)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench.errors import CellbenchError, ConfigError
from models import MODELS, applicable

pytest.importorskip("tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WEIGHTS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "weights", "keras")


def blobs(n=48, size=32, seed=0):
    """Bright-blob (class 1) vs dark-blob (class 0) images: trivially separable."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(90, 130, (n, size, size, 3)).astype(np.uint8)
    c = size // 2
    x[y == 1, c - 6 : c + 6, c - 6 : c + 6] = 240
    x[y == 0, c - 6 : c + 6, c - 6 : c + 6] = 20
    return x, y


def _train(name="cnn_tiny", strategy="none", seed=0, **params):
    from models.classical import resolve_params
    from models.deep import train_predict

    x, y = blobs()
    idx = np.arange(len(y))
    train, test = idx[:36], idx[36:]
    inner = [(np.arange(0, 28), np.arange(28, 36))]
    p = resolve_params(name, {"max_epochs": 3, "batch_size": 8, "warmup": 1, **params})
    return train_predict(
        name,
        params=p,
        strategy=strategy,
        images=x,
        y=y,
        train_idx=train,
        test_idx=test,
        inner=inner,
        n_classes=2,
        positive=1,
        seed=seed,
    ), y[test]


def test_registry_has_deep_models_on_pixels():
    for name in ("cnn", "mobilenet_v2", "mobilenet_v2_ft", "resnet50", "efficientnet_b0", "densenet121"):
        entry = MODELS[name]
        assert entry.kind == "deep" and entry.input == "pixels"
    assert not applicable("cnn", "smote")[0] and "does not apply to pixel models" in applicable("cnn", "smote")[1]
    assert not applicable("svm", "focal")[0]


def test_importing_models_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, models, bench.runner; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cnn_learns_a_separable_task_and_reports_history():
    out, y_test = _train(max_epochs=6, learning_rate=3e-3, augment=False)
    assert out["proba"].shape == (len(y_test), 2)
    acc = ((out["proba"][:, 1] >= 0.5) == y_test).mean()
    assert acc > 0.7
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(out["history"])
    assert out["n_val"] == 8  # early stopping saw only the inner validation split


def test_same_seed_same_predictions():
    a, _ = _train(seed=5)
    b, _ = _train(seed=5)
    np.testing.assert_array_equal(a["proba"], b["proba"])


@pytest.mark.parametrize("strategy", ["class_weight", "oversample", "undersample", "focal", "threshold"])
def test_deep_strategies_run(strategy):
    out, y_test = _train(strategy=strategy, max_epochs=1)
    assert np.isfinite(out["proba"]).all() and 0 <= out["threshold"] <= 1


def test_augmentation_only_in_training_and_deterministic():
    from bench.pixels import AugmentConfig, make_dataset

    x, y = blobs(n=16)
    test = np.concatenate(
        [b.numpy() for b in make_dataset(x, None, batch_size=8, training=False, augment=AugmentConfig(), seed=0)]
    )
    np.testing.assert_array_equal(test, x.astype(np.float32))
    a = [b[0].numpy() for b in make_dataset(x, y, batch_size=8, training=True, augment=AugmentConfig(), seed=1)]
    b = [b[0].numpy() for b in make_dataset(x, y, batch_size=8, training=True, augment=AugmentConfig(), seed=1)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert not np.array_equal(np.sort(np.concatenate(a).ravel()), np.sort(x.astype(np.float32).ravel()))


def test_pixel_cache_keeps_aspect_ratio_and_is_reused(tmp_path, monkeypatch):
    import cv2

    from bench.pixels import pixel_cache
    from bench.types import Sample

    img = np.zeros((40, 80, 3), np.uint8)
    img[:] = (200, 10, 10)
    p = tmp_path / "wide.png"
    cv2.imwrite(str(p), img)
    samples = [Sample(id="w", label="a", image_path=p)]
    ps = pixel_cache(
        samples, size=32, kind="cell", dataset_fingerprint="fp", extraction="given", cache_dir=tmp_path, progress=False
    )
    arr = ps.load()
    assert arr.shape == (1, 32, 32, 3)
    assert (arr[0, 16, :, 2] > 150).all() and arr[0, 0, 16, 2] == 0 or arr[0, 0, 16, 2] > 150
    import datasets.io

    monkeypatch.setattr(datasets.io, "read_image", lambda *a: (_ for _ in ()).throw(AssertionError("read again")))
    again = pixel_cache(
        samples, size=32, kind="cell", dataset_fingerprint="fp", extraction="given", cache_dir=tmp_path, progress=False
    )
    assert again.path == ps.path


def test_missing_imagenet_weights_fail_clearly(tmp_path, monkeypatch):
    from models.classical import resolve_params
    from models.deep import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CELLBENCH_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr("bench.paths.REPO_ROOT", tmp_path / "nowhere" / "repo")
    with pytest.raises(CellbenchError, match="ImageNet weights for ResNet50 not found in .*set KERAS_HOME"):
        build_model("resnet50", resolve_params("resnet50", {"size": 64}), n_classes=2, seed=0)


def test_input_size_below_backbone_minimum_is_refused():
    from models.classical import resolve_params
    from models.deep import build_model

    with pytest.raises(ConfigError, match="minimum of 32"):
        build_model(
            "mobilenet_v2", resolve_params("mobilenet_v2", {"size": 16, "weights": "random"}), n_classes=2, seed=0
        )


def test_mobilenet_v2_loads_imagenet_weights_offline(monkeypatch):
    from models.classical import resolve_params
    from models.deep import build_model

    if not os.path.isdir(WEIGHTS):
        pytest.skip(f"offline Keras weights not found at {WEIGHTS}")
    monkeypatch.setenv("KERAS_HOME", WEIGHTS)
    model, backbone = build_model("mobilenet_v2", resolve_params("mobilenet_v2", {"size": 64}), n_classes=2, seed=0)
    random_model, random_bb = build_model(
        "mobilenet_v2", resolve_params("mobilenet_v2", {"size": 64, "weights": "random"}), n_classes=2, seed=0
    )
    w, r = backbone.get_weights()[0], random_bb.get_weights()[0]
    assert w.shape == r.shape and not np.allclose(w, r)
    assert model.get_layer("logits").units == 1
