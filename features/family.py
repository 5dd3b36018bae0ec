"""A feature family: a pure function ``(cell, config) -> {name: value}`` and the names it returns under a config.

Every image gets the same columns in the same order. Families are plain objects (``@family`` turns a function
into one, registering nothing); :mod:`cellbench.features.catalog` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cellbench.features.cell import Cell
from cellbench.features.config import FeatureConfig

Compute = Callable[[Cell, FeatureConfig], dict[str, float]]
Names = Callable[[FeatureConfig], tuple[str, ...]]


@dataclass(frozen=True)
class Family:
    """A feature family: ``compute(cell, config)`` and ``names(config)``; calling it computes."""

    name: str
    compute: Compute
    names: Names

    def __call__(self, cell: Cell, config: FeatureConfig) -> dict[str, float]:
        return self.compute(cell, config)


def family(name: str, *, names: Names) -> Callable[[Compute], Family]:
    """Decorator making ``compute`` the :class:`Family` ``name`` whose columns ``names(config)`` lists.

    ``names`` is memoised per config (configs are frozen and hashable).
    """

    def decorate(compute: Compute) -> Family:
        return Family(name=name, compute=compute, names=lru_cache(maxsize=32)(names))

    return decorate
