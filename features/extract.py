"""One image (+ mask) -> named feature values."""

from __future__ import annotations

from typing import Literal

import numpy as np

from bench.errors import DataError
from features.cell import prepare_cell
from features.config import FeatureConfig
from features.masks import cell_mask
from features.registry import FEATURES


def extract_features(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    config: FeatureConfig | None = None,
    kind: Literal["cell", "patch"] = "cell",
    sample: str = "",
) -> dict[str, float]:
    """Every configured feature family for one cell or patch.

    ``mask`` (non-zero = cell) defaults to :func:`features.masks.cell_mask` for cells and to the whole
    image for patches. Columns are the same, in the same order, for every image under a config, and all
    values are finite.

    Raises
    ------
    DataError
        For an empty mask or a mask whose shape differs from the image's.
    """
    config = config or FeatureConfig.for_kind(kind)
    if mask is None:
        mask = cell_mask(image) if kind == "cell" else np.ones(image.shape[:2], bool)
    cell = prepare_cell(image, mask, max_side=config.max_side, sample=sample)
    out: dict[str, float] = {}
    for family in config.families:
        out.update(FEATURES[family](cell, config))
    values = np.fromiter(out.values(), dtype=np.float64, count=len(out))
    if not np.isfinite(values).all():  # should not happen: every family guards its degenerate cases
        bad = [k for k, v in zip(out, values) if not np.isfinite(v)]
        raise DataError(f"sample {sample}: non-finite feature values {', '.join(bad[:5])}")
    return out
