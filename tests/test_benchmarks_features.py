"""Feature-extraction throughput (pytest-benchmark; run with `tox -e bench`). Single process = one core."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from features import extract_features
from tests.conftest import shared
from tests.test_features_core import stained_cell

pytestmark = pytest.mark.benchmark


def _cnmc_like(seed: int) -> np.ndarray:
    """A 450x450 segmented cell on black, like the C-NMC crops (cell ~ 260 px across)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((450, 450, 3), np.uint8)
    cv2.ellipse(img, (225, 225), (130, 115), 20, 0, 360, (170, 150, 205), -1)
    cv2.ellipse(img, (220, 232), (95, 85), 0, 0, 360, (95, 55, 150), -1)
    noise = rng.normal(0, 10, img.shape)
    return np.where(img > 0, np.clip(img + noise, 1, 255), 0).astype(np.uint8)


def _throughput(benchmark, images, masks):
    def run():
        for img, mask in zip(images, masks):
            extract_features(img, mask)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    cells_per_s = len(images) / benchmark.stats.stats.mean
    benchmark.extra_info["cells_per_s_per_core"] = round(cells_per_s, 1)
    return cells_per_s


def test_features_96px(benchmark):
    cells = [stained_cell(seed=i) for i in range(50)]
    rate = _throughput(benchmark, [c[0] for c in cells], [c[1] for c in cells])
    assert rate > 0


def test_features_450px_on_black(benchmark):
    images = [_cnmc_like(i) for i in range(10)]
    _throughput(benchmark, images, [None] * len(images))


def test_features_real_cnmc_bmp(benchmark):
    from datasets.io import read_image

    images = [read_image(p) for p in sorted(shared("cnmc_sample").glob("*/*.bmp"))[:20]]
    _throughput(benchmark, images, [None] * len(images))


def test_features_real_synthetic_crops(benchmark, tmp_path, monkeypatch):
    from datasets.io import read_image, read_mask
    from datasets.synthetic import load_synthetic

    monkeypatch.setenv("CELLBENCH_CACHE", str(tmp_path))
    ds = load_synthetic(n_patients=6, fields_per_patient=2)
    samples = ds.samples[:60]
    _throughput(benchmark, [read_image(s.image_path) for s in samples], [read_mask(s.mask_path) > 0 for s in samples])
