"""Single-core feature-extraction throughput (pytest-benchmark).

Run with ``pytest -m benchmark --benchmark-enable -p no:cacheprovider tests/test_bench_features.py``.
Each benchmark records ``cells_per_s`` (per core: one process, OpenCV and BLAS limited to one thread) in
``extra_info``. Targets (issue 15), for each data kind's default families: >= 250 images/s at 96 px, >= 30 at 450 px.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from cellbench.features import FeatureConfig, extract_feature_set, extract_features
from tests.conftest import shared
from tests.test_features import cell_on_black, synthetic_cell

pytestmark = pytest.mark.benchmark


@pytest.fixture(autouse=True)
def _on_one_core(one_core):
    """Per-core figures: OpenCV and BLAS limited to one thread (see ``tests.conftest.one_core``)."""


def _throughput(benchmark, run, n: int, *, rounds: int = 5) -> float:
    """Cells per second per core from the fastest round: wall clock, and CPU time of this process.

    On a busy machine the wall-clock rate understates the speed; the CPU-time rate is steadier.
    """
    cpu = []

    def timed():
        start = time.process_time()
        run()
        cpu.append(time.process_time() - start)

    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    rate, cpu_rate = n / benchmark.stats.stats.min, n / min(cpu)
    benchmark.extra_info.update(cells_per_s=round(rate, 1), cells_per_cpu_s=round(cpu_rate, 1))
    print(f"\n{benchmark.name}: {rate:.1f} cells/s wall, {cpu_rate:.1f} cells per CPU-second")
    return rate


def test_96px_stained_cells_with_masks(benchmark):
    cells = [synthetic_cell(96, seed=i)[:2] for i in range(100)]
    config = FeatureConfig()
    _throughput(benchmark, lambda: [extract_features(img, m, config=config) for img, m in cells], len(cells))


def test_96px_stained_cells_mask_found(benchmark):
    images = [synthetic_cell(96, seed=i)[0] for i in range(100)]
    config = FeatureConfig()
    _throughput(benchmark, lambda: [extract_features(img, config=config) for img in images], len(images))


def test_450px_cells_on_black(benchmark):
    images = [cell_on_black(450, seed=i) for i in range(10)]
    config = FeatureConfig()
    _throughput(benchmark, lambda: [extract_features(img, config=config) for img in images], len(images))


def test_real_cnmc_bmps_from_disk(benchmark, tmp_path):
    """End to end as the harness runs it: read the BMP, find the mask, extract (cache in a fresh folder)."""
    from cellbench.core.types import Sample

    files = sorted(shared("cnmc_sample").glob("*/*.bmp"))
    if not files:
        pytest.skip(f"no C-NMC BMPs in {shared('cnmc_sample')}")
    samples = [Sample(id=f.stem, label=f.parent.name, image_path=f) for f in files]
    folders = iter(range(1000))

    def run():
        extract_feature_set(
            samples,
            config=FeatureConfig(),
            dataset_fingerprint="cnmc-bench",
            extraction="given",
            kind="cell",
            cache_dir=tmp_path / str(next(folders)),
            n_jobs=1,
            progress=False,
        )

    _throughput(benchmark, run, len(samples), rounds=3)


def test_96px_patches(benchmark):
    rng = np.random.default_rng(0)
    patches = [
        np.clip(cv2.GaussianBlur(rng.normal(170, 40, (96, 96, 3)), (0, 0), 1.5), 0, 255).astype(np.uint8)
        for _ in range(100)
    ]
    config = FeatureConfig.for_kind("patch")
    _throughput(benchmark, lambda: [extract_features(p, config=config, kind="patch") for p in patches], len(patches))


def test_96px_multi_cell_crops(benchmark):
    """The crop defaults (whole_image; hed_texture inside the largest cell found)."""
    from tests.test_whole_image import multi_cell_crop

    crops = [cv2.resize(multi_cell_crop(i % 2, seed=i)[0], (96, 96), interpolation=cv2.INTER_AREA) for i in range(100)]
    config = FeatureConfig.for_kind("crop")
    _throughput(benchmark, lambda: [extract_features(c, config=config, kind="crop") for c in crops], len(crops))


def test_450px_multi_cell_crops(benchmark):
    """The crops of the 96-px benchmark at 450 px (the largest cell about half the crop across, as at 96 px)."""
    from tests.test_whole_image import multi_cell_crop

    crops = [
        cv2.resize(multi_cell_crop(i % 2, seed=i)[0], (450, 450), interpolation=cv2.INTER_CUBIC) for i in range(10)
    ]
    config = FeatureConfig.for_kind("crop")
    _throughput(benchmark, lambda: [extract_features(c, config=config, kind="crop") for c in crops], len(crops))


def test_450px_field_with_one_small_cell(benchmark):
    """A 450-px crop whose one white cell (64 px) is about 1 % of it: hed_texture reads that cell, whole_image all
    202,500 pixels (before crops kept small cells, the cell mask fell back to the whole crop here and the masked
    families read it all)."""
    from tests.test_whole_image import multi_cell_crop

    crops = [multi_cell_crop(i % 2, seed=i, size=450)[0] for i in range(10)]
    config = FeatureConfig.for_kind("crop")
    _throughput(benchmark, lambda: [extract_features(c, config=config, kind="crop") for c in crops], len(crops))
