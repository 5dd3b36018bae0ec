"""The ``FEATURES`` registry of feature families."""

from __future__ import annotations

from collections.abc import Callable

from bench.registry import Registry

# a family: (cell: CellImage, config: FeatureConfig) -> dict[str, float]
FEATURES: Registry[Callable] = Registry("feature family")
