"""Feature configuration: which families run, and their parameters (part of the feature cache key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import stable_hash

CELL_FAMILIES = ("morphology", "haralick", "lbp", "intensity", "nucleus")
PATCH_FAMILIES = ("haralick", "lbp", "intensity")
KINDS = ("cell", "patch")


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
    max_side
        Images whose longer side exceeds this are downscaled to it first (texture, colour and nucleus are
        measured on the downscaled image, morphology at full resolution); ``None`` never downscales.
        The scale depends on the image size only, so crops of one data set share one scale.
    """

    families: tuple[str, ...] = CELL_FAMILIES
    haralick_levels: int = 32
    haralick_distances: tuple[int, ...] = (1, 3)
    lbp_radii: tuple[int, ...] = (1, 2)
    zernike_degree: int = 8
    zernike_size: int = 32
    max_side: int | None = 512

    def __post_init__(self):
        for name in ("families", "haralick_distances", "lbp_radii"):
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.families:
            raise ConfigError(f"families must name at least one feature family (built in: {', '.join(CELL_FAMILIES)})")
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
        if self.max_side is not None:
            _check_int("max_side", self.max_side, 32, 100_000)

    @classmethod
    def for_kind(cls, kind: Literal["cell", "patch"], **overrides: Any) -> FeatureConfig:
        """Defaults for single cells (every family) or tissue patches (Haralick, LBP and intensity)."""
        check_kind(kind)
        base = cls() if kind == "cell" else cls(families=PATCH_FAMILIES)
        return replace(base, **overrides) if overrides else base

    @classmethod
    def from_table(cls, kind: Literal["cell", "patch"], table: Mapping[str, Any]) -> FeatureConfig:
        """The defaults of ``kind`` with a suite's ``[features]`` table over them (TOML lists become tuples).

        Raises
        ------
        ConfigError
            For a key that is not a field (naming the allowed ones) or a value out of its range.
        """
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"[features]: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}")
        return cls.for_kind(kind, **{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})

    def key(self) -> str:
        """Stable hash of every field."""
        return stable_hash(asdict(self))


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown data kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return kind


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
