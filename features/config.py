"""Feature configuration: which families run, and their parameters (part of the feature cache key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import DATA_KINDS, DataKind

#: the families measured inside one segmented cell (the cell default before the whole-image families)
CELL_FAMILIES = ("morphology", "haralick", "lbp", "intensity", "nucleus")
#: the tissue-patch set before the whole-image families (Haralick, LBP and intensity of the whole patch)
PATCH_FAMILIES = ("haralick", "lbp", "intensity")
KINDS = tuple(DATA_KINDS)
#: default families per data kind (a data set card's ``families`` overrides them, a suite's ``[features]`` both)
#: (multi-cell crops: the whole crop's colour and texture, and the stain texture of the cell found; measured on two
#: crop-like sets, the cell families beside them did not move the result and cost half the time: see the README)
DEFAULT_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "cell": CELL_FAMILIES,
    "crop": ("whole_image", "hed_texture"),
    "patch": ("whole_image", "hed_texture"),
}
#: per kind, the families jobs were fitted on while job keys held no feature set (the defaults of then; the crop
#: default has changed since): a feature set equal to these keeps keys without one, any other gets its own
KEYLESS_FAMILIES: Mapping[str, tuple[str, ...]] = {
    **DEFAULT_FAMILIES,
    "crop": (*CELL_FAMILIES, "whole_image", "hed_texture"),
}


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """What to extract; every field is part of :meth:`key`.

    The values are checked here; the family names against the catalog where the columns are first needed
    (:func:`cellbench.features.extract.feature_names`, before any extraction starts).

    Parameters
    ----------
    families
        Feature families, in column order (see :data:`cellbench.features.catalog.FEATURES`).
    haralick_levels
        Grey levels inside the cell for the co-occurrence matrices (level 0 is kept for background).
    haralick_distances
        Pixel distances of the co-occurrence matrices; 4 directions each, mean and range reported.
    lbp_radii
        Radii R of the uniform LBP histograms, each with P = 8·R sampling points.
    zernike_degree
        Highest degree of the Zernike moments of the cell mask.
    zernike_size
        Side in pixels the cell mask is resized to before the Zernike moments (keeps them cheap).
    image_side
        Whole-image families (``whole_image``): the image is resized so its longer side is at most this for the
        first scale; the second scale is half of it.
    max_side
        Images whose longer side exceeds this are downscaled to it first (texture, colour and nucleus are
        measured on the downscaled image, morphology at full resolution); ``None`` never downscales.
        The scale depends on the image size only, so crops of one data set share one scale.
    """

    families: tuple[str, ...] = DEFAULT_FAMILIES["cell"]
    haralick_levels: int = 32
    haralick_distances: tuple[int, ...] = (1, 3)
    lbp_radii: tuple[int, ...] = (1, 2)
    zernike_degree: int = 8
    zernike_size: int = 32
    image_side: int = 256
    max_side: int | None = 512

    def __post_init__(self):
        for name in ("families", "haralick_distances", "lbp_radii"):
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.families:
            raise ConfigError("families must name at least one feature family (see `cellbench features`)")
        if len(set(self.families)) != len(self.families):
            raise ConfigError(f"families are repeated: {self.families}")
        _check_int("haralick_levels", self.haralick_levels, 4, 255)
        if not self.haralick_distances:
            raise ConfigError("haralick_distances must list at least one distance (1..32)")
        for d in self.haralick_distances:
            _check_int("haralick_distances", d, 1, 32)
        if not self.lbp_radii:
            raise ConfigError("lbp_radii must list at least one radius (1..8)")
        for r in self.lbp_radii:
            _check_int("lbp_radii", r, 1, 8)
        _check_int("zernike_degree", self.zernike_degree, 0, 20)
        _check_int("zernike_size", self.zernike_size, 8, 256)
        _check_int("image_side", self.image_side, 16, 1024)
        if self.max_side is not None:
            _check_int("max_side", self.max_side, 32, 100_000)

    @classmethod
    def for_kind(cls, kind: DataKind, *, families: tuple[str, ...] = (), **overrides: Any) -> FeatureConfig:
        """Defaults for a data kind (:data:`DEFAULT_FAMILIES`): ``families`` (a card's) replaces the kind's."""
        check_kind(kind)
        base = cls(families=tuple(families) or DEFAULT_FAMILIES[kind])
        return replace(base, **overrides) if overrides else base

    @classmethod
    def from_table(cls, kind: DataKind, table: Mapping[str, Any], *, families: tuple[str, ...] = ()) -> FeatureConfig:
        """The defaults of ``kind`` (or the card's ``families``) with a suite's ``[features]`` table over them.

        TOML lists become tuples.

        Raises
        ------
        ConfigError
            For a key that is not a field (naming the allowed ones) or a value out of its range.
        """
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"[features]: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        base = cls.for_kind(kind, families=families)
        return replace(base, **values) if values else base

    def key(self) -> str:
        """Stable hash of every field."""
        return stable_hash(asdict(self))


def check_kind(kind: str) -> str:
    """``kind`` when it is a data kind; else a :class:`ConfigError` naming the allowed ones."""
    if kind not in KINDS:
        known = "; ".join(f"{k} ({what})" for k, what in DATA_KINDS.items())
        raise ConfigError(f"unknown data kind {kind!r}; allowed kinds: {known}")
    return kind


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
