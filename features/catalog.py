"""The feature catalog: every built-in feature family, listed once, in the order :data:`FEATURES` holds them.

A configuration's column order is that of its ``families`` (see :func:`cellbench.features.extract.feature_names`);
:func:`register_family` adds a plug-in's family at run time.
"""

from __future__ import annotations

from collections.abc import Callable

from cellbench.core.registry import Registry
from cellbench.features.family import Compute, Family, Names, family
from cellbench.features.hed import hed_texture
from cellbench.features.intensity import intensity
from cellbench.features.morphology import morphology
from cellbench.features.nucleus import nucleus
from cellbench.features.texture import haralick, lbp
from cellbench.features.whole import whole_image

BUILTIN: tuple[Family, ...] = (intensity, morphology, nucleus, haralick, lbp, whole_image, hed_texture)

FEATURES: Registry[Family] = Registry.of("feature family", BUILTIN)


def register_family(name: str, *, names: Names) -> Callable[[Compute], Compute]:
    """Decorator adding ``compute(cell, config) -> {name: value}`` to :data:`FEATURES` as family ``name``.

    For plug-ins, called at run time; ``names(config)`` lists the columns ``compute`` returns, in order.
    """

    def decorate(compute: Compute) -> Compute:
        FEATURES.add(name, family(name, names=names)(compute))
        return compute

    return decorate
