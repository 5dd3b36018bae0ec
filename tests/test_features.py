"""Feature package: columns, known geometry, reference implementations, masks, errors and the batch cache."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError, UnknownNameError
from cellbench.core.types import Sample
from cellbench.features import (
    FEATURES,
    FeatureConfig,
    cell_mask,
    extract_feature_set,
    extract_features,
    feature_cache_path,
    feature_names,
    nucleus_mask,
)
from cellbench.features.batch import read_feature_cache
from cellbench.features.haralick import cooccurrences, haralick_stack
from cellbench.features.lbp import uniform_lbp
from cellbench.features.morphology import shape_values
from cellbench.features.zernike import zernike_moments
from tests.conftest import shared


def synthetic_cell(size: int = 96, *, seed: int = 0, nucleus: float = 0.22, cell: float = 0.34, noise: float = 6.0):
    """A stained white cell: pale pink background, lighter lilac cytoplasm ring, textured purple nucleus.

    Radii are fractions of ``size``; returns ``(image, cell mask, nucleus mask)``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    c = (size - 1) / 2 + rng.uniform(-1.5, 1.5, 2)
    d = np.hypot(yy - c[0], xx - c[1])
    r_cell, r_nuc = cell * size, nucleus * size
    img = np.empty((size, size, 3))
    img[:] = (232, 205, 212)
    cyto, nuc = d <= r_cell, d <= r_nuc
    img[cyto] = (200, 190, 228)
    # chromatin: a blotchy, smoothed random field modulating the nucleus' darkness
    chromatin = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), max(size / 60, 0.8))
    chromatin /= chromatin.std() or 1.0
    img[nuc] = np.array((105, 55, 150)) * (1 + 0.15 * chromatin[nuc, None])
    img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cyto, nuc


def cell_on_black(size: int = 450, *, seed: int = 0) -> np.ndarray:
    """A C-NMC-like crop: a segmented ~260 px violet cell on a black background."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    c, s = size // 2, size / 450
    cv2.ellipse(img, (c, c), (round(130 * s), round(115 * s)), 20, 0, 360, (150, 110, 190), -1)
    cv2.ellipse(
        img, (c - round(5 * s), c + round(7 * s)), (round(100 * s), round(90 * s)), 0, 0, 360, (95, 55, 150), -1
    )
    texture = cv2.GaussianBlur(rng.normal(0, 12, (size, size, 3)), (0, 0), 2)
    return np.where(img > 0, np.clip(img + texture, 1, 255), 0).astype(np.uint8)


def disc(radius: int, size: int | None = None) -> np.ndarray:
    size = size or 2 * radius + 21
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius**2


# -- columns ------------------------------------------------------------------------------------------


def test_columns_identical_named_and_finite_across_images():
    config = FeatureConfig()
    names = feature_names(config)
    images = [synthetic_cell(seed=1)[:2], synthetic_cell(150, seed=2)[:2]]
    one_pixel = np.zeros((40, 40), bool)
    one_pixel[20, 20] = True
    line = np.zeros((40, 40), bool)
    line[5:35, 20] = True
    flat = np.full((40, 40, 3), 128, np.uint8)
    images += [(synthetic_cell(40, seed=3)[0], one_pixel), (synthetic_cell(40, seed=4)[0], line), (flat, None)]
    for img, mask in images:
        f = extract_features(img, mask, config=config)
        assert tuple(f) == names
        assert np.isfinite(list(f.values())).all()
    assert len(names) == len(set(names))
    assert {n.split("_")[0] for n in names} == {"morph", "haralick", "lbp", "int", "nuc"}
    for col in ("morph_area", "morph_feret_min", "haralick_d1_contrast_mean", "lbp_p16r2_u17", "int_hem_p90"):
        assert col in names


def test_patch_config_and_grey_images():
    patch = FeatureConfig(families=("haralick", "lbp", "intensity"))  # the patch set before whole_image
    grey = synthetic_cell(50, seed=5)[0][:, :, 1]
    f = extract_features(grey, config=patch, kind="patch")
    assert tuple(f) == feature_names(patch)
    assert not any(k.startswith(("morph_", "nuc_")) for k in f)
    assert f["int_r_mean"] == f["int_g_mean"] == pytest.approx(grey.mean())


def test_config_key_and_validation():
    assert FeatureConfig().key() == FeatureConfig().key()
    assert FeatureConfig(haralick_levels=16).key() != FeatureConfig().key()
    assert FeatureConfig(lbp_radii=[1, 3]).lbp_radii == (1, 3)
    gabor = FeatureConfig(families=("haralick", "gabor"))  # the catalog, not the config, knows the families
    with pytest.raises(UnknownNameError, match="unknown feature family 'gabor'.*haralick.*morphology"):
        feature_names(gabor)
    with pytest.raises(UnknownNameError, match="unknown feature family 'gabor'"):
        extract_features(synthetic_cell(40)[0], config=gabor)
    with pytest.raises(ConfigError, match="lbp_radii must be an integer in 1..8, got 0"):
        FeatureConfig(lbp_radii=(0,))
    with pytest.raises(ConfigError, match="unknown data kind 'slide'; allowed kinds: cell"):
        FeatureConfig.for_kind("slide")
    assert set(FEATURES) == {"morphology", "haralick", "lbp", "intensity", "nucleus", "whole_image", "hed_texture"}


# -- known values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [12, 40])
def test_disc_geometry(r):
    v = shape_values(disc(r))
    assert v["area"] == pytest.approx(math.pi * r * r, rel=0.03)
    assert v["circularity"] == pytest.approx(1.0, abs=0.05)
    assert v["eccentricity"] < 0.1
    assert v["feret_max"] == pytest.approx(2 * r + 1, abs=1)
    assert v["feret_min"] == pytest.approx(2 * r + 1, abs=1.5)  # flat runs of a digital disc cut it a little
    assert v["major_axis"] == pytest.approx(2 * r, rel=0.03)
    assert 0.95 < v["solidity"] <= 1 and 0.95 < v["convexity"] <= 1


def test_rectangle_and_ellipse_geometry():
    m = np.zeros((60, 90), bool)
    m[10:30, 20:80] = True  # 20 x 60 pixels
    v = shape_values(m)
    assert v["feret_min"] == pytest.approx(20)
    assert v["feret_max"] == pytest.approx(math.hypot(59, 19) + 1)
    assert v["area"] == 1200 and v["extent"] == 1.0 and v["solidity"] == 1.0
    ell = np.zeros((200, 200), np.uint8)
    cv2.ellipse(ell, (100, 100), (60, 20), 30, 0, 360, 1, -1)
    e = shape_values(ell > 0)
    assert e["eccentricity"] == pytest.approx(math.sqrt(1 - (20 / 60) ** 2), abs=0.02)
    assert e["major_axis"] == pytest.approx(120, rel=0.03) and e["minor_axis"] == pytest.approx(40, rel=0.05)


def test_downscaled_morphology_stays_in_input_pixels():
    img, mask, _ = synthetic_cell(300, seed=6)
    full = extract_features(img, mask, config=FeatureConfig(max_side=None))
    small = extract_features(img, mask, config=FeatureConfig(max_side=150))
    assert small["morph_area"] == full["morph_area"]  # morphology is always measured at full resolution
    assert small["nuc_area"] == pytest.approx(full["nuc_area"], rel=0.1)
    assert small["nuc_nc_ratio"] == pytest.approx(full["nuc_nc_ratio"], abs=0.03)


def test_texture_differs_between_smooth_and_noisy():
    rng = np.random.default_rng(7)
    mask = disc(30, 80)
    base = np.full((80, 80, 3), 150.0)
    base += np.linspace(-20, 20, 80)[None, :, None]  # a smooth gradient
    smooth = extract_features(np.clip(base + rng.normal(0, 0.5, base.shape), 0, 255).astype(np.uint8), mask)
    noisy = extract_features(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8), mask)
    assert noisy["haralick_d1_contrast_mean"] > 10 * smooth["haralick_d1_contrast_mean"]
    assert noisy["haralick_d1_entropy_mean"] > smooth["haralick_d1_entropy_mean"] + 1
    assert noisy["haralick_d1_idm_mean"] < smooth["haralick_d1_idm_mean"]
    assert noisy["lbp_p8r1_u09"] > 1.5 * smooth["lbp_p8r1_u09"]  # more non-uniform patterns
    assert noisy["int_grey_std"] > smooth["int_grey_std"]


def test_nucleus_ratio_close_to_truth():
    img, cyto, nuc = synthetic_cell(160, seed=8, nucleus=0.2, cell=0.34)
    f = extract_features(img, cyto)
    assert f["nuc_nc_ratio"] == pytest.approx(nuc.sum() / cyto.sum(), abs=0.04)
    assert f["nuc_found"] == 1 and f["nuc_parts"] == 1
    assert f["nuc_circularity"] == pytest.approx(1, abs=0.15)
    found = nucleus_mask(img, cyto)
    assert (found & nuc).sum() / (found | nuc).sum() > 0.85
    assert f["nuc_grey_contrast"] > 50  # cytoplasm much paler than the nucleus


# -- against the reference implementations ------------------------------------------------------------


def test_lbp_matches_skimage():
    from skimage.feature import local_binary_pattern

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (41, 57)).astype(np.uint8)
    cell = cv2.cvtColor(synthetic_cell(80, seed=9)[0], cv2.COLOR_RGB2GRAY)
    for img in (noise, cell):
        for p, r in ((8, 1), (16, 2)):
            ours = uniform_lbp(img, p, r)
            ref = local_binary_pattern(img, p, r, method="uniform")
            assert (ours == ref).mean() > 0.995  # ties within 1e-3 grey levels may differ (documented)


def test_haralick_matches_mahotas():
    from mahotas.features.texture import haralick_features

    rng = np.random.default_rng(1)
    q = rng.integers(0, 17, (30, 25)).astype(np.uint8)
    cmats = cooccurrences(q, levels=16, distances=(1, 3))
    ours, valid = haralick_stack(cmats)
    assert valid.all()
    for mine, c in zip(ours, cmats):
        ref = haralick_features([c.astype(np.int32)], ignore_zeros=True)[0]
        np.testing.assert_allclose(mine, ref, rtol=1e-7, atol=1e-9)
    thin = np.zeros((5, 5), np.uint8)
    thin[:, 2] = 3  # a vertical line: no horizontal pairs
    _, valid = haralick_stack(cooccurrences(thin, levels=4, distances=(1,)))
    assert valid.tolist() == [False, False, True, False]


def test_zernike_matches_mahotas():
    import mahotas

    img = np.zeros((32, 32), np.float32)
    cv2.ellipse(img, (15, 16), (12, 7), 30, 0, 360, 1.0, -1)
    ys, xs = np.indices(img.shape)
    cm = ((ys * img).sum() / img.sum(), (xs * img).sum() / img.sum())
    ours = zernike_moments(img, radius=14.0, centre=cm, degree=8)
    np.testing.assert_allclose(ours, mahotas.features.zernike_moments(img, 14.0, degree=8, cm=cm), atol=1e-12)


# -- masks and errors ---------------------------------------------------------------------------------


def test_cell_mask_rules():
    img, cyto, _ = synthetic_cell(120, seed=10)
    found = cell_mask(img)
    assert (found & cyto).sum() / (found | cyto).sum() > 0.75
    black = cell_on_black(200, seed=1)
    assert cell_mask(black).sum() == np.count_nonzero(black.max(axis=2) > 15)
    assert cell_mask(np.full((50, 50, 3), 200, np.uint8)).all()  # nothing stained: the whole image


def test_errors_name_the_bad_value():
    img = synthetic_cell(40)[0]
    with pytest.raises(DataError, match="empty mask for sample s7: no cell pixels"):
        extract_features(img, np.zeros((40, 40), bool), sample="s7")
    with pytest.raises(DataError, match=r"sample s8: mask shape \(30, 30\) differs"):
        extract_features(img, np.ones((30, 30), bool), sample="s8")
    with pytest.raises(DataError, match=r"sample s9: unsupported image shape \(40, 40, 2\)"):
        extract_features(img[:, :, :2], sample="s9")
    # other pixel types follow the one RGB rule of datasets.io.as_rgb8: floats in [0, 1] are scaled by 255
    assert extract_features(img.astype(np.float32) / 255) == extract_features(img)
    with pytest.raises(ConfigError, match="unknown data kind"):
        extract_features(img, kind="tissue")


# -- batch extraction and its cache ---------------------------------------------------------------------


def _write_samples(folder, n, *, masks=True):
    samples = []
    for i in range(n):
        img, cyto, _ = synthetic_cell(64, seed=100 + i)
        path = folder / f"c{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        mask_path = None
        if masks:
            mask_path = folder / f"c{i}_mask.png"
            cv2.imwrite(str(mask_path), cyto.astype(np.uint8) * 255)
        samples.append(Sample(id=f"c{i}", label="a", image_path=path, mask_path=mask_path))
    return samples


def _kw(tmp_path, **over):
    kw = dict(
        config=FeatureConfig(),
        dataset_fingerprint="fp",
        extraction="given",
        kind="cell",
        cache_dir=tmp_path / "cache",
        n_jobs=1,
        progress=False,
    )
    return {**kw, **over}


def test_parallel_extraction_equals_serial(tmp_path):
    samples = _write_samples(tmp_path, 40)
    serial = extract_feature_set(samples, **_kw(tmp_path, cache_dir=tmp_path / "a", n_jobs=1))
    parallel = extract_feature_set(samples, **_kw(tmp_path, cache_dir=tmp_path / "b", n_jobs=2))
    assert serial.ids == parallel.ids
    np.testing.assert_array_equal(serial.X, parallel.X)


def test_cache_second_call_extracts_nothing(tmp_path, monkeypatch):
    from cellbench import features

    samples = _write_samples(tmp_path, 4)
    first = extract_feature_set(samples, **_kw(tmp_path))
    paths = [
        feature_cache_path(
            cache_dir=tmp_path / "cache", dataset_fingerprint="fp", extraction="given", config=FeatureConfig(),
            kind="cell", family=f,
        )
        for f in FeatureConfig().families
    ]  # fmt: skip
    assert all(p.is_file() for p in paths) and len(set(paths)) == len(FeatureConfig().families)
    # no temporary file left behind: one cache per family and its checksum only
    expected = sorted(n for p in paths for n in (p.name, f"{p.name}.sha256"))
    assert sorted(p.name for p in paths[0].parent.iterdir()) == expected
    assert first.names == feature_names(FeatureConfig()) and first.X.shape == (4, len(first.names))
    np.testing.assert_array_equal(first.X[1], list(extract_features(*synthetic_cell(64, seed=101)[:2]).values()))

    def boom(*args, **kwargs):
        raise AssertionError("extracted again")

    monkeypatch.setattr(features.batch, "_extract_one", boom)
    second = extract_feature_set(samples, **_kw(tmp_path))
    assert second.ids == first.ids and second.names == first.names
    np.testing.assert_array_equal(second.X, first.X)
    shuffled = extract_feature_set(samples[::-1], **_kw(tmp_path))  # same samples, other order: still cached
    assert shuffled.ids == first.ids[::-1]
    np.testing.assert_array_equal(shuffled.X, first.X[::-1])
    with pytest.raises(AssertionError, match="extracted again"):  # another config is another cache entry
        extract_feature_set(samples, **_kw(tmp_path, config=FeatureConfig(haralick_levels=16)))
    with pytest.raises(AssertionError, match="extracted again"):  # other samples: the cache does not fit
        extract_feature_set(samples[:3], **_kw(tmp_path))


def test_adding_a_family_computes_only_that_family(tmp_path, monkeypatch):
    from cellbench import features

    samples = _write_samples(tmp_path, 4)
    before = extract_feature_set(samples, **_kw(tmp_path, config=FeatureConfig(families=("morphology", "haralick"))))
    computed = []
    real = features.batch._extract_one

    def spy(item, config, kind):
        computed.append(config.families)
        return real(item, config, kind)

    monkeypatch.setattr(features.batch, "_extract_one", spy)
    wider = FeatureConfig(families=("morphology", "haralick", "whole_image"))
    after = extract_feature_set(samples, **_kw(tmp_path, config=wider))
    assert set(computed) == {("whole_image",)}  # the cached families are read, not computed again
    assert after.names == feature_names(wider) and after.key != before.key
    np.testing.assert_array_equal(after.X[:, : before.X.shape[1]], before.X)
    direct = [extract_features(*synthetic_cell(64, seed=100 + i)[:2], config=wider) for i in range(4)]
    np.testing.assert_allclose(after.X, [list(d.values()) for d in direct])
    computed.clear()
    reordered = extract_feature_set(samples, **_kw(tmp_path, config=replace(wider, families=wider.families[::-1])))
    assert computed == [] and reordered.names[0].startswith("img_")  # column order follows the config


def test_corrupt_image_raises_naming_it_or_is_skipped_and_counted(tmp_path, monkeypatch):
    samples = _write_samples(tmp_path, 3, masks=False)
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    samples.insert(1, Sample(id="broken", label="a", image_path=bad))
    with pytest.raises(DataError, match=r"sample broken: cannot read image .*x\.png"):
        extract_feature_set(samples, **_kw(tmp_path))
    assert not (tmp_path / "cache" / "features").exists() or not any((tmp_path / "cache" / "features").iterdir())
    fs = extract_feature_set(samples, **_kw(tmp_path, on_bad_image="skip"))
    assert fs.skipped == ("broken",) and fs.ids == ("c0", "c1", "c2") and np.isfinite(fs.X).all()
    path = feature_cache_path(
        cache_dir=tmp_path / "cache", dataset_fingerprint="fp", extraction="given", config=FeatureConfig(),
        kind="cell", family="haralick",
    )  # fmt: skip
    assert read_feature_cache(path).skipped == ("broken",)  # persisted with the cache
    from cellbench import features

    monkeypatch.setattr(features.batch, "_extract_one", lambda *a: (_ for _ in ()).throw(AssertionError("again")))
    assert extract_feature_set(samples, **_kw(tmp_path, on_bad_image="skip")).skipped == ("broken",)


def test_bad_options_are_refused(tmp_path):
    samples = _write_samples(tmp_path, 1)
    with pytest.raises(ConfigError, match="on_bad_image must be one of raise, skip, got 'ignore'"):
        extract_feature_set(samples, **_kw(tmp_path, on_bad_image="ignore"))
    with pytest.raises(ConfigError, match="n_jobs must be a positive integer"):
        extract_feature_set(samples, **_kw(tmp_path, n_jobs=0))
    with pytest.raises(DataError, match="duplicate sample ids: c0"):
        extract_feature_set(samples + samples, **_kw(tmp_path))
    with pytest.raises(
        UnknownNameError, match="unknown feature family 'gabor'; known .*: haralick, hed_texture, intensity"
    ):
        extract_feature_set(samples, **_kw(tmp_path, config=FeatureConfig(families=("gabor",))))
    assert not (tmp_path / "cache").exists()  # refused before anything was read or extracted


# -- real data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "pattern"), [("cnmc_sample", "*/*.bmp"), ("allidb2", "*/*.tif")])
def test_real_cells_get_sensible_masks_and_finite_features(name, pattern):
    from cellbench.datasets.io import read_image

    files = sorted(shared(name).glob(pattern))[::9][:6]
    assert files, f"no {pattern} files in {shared(name)}"
    for f in files:
        img = read_image(f)
        mask = cell_mask(img)
        assert 0.02 < mask.mean() < 0.9, f"{f.name}: cell mask covers {mask.mean():.2f} of the image"
        nuc = nucleus_mask(img, mask)
        assert nuc.sum() < mask.sum(), f"{f.name}: the nucleus fills the whole cell"
        feats = extract_features(img, mask, sample=f.name)
        assert np.isfinite(list(feats.values())).all()
        assert feats["nuc_found"] == 1, f"{f.name}: no nucleus found"


def test_plugins_register_families_at_run_time(monkeypatch):
    from cellbench.features import register_family
    from cellbench.features.catalog import BUILTIN

    assert (
        FEATURES.names()
        == [f.name for f in BUILTIN]
        == ["intensity", "morphology", "nucleus", "haralick", "lbp", "whole_image", "hed_texture"]
    )
    monkeypatch.setattr(FEATURES, "_items", dict(FEATURES._items))  # left as it was after the test

    @register_family("size", names=lambda config: ("size_pixels",))
    def size(cell, config):
        return {"size_pixels": float(cell.n_pixels)}

    img, cyto, _ = synthetic_cell(40)
    f = extract_features(img, cyto, config=FeatureConfig(families=("size", "intensity")))
    assert next(iter(f)) == "size_pixels" and f["size_pixels"] == cyto.sum()
