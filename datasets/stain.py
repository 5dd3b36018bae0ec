"""Stain normalisation of 8-bit RGB images to a reference fitted on a set of images (a training fold).

Reinhard et al. (2001): each image's CIE-Lab channels are standardised and given the reference's means and
standard deviations (:mod:`skimage.color`). Macenko et al. (2009): each image's haematoxylin and eosin vectors and
concentrations are estimated from its optical densities and re-mixed with the reference's
(``torchstain``'s NumPy implementation, transmitted light 255 so that white stays white). A reference is a small
record of numbers; its :attr:`StainReference.key` names it in cache keys.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from skimage.color import lab2rgb, rgb2lab
from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import module_versions, stable_hash

STAIN_METHODS = ("none", "reinhard", "macenko")
_IO = 255  # transmitted light: background white maps to zero optical density
_BETA = 0.15  # optical density below which a pixel counts as background (Macenko's default)
_MIN_TISSUE = 0.05  # fewer stained pixels than this fraction: the image's own stain estimate is noise; left as is


def check_method(method: object) -> str:
    """``method`` if it is one of :data:`STAIN_METHODS`, else a :class:`ConfigError` listing them."""
    if method not in STAIN_METHODS:
        raise ConfigError(f"unknown stain method {method!r}; allowed: {', '.join(STAIN_METHODS)}")
    return str(method)


@dataclass(frozen=True, kw_only=True)
class StainReference:
    """What images are normalised to: Reinhard's Lab means and standard deviations (6 numbers) or Macenko's
    haematoxylin and eosin optical-density vectors and 99th-percentile concentrations (3 × 2 + 2 numbers)."""

    method: str
    values: tuple[float, ...]
    n_images: int = 0

    @property
    def key(self) -> str:
        """A stable name of this reference and of the code that applies it (for cache and job keys)."""
        return stable_hash(
            {"method": self.method, "values": [round(v, 6) for v in self.values], "code": _code_version()}
        )

    def as_json(self) -> dict:
        return {"method": self.method, "values": list(self.values), "n_images": self.n_images, "key": self.key}


@lru_cache(maxsize=1)
def _code_version() -> str:
    return stable_hash({"code": inspect.getsource(sys.modules[__name__]), **module_versions("skimage", "torchstain")})


def fit_reference(
    images: Iterable[np.ndarray], *, method: str, max_pixels: int = 1_000_000, seed: int = 0
) -> StainReference:
    """The reference of ``method`` fitted on the pooled pixels of ``images`` (uint8 RGB).

    At most ``max_pixels`` pixels (a seeded random subset) enter the fit.
    """
    check_method(method)
    if method == "none":
        raise ConfigError("stain method 'none' has no reference")
    pixels = [np.asarray(im, dtype=np.uint8).reshape(-1, 3) for im in images]
    if not pixels:
        raise ConfigError(f"no images to fit a {method} stain reference on")
    pooled = np.concatenate(pixels)
    if len(pooled) > max_pixels:
        pooled = pooled[np.random.default_rng(seed).choice(len(pooled), max_pixels, replace=False)]
    if method == "reinhard":
        lab = rgb2lab(pooled[:, None, :]).reshape(-1, 3)
        values = (*lab.mean(axis=0), *lab.std(axis=0))
    else:
        tissue = pooled[_tissue(pooled)]
        if len(tissue) < 10:
            raise ConfigError(f"the {len(pixels)} images hold too few stained pixels to fit a Macenko reference")
        norm = NumpyMacenkoNormalizer()
        norm.fit(tissue[:, None, :], Io=_IO, beta=_BETA)
        values = (*norm.HERef.ravel(), *norm.maxCRef)
    return StainReference(method=method, values=tuple(float(v) for v in values), n_images=len(pixels))


def normalise(image: np.ndarray, reference: StainReference) -> np.ndarray:
    """``image`` (uint8 RGB, H × W × 3) with the stain colours of ``reference``, as uint8 RGB.

    A Macenko image with fewer than 5 % stained pixels (optical density below 0.15 in a channel) is returned as
    it is: its own stain vectors cannot be estimated.
    """
    image = np.asarray(image, dtype=np.uint8)
    if reference.method == "reinhard":
        return _reinhard(image, np.asarray(reference.values[:3]), np.asarray(reference.values[3:]))
    if reference.method == "macenko":
        return _macenko(image, reference)
    raise ConfigError(f"unknown stain method {reference.method!r}; allowed: reinhard, macenko")


def _reinhard(image: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    lab = rgb2lab(image)
    mu = lab.reshape(-1, 3).mean(axis=0)
    sd = lab.reshape(-1, 3).std(axis=0)
    scale = np.divide(stds, sd, out=np.ones(3), where=sd > 1e-6)  # a flat channel keeps its spread (none)
    out = (lab - mu) * scale + means
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    with warnings.catch_warnings():
        # Lab values mapped outside the sRGB gamut are clipped, as intended; skimage warns once per image
        warnings.filterwarnings("ignore", message=".*negative Z values that have been clipped", category=UserWarning)
        return _to_uint8(lab2rgb(out))


def _macenko(image: np.ndarray, reference: StainReference) -> np.ndarray:
    flat = image.reshape(-1, 3)
    if _tissue(flat).mean() < _MIN_TISSUE:
        return image.copy()
    norm = NumpyMacenkoNormalizer()
    norm.HERef = np.asarray(reference.values[:6]).reshape(3, 2)
    norm.maxCRef = np.asarray(reference.values[6:8])
    try:
        out, _, _ = norm.normalize(image, Io=_IO, beta=_BETA, stains=False)
    except (np.linalg.LinAlgError, ValueError, IndexError):  # a degenerate stain plane: nothing to map
        return image.copy()
    return out


def _tissue(pixels: np.ndarray) -> np.ndarray:
    """Whether each pixel (N × 3 uint8) is stained: optical density at least ``_BETA`` in every channel."""
    od = -np.log((pixels.astype(np.float64) + 1) / _IO)
    return np.all(od >= _BETA, axis=1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
