"""Handcrafted cell features: pure functions image (+ mask) -> named values, and cached batch extraction.

Families (``FEATURES``): morphology, haralick, lbp, intensity, nucleus; column prefixes ``morph_``,
``haralick_``, ``lbp_``, ``int_`` and ``nuc_``.
"""

from cellbench.features.registry import FEATURES, Family, register_family  # isort: skip
from cellbench.datasets.masks import cell_mask, nucleus_mask
from cellbench.features import intensity, morphology, nucleus, texture  # noqa: F401  (register the families)
from cellbench.features.batch import extract_feature_set, feature_cache_path
from cellbench.features.config import FeatureConfig
from cellbench.features.extract import extract_features, feature_names

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
