"""A cell prepared once for every feature family: cropped to its mask, resized for texture."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from bench.errors import DataError


@dataclass(eq=False)
class Cell:
    """One cell. ``full_mask`` is at full resolution; ``rgb``/``grey``/``mask`` at texture resolution."""

    full_mask: np.ndarray
    rgb: np.ndarray
    grey: np.ndarray
    mask: np.ndarray
    scale: float
    _nucleus: np.ndarray | None = field(default=None, repr=False)

    @property
    def nucleus(self) -> np.ndarray:
        """Nucleus mask at texture resolution (computed once)."""
        if self._nucleus is None:
            from features.masks import nucleus_mask

            self._nucleus = nucleus_mask(self.rgb, self.mask)
        return self._nucleus


def prepare_cell(image: np.ndarray, mask: np.ndarray | None, *, max_side: int, sample: str = "") -> Cell:
    """Crop ``image`` to the mask's bounding box (1 px margin) and resize it for texture if large.

    Raises
    ------
    DataError
        If the mask is empty or its shape differs from the image's.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"sample {sample}: expected an RGB image (H, W, 3), got shape {image.shape}")
    if mask is None:
        mask = np.ones(image.shape[:2], bool)
    mask = np.asarray(mask) > 0
    if mask.shape != image.shape[:2]:
        raise DataError(f"sample {sample}: mask shape {mask.shape} differs from image shape {image.shape[:2]}")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise DataError(f"empty mask for sample {sample}: no cell pixels")
    y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, mask.shape[0])
    x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])
    full_mask = mask[y0:y1, x0:x1]
    rgb = image[y0:y1, x0:x1]
    side = max(rgb.shape[:2])
    scale = 1.0
    small_mask = full_mask
    if side > max_side:
        scale = max_side / side
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(full_mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        if not small_mask.any():
            small_mask = np.ones(rgb.shape[:2], bool)
    rgb = np.ascontiguousarray(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return Cell(full_mask=np.ascontiguousarray(full_mask), rgb=rgb, grey=grey, mask=small_mask, scale=scale)
