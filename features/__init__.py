"""Handcrafted cell features: pure functions image (+ mask) -> named values, and cached batch extraction."""

from features.registry import FEATURES  # isort: skip
from features import intensity, morphology, nucleus, texture  # noqa: F401  (register the families)
from features.config import FeatureConfig
from features.extract import extract_features
from features.masks import cell_mask, nucleus_mask

__all__ = ["FEATURES", "FeatureConfig", "cell_mask", "extract_features", "nucleus_mask"]
