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

# every family reads the prepared cell, whose crop depends on max_side and on the margin max(lbp_radii) + 1
CROP = ("max_side", "lbp_radii")

Compute = Callable[[Cell, FeatureConfig], dict[str, float]]
Names = Callable[[FeatureConfig], tuple[str, ...]]


@dataclass(frozen=True)
class Family:
    """A feature family: ``compute(cell, config)`` and ``names(config)``; calling it computes.

    ``params`` are the :class:`FeatureConfig` fields its values depend on (its cache key holds only those);
    ``None`` (plug-ins) means every field. ``source`` names where a plug-in came from (an installed package and its
    version): part of the cache key, so an upgraded package computes its values again.
    """

    name: str
    compute: Compute
    names: Names
    params: tuple[str, ...] | None = None
    source: str = ""

    def key(self, config: FeatureConfig) -> dict:
        """What this family's values depend on in ``config``: its name and parameters (part of a cache key)."""
        fields = self.params if self.params is not None else tuple(f for f in config.__dataclass_fields__)
        source = {"source": self.source} if self.source else {}  # only when set: built-in keys stay as they were
        return {"family": self.name, **source, **{f: getattr(config, f) for f in fields if f != "families"}}

    def __call__(self, cell: Cell, config: FeatureConfig) -> dict[str, float]:
        return self.compute(cell, config)


def family(name: str, *, names: Names, params: tuple[str, ...] | None = None) -> Callable[[Compute], Family]:
    """Decorator making ``compute`` the :class:`Family` ``name`` whose columns ``names(config)`` lists.

    ``names`` is memoised per config (configs are frozen and hashable); ``params`` as :class:`Family`.
    """

    def decorate(compute: Compute) -> Family:
        return Family(name=name, compute=compute, names=lru_cache(maxsize=32)(names), params=params)

    return decorate
