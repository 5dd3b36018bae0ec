"""Deep training throughput at 96 px on the CPU (pytest-benchmark; run with `tox -e bench`).

Each benchmark trains one epoch over 512 images through the harness' own pipeline (seeded tf.data with
augmentation, batch 32, Adam, binary cross-entropy) after a warm-up epoch that traces the graph, and
records ``images_per_s`` in ``extra_info``. MobileNetV2 is the α = 0.35 ImageNet model with a frozen
backbone, as the suites run it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = pytest.mark.benchmark

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "keras"
N, SIZE, BATCH = 512, 96, 32


@pytest.mark.parametrize("name", ["cnn", "mobilenet_v2"])
def test_training_images_per_second_at_96px(benchmark, name, monkeypatch):
    from cellbench.models import resolve_params
    from cellbench.models.deep import build_model, compile_model, set_phase, setup_tensorflow, targets
    from cellbench.models.pixels import AugmentConfig, make_dataset

    if name == "mobilenet_v2":
        if not WEIGHTS.is_dir():
            pytest.skip(f"offline ImageNet weights not found at {WEIGHTS}")
        monkeypatch.setenv("KERAS_HOME", str(WEIGHTS))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (N, SIZE, SIZE, 3), dtype=np.uint8)
    y = rng.integers(0, 2, N)
    setup_tensorflow(0)
    params = resolve_params(name, {"size": SIZE, "batch_size": BATCH})
    model, backbone = build_model(name, params, n_classes=2, seed=0)
    set_phase(backbone, phase="head")
    compile_model(model, loss="binary_crossentropy", learning_rate=1e-3, n_classes=2)
    data = make_dataset(
        images, targets(y, 2), batch_size=BATCH, training=True, augment=AugmentConfig.from_param(True), seed=0
    )
    model.fit(data, epochs=1, shuffle=False, verbose=0)  # traces the graph

    benchmark.pedantic(lambda: model.fit(data, epochs=1, shuffle=False, verbose=0), rounds=3, iterations=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info.update(images_per_s=round(rate, 1), size=SIZE, batch=BATCH)
    print(f"\n{name}: {rate:.0f} training images/s at {SIZE} px")
    assert rate > 0
