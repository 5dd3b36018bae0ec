"""Cache keys cover everything that changes cached features or pixels: image reading, feature and resizing code,
and library versions (a change to ``datasets/io.py`` kept the feature key on 50df44d)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellbench.datasets.io as io
import cellbench.features.batch as batch
import cellbench.models.pixels as pixels
from cellbench.core.types import Sample
from cellbench.datasets.content import find_duplicates
from cellbench.features.config import FeatureConfig


@pytest.fixture
def fresh_keys():
    """Clear the memoised code versions before and after a test that changes what they hash."""
    caches = (io._reader_version_items, batch.code_version, pixels._resize_code)
    for c in caches:
        c.cache_clear()
    yield
    for c in caches:
        c.cache_clear()


def _feature_key(tmp_path) -> str:
    return batch.feature_cache_path(
        cache_dir=tmp_path, dataset_fingerprint="fp", extraction="manual", config=FeatureConfig(), kind="cell",
        family="morphology",
    ).name


def _edited(module, tmp_path, monkeypatch) -> None:
    """Make ``module``'s source read as edited: its hashed file is a copy with one more line."""
    copy = tmp_path / Path(module.__file__).name
    shutil.copyfile(module.__file__, copy)
    with copy.open("a") as f:
        f.write("\n# an edit\n")
    monkeypatch.setattr(module, "__file__", str(copy))
    io._reader_version_items.cache_clear()
    batch.code_version.cache_clear()


def _edited_reader(tmp_path, monkeypatch) -> None:
    """Make ``datasets/io.py`` read as edited."""
    _edited(io, tmp_path, monkeypatch)


def test_feature_key_changes_with_image_reading_code(tmp_path, monkeypatch, fresh_keys):
    before = _feature_key(tmp_path)
    assert _feature_key(tmp_path) == before  # stable while nothing changes
    _edited_reader(tmp_path, monkeypatch)
    assert _feature_key(tmp_path) != before


def test_feature_key_changes_with_the_mask_finders_code(tmp_path, monkeypatch, fresh_keys):
    import cellbench.datasets.masks as masks

    before = _feature_key(tmp_path)
    _edited(masks, tmp_path, monkeypatch)
    assert _feature_key(tmp_path) != before


@pytest.mark.parametrize("module", [np, cv2], ids=["numpy", "opencv"])
def test_feature_key_changes_with_library_versions(tmp_path, monkeypatch, fresh_keys, module):
    before = _feature_key(tmp_path)
    monkeypatch.setattr(module, "__version__", module.__version__ + ".post-test")
    io._reader_version_items.cache_clear()
    batch.code_version.cache_clear()
    assert _feature_key(tmp_path) != before


def _samples() -> list[Sample]:
    rng = np.random.default_rng(0)
    return [Sample(id=f"s{i}", label="a", image=rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)) for i in range(3)]


def _pixel_file(tmp_path) -> str:
    ps = pixels.pixel_cache(
        _samples(), size=16, dataset_fingerprint="fp", extraction="manual", cache_dir=tmp_path / "cache",
        progress=False,
    )  # fmt: skip
    return ps.path.name


def test_pixel_cache_key_changes_with_image_reading_code(tmp_path, monkeypatch, fresh_keys):
    before = _pixel_file(tmp_path)
    assert _pixel_file(tmp_path) == before
    _edited_reader(tmp_path, monkeypatch)
    assert _pixel_file(tmp_path) != before


def test_pixel_cache_key_changes_with_the_resizing_code(tmp_path, monkeypatch, fresh_keys):
    before = _pixel_file(tmp_path)

    def fit_to_square(image, size, *, keep_aspect, pad="border"):  # a different resizing rule
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)

    monkeypatch.setattr(pixels, "fit_to_square", fit_to_square)
    pixels._resize_code.cache_clear()
    assert _pixel_file(tmp_path) != before


def test_content_digest_cache_follows_image_reading(tmp_path, monkeypatch, fresh_keys):
    def cached_files():
        find_duplicates(_samples(), fingerprint="fp", extraction="manual", cache_dir=tmp_path / "c", progress=False)
        return {p.name for p in (tmp_path / "c" / "content").iterdir()}

    before = cached_files()
    _edited_reader(tmp_path, monkeypatch)
    after = cached_files()
    assert len(after) == len(before) + 1


def test_reader_version_cannot_be_edited_by_a_caller():
    first = io.reader_version()
    first["code"] = "edited"
    assert io.reader_version()["code"] != "edited"
