"""Shape of the cell mask: size, elongation, convexity, Feret diameters, Hu and Zernike moments.

Conventions (pixels of the input image; lengths scale with the pixel size, areas with its square):

- area: pixel count; perimeter: Cauchy-Crofton estimate from boundary crossings in 4 directions
  (unbiased for curved outlines, so a disc has circularity 4πA/P² close to 1; axis-aligned straight
  edges read about 5 % short);
- convex hull: the hull of the pixel centres; convex area = pixels inside it; solidity = area /
  convex area; convexity = convex perimeter / perimeter, clipped at 1 (digitisation can push a convex
  shape slightly above);
- major/minor axis and eccentricity: of the ellipse with the same second moments (as skimage);
- Feret diameters: the largest and smallest caliper width of the hull, plus one pixel (pixel centres
  lie half a pixel inside the outline), so a w x h rectangle has min Feret = min(w, h);
- Hu moments: −sign(h)·log10|h| (0 stays 0); Zernike: see :mod:`cellbench.features.zernike`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig
from cellbench.features.family import CROP, family
from cellbench.features.zernike import mask_zernike, zernike_orders

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
AREAS = frozenset({"area"})
LENGTHS = frozenset({"perimeter", "equivalent_diameter", "major_axis", "minor_axis", "feret_max", "feret_min"})


def crofton_perimeter(mask: np.ndarray) -> float:
    """Perimeter of a boolean mask by the Cauchy-Crofton formula over 4 directions (0°, 45°, 90°, 135°)."""
    m = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    horizontal = np.count_nonzero(m[:, 1:] != m[:, :-1])
    vertical = np.count_nonzero(m[1:, :] != m[:-1, :])
    diagonal = np.count_nonzero(m[1:, 1:] != m[:-1, :-1]) + np.count_nonzero(m[1:, :-1] != m[:-1, 1:])
    # crossings per direction times the line spacing (1, or 1/√2 on diagonals), averaged over π
    return math.pi / 8 * (horizontal + vertical + diagonal / math.sqrt(2))


def shape_values(mask: np.ndarray, *, moments: dict | None = None) -> dict[str, float]:
    """:data:`SHAPE_NAMES` of a non-empty boolean mask, in pixels (see the module docstring)."""
    m = mask.view(np.uint8) if mask.dtype == bool else (mask > 0).view(np.uint8)
    area = float(np.count_nonzero(m))
    perimeter = crofton_perimeter(m.view(bool))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    filled = np.zeros_like(m)
    cv2.fillConvexPoly(filled, hull, 1)
    convex_area = float(np.count_nonzero(filled | m))
    convex_perimeter = crofton_perimeter(filled.view(bool))
    _x, _y, w, h = cv2.boundingRect(m)
    mo = moments if moments is not None else cv2.moments(m, binaryImage=True)
    major, minor, ecc = ellipse_axes(mo)
    fmax, fmin = feret_diameters(hull.reshape(-1, 2).astype(np.float64))
    return {
        "area": area,
        "perimeter": perimeter,
        "equivalent_diameter": math.sqrt(4 * area / math.pi),
        "eccentricity": ecc,
        "solidity": area / convex_area,
        "extent": area / float(w * h),
        "circularity": 4 * math.pi * area / perimeter**2,
        "convexity": min(convex_perimeter / perimeter, 1.0),
        "major_axis": major,
        "minor_axis": minor,
        "feret_max": fmax,
        "feret_min": fmin,
    }


def ellipse_axes(mo: dict) -> tuple[float, float, float]:
    """Major and minor axis lengths (4·sqrt of the inertia eigenvalues) and eccentricity from cv2 moments."""
    if mo["m00"] <= 0:
        return 0.0, 0.0, 0.0
    mu20, mu02, mu11 = mo["mu20"] / mo["m00"], mo["mu02"] / mo["m00"], mo["mu11"] / mo["m00"]
    common = math.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    l1, l2 = (mu20 + mu02) / 2 + common, max((mu20 + mu02) / 2 - common, 0.0)
    ecc = math.sqrt(max(1 - l2 / l1, 0.0)) if l1 > 0 else 0.0
    return 4 * math.sqrt(l1), 4 * math.sqrt(l2), ecc


def feret_diameters(hull: np.ndarray) -> tuple[float, float]:
    """Largest and smallest caliper width of a convex polygon of pixel centres, plus one pixel.

    The minimum is found over the hull's edges (rotating calipers: the narrowest direction is
    perpendicular to an edge).
    """
    if len(hull) < 3:
        d = float(np.hypot(*np.ptp(hull, axis=0))) + 1.0 if len(hull) else 0.0
        return d, 1.0 if len(hull) else 0.0
    diff = hull[:, None, :] - hull[None, :, :]
    fmax = float(np.sqrt((diff**2).sum(-1)).max())
    edges = np.concatenate([hull[1:], hull[:1]]) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    ok = lengths > 0
    normals = np.stack([-edges[ok, 1], edges[ok, 0]], axis=1) / lengths[ok, None]
    proj = hull @ normals.T  # points x edges
    fmin = float((proj.max(axis=0) - proj.min(axis=0)).min())
    return fmax + 1.0, fmin + 1.0


def hu_moments(mo: dict) -> np.ndarray:
    """The 7 Hu moments from cv2 moments, log-scaled with their sign kept (−sign·log10|h|; 0 stays 0)."""
    hu = cv2.HuMoments(mo).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.sign(hu) * np.log10(np.abs(hu))
    return np.where(np.isfinite(out), out, 0.0)


@lru_cache(maxsize=32)
def morphology_names(config: FeatureConfig) -> tuple[str, ...]:
    return (
        *(f"morph_{k}" for k in SHAPE_NAMES),
        *(f"morph_hu{i}" for i in range(1, 8)),
        *(f"morph_zernike{i:02d}" for i in range(len(zernike_orders(config.zernike_degree)))),
    )


@family("morphology", names=morphology_names, params=(*CROP, "zernike_degree", "zernike_size"))
def morphology(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Shape of the cell mask at input resolution, plus Hu and Zernike moments."""
    mask = cell.full_mask
    mo = cv2.moments(mask.view(np.uint8), binaryImage=True)
    shape = shape_values(mask, moments=mo)
    values = [
        *(shape[k] for k in SHAPE_NAMES),
        *hu_moments(mo),
        *mask_zernike(mask, degree=config.zernike_degree, size=config.zernike_size),
    ]
    return dict(zip(morphology_names(config), map(float, values)))


def scaled(shape: dict[str, float], px: float) -> dict[str, float]:
    """Shape values measured on a downscaled mask, in input pixels (``px`` input pixels per pixel)."""
    if px == 1.0:
        return shape
    return {k: v * px * px if k in AREAS else v * px if k in LENGTHS else v for k, v in shape.items()}
