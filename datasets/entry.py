"""What the catalog holds about a data set: its info record, its loader, how its folder is recognised."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellbench.core.types import Dataset, DatasetInfo

Loader = Callable[..., Dataset]
Detector = Callable[[Path], bool]


def is_folder(path: Path) -> bool:
    """The default detector: any folder."""
    return path.is_dir()


@dataclass(frozen=True, kw_only=True)
class FieldDefaults:
    """A field data set's extraction defaults; ``white`` names the annotation labels segmentation looks for
    (``None``: every class of the data set)."""

    manual: Mapping[str, Any] = field(default_factory=dict)
    segmentation: Mapping[str, Any] = field(default_factory=dict)
    white: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetEntry:
    """One data set of the catalog.

    ``load(root, **options)`` returns the :class:`Dataset` (with ``uses_cache``, also ``cache_dir=``: the folder
    generated or converted data go to); ``detect(path)`` tells whether ``path`` holds the original layout (used to
    find the folder under a data root). ``needs_data`` is False for generated sets (the synthetic default), whose
    ``root`` argument is ignored. ``field_defaults`` are the extraction parameters of a field data set.
    """

    info: DatasetInfo
    load: Loader
    detect: Detector = is_folder
    needs_data: bool = True
    uses_cache: bool = False
    field_defaults: FieldDefaults = FieldDefaults()

    @property
    def name(self) -> str:
        return self.info.name
