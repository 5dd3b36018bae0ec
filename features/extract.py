"""One image (+ mask) -> named feature values."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cellbench.core.types import DataKind
from cellbench.datasets.io import as_rgb8
from cellbench.datasets.masks import cell_mask
from cellbench.features.catalog import get_family
from cellbench.features.cell import Cell, prepare_cell
from cellbench.features.config import FeatureConfig, check_kind


@lru_cache(maxsize=32)
def feature_names(config: FeatureConfig) -> tuple[str, ...]:
    """The columns ``config`` produces, in order (the same for every image).

    Raises
    ------
    UnknownNameError
        For a family of ``config`` that is not in :data:`cellbench.features.catalog.FEATURES` (listing those that are).
    """
    return tuple(name for family in config.families for name in get_family(family).names(config))


@lru_cache(maxsize=4)
def _default_config(kind: str) -> FeatureConfig:
    return FeatureConfig.for_kind(check_kind(kind))


def extract_features(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    config: FeatureConfig | None = None,
    kind: DataKind = "cell",
    sample: str = "",
) -> dict[str, float]:
    """Every configured feature family for one cell or patch.

    Parameters
    ----------
    image
        RGB array (H, W, 3); grey (H, W) and other pixel types are converted by
        :func:`cellbench.datasets.io.as_rgb8`.
    mask
        Non-zero = cell. Defaults to :func:`cellbench.datasets.masks.cell_mask` (the largest cell) for cells and
        multi-cell crops, and to the whole image for patches.
    config
        Defaults to ``FeatureConfig.for_kind(kind)``.
    sample
        Sample id, used in error messages.

    Returns
    -------
    dict
        :func:`feature_names` ``(config)`` -> value. Every value is finite: a NaN or infinity left by a
        degenerate case (e.g. a one-pixel cell) is replaced by 0.

    Raises
    ------
    DataError
        For an empty mask (``"empty mask for sample X: no cell pixels"``), a mask whose shape differs from
        the image's, or an image that is not grey, RGB or RGBA.
    UnknownNameError
        For a feature family outside the catalog.
    """
    config = config or _default_config(kind)
    names = feature_names(config)
    return dict(zip(names, feature_vector(image, mask, config=config, kind=kind, sample=sample).tolist()))


def feature_vector(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    config: FeatureConfig,
    kind: DataKind = "cell",
    sample: str = "",
) -> np.ndarray:
    """As :func:`extract_features`, as a float64 array in :func:`feature_names` order."""
    check_kind(kind)
    feature_names(config)  # an unknown family stops here, before any pixel work
    image = as_rgb8(image, where=f"sample {sample}")
    if mask is None:
        # a crop's masked families (hed_texture by default; the cell families where a suite adds them) measure its
        # largest cell, as a single cell's (however small a part of the crop it is: the whole crop only when no cell
        # is found); a patch has no cell
        mask = cell_mask(image, small_cells=kind == "crop") if kind != "patch" else np.ones(image.shape[:2], bool)
    cell = prepare_cell(image, mask, max_side=config.max_side, margin=max(config.lbp_radii) + 1, sample=sample)
    return compute(cell, config)


def compute(cell: Cell, config: FeatureConfig) -> np.ndarray:
    """Every configured family on a prepared cell, in :func:`feature_names` order, non-finite -> 0."""
    parts = []
    for name in config.families:
        family = get_family(name)
        values = family(cell, config)
        expected = family.names(config)
        if tuple(values) != expected:  # a family bug, not bad data
            raise RuntimeError(f"feature family {name!r} returned columns that differ from its names()")
        parts.append(np.fromiter(values.values(), dtype=np.float64, count=len(expected)))
    out = np.concatenate(parts)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0, copy=False)
