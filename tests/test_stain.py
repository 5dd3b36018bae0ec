"""Stain normalisation (Reinhard, Macenko) on properties: identity to its own reference, a stain-shifted copy moved
toward the reference, clear errors for unknown methods; HED colour augmentation of training batches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage.color import rgb2hed

from cellbench.core.errors import ConfigError
from cellbench.datasets.stain import STAIN_METHODS, check_method, fit_reference, normalise
from cellbench.models.pixels import AugmentConfig, augment_images, hed_jitter

# haematoxylin and eosin optical-density vectors (RGB), as in Macenko et al.'s reference
_H = np.array([0.65, 0.70, 0.29])
_E = np.array([0.07, 0.99, 0.11])


def he_image(seed: int, *, size: int = 48, h_gain: float = 1.0, e_gain: float = 1.0, e_vec=_E) -> np.ndarray:
    """A synthetic H&E patch: smooth haematoxylin blobs on an eosin background, some white space."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    h = np.zeros((size, size))
    for _ in range(6):
        cy, cx, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(3, 7)]
        h += 1.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    e = 0.5 + 0.3 * rng.random((size, size))
    e[: size // 6] = 0.02  # a strip of background
    od = h_gain * h[..., None] * _H + e_gain * e[..., None] * np.asarray(e_vec)
    return np.clip(np.rint(255 * np.exp(-od)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_normalising_an_image_to_its_own_reference_is_close_to_identity(method):
    image = he_image(1)
    out = normalise(image, fit_reference([image], method=method))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out.astype(int) - image).mean() < 3.0


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_a_stain_shifted_copy_moves_toward_the_reference_statistics(method):
    """Reinhard's statistics are Lab means and spreads; Macenko's the stain vectors and top concentrations."""
    train = [he_image(s) for s in range(4)]
    reference = fit_reference(train, method=method)
    shifted = [he_image(s, h_gain=0.6, e_gain=1.5, e_vec=[0.2, 0.9, 0.3]) for s in range(10, 14)]

    def distance(images):
        return np.linalg.norm(np.subtract(fit_reference(images, method=method).values, reference.values))

    before = distance(shifted)
    assert before > 0.1
    assert distance([normalise(im, reference) for im in shifted]) < 0.3 * before


def test_the_reference_is_fitted_on_the_images_given_and_names_them():
    a = fit_reference([he_image(0), he_image(1)], method="macenko")
    assert a == fit_reference([he_image(0), he_image(1)], method="macenko")
    assert a.key == fit_reference([he_image(0), he_image(1)], method="macenko").key
    b = fit_reference([he_image(0), he_image(2, e_gain=1.8)], method="macenko")
    assert b.key != a.key and len(a.values) == 8 and a.n_images == 2
    assert len(fit_reference([he_image(0)], method="reinhard").values) == 6


def test_a_macenko_image_with_almost_no_stain_is_left_as_it_is():
    blank = np.full((32, 32, 3), 250, np.uint8)
    blank[0, 0] = (120, 60, 140)
    reference = fit_reference([he_image(0)], method="macenko")
    assert np.array_equal(normalise(blank, reference), blank)


def test_reinhard_keeps_a_flat_image_finite():
    flat = np.full((16, 16, 3), 200, np.uint8)
    out = normalise(flat, fit_reference([he_image(0)], method="reinhard"))
    assert out.dtype == np.uint8 and np.ptp(out.reshape(-1, 3), axis=0).max() <= 1


def test_unknown_methods_are_refused_with_the_allowed_ones():
    assert check_method("macenko") == "macenko"
    with pytest.raises(ConfigError, match="unknown stain method 'vahadane'; allowed: none, reinhard, macenko"):
        check_method("vahadane")
    with pytest.raises(ConfigError, match="no reference"):
        fit_reference([he_image(0)], method="none")
    assert STAIN_METHODS[0] == "none"


def test_hed_jitter_perturbs_the_stain_densities_within_its_bounds_and_nothing_at_zero():
    batch = np.stack([he_image(s, size=32) for s in range(4)])
    same = hed_jitter(batch, sigma=0.0, rng=np.random.default_rng(0))
    assert np.abs(same.astype(int) - batch).max() <= 2  # rgb2hed -> hed2rgb round trip
    out = hed_jitter(batch, sigma=0.05, rng=np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == batch.shape
    assert np.array_equal(out, hed_jitter(batch, sigma=0.05, rng=np.random.default_rng(0)))
    assert not np.array_equal(out, batch)
    h_in = np.array([rgb2hed(im)[..., 0].mean() for im in batch])
    h_out = np.array([rgb2hed(im)[..., 0].mean() for im in out])
    assert np.all(np.abs(h_out - h_in) <= 0.05 * np.abs(h_in) + 0.05 + 0.01)


def test_augmentation_without_hed_draws_as_before_and_with_it_only_recolours():
    batch = np.stack([he_image(s, size=32) for s in range(4)])
    geometric = AugmentConfig(brightness=0, contrast=0, hue=0)
    plain = augment_images(batch, rng=np.random.default_rng(3), config=geometric)
    hed = augment_images(batch, rng=np.random.default_rng(3), config=replace(geometric, hed=0.05))
    # the same flips and turns as without it, then HED jitter from the draws that follow them
    rng = np.random.default_rng(3)
    rng.integers(0, 4, 4), rng.integers(0, 2, (4, 2)), rng.uniform(-1.0, 1.0, (4, 3))
    assert np.array_equal(hed, hed_jitter(plain, sigma=0.05, rng=rng))
    assert not np.array_equal(hed, plain)
    with pytest.raises(ConfigError, match="hed must be between 0 and 1"):
        AugmentConfig(hed=1.5)


def test_reinhard_to_an_out_of_gamut_reference_clips_without_a_warning_per_image():
    import warnings

    from cellbench.datasets.stain import _reinhard

    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skimage's "negative Z values that have been clipped" would fail here
        out = _reinhard(img, np.array([5.0, 0.0, 100.0]), np.array([1.0, 1.0, 1.0]))
    assert out.dtype == np.uint8 and out.shape == img.shape
