"""Handcrafted features: known values, stable columns, masks, errors and the batch cache."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from bench.errors import ConfigError, DataError, UnknownNameError
from bench.types import Sample
from features import FeatureConfig, cell_mask, extract_features, nucleus_mask
from features.batch import extract_feature_set, feature_cache_path
from features.morphology import feret_diameters, shape_values
from tests.conftest import shared


def stained_cell(size=96, *, nucleus=20, cell=30, noise=8.0, seed=0):
    """A pale-pink background, a lavender cytoplasm disc and a dark violet nucleus."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), (235, 200, 210), np.uint8)
    c = size // 2
    cv2.circle(img, (c, c), cell, (190, 190, 230), -1)
    cv2.circle(img, (c - 2, c + 2), nucleus, (90, 50, 140), -1)
    img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (c, c), cell, 1, -1)
    return img, mask > 0


def test_disc_shape_values_match_geometry():
    mask = np.zeros((200, 200), np.uint8)
    cv2.circle(mask, (100, 100), 40, 1, -1)
    v = shape_values(mask > 0)
    assert v["area"] == pytest.approx(math.pi * 40**2, rel=0.02)
    assert v["circularity"] == pytest.approx(1.0, abs=0.12)
    assert v["eccentricity"] < 0.1
    assert v["feret_max"] == pytest.approx(81, abs=2) and v["feret_min"] == pytest.approx(81, abs=2)
    assert v["solidity"] > 0.97


def test_rectangle_feret_diameters():
    fmax, fmin = feret_diameters(np.array([[0, 0], [59, 0], [59, 19], [0, 19]], float))
    assert fmin == pytest.approx(20)
    assert fmax == pytest.approx(math.hypot(59, 19) + 1)


def test_columns_are_identical_named_and_finite_across_images():
    a = extract_features(*stained_cell(seed=1))
    b = extract_features(*stained_cell(size=140, nucleus=35, cell=50, seed=2))
    tiny_img, tiny_mask = stained_cell(size=20, nucleus=2, cell=3, seed=3)
    c = extract_features(tiny_img, tiny_mask)
    assert list(a) == list(b) == list(c)
    assert all(np.isfinite(list(x.values())).all() for x in (a, b, c))
    for prefix in (
        "morph_area",
        "morph_feret_min",
        "morph_hu1",
        "morph_zernike00",
        "haralick_d1_contrast_mean",
        "haralick_d3_entropy_range",
        "lbp_p8r1_u00",
        "lbp_p16r2_u17",
        "int_r_mean",
        "int_grey_p90",
        "nuc_nc_ratio",
    ):
        assert prefix in a


def test_patch_config_has_no_shape_features():
    img, _ = stained_cell()
    f = extract_features(img, config=FeatureConfig.for_kind("patch"), kind="patch")
    assert not any(k.startswith(("morph_", "nuc_")) for k in f)
    assert any(k.startswith("haralick_") for k in f)


def test_texture_tells_smooth_from_noisy():
    smooth = extract_features(*stained_cell(noise=1.0))
    noisy = extract_features(*stained_cell(noise=25.0))
    assert noisy["haralick_d1_contrast_mean"] > 2 * smooth["haralick_d1_contrast_mean"] or (
        noisy["haralick_d1_entropy_mean"] > smooth["haralick_d1_entropy_mean"]
    )


def test_nucleus_ratio_is_close_to_truth():
    img, mask = stained_cell(size=160, nucleus=30, cell=50, noise=4.0)
    f = extract_features(img, mask)
    assert f["nuc_nc_ratio"] == pytest.approx(30**2 / 50**2, abs=0.06)
    assert nucleus_mask(img, mask).sum() == pytest.approx(math.pi * 30**2, rel=0.1)


def test_cell_mask_rules():
    img, truth = stained_cell(size=120, nucleus=22, cell=34, noise=3.0)
    found = cell_mask(img)
    inter = (found & truth).sum() / (found | truth).sum()
    assert inter > 0.7
    black = np.zeros((100, 100, 3), np.uint8)
    cv2.circle(black, (50, 50), 30, (150, 120, 200), -1)
    assert cell_mask(black).sum() == pytest.approx(math.pi * 900, rel=0.05)


def test_empty_mask_and_unknown_family_are_refused():
    img, _ = stained_cell()
    with pytest.raises(DataError, match="empty mask for sample s1"):
        extract_features(img, np.zeros(img.shape[:2], bool), sample="s1")
    with pytest.raises(UnknownNameError, match="known feature familys: .*haralick"):
        FeatureConfig(families=("haralick", "gabor"))
    with pytest.raises(ConfigError, match="haralick_levels"):
        FeatureConfig(haralick_levels=2)


def _samples(tmp_path, n=6):
    out = []
    for i in range(n):
        img, mask = stained_cell(seed=i)
        p = tmp_path / f"c{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        m = tmp_path / f"c{i}_mask.png"
        cv2.imwrite(str(m), mask.astype(np.uint8) * 255)
        out.append(Sample(id=f"c{i}", label="a", image_path=p, mask_path=m))
    return out


def test_batch_cache_extracts_nothing_the_second_time(tmp_path, monkeypatch):
    samples = _samples(tmp_path)
    kw = dict(
        config=FeatureConfig(),
        dataset_fingerprint="fp",
        extraction="given",
        kind="cell",
        cache_dir=tmp_path / "cache",
        n_jobs=1,
        progress=False,
    )
    first = extract_feature_set(samples, **kw)
    assert feature_cache_path(
        cache_dir=tmp_path / "cache", dataset_fingerprint="fp", extraction="given", config=FeatureConfig(), kind="cell"
    ).is_file()
    import features.batch

    def boom(*a, **k):
        raise AssertionError("extracted again")

    monkeypatch.setattr(features.batch, "_extract_one", boom)
    second = extract_feature_set(samples, **kw)
    assert second.ids == first.ids and second.names == first.names
    np.testing.assert_array_equal(second.X, first.X)


def test_parallel_extraction_equals_serial(tmp_path):
    samples = _samples(tmp_path, n=40)
    kw = dict(config=FeatureConfig(), dataset_fingerprint="fp", extraction="given", kind="cell", progress=False)
    serial = extract_feature_set(samples, cache_dir=tmp_path / "a", n_jobs=1, **kw)
    parallel = extract_feature_set(samples, cache_dir=tmp_path / "b", n_jobs=2, **kw)
    assert serial.ids == parallel.ids
    np.testing.assert_array_equal(serial.X, parallel.X)


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path):
    samples = _samples(tmp_path, n=3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    samples.append(Sample(id="bad", label="a", image_path=bad))
    kw = dict(
        config=FeatureConfig(),
        dataset_fingerprint="fp2",
        extraction="given",
        kind="cell",
        cache_dir=tmp_path / "cache",
        n_jobs=1,
        progress=False,
    )
    with pytest.raises(DataError, match=r"bad\.png"):
        extract_feature_set(samples, **kw)
    assert not (tmp_path / "cache" / "features").exists() or not any((tmp_path / "cache" / "features").iterdir())
    fs = extract_feature_set(samples, on_bad_image="skip", **kw)
    assert fs.skipped == ("bad",) and len(fs.ids) == 3


@pytest.mark.parametrize(("name", "pattern"), [("cnmc_sample", "all/*.bmp"), ("allidb2", "blast/*.tif")])
def test_masks_on_real_cells_are_sensible(name, pattern):
    from datasets.io import read_image

    files = sorted(shared(name).glob(pattern))[:4]
    for f in files:
        img = read_image(f)
        frac = cell_mask(img).mean()
        assert 0.03 < frac < 0.9, f"{f.name}: cell mask covers {frac:.2f} of the image"
        feats = extract_features(img)
        assert np.isfinite(list(feats.values())).all()
