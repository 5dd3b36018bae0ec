"""12-bit data in 16-bit files is said by ``datasets verify``, not scaled by 1/257 silently."""

import cv2
import numpy as np

from cellbench.datasets.bitdepth import bits_per_sample, low_range_16bit
from cellbench.datasets.folder import load as load_folder
from cellbench.datasets.verify import verify_dataset


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def test_bits_per_sample_reads_png_and_tiff_headers(tmp_path):
    rng = np.random.default_rng(0)
    assert bits_per_sample(_write(tmp_path / "a.png", rng.integers(0, 255, (9, 9, 3), dtype=np.uint8))) == 8
    assert bits_per_sample(_write(tmp_path / "b.png", rng.integers(0, 4000, (9, 9), dtype=np.uint16))) == 16
    assert bits_per_sample(_write(tmp_path / "c.tif", rng.integers(0, 4000, (9, 9, 3), dtype=np.uint16))) == 16
    assert bits_per_sample(_write(tmp_path / "d.jpg", rng.integers(0, 255, (9, 9, 3), dtype=np.uint8))) is None


def test_verify_names_16_bit_files_that_hold_12_bit_values(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        _write(tmp_path / "a" / f"a{i}.png", rng.integers(0, 255, (70, 70, 3), dtype=np.uint8))
        _write(tmp_path / "b" / f"full{i}.tif", rng.integers(0, 65535, (70, 70, 3), dtype=np.uint16))
    twelve = _write(tmp_path / "b" / "camera.tif", rng.integers(0, 4096, (70, 70, 3), dtype=np.uint16))
    assert low_range_16bit(sorted(tmp_path.rglob("*.*"))) == [twelve]
    report = verify_dataset(load_folder(tmp_path), progress=False)
    assert any("1 16-bit image(s) whose values never exceed 4095" in p and "camera.tif" in p for p in report.problems)
    twelve.unlink()
    assert not any("16-bit" in p for p in verify_dataset(load_folder(tmp_path), progress=False).problems)
