"""Nucleus vs cytoplasm features for stained white cells (nucleus from :func:`cellbench.datasets.masks.nucleus_mask`).

``nuc_nc_ratio`` is the nucleus share of the cell area (nucleus / cell, in 0..1, finite even when no
cytoplasm is seen). A cell without a detectable nucleus gets ``nuc_found`` 0 and zeros elsewhere;
contrasts are 0 when the nucleus or the cytoplasm is empty. Areas and lengths are in input pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig
from cellbench.features.family import CROP, family
from cellbench.features.morphology import scaled, shape_values

SHAPE = ("area", "perimeter", "solidity", "eccentricity", "circularity", "convexity", "major_axis", "minor_axis")
NAMES = (
    "nuc_found",
    *(f"nuc_{k}" for k in SHAPE),
    "nuc_nc_ratio",
    "nuc_parts",
    "nuc_grey_mean",
    "nuc_grey_std",
    "nuc_cyto_grey_mean",
    "nuc_grey_contrast",
    "nuc_hem_contrast",
)
MIN_PIXELS = 5


@family("nucleus", names=lambda config: NAMES, params=CROP)
def nucleus(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Nucleus size, N:C ratio, nucleus shape, number of parts and nucleus-vs-cytoplasm contrast."""
    nuc = cell.nucleus
    nuc_in = np.take(nuc.ravel(), cell.index)  # nucleus flags of the cell's pixels, as cell.grey_pixels
    n_nuc = int(np.count_nonzero(nuc_in))
    out = dict.fromkeys(NAMES, 0.0)
    if n_nuc < MIN_PIXELS:
        return out
    shape = scaled(shape_values(nuc), cell.px)
    out["nuc_found"] = 1.0
    out.update({f"nuc_{k}": shape[k] for k in SHAPE})
    out["nuc_nc_ratio"] = n_nuc / cell.n_pixels
    out["nuc_parts"] = float(cv2.connectedComponents(nuc.view(np.uint8), connectivity=8)[0] - 1)
    grey = cell.grey_pixels.astype(np.float64)
    out["nuc_grey_mean"] = grey[nuc_in].mean()
    out["nuc_grey_std"] = grey[nuc_in].std()
    if n_nuc < cell.n_pixels:
        hem = cell.hem_pixels
        out["nuc_cyto_grey_mean"] = grey[~nuc_in].mean()
        out["nuc_grey_contrast"] = out["nuc_cyto_grey_mean"] - out["nuc_grey_mean"]
        out["nuc_hem_contrast"] = hem[nuc_in].mean() - hem[~nuc_in].mean()
    return {k: float(v) for k, v in out.items()}
