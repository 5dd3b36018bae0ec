"""White-cell segmentation throughput on whole ALL-IDB1 fields (pytest-benchmark), one core.

Run with ``pytest -m benchmark --benchmark-enable -p no:cacheprovider tests/test_bench_segmentation.py``. Each
benchmark records ``fields_per_s`` (wall clock, fastest round) and ``fields_per_cpu_s`` (CPU time of this process,
steadier on a busy machine) in ``extra_info``; segmentation only (the field is decoded once, outside the timing).
"""

from __future__ import annotations

import time

import pytest

from cellbench.datasets.io import read_image
from cellbench.datasets.segmentation import SegmentationParams, segment_field
from tests.conftest import shared

pytestmark = pytest.mark.benchmark


@pytest.fixture(autouse=True)
def _on_one_core(one_core):
    """Per-core figures: OpenCV and BLAS limited to one thread (see ``tests.conftest.one_core``)."""


def _fields_per_s(benchmark, image, params, *, rounds: int = 5) -> float:
    cpu, found = [], []

    def timed():
        start = time.process_time()
        found.append(len(segment_field(image, params).cells))
        cpu.append(time.process_time() - start)

    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    rate, cpu_rate = 1.0 / benchmark.stats.stats.min, 1.0 / min(cpu)
    h, w = image.shape[:2]
    benchmark.extra_info.update(fields_per_s=round(rate, 2), fields_per_cpu_s=round(cpu_rate, 2), size=f"{w}x{h}")
    print(f"\n{benchmark.name}: {w}x{h}, {rate:.2f} fields/s wall, {cpu_rate:.2f} fields per CPU-second, "
          f"{found[-1]} cells")
    assert found[-1] > 0
    return rate


@pytest.mark.parametrize("field", ["Im001_1", "Im005_1"])
def test_allidb1_field_1712x1368(benchmark, field):
    image = read_image(shared("allidb1_subset") / "images" / f"{field}.jpg")
    assert image.shape[:2] == (1368, 1712)
    _fields_per_s(benchmark, image, SegmentationParams(cell_diameter=110.0))


def test_allidb1_field_2592x1944(benchmark):
    image = read_image(shared("allidb1_subset") / "images" / "Im053_1.jpg")
    assert image.shape[:2] == (1944, 2592)
    _fields_per_s(benchmark, image, SegmentationParams(cell_diameter=110.0))
