"""The dataset registry: an info record and a loader per name, and how data folders are found."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.registry import Registry
from cellbench.core.types import Dataset, DatasetInfo, Sample

Loader = Callable[..., Dataset]
Detector = Callable[[Path], bool]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered data set.

    ``load(root, **options)`` returns the :class:`Dataset`; ``detect(path)`` tells whether ``path`` holds
    the original layout (used to find the folder under a data root). ``needs_data`` is False for
    generated sets (the synthetic default), whose ``root`` argument is ignored.
    """

    info: DatasetInfo
    load: Loader
    detect: Detector
    needs_data: bool = True


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(info: DatasetInfo, *, detect: Detector | None = None, needs_data: bool = True):
    """Decorator registering ``load(root: Path | None, **options) -> Dataset`` under ``info.name``."""

    def decorate(load: Loader) -> Loader:
        DATASETS.add(info.name, DatasetEntry(info, load, detect or (lambda p: p.is_dir()), needs_data))
        return load

    return decorate


def locate(name: str, data_root: Path | None) -> Path | None:
    """Find the folder of data set ``name``: ``data_root`` itself, or one of its known sub-folders."""
    entry = DATASETS[name]
    if not entry.needs_data:
        return None
    if data_root is None or not data_root.is_dir():
        return None
    candidates = [data_root, *(data_root / f for f in (*entry.info.folder_names, name))]
    for cand in candidates:
        if cand.is_dir() and entry.detect(cand):
            return cand
    return None


def load_dataset(name: str, *, data_root: Path | None = None, **options) -> Dataset:
    """Load a registered data set, finding its folder under ``data_root``.

    Raises
    ------
    UnknownNameError
        For an unregistered name (the message lists the known ones).
    DataError
        When the data cannot be found under ``data_root``.
    """
    entry = DATASETS[name]
    root = locate(name, data_root)
    if entry.needs_data and root is None:
        where = f"under {data_root}" if data_root else "(no --data-root or CELLBENCH_DATA given)"
        tried = ", ".join((*entry.info.folder_names, name))
        raise DataError(
            f"data set {name!r} not found {where}; expected the original layout ({entry.info.layout}) "
            f"in the data root itself or in one of its sub-folders: {tried}" + _layout_hint(data_root)
        )
    return entry.load(root, **options)


def detect_layouts(path: Path) -> list[str]:
    """Names of the registered data sets whose layout ``path`` itself holds."""
    return [n for n, e in DATASETS.items() if e.needs_data and path.is_dir() and e.detect(path)]


def _layout_hint(data_root: Path | None) -> str:
    """What the data root looks like instead: the layouts it matches, or its first entries."""
    if data_root is None or not data_root.is_dir():
        return ""
    if matches := detect_layouts(data_root):
        return f". {data_root} holds the layout of: {', '.join(matches)}"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in itertools.islice(data_root.iterdir(), 200))
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f". {data_root} matches no known layout (it holds: {shown or 'nothing'})"


def fingerprint_files(paths: Iterable[Path], *, extra: Iterable[str] = ()) -> str:
    """Content fingerprint: a hash over the bytes of every file (in the given order) and ``extra`` strings."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


def fingerprint_samples(samples: Iterable[Sample]) -> str:
    """Fingerprint of samples read from files: content, labels, groups and predefined folds."""
    samples = list(samples)
    paths = [s.image_path for s in samples if s.image_path is not None]
    masks = [s.mask_path for s in samples if s.mask_path is not None]
    extra = [f"{s.id}|{s.label}|{s.group}|{s.meta.get('fold')}" for s in samples]
    return fingerprint_files([*paths, *masks], extra=extra)


def require_classes(name: str, samples: Iterable[Sample], classes: tuple[str, ...], where: Path) -> None:
    """Refuse a data set where fewer than two classes have samples, naming the folder."""
    present = sorted({s.label for s in samples})
    if len(present) < 2:
        raise DataError(
            f"data set {name!r} at {where}: found samples of {len(present)} class(es) "
            f"({', '.join(present) or 'none'}); at least two of {', '.join(classes)} are needed"
        )
