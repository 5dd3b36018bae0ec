"""The embedding pass's throughput: frozen MobileNetV2 α=0.35 at 96 px on one core (pytest-benchmark; `tox -e bench`).

One forward pass over 512 images through :func:`cellbench.models.embeddings.embed` (the suites' embedding pass:
one intra-op thread, deterministic ops, batch 64), after a warm-up pass that builds and traces the model; records
``images_per_s`` in ``extra_info``. Uses the weights that ship with cellbench.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = pytest.mark.benchmark
N, SIZE = 512, 96


def test_embedding_pass_images_per_second_at_96px_on_one_core(benchmark):
    from cellbench.models.embeddings import embed

    images = np.random.default_rng(0).integers(0, 255, (N, SIZE, SIZE, 3), dtype=np.uint8)
    params = {"embedder": "mobilenet_v2", "size": SIZE}
    first = embed(images[:64], params)  # builds the model and traces it
    out = benchmark.pedantic(lambda: embed(images, params), rounds=3, iterations=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info.update(images_per_s=round(rate, 1), size=SIZE, threads=1)
    print(f"\nmobilenet_v2 α=0.35 embeddings: {rate:.0f} images/s at {SIZE} px, one intra-op thread")
    assert out.shape == (N, first.shape[1]) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[:64], first)  # deterministic, and other rows in a pass do not change a vector
