"""The whole-image family: colour and texture of the whole image, not of one segmented cell.

On multi-cell crops and tissue patches much of what separates classes lies outside any one cell (background,
the other cells, the stain of the whole field). This family measures the whole (uncropped) image at two scales:
scale 1 is the image resized so its longer side is at most ``image_side``, scale 2 half of that.

- colour (scale 2: area averaging has removed pixel noise, and it costs a quarter): the
  :data:`cellbench.features.intensity.STATS` of R, G, B, HSV hue, saturation and value (OpenCV's 8-bit HSV) and
  of the haematoxylin, eosin and DAB densities of ``skimage.color.rgb2hed``; 8-bin histograms of hue, saturation
  and value (shares of the pixels). Hue is measured from cyan: 0..179 is OpenCV's hue plus 90, modulo 180, so
  the wrap of the hue circle falls on cyan-green, which stained slides hardly hold, and not on the reds, pinks and
  purples they are made of (OpenCV's 0 is red: a red whose pixels straddle it would average to cyan);
- texture (each scale): Haralick's 13 features of the co-occurrences summed over 4 directions (per distance; grey
  levels spread over the image's 1st-99th percentile range as in the cell family) and the uniform LBP histogram
  at radius 1 (8 points) of the grey image: the two scales play the part of two radii, at a quarter of the cost;
- edges (each scale): the share of Canny edge pixels (OpenCV, hysteresis thresholds 50 and 100 grey levels) and
  the mean Sobel gradient magnitude (grey levels per pixel).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from skimage.color import rgb2hed

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig
from cellbench.features.family import family
from cellbench.features.haralick import NAMES as HARALICK_NAMES
from cellbench.features.haralick import cooccurrences, haralick_stack, quantise
from cellbench.features.intensity import STATS, float_stats, histogram_stats
from cellbench.features.lbp import lbp_histogram

BYTE_CHANNELS = ("r", "g", "b", "hue", "sat", "val")
STAIN_CHANNELS = ("hem", "eos", "dab")
HIST_CHANNELS = ("hue", "sat", "val")
HIST_BINS = 8
HUE_LEVELS = 180
SCALES = (1, 2)
CANNY = (50, 100)
LBP_POINTS = 8
PARAMS = ("max_side", "image_side", "haralick_levels", "haralick_distances")


@lru_cache(maxsize=32)
def whole_image_names(config: FeatureConfig) -> tuple[str, ...]:
    colour = [f"img_{c}_{s}" for c in (*BYTE_CHANNELS, *STAIN_CHANNELS) for s in STATS]
    hist = [f"img_{c}_h{b}" for c in HIST_CHANNELS for b in range(HIST_BINS)]
    texture = []
    for k in SCALES:
        texture += [f"img_s{k}_haralick_d{d}_{n}" for d in config.haralick_distances for n in HARALICK_NAMES]
        texture += [f"img_s{k}_lbp_p{LBP_POINTS}r1_u{b:02d}" for b in range(LBP_POINTS + 2)]
        texture += [f"img_s{k}_edge_density", f"img_s{k}_gradient_mean"]
    return (*colour, *hist, *texture)


def scaled_images(image: np.ndarray, *, side: int) -> list[np.ndarray]:
    """The image at each of :data:`SCALES`: longer side at most ``side``, then half of it (area averaging)."""
    out = [_shrink(image, side)]
    for k in SCALES[1:]:
        out.append(_shrink(out[0], max(max(out[0].shape[:2]) // k, 8)))
    return out


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    s = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def colour_values(rgb: np.ndarray) -> np.ndarray:
    """Colour statistics and histograms of an RGB ``uint8`` image, in :func:`whole_image_names` order."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    planes = [(rgb, c) for c in range(3)] + [(hsv, c) for c in range(3)]
    hist = np.stack([cv2.calcHist([img], [c], None, [256], [0, 256]).ravel() for img, c in planes])
    stains = float_stats(np.ascontiguousarray(rgb2hed(rgb).reshape(-1, 3).T))
    # hue spans 0..179 in OpenCV's 8-bit HSV (saturation and value 0..255): turned by 90 levels, from cyan
    hist[3, :HUE_LEVELS] = np.roll(hist[3, :HUE_LEVELS], HUE_LEVELS // 2)
    hue, sat, val = _bins(hist[3, :HUE_LEVELS]), _bins(hist[4]), _bins(hist[5])
    shares = np.concatenate([hue, sat, val]) / (rgb.shape[0] * rgb.shape[1])
    return np.concatenate([histogram_stats(hist).ravel(), stains.ravel(), shares])


def _bins(hist: np.ndarray) -> np.ndarray:
    """``hist`` summed into :data:`HIST_BINS` near-equal runs of levels."""
    edges = np.linspace(0, hist.size, HIST_BINS + 1).round().astype(int)
    return np.add.reduceat(hist, edges[:-1])


def summed_cooccurrences(grey: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """One rotation-invariant co-occurrence matrix per distance (the 4 directions summed) of a grey image."""
    histogram = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel()
    q = quantise(grey, np.ones(grey.shape, bool), levels=config.haralick_levels, histogram=histogram)
    cmats = cooccurrences(q, levels=config.haralick_levels, distances=config.haralick_distances)
    return cmats.reshape(len(config.haralick_distances), 4, *cmats.shape[1:]).sum(axis=1)


def pattern_values(grey: np.ndarray) -> np.ndarray:
    """The uniform LBP histogram at radius 1, the Canny edge share and the mean gradient of a grey image."""
    lbp = lbp_histogram(grey, np.ones(grey.shape, bool), points=LBP_POINTS, radius=1)
    edges = cv2.Canny(grey, *CANNY)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    # whole squares below 2**24 (exact) and IEEE sqrt: the same bits wherever the image lies in memory, which
    # cv2.magnitude's vector path does not promise (its result changed with the buffer's alignment)
    magnitude = np.sqrt(gx * gx + gy * gy)
    # Sobel's 3x3 kernel weighs a one-level step by 4 (1 + 2 + 1): divided out, grey levels per pixel
    gradient = float(magnitude.mean(dtype=np.float64)) / 4.0
    return np.concatenate([lbp, [np.count_nonzero(edges) / edges.size, gradient]])


@family("whole_image", names=whole_image_names, params=PARAMS)
def whole_image(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Colour (RGB, HSV, H/E/DAB) and texture (Haralick, LBP, edges at two scales) of the whole image."""
    images = scaled_images(cell.image, side=config.image_side)
    greys = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in images]
    # the matrices of both scales in one stack: one call's fixed cost instead of two
    haralick, _ = haralick_stack(np.concatenate([summed_cooccurrences(g, config) for g in greys]))
    per_scale = haralick.reshape(len(greys), -1)
    parts = [colour_values(images[-1])]
    for k, grey in enumerate(greys):
        parts += [per_scale[k], pattern_values(grey)]
    return dict(zip(whole_image_names(config), np.concatenate(parts).tolist()))
