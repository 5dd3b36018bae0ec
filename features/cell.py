"""A cell prepared once for every feature family: validated, downscaled if huge, cropped to its mask."""

from __future__ import annotations

from functools import cached_property

import cv2
import numpy as np

from cellbench.core.errors import DataError
from cellbench.datasets.io import as_rgb8
from cellbench.datasets.masks import nucleus_mask
from cellbench.features.stain import haematoxylin


class Cell:
    """One cell cropped to its mask's bounding box plus a margin.

    ``rgb``, ``grey`` and ``mask`` are at working resolution; ``full_mask`` is the same crop of the mask at
    the input resolution (morphology is measured on it); ``image`` is the whole image, uncropped, at working
    resolution (whole-image families read it). ``px`` is the input pixels per working pixel
    (1.0 unless the image was downscaled); lengths are multiplied by it, areas by its square.
    Derived arrays (pixels inside the mask, nucleus mask, histograms) are computed once, on first use.
    """

    def __init__(self, *, rgb: np.ndarray, mask: np.ndarray, full_mask: np.ndarray, px: float, image: np.ndarray):
        self.rgb, self.mask, self.full_mask, self.px, self.image = rgb, mask, full_mask, px, image

    @cached_property
    def grey(self) -> np.ndarray:
        """ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B) as ``uint8``."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)

    @cached_property
    def n_pixels(self) -> int:
        return int(np.count_nonzero(self.mask))

    @cached_property
    def index(self) -> np.ndarray:
        """Flat indices of the pixels inside the mask (row-major)."""
        return np.flatnonzero(self.mask)

    @cached_property
    def rgb_pixels(self) -> np.ndarray:
        """(N, 3) RGB values of the pixels inside the mask."""
        return np.take(self.rgb.reshape(-1, 3), self.index, axis=0)

    @cached_property
    def grey_pixels(self) -> np.ndarray:
        return np.take(self.grey.ravel(), self.index)

    @cached_property
    def grey_histogram(self) -> np.ndarray:
        """256-bin histogram of the grey values inside the mask."""
        return cv2.calcHist([self.grey], [0], self.mask.view(np.uint8), [256], [0, 256]).ravel()

    @cached_property
    def hem_pixels(self) -> np.ndarray:
        """Haematoxylin optical density of the pixels inside the mask (as ``skimage.color.rgb2hed``)."""
        return haematoxylin(self.rgb_pixels)

    @cached_property
    def nucleus(self) -> np.ndarray:
        """Nucleus mask at working resolution (see :func:`cellbench.datasets.masks.nucleus_mask`)."""
        return nucleus_mask(self.rgb, self.mask)


def prepare_cell(
    image: np.ndarray, mask: np.ndarray, *, max_side: int | None, margin: int = 3, sample: str = ""
) -> Cell:
    """Downscale ``image`` if its longer side exceeds ``max_side``, then crop it to the mask.

    ``image`` is turned into RGB ``uint8`` by :func:`cellbench.datasets.io.as_rgb8`. The crop keeps ``margin``
    pixels around the mask's bounding box (neighbourhood operators such as LBP then see real pixels, not padding).

    Raises
    ------
    DataError
        If the mask is empty or its shape differs from the image's.
    """
    image = as_rgb8(image, where=f"sample {sample}")
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise DataError(f"sample {sample}: mask shape {mask.shape} differs from image shape {image.shape[:2]}")
    mask = mask if mask.dtype == bool else mask > 0
    full_box = _box(mask, margin)
    if full_box is None:
        raise DataError(f"empty mask for sample {sample}: no cell pixels")
    y0, y1, x0, x1 = full_box
    full_mask = np.ascontiguousarray(mask[y0:y1, x0:x1])
    side = max(image.shape[:2])
    if max_side is None or side <= max_side:
        rgb = np.ascontiguousarray(image[y0:y1, x0:x1])
        return Cell(rgb=rgb, mask=full_mask, full_mask=full_mask, px=1.0, image=image)
    s = max_side / side
    size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # area-averaged mask, kept where at least half a working pixel is cell (or any part, for tiny cells)
    cover = cv2.resize(mask.view(np.uint8) * np.uint8(255), size, interpolation=cv2.INTER_AREA)
    small_mask = cover >= 128
    if not small_mask.any():
        small_mask = cover > 0
    box = _box(small_mask, margin)
    if box is None:
        raise DataError(f"sample {sample}: the cell vanishes when the image is downscaled to max_side={max_side}")
    y0, y1, x0, x1 = box
    return Cell(
        rgb=np.ascontiguousarray(small[y0:y1, x0:x1]),
        mask=np.ascontiguousarray(small_mask[y0:y1, x0:x1]),
        full_mask=full_mask,
        px=1.0 / s,
        image=small,
    )


def _box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + margin + 1, h),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + margin + 1, w),
    )
