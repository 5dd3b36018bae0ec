"""Haematoxylin optical density of 8-bit RGB values (the nuclear stain of Giemsa/Wright and H&E preparations)."""

from __future__ import annotations

import numpy as np

# skimage.color.hed_from_rgb[:, 0]: the haematoxylin column of the colour-deconvolution matrix
_HEM = np.array([1.87798274, -0.06590806, -0.60190736])
# optical density of each 8-bit value as skimage computes it: log(max(v / 255, 1e-6)) / log(1e-6)
_OD = np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin density (>= 0) of ``uint8`` RGB values (any shape (..., 3)), as ``rgb2hed(...)[..., 0]``."""
    return np.maximum(_OD[rgb] @ _HEM, 0.0)
