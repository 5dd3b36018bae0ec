"""The feature catalog: every built-in feature family, listed once, in the order :data:`FEATURES` holds them.

A configuration's column order is that of its ``families`` (see :func:`cellbench.features.extract.feature_names`);
:func:`register_family` adds a plug-in's family at run time, and :func:`get_family` finds a family an installed
package offers through the ``cellbench.features`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import metadata

from cellbench.core.errors import ConfigError
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


ENTRY_POINT_GROUP = "cellbench.features"  # installed packages: ``name = "pkg.module:FAMILY"``, a Family named ``name``


def get_family(name: str) -> Family:
    """Family ``name``: built in, registered, or an installed package's ``cellbench.features`` entry point (loaded
    the first time it is asked for, in the driver and in each worker).

    Raises
    ------
    UnknownNameError
        For a name neither the catalog nor an entry point has (listing the known families).
    ConfigError
        For an entry point that cannot be loaded (with the error) or that is not a ``Family`` named ``name``.
    """
    if name not in FEATURES:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                FEATURES.add(name, _load(ep, name))
                break
    return FEATURES[name]


def installed_families() -> list[str]:
    """Names the installed packages' ``cellbench.features`` entry points offer."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def _load(ep: metadata.EntryPoint, name: str) -> Family:
    try:
        loaded = ep.load()
    except Exception as exc:  # a plug-in's import can fail in any way: say which and why
        raise ConfigError(f"entry point {ep.value!r} of feature family {name!r} cannot be loaded: {exc}") from None
    if not isinstance(loaded, Family) or loaded.name != name:
        raise ConfigError(
            f"entry point {ep.value!r} of feature family {name!r} must be a Family named {name!r} (made with "
            f"cellbench.features.family.family), got {type(loaded).__name__}"
        )
    dist = getattr(ep, "dist", None)
    return replace(loaded, source=f"{dist.name} {dist.version}" if dist is not None else ep.value)
