"""The data set catalog: every built-in data set, listed once, and how a data set's folder is found.

Single cells or patches (extraction ``given``), each reading a release's own folders and file names (never the CSV
files written beside samples):

- ``synthetic`` (:mod:`cellbench.datasets.synthetic`): the embedded default, generated into the cache folder;
- ``folder`` (:mod:`cellbench.datasets.folder`): any ``<root>/<class>/<image>`` layout (or ``labels.csv``), given
  with ``--data-root``;
- ``allidb2`` (:mod:`cellbench.datasets.allidb`): ALL-IDB2 single-cell crops, no patient ids;
- ``cnmc`` (:mod:`cellbench.datasets.cnmc`): C-NMC 2019 single cells, patient ids and predefined folds from the
  layout;
- ``idc`` (:mod:`cellbench.datasets.idc`): breast-histopathology IDC patches grouped by patient;
- ``pcam`` (:mod:`cellbench.datasets.pcam`): PatchCamelyon HDF5 split files, read lazily, slides from the meta CSVs;
- ``kaggle_hcd`` (:mod:`cellbench.datasets.kaggle_hcd`): Kaggle Histopathologic Cancer Detection, ``train/<id>.tif``;
- ``pathmnist``, ``bloodmnist``, ``breastmnist``, ``dermamnist``, ``medmnist`` (:mod:`cellbench.datasets.medmnist`):
  MedMNIST ``.npz`` files.

Field data sets (whole images with per-cell annotations, extractions ``manual`` and ``segmentation``):

- ``allidb1`` (:mod:`cellbench.datasets.allidb1`): ALL-IDB1 fields, ``.xyc`` centroids of blasts and other white cells;
- ``bccd`` (:mod:`cellbench.datasets.bccd`): BCCD fields with Pascal VOC boxes (RBC, WBC, platelets);
- ``zheng2018`` (:mod:`cellbench.datasets.zheng2018`): white-cell images with expert nucleus/cytoplasm masks.

:data:`DATASETS` holds them in this order; :func:`register_dataset` adds a plug-in's data set at run time.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from pathlib import Path

from cellbench.core import paths
from cellbench.core.errors import ConfigError, DataError
from cellbench.core.registry import Registry
from cellbench.core.types import Dataset, DatasetInfo
from cellbench.datasets import (
    allidb,
    allidb1,
    bccd,
    cnmc,
    folder,
    idc,
    kaggle_hcd,
    medmnist,
    pcam,
    synthetic,
    zheng2018,
)
from cellbench.datasets.entry import DatasetEntry, Detector, FieldDefaults, Loader, is_folder

BUILTIN: tuple[DatasetEntry, ...] = (
    synthetic.ENTRY,
    folder.ENTRY,
    allidb.ENTRY,
    cnmc.ENTRY,
    idc.ENTRY,
    pcam.ENTRY,
    kaggle_hcd.ENTRY,
    *medmnist.ENTRIES,
    allidb1.ENTRY,
    bccd.ENTRY,
    zheng2018.ENTRY,
)

DATASETS: Registry[DatasetEntry] = Registry.of("dataset", BUILTIN)


def register_dataset(
    info: DatasetInfo,
    *,
    detect: Detector | None = None,
    needs_data: bool = True,
    uses_cache: bool = False,
    field_defaults: FieldDefaults | None = None,
):
    """Decorator adding ``load(root: Path | None, **options) -> Dataset`` to :data:`DATASETS` under ``info.name``.

    For plug-ins, called at run time; the built-in data sets are listed in :data:`BUILTIN`.
    """

    def decorate(load: Loader) -> Loader:
        entry = DatasetEntry(
            info=info,
            load=load,
            detect=detect or is_folder,
            needs_data=needs_data,
            uses_cache=uses_cache,
            field_defaults=field_defaults or FieldDefaults(),
        )
        DATASETS.add(info.name, entry)
        return load

    return decorate


def field_defaults(name: str) -> FieldDefaults:
    """The extraction defaults of data set ``name`` (none for a name outside the catalog)."""
    entry = DATASETS.get(name)
    return entry.field_defaults if entry is not None else FieldDefaults()


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


def load_dataset(
    name: str, *, data_root: Path | None = None, cache_dir: str | os.PathLike | None = None, **options
) -> Dataset:
    """Load a catalogued data set, finding its folder under ``data_root``.

    ``cache_dir`` is where generated (synthetic) and converted (large MedMNIST arrays) data go; ``None``: the
    default cache folder (:func:`cellbench.core.paths.cache_dir`).

    Raises
    ------
    UnknownNameError
        For a name outside the catalog (the message lists the known ones).
    DataError
        When the data cannot be found under ``data_root``.
    """
    entry = DATASETS[name]
    root = locate(name, data_root)
    if entry.needs_data and root is None:
        where = f"under {data_root}" if data_root else "(no --data-root or CELLBENCH_DATA given)"
        tried = ", ".join(dict.fromkeys((*entry.info.folder_names, name)))
        raise DataError(
            f"data set {name!r} not found {where}; expected the original layout ({entry.info.layout}) "
            f"in the data root itself or in one of its sub-folders: {tried}" + _layout_hint(data_root)
        )
    if entry.uses_cache:
        options["cache_dir"] = paths.cache_dir() if cache_dir is None else Path(cache_dir)
    positive = options.pop("positive_class", None)
    return with_positive_class(entry.load(root, **options), positive)


def with_positive_class(dataset: Dataset, positive: str | None) -> Dataset:
    """``dataset`` with ``positive`` as its positive class (``None``: as loaded); two-class data sets only.

    Raises
    ------
    ConfigError
        For a class the data set does not have, or a data set without exactly two classes.
    """
    if positive is None or positive == dataset.positive_class:
        return dataset
    classes = ", ".join(dataset.classes)
    if len(dataset.classes) != 2:
        raise ConfigError(
            f"positive_class={positive!r}: data set {dataset.name!r} has {len(dataset.classes)} classes ({classes}); "
            "a positive class applies to two-class data sets only"
        )
    if positive not in dataset.classes:
        raise ConfigError(
            f"positive_class={positive!r} is not a class of data set {dataset.name!r}; classes: {classes}"
        )
    return replace(dataset, positive_class=positive, info=replace(dataset.info, positive_class=positive))


def detect_layouts(path: Path) -> list[str]:
    """Names of the catalogued data sets whose layout ``path`` itself holds."""
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
