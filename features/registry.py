"""The ``FEATURES`` registry of feature families.

A family is a pure function ``(cell, config) -> {name: value}`` together with the list of names it
returns under a config, so every image gets the same columns in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from cellbench.core.registry import Registry

if TYPE_CHECKING:
    from cellbench.features.cell import Cell
    from cellbench.features.config import FeatureConfig


@dataclass(frozen=True)
class Family:
    """A registered feature family: ``compute(cell, config)`` and ``names(config)``."""

    name: str
    compute: Callable[[Cell, FeatureConfig], dict[str, float]]
    names: Callable[[FeatureConfig], tuple[str, ...]]

    def __call__(self, cell: Cell, config: FeatureConfig) -> dict[str, float]:
        return self.compute(cell, config)


FEATURES: Registry[Family] = Registry("feature family")


def register_family(name: str, *, names: Callable[[FeatureConfig], tuple[str, ...]]):
    """Register ``compute`` under ``name`` with the function that lists its column names.

    ``names`` is memoised per config (configs are frozen and hashable).
    """

    def decorate(compute):
        FEATURES.add(name, Family(name=name, compute=compute, names=lru_cache(maxsize=32)(names)))
        return compute

    return decorate
