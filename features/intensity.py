"""Intensity and colour statistics per channel inside the cell."""

from __future__ import annotations

import cv2
import numpy as np

from features.cell import Cell
from features.config import FeatureConfig
from features.registry import FEATURES

PERCENTILES = (10, 25, 50, 75, 90)
CHANNELS = ("r", "g", "b", "grey", "sat", "hue")


def channel_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per column of uint8 ``values`` (pixels × channels): mean, std, percentiles, skewness, excess kurtosis.

    Computed from each channel's 256-bin histogram, which is exact for 8-bit data and linear in the
    number of pixels; percentiles are the lowest value whose cumulative share reaches p (no
    interpolation). Skewness and kurtosis are 0 for a constant channel.
    """
    n, c = values.shape
    levels = np.arange(256, dtype=np.float64)
    offset = (np.arange(c) * 256)[None, :]
    hist = np.bincount((values.astype(np.int64) + offset).ravel(), minlength=256 * c).reshape(c, 256) / n
    mean = hist @ levels
    d = levels[None, :] - mean[:, None]
    var = (hist * d**2).sum(axis=1)
    std = np.sqrt(var)
    ok = std > 1e-9
    safe = np.where(ok, std, 1.0)
    skew = np.where(ok, (hist * d**3).sum(axis=1) / safe**3, 0.0)
    kurt = np.where(ok, (hist * d**4).sum(axis=1) / safe**4 - 3.0, 0.0)
    cdf = np.cumsum(hist, axis=1)
    out = {"mean": mean, "std": std, "skew": skew, "kurtosis": kurt}
    for p in PERCENTILES:
        out[f"p{p}"] = (cdf < p / 100 - 1e-12).sum(axis=1).astype(np.float64)
    return out


@FEATURES.register("intensity")
def intensity(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Statistics of R, G, B, grey, and HSV saturation and hue inside the cell mask."""
    hsv = cv2.cvtColor(cell.rgb, cv2.COLOR_RGB2HSV)
    stacked = np.dstack([cell.rgb, cell.grey, hsv[:, :, 1], hsv[:, :, 0]])[cell.mask]
    stats = channel_stats(stacked)
    out: dict[str, float] = {}
    for c, name in enumerate(CHANNELS):
        for stat, values in stats.items():
            out[f"int_{name}_{stat}"] = float(values[c])
    return out
