"""Feature configuration: which families run, and their parameters (part of the feature cache key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from bench.errors import ConfigError
from bench.types import stable_hash

CELL_FAMILIES = ("morphology", "haralick", "lbp", "intensity", "nucleus")
PATCH_FAMILIES = ("haralick", "lbp", "intensity")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """What to extract.

    Parameters
    ----------
    families
        Feature families to compute (see ``features.FEATURES``).
    haralick_levels
        Grey levels the cell is quantised to before the co-occurrence matrices (0 is kept for background).
    haralick_distances
        Pixel distances of the co-occurrence matrices (4 directions each; mean and range reported).
    lbp
        ``(points, radius)`` pairs of uniform LBP histograms.
    max_side
        Texture and intensity are measured on the cell's bounding box resized so its long side is at most
        this many pixels (morphology always at full resolution); keeps large crops cheap.
    zernike_degree
        Degree of the Zernike moments of the cell mask (computed on a 24 px disc).
    """

    families: tuple[str, ...] = CELL_FAMILIES
    haralick_levels: int = 16
    haralick_distances: tuple[int, ...] = (1, 3)
    lbp: tuple[tuple[int, int], ...] = ((8, 1), (16, 2))
    max_side: int = 160
    zernike_degree: int = 8

    def __post_init__(self):
        from features.registry import FEATURES

        FEATURES.check(self.families)
        if not 4 <= self.haralick_levels <= 256:
            raise ConfigError(f"haralick_levels must be in 4..256, got {self.haralick_levels}")
        if not self.haralick_distances or min(self.haralick_distances) < 1:
            raise ConfigError(f"haralick_distances must be positive integers, got {self.haralick_distances}")
        for pr in self.lbp:
            if len(pr) != 2 or pr[0] < 4 or pr[1] < 1:
                raise ConfigError(f"lbp entries must be (points ≥ 4, radius ≥ 1), got {pr}")
        if self.max_side < 16:
            raise ConfigError(f"max_side must be at least 16, got {self.max_side}")

    @classmethod
    def for_kind(cls, kind: Literal["cell", "patch"], **overrides: Any) -> FeatureConfig:
        """Defaults for single cells (every family) or tissue patches (texture and colour only)."""
        if kind not in ("cell", "patch"):
            raise ConfigError(f"unknown data kind {kind!r}; known kinds: cell, patch")
        base = cls() if kind == "cell" else cls(families=PATCH_FAMILIES)
        overrides = {k: _tuple(v) for k, v in overrides.items()}
        return replace(base, **overrides) if overrides else base

    def key(self) -> str:
        return stable_hash(asdict(self))


def _tuple(v: Any) -> Any:
    return tuple(_tuple(x) for x in v) if isinstance(v, list) else v
