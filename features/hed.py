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


def stain_planes(rgb: np.ndarray) -> list[np.ndarray]:
    """Haematoxylin and eosin densities of an RGB ``uint8`` image, each rescaled to ``uint8``."""
    hed = rgb2hed(rgb)
    return [rescale_intensity(hed[:, :, c], out_range=np.uint8).astype(np.uint8) for c in range(len(STAINS))]


def plane_texture(plane: np.ndarray, mask: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Haralick means per distance and LBP histograms of one ``uint8`` plane inside ``mask``."""
    histogram = np.bincount(plane[mask], minlength=256).astype(np.float32)
    q = quantise(plane, mask, levels=config.haralick_levels, histogram=histogram)
    feats, valid = haralick_stack(cooccurrences(q, levels=config.haralick_levels, distances=config.haralick_distances))
    haralick = [
        feats[i : i + 4][valid[i : i + 4]].mean(axis=0) if valid[i : i + 4].any() else np.zeros(feats.shape[1])
        for i in range(0, len(feats), 4)
    ]
    lbp = [lbp_histogram(plane, mask, points=lbp_points(r), radius=r) for r in config.lbp_radii]
    return np.concatenate([*haralick, *lbp])


@family("hed_texture", names=hed_texture_names, params=(*CROP, "haralick_levels", "haralick_distances"))
def hed_texture(cell: Cell, config: FeatureConfig) -> dict[str, float]:
    """Haralick and LBP texture of the haematoxylin and eosin channels inside the mask."""
    values = np.concatenate([plane_texture(p, cell.mask, config) for p in stain_planes(cell.rgb)])
    return dict(zip(hed_texture_names(config), values.tolist()))
