"""Texture inside the cell: Haralick co-occurrence statistics (mahotas) and uniform LBP histograms (skimage)."""

from __future__ import annotations

import mahotas
import numpy as np
from skimage.feature import local_binary_pattern

from features.cell import Cell
from features.config import FeatureConfig
from features.registry import FEATURES

HARALICK_NAMES = (
    "asm",
    "contrast",
    "correlation",
    "variance",
    "idm",
    "sum_avg",
    "sum_var",
    "sum_entropy",
    "entropy",
    "diff_var",
    "diff_entropy",
    "imc1",
    "imc2",
)


def quantise(grey: np.ndarray, mask: np.ndarray, levels: int) -> np.ndarray:
    """Grey levels 1..levels inside the mask, 0 outside (so mahotas' ``ignore_zeros`` skips background).

    The cell's own 1st-99th percentile range is stretched over the levels, which makes texture less
    sensitive to overall stain intensity (that is measured by the intensity family).
    """
    inside = grey[mask]
    lo, hi = np.percentile(inside, (1, 99)) if inside.size else (0, 255)
    span = max(hi - lo, 1.0)
    q = np.clip((grey.astype(np.float32) - lo) * ((levels - 1) / span), 0, levels - 1).astype(np.uint8) + 1
    q[~mask] = 0
    return q


@FEATURES.register("haralick")
def haralick(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Haralick's 13 features over 4 directions at each distance: their mean and range."""
    q = quantise(cell.grey, cell.mask, config.haralick_levels)
    out: dict[str, float] = {}
    for d in config.haralick_distances:
        try:
            values = mahotas.features.haralick(q, distance=d, ignore_zeros=True, return_mean_ptp=True)
        except ValueError:  # a cell too small to have pixel pairs at this distance in some direction
            values = np.zeros(2 * len(HARALICK_NAMES))
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        for i, name in enumerate(HARALICK_NAMES):
            out[f"haralick_d{d}_{name}_mean"] = float(values[i])
            out[f"haralick_d{d}_{name}_range"] = float(values[i + len(HARALICK_NAMES)])
    return out


@FEATURES.register("lbp")
def lbp(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Rotation-invariant uniform LBP histograms over the cell's pixels, one per (points, radius)."""
    out: dict[str, float] = {}
    for points, radius in config.lbp:
        codes = local_binary_pattern(cell.grey, points, radius, method="uniform")[cell.mask].astype(np.int64)
        hist = np.bincount(codes, minlength=points + 2).astype(float)
        hist /= max(hist.sum(), 1.0)
        for b, v in enumerate(hist):
            out[f"lbp_p{points}r{radius}_u{b:02d}"] = float(v)
    return out
