"""PatchCamelyon (PCam): 96x96 lymph-node section patches in HDF5 split files, read lazily.

The release is three splits, each a pair of HDF5 files and a metadata CSV::

    camelyonpatch_level_2_split_{train,valid,test}_x.h5     dataset "x": N x 96 x 96 x 3 uint8
    camelyonpatch_level_2_split_{train,valid,test}_y.h5     dataset "y": N x 1 x 1 x 1 (0/1)
    camelyonpatch_level_2_split_{train,valid,test}_meta.csv coord_y, coord_x, tumor_patch, center_tumor_patch, wsi

Pixels are never loaded here: each sample carries an :class:`~cellbench.datasets.io.H5Row` (file, dataset, row)
that feature extraction and the pixel cache read one patch at a time, so the 262,144-patch training
split (about 7 GB) is iterated in bounded memory. Labels and metadata are small and read at once.

The slide (``wsi`` column of the meta CSV) is the group, so CV is slide-disjoint. With two or more
splits loaded, the release's splits are the predefined folds (``meta["fold"]``, each split the test fold
once); ``meta["split"]`` always names the release split, so the official test split can also be used as
an external test set. The fingerprint hashes the label and meta files in full and the image files by size
and sampled blocks (:mod:`cellbench.datasets.fingerprint`), so a run does not re-read 7 GB to start.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.fingerprint import quick_fingerprint, sample_fingerprint_lines
from cellbench.datasets.io import H5Row, h5_key, h5_open
from cellbench.datasets.layout import BadFiles, entries, open_release, release_dataset, require_classes

SPLITS = ("train", "valid", "test")
PREFIX = "camelyonpatch_level_2_split_"
_FILE = re.compile(rf"{PREFIX}(?P<split>train|valid|test)_(?P<part>x|y|meta)\.(?P<ext>h5|csv)(?P<gz>\.gz)?")
_CLASSES = ("no_tumor", "tumor")
META_COLUMNS = ("coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi")

INFO = DatasetInfo(
    name="pcam",
    title="PatchCamelyon (PCam): metastatic tissue in 96x96 lymph-node section patches",
    description=(
        "327,680 colour patches (96x96 px, 10x) extracted from the Camelyon16 whole-slide images of H&E-stained "
        "sentinel lymph-node sections. A patch is positive (tumor) when its centre 32x32 region holds at least one "
        "pixel of annotated metastatic tissue; tissue outside the centre does not count (use center_crop=32 to "
        "give the models only the centre). The release has three splits, train 262,144 / valid 32,768 / "
        "test 32,768 patches, each about half positive, with no slide in two splits (as the release states; "
        "the leakage guard checks it when the meta CSVs give the slides). With two or more splits loaded they "
        "are the predefined CV folds; meta['split'] names each sample's split. The slide id (wsi column of the "
        "*_meta.csv files) is the group. The release samples patches probabilistically, so it contains "
        "duplicate patches (the Kaggle version was de-duplicated); `datasets verify` counts them and CV keeps "
        "copies together. Pixels are read lazily from the HDF5 files (bounded memory); the fingerprint hashes "
        "the label and meta files and samples the image files (size + 64 blocks)."
    ),
    task="binary",
    kind="patch",
    classes=_CLASSES,
    positive_class="tumor",
    primary_metric="roc_auc",
    default_cv="predefined",
    source="https://github.com/basveeling/pcam (files: https://doi.org/10.5281/zenodo.2546921)",
    licence="CC0 1.0, following Camelyon16, as stated by the PCam repository (not verified here)",
    citation=(
        "Veeling BS, Linmans J, Winkens J, Cohen T, Welling M. Rotation Equivariant CNNs for Digital Pathology. "
        "MICCAI 2018, LNCS 11071, pp. 210-218. doi:10.1007/978-3-030-00934-2_24. Ehteshami Bejnordi B et al. "
        "Diagnostic Assessment of Deep Learning Algorithms for Detection of Lymph Node Metastases in Women With "
        "Breast Cancer. JAMA 2017;318(22):2199-2210. doi:10.1001/jama.2017.14585"
    ),
    expected_counts={"total": 327680},
    expected_split_counts={"train": 262144, "valid": 32768, "test": 32768},
    group_kind="slide",
    image_size="96x96 RGB",
    layout=(
        f"{PREFIX}{{train,valid,test}}_x.h5 (dataset x, N x 96 x 96 x 3 uint8) + {PREFIX}{{split}}_y.h5 "
        f"(dataset y, N x 1 x 1 x 1) + optional {PREFIX}{{split}}_meta.csv (coord_y, coord_x, tumor_patch, "
        "center_tumor_patch, wsi), all in one folder"
    ),
    download=(
        "Download the camelyonpatch_level_2_split_*.h5.gz files and the *_meta.csv files from Zenodo "
        "(doi:10.5281/zenodo.2546921, linked from https://github.com/basveeling/pcam), put them in one folder "
        "(e.g. <data root>/pcam/), decompress them with `gunzip *.h5.gz`, then pass --data-root."
    ),
    folder_names=("pcam", "PCam", "patchcamelyon", "PatchCamelyon"),
)


def file_name(split: str, part: str) -> str:
    """The release's file name of ``part`` (``x``, ``y`` or ``meta``) of ``split``."""
    return f"{PREFIX}{split}_{part}.{'csv' if part == 'meta' else 'h5'}"


def detect(path: Path) -> bool:
    """True when ``path`` holds a ``camelyonpatch_level_2_split_*_x.h5`` file (or its ``.gz``)."""
    return any((m := _FILE.fullmatch(e.name)) and m["part"] == "x" for e in entries(path, limit=500))


def load(
    root: Path,
    *,
    splits: Sequence[str] | None = None,
    center_crop: int | None = None,
    on_bad_label: str = "raise",
    **options,
) -> Dataset:
    """Load the PCam splits found in ``root`` (labels and slide ids; pixels stay in the files).

    Parameters
    ----------
    splits
        Splits to load, from ``train``, ``valid``, ``test`` (default: every split whose x and y files exist).
    center_crop
        Give the models only the centre ``center_crop`` x ``center_crop`` pixels (e.g. 32, the labelled region).
    on_bad_label
        ``"raise"`` (default) or ``"skip"``: skip and count patches whose label is not 0 or 1.

    Raises
    ------
    DataError
        For a split with an x file but no y file (or the reverse), x and y files of different lengths, a meta
        CSV whose rows do not match, compressed ``.h5.gz`` files, or an unreadable HDF5 file; each names the file.
    ConfigError
        For unknown options, unknown split names or a bad ``center_crop``.
    """
    root, bad = open_release(INFO, root, options, on_bad_label=on_bad_label, allowed=("splits", "center_crop"))
    crop = check_crop(INFO.name, center_crop)
    chosen = _choose_splits(root, splits)
    samples: list[Sample] = []
    notes: list[str] = []
    without_meta = []
    predefined = len(chosen) >= 2
    for split in chosen:
        part, has_meta = _read_split(root, split, crop=crop, fold=predefined, bad=bad)
        samples += part
        if not has_meta:
            without_meta.append(split)
    if without_meta:
        why = (
            "so the leakage guard cannot check that no slide spans two splits"
            if predefined
            else "so CV is not slide-grouped"
        )
        notes.append(f"no {PREFIX}<split>_meta.csv for split(s) {', '.join(without_meta)}: no slide ids, {why}")
    if not predefined:
        notes.append(f"only split {chosen[0]} loaded: no predefined folds, CV within it")
    if crop:
        notes.append(f"models see the centre {crop}x{crop} pixels of each patch (center_crop={crop})")
    if not samples:
        raise DataError(f"data set 'pcam': no patches in {', '.join(file_name(s, 'x') for s in chosen)} under {root}")
    require_classes(INFO.name, samples, INFO.classes, root)
    has_groups = all(s.group is not None for s in samples)
    info = INFO
    if not predefined:
        info = replace(INFO, default_cv="group_kfold" if has_groups else "stratified_kfold")
    paths = [root / file_name(s, p) for s in chosen for p in ("x", "y", "meta") if (root / file_name(s, p)).is_file()]
    fingerprint = quick_fingerprint(
        paths, extra=[f"pcam|splits={','.join(chosen)}|crop={crop}", *sample_fingerprint_lines(samples)]
    )
    return release_dataset(info, root, fingerprint=fingerprint, samples=samples, notes=[*notes, *bad.notes()])


def check_crop(name: str, center_crop: int | None, *, side: int = 96) -> int | None:
    """A valid ``center_crop`` option (None, or a whole number of pixels from 1 to the patch side)."""
    if center_crop is None:
        return None
    if isinstance(center_crop, bool) or not isinstance(center_crop, int) or not 1 <= center_crop <= side:
        raise ConfigError(
            f"data set {name!r}: center_crop must be an integer from 1 to {side} (e.g. 32), got {center_crop!r}"
        )
    return center_crop


def _choose_splits(root: Path, splits: Sequence[str] | None) -> list[str]:
    if splits is not None:
        if isinstance(splits, str):
            splits = [splits]
        unknown = [s for s in splits if s not in SPLITS]
        if unknown or not splits:
            raise ConfigError(f"data set 'pcam': splits must be chosen from {', '.join(SPLITS)}; got {list(splits)!r}")
    found = []
    for split in SPLITS if splits is None else [s for s in SPLITS if s in splits]:
        x, y = root / file_name(split, "x"), root / file_name(split, "y")
        for p in (x, y):
            gz = p.with_name(p.name + ".gz")
            if not p.is_file() and gz.is_file():
                raise DataError(f"{gz} is compressed: decompress it first (`gunzip {gz}`), then run again")
        if x.is_file() != y.is_file():
            have, missing = (x, y) if x.is_file() else (y, x)
            raise DataError(f"{have} has no partner: {missing.name} is missing in {root} (each split needs x and y)")
        if x.is_file():
            found.append(split)
        elif splits is not None:
            raise DataError(f"split {split!r} asked for, but {x} is missing")
    if not found:
        raise DataError(f"data set 'pcam': no {PREFIX}<split>_x.h5 / _y.h5 pairs in {root}; expected {INFO.layout}")
    return found


def _read_split(root: Path, split: str, *, crop: int | None, fold: bool, bad: BadFiles) -> tuple[list[Sample], bool]:
    x_path, y_path = root / file_name(split, "x"), root / file_name(split, "y")
    with h5_open(x_path) as f:  # not kept open: the files stay free until patches are read
        shape = h5_key(f, "x", x_path).shape
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
        raise DataError(f"{x_path}: dataset 'x' has shape {shape}; N x H x W x 3 (or N x H x W) patches expected")
    with h5_open(y_path) as f:
        y = np.asarray(h5_key(f, "y", y_path)[()])
    if y.ndim == 0 or int(np.prod(y.shape[1:])) != 1:
        raise DataError(f"{y_path}: dataset 'y' has shape {y.shape}; one label per patch (N x 1 x 1 x 1) expected")
    y = y.reshape(len(y))
    if len(y) != shape[0]:
        raise DataError(
            f"{x_path.name} holds {shape[0]} patches but {y_path.name} holds {len(y)} labels (in {root}); "
            "x and y of a split must have the same length: re-download the pair"
        )
    meta = _read_meta(root / file_name(split, "meta"), len(y))
    samples = []
    wsi = meta["wsi"] if meta is not None else None
    cx = meta["coord_x"] if meta is not None and "coord_x" in meta else None
    cy = meta["coord_y"] if meta is not None and "coord_y" in meta else None
    for i, value in enumerate(y.tolist()):
        if value not in (0, 1):
            bad(x_path, "bad label", f"{y_path} row {i}: label {value!r} is not 0 or 1")
            continue
        m = {"split": split, "index": i}
        if fold:
            m["fold"] = split
        if cx is not None:
            m["coord_x"], m["coord_y"] = cx[i], cy[i]
        samples.append(
            Sample(
                id=f"{split}/{i:06d}",
                label=_CLASSES[int(value)],
                group=wsi[i] if wsi is not None else None,
                meta=m,
                image_source=H5Row(x_path, "x", i, crop),
            )
        )
    return samples, meta is not None


def _read_meta(path: Path, n: int) -> dict[str, list] | None:
    """The meta CSV's columns as lists (``wsi`` required), or None when the file is absent."""
    if not path.is_file():
        return None

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "wsi" not in df.columns:
        raise DataError(
            f"{path}: no 'wsi' column (the slide id); columns found: {', '.join(df.columns) or 'none'}; "
            f"expected {', '.join(META_COLUMNS)}"
        )
    if len(df) != n:
        raise DataError(f"{path} has {len(df)} rows but the split's y file has {n} labels; they must match row by row")
    wsi = df["wsi"].astype(str).str.strip()
    if (wsi == "").any() or df["wsi"].isna().any():
        row = int(np.flatnonzero((wsi == "").to_numpy() | df["wsi"].isna().to_numpy())[0])
        raise DataError(f"{path} row {row + 2}: empty slide id (wsi)")
    out: dict[str, list] = {"wsi": [sys.intern(w) for w in wsi.tolist()]}  # one string object per slide
    if {"coord_x", "coord_y"} <= set(df.columns):
        try:
            out["coord_x"] = df["coord_x"].astype(int).tolist()
            out["coord_y"] = df["coord_y"].astype(int).tolist()
        except (TypeError, ValueError):
            raise DataError(f"{path}: coord_x/coord_y must be whole numbers in every row") from None
    return out


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
