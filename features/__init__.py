"""Handcrafted cell features: pure functions image (+ mask) -> named values, and cached batch extraction.

Families (``FEATURES``, listed in :mod:`cellbench.features.catalog`): intensity, morphology, nucleus, haralick, lbp
(inside one cell), whole_image and hed_texture; column prefixes ``int_``, ``morph_``, ``nuc_``, ``haralick_``,
``lbp_``, ``img_`` and ``hed_``. Default families per data kind: :data:`cellbench.features.config.DEFAULT_FAMILIES`.
"""

from cellbench.datasets.masks import cell_mask, nucleus_mask
from cellbench.features.batch import extract_feature_set, feature_cache_path
from cellbench.features.catalog import FEATURES, register_family
from cellbench.features.config import FeatureConfig
from cellbench.features.extract import extract_features, feature_names
from cellbench.features.family import Family

__all__ = [
    "FEATURES",
    "Family",
    "FeatureConfig",
    "cell_mask",
    "extract_feature_set",
    "extract_features",
    "feature_cache_path",
    "feature_names",
    "nucleus_mask",
    "register_family",
]
