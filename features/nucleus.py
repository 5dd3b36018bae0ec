"""Nucleus vs cytoplasm features for stained white cells (nucleus from a colour threshold)."""

from __future__ import annotations

import numpy as np

from features.cell import Cell
from features.config import FeatureConfig
from features.morphology import shape_values
from features.registry import FEATURES

NUCLEUS_SHAPE = ("area", "solidity", "eccentricity", "circularity", "convexity")


@FEATURES.register("nucleus")
def nucleus(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Nucleus size, N:C ratio, nucleus shape, number of lobes and nucleus-vs-cytoplasm contrast.

    Areas are in full-resolution pixels. A cell without a detectable nucleus gets zeros (and
    ``nuc_found`` 0), so columns stay finite and identical.
    """
    nuc, mask = cell.nucleus, cell.mask
    cell_px = max(int(mask.sum()), 1)
    nuc_px = int(nuc.sum())
    out = {"nuc_found": float(nuc_px > 0)}
    if nuc_px >= 5:
        shape = shape_values(nuc)
        import cv2

        n_parts = cv2.connectedComponents(nuc.view(np.uint8))[0] - 1
    else:
        shape, n_parts = dict.fromkeys(NUCLEUS_SHAPE, 0.0), 0
    for k in NUCLEUS_SHAPE:
        out[f"nuc_{k}"] = float(shape[k]) / (cell.scale**2 if k == "area" else 1.0)
    cyto = mask & ~nuc
    grey = cell.grey.astype(np.float64)
    nuc_mean = float(grey[nuc].mean()) if nuc_px else 0.0
    cyto_mean = float(grey[cyto].mean()) if cyto.any() else nuc_mean
    out["nuc_nc_ratio"] = nuc_px / cell_px
    out["nuc_cyto_ratio"] = nuc_px / max(int(cyto.sum()), 1)
    out["nuc_parts"] = float(n_parts)
    out["nuc_mean_grey"] = nuc_mean
    out["nuc_cyto_mean_grey"] = cyto_mean
    out["nuc_contrast"] = cyto_mean - nuc_mean
    out["nuc_grey_std"] = float(grey[nuc].std()) if nuc_px else 0.0
    return out
