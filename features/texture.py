"""Texture families: Haralick co-occurrence statistics and uniform LBP histograms inside the cell."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig
from cellbench.features.family import CROP, family
from cellbench.features.haralick import NAMES as HARALICK_NAMES
from cellbench.features.haralick import cooccurrences, haralick_stack, mean_and_range, quantise
from cellbench.features.lbp import lbp_histogram


def lbp_points(radius: int) -> int:
    """Sampling points of the LBP at ``radius``: 8 per unit of radius (8 at R=1, 16 at R=2)."""
    return 8 * radius


@lru_cache(maxsize=32)
def haralick_names(config: FeatureConfig) -> tuple[str, ...]:
    return tuple(
        f"haralick_d{d}_{name}_{stat}"
        for d in config.haralick_distances
        for stat in ("mean", "range")
        for name in HARALICK_NAMES
    )


@lru_cache(maxsize=32)
def lbp_names(config: FeatureConfig) -> tuple[str, ...]:
    return tuple(f"lbp_p{lbp_points(r)}r{r}_u{b:02d}" for r in config.lbp_radii for b in range(lbp_points(r) + 2))


@family("haralick", names=haralick_names, params=(*CROP, "haralick_levels", "haralick_distances"))
def haralick(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Haralick's 13 features in 4 directions at each distance: their mean and range over directions.

    Only directions with at least one pair of cell pixels count; a cell too thin for any pair at a
    distance gets zeros for that distance.
    """
    q = quantise(cell.grey, cell.mask, levels=config.haralick_levels, histogram=cell.grey_histogram)
    feats, valid = haralick_stack(cooccurrences(q, levels=config.haralick_levels, distances=config.haralick_distances))
    per_distance = [mean_and_range(feats[i : i + 4], valid[i : i + 4]) for i in range(0, len(feats), 4)]
    values = np.concatenate(per_distance)
    return dict(zip(haralick_names(config), values.tolist()))


@family("lbp", names=lbp_names, params=CROP)
def lbp(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Rotation-invariant uniform LBP histograms (P = 8R points, P + 2 bins) over the cell's pixels."""
    hists = [lbp_histogram(cell.grey, cell.mask, points=lbp_points(r), radius=r) for r in config.lbp_radii]
    return dict(zip(lbp_names(config), np.concatenate(hists).tolist()))
