"""The stain-separated texture family: Haralick and LBP on the haematoxylin and eosin channels.

H&E tissue is read stain by stain: nuclear chromatin lives in haematoxylin, stroma and cytoplasm in eosin, and
the grey image mixes them. Colour deconvolution is ``skimage.color.rgb2hed``; each density is spread over 0..255
by ``skimage.exposure.rescale_intensity`` (its range in the image: texture, not stain amount, which the
intensity and whole-image families report). Measured inside the mask (the whole image for patches): Haralick's
13 features (mean over 4 directions, per distance) and uniform LBP histograms, as the cell texture families.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage.color import rgb2hed
from skimage.exposure import rescale_intensity

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig
from cellbench.features.family import CROP, family
from cellbench.features.haralick import NAMES as HARALICK_NAMES
from cellbench.features.haralick import cooccurrences, haralick_stack, quantise
from cellbench.features.lbp import lbp_histogram
from cellbench.features.texture import lbp_points

STAINS = ("h", "e")  # rgb2hed's channels 0 (haematoxylin) and 1 (eosin)


@lru_cache(maxsize=32)
def hed_texture_names(config: FeatureConfig) -> tuple[str, ...]:
    out = []
    for s in STAINS:
        out += [f"hed_{s}_haralick_d{d}_{n}" for d in config.haralick_distances for n in HARALICK_NAMES]
        out += [
            f"hed_{s}_lbp_p{lbp_points(r)}r{r}_u{b:02d}" for r in config.lbp_radii for b in range(lbp_points(r) + 2)
        ]
    return tuple(out)


def stain_planes(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin and eosin densities of an RGB ``uint8`` image, each rescaled to ``uint8``: shape (2, H, W)."""
    hed = rgb2hed(rgb)
    return np.stack([rescale_intensity(hed[:, :, c], out_range=np.uint8).astype(np.uint8) for c in range(len(STAINS))])


def planes_texture(planes: np.ndarray, mask: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Haralick means per distance and LBP histograms of each ``uint8`` plane of a (C, H, W) stack inside ``mask``.

    Returns (C, values). The planes' matrices go through one :func:`haralick_stack` and their LBP codes through
    one :func:`lbp_histogram` per radius: a call's fixed cost is paid once, not per plane.
    """
    levels, distances = config.haralick_levels, config.haralick_distances
    cmats = []
    for plane in planes:
        histogram = np.bincount(plane[mask], minlength=256).astype(np.float32)
        q = quantise(plane, mask, levels=levels, histogram=histogram)
        cmats.append(cooccurrences(q, levels=levels, distances=distances))
    feats, valid = haralick_stack(np.concatenate(cmats))
    # 4 directions per distance: the mean over those with pairs (zeros where none has any)
    feats, valid = feats.reshape(-1, 4, feats.shape[1]), valid.reshape(-1, 4)
    haralick = (feats * valid[:, :, None]).sum(axis=1) / np.maximum(valid.sum(axis=1, keepdims=True), 1)
    lbp = [lbp_histogram(planes, mask, points=lbp_points(r), radius=r) for r in config.lbp_radii]
    return np.concatenate([haralick.reshape(len(planes), -1), *lbp], axis=1)


@family("hed_texture", names=hed_texture_names, params=(*CROP, "haralick_levels", "haralick_distances"))
def hed_texture(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Haralick and LBP texture of the haematoxylin and eosin channels inside the mask."""
    values = planes_texture(stain_planes(cell.rgb), cell.mask, config)
    return dict(zip(hed_texture_names(config), values.ravel().tolist()))
