"""Shape of the cell mask: size, elongation, convexity, Feret diameters, Hu and Zernike moments."""

from __future__ import annotations

import math

import cv2
import mahotas
import numpy as np

from features.cell import Cell
from features.config import FeatureConfig
from features.registry import FEATURES

SHAPE_NAMES = (
    "area",
    "perimeter",
    "equivalent_diameter",
    "eccentricity",
    "solidity",
    "extent",
    "circularity",
    "convexity",
    "major_axis",
    "minor_axis",
    "feret_max",
    "feret_min",
)


def shape_values(mask: np.ndarray) -> dict[str, float]:
    """Shape descriptors of a boolean mask (the largest outer contour for perimeter and hull)."""
    m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    area = float(np.count_nonzero(m))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    perimeter = float(cv2.arcLength(contour, True)) or 1.0
    hull = cv2.convexHull(contour)
    hull_area = float(cv2.contourArea(hull))
    hull_perimeter = float(cv2.arcLength(hull, True))
    _x, _y, w, h = cv2.boundingRect(m)
    mo = cv2.moments(m, binaryImage=True)
    major = minor = ecc = 0.0
    if mo["m00"] > 0:
        mu20, mu02, mu11 = mo["mu20"] / mo["m00"], mo["mu02"] / mo["m00"], mo["mu11"] / mo["m00"]
        common = math.sqrt(max(((mu20 - mu02) / 2) ** 2 + mu11**2, 0.0))
        l1, l2 = (mu20 + mu02) / 2 + common, max((mu20 + mu02) / 2 - common, 0.0)
        major, minor = 4 * math.sqrt(l1), 4 * math.sqrt(l2)
        ecc = math.sqrt(1 - l2 / l1) if l1 > 0 else 0.0
    fmax, fmin = feret_diameters(hull.reshape(-1, 2).astype(float))
    return {
        "area": area,
        "perimeter": perimeter,
        "equivalent_diameter": math.sqrt(4 * area / math.pi),
        "eccentricity": ecc,
        "solidity": area / hull_area if hull_area > 0 else 1.0,
        "extent": area / float(w * h) if w * h else 0.0,
        "circularity": min(4 * math.pi * area / perimeter**2, 1.5),
        "convexity": hull_perimeter / perimeter,
        "major_axis": major,
        "minor_axis": minor,
        "feret_max": fmax,
        "feret_min": fmin,
    }


def feret_diameters(hull: np.ndarray) -> tuple[float, float]:
    """Largest and smallest caliper width of a convex polygon (rotating calipers over its edges)."""
    if len(hull) < 3:
        d = float(np.ptp(hull, axis=0).max()) + 1.0 if len(hull) else 0.0
        return d, d
    diff = hull[:, None, :] - hull[None, :, :]
    fmax = float(np.sqrt((diff**2).sum(-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    ok = lengths > 0
    normals = np.stack([-edges[ok, 1], edges[ok, 0]], axis=1) / lengths[ok, None]
    proj = hull @ normals.T  # points × edges
    fmin = float((proj.max(axis=0) - proj.min(axis=0)).min())
    # pixel-centre contours under-measure widths by one pixel
    return fmax + 1.0, fmin + 1.0


def hu_moments(mask: np.ndarray) -> np.ndarray:
    """The 7 Hu moments, log-scaled with their sign kept (−sign·log10|h|; 0 stays 0)."""
    hu = cv2.HuMoments(cv2.moments(mask.view(np.uint8), binaryImage=True)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.sign(hu) * np.log10(np.abs(hu))
    return np.where(np.isfinite(out), out, 0.0)


def zernike(mask: np.ndarray, *, degree: int, size: int = 24) -> np.ndarray:
    """Zernike moment magnitudes (mahotas) of the mask, scaled into a ``size`` px disc."""
    h, w = mask.shape
    side = max(h, w)
    square = np.zeros((side, side), np.uint8)
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = mask
    small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return mahotas.features.zernike_moments(small, size // 2, degree=degree)


@FEATURES.register("morphology")
def morphology(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Shape of the whole cell at full resolution, plus Hu and Zernike moments."""
    out = {f"morph_{k}": v for k, v in shape_values(cell.full_mask).items()}
    out.update({f"morph_hu{i + 1}": float(v) for i, v in enumerate(hu_moments(cell.full_mask))})
    out.update(
        {f"morph_zernike{i:02d}": float(v) for i, v in enumerate(zernike(cell.full_mask, degree=config.zernike_degree))}
    )
    return out
