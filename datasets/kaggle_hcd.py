"""Kaggle "Histopathologic Cancer Detection": PCam patches as ``train/<id>.tif`` with ``train_labels.csv``.

Every ``train/<id>.tif`` (96x96 RGB) must have a row ``<id>,<0|1>`` in ``train_labels.csv`` and every row
an image; either gap is an error naming the file (or, with ``on_bad_label="skip"``, skipped and counted).
``test/`` holds the competition's unlabelled images and is not read. The Kaggle version carries no slide
ids, so CV is image-level and the leaderboard says so. ``center_crop=32`` gives the models only the
centre 32x32 pixels, the region the label refers to.

The fingerprint hashes ``train_labels.csv`` in full, every image's name and size, and the bytes of 256
images spread over the set (:mod:`cellbench.datasets.fingerprint`), not all 220,025 files on every run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.fingerprint import quick_fingerprint, sample_fingerprint_lines, spread
from cellbench.datasets.io import FileCrop
from cellbench.datasets.layout import BadFiles, entries, is_image, open_release, release_dataset, require_classes
from cellbench.datasets.pcam import check_crop

LABELS_FILE = "train_labels.csv"
TRAIN_DIR = "train"
_TIFF = (".tif", ".tiff")
_CLASSES = ("no_tumor", "tumor")
CONTENT_SAMPLE = 256

INFO = DatasetInfo(
    name="kaggle_hcd",
    title="Histopathologic Cancer Detection (Kaggle): PCam patches, tumour in the centre 32x32 or not",
    description=(
        "The Kaggle competition version of PatchCamelyon: 96x96 RGB TIFF patches of lymph-node sections named by "
        "an opaque id, with train_labels.csv (id,label). A positive label means the centre 32x32 region holds at "
        "least one pixel of tumour tissue (center_crop=32 shows the models only that region). The Kaggle version "
        "was de-duplicated (the original PCam has duplicate patches) and has no slide ids, so CV is image-level "
        "(stratified k-fold): patches of one slide can be on both sides and scores may be optimistic; the pcam "
        "adapter reads the original release with slide ids. Only the labelled train/ folder is read. "
        "About 40% positive."
    ),
    task="binary",
    kind="patch",
    classes=_CLASSES,
    positive_class="tumor",
    primary_metric="roc_auc",
    default_cv="stratified_kfold",
    source="https://www.kaggle.com/competitions/histopathologic-cancer-detection",
    licence="Kaggle competition rules; the underlying PCam data is CC0 1.0 as stated by its authors (not verified)",
    citation=(
        "Veeling BS, Linmans J, Winkens J, Cohen T, Welling M. Rotation Equivariant CNNs for Digital Pathology. "
        "MICCAI 2018, LNCS 11071, pp. 210-218. doi:10.1007/978-3-030-00934-2_24. Ehteshami Bejnordi B et al. "
        "JAMA 2017;318(22):2199-2210. doi:10.1001/jama.2017.14585. Will Cukierski. Histopathologic Cancer "
        "Detection. Kaggle, 2018."
    ),
    expected_counts={"no_tumor": 130908, "tumor": 89117, "total": 220025},
    group_kind=None,
    image_size="96x96 RGB",
    layout=f"{TRAIN_DIR}/<id>.tif + {LABELS_FILE} (columns id,label; label 0/1); test/ (unlabelled) ignored",
    download=(
        "Accept the competition rules, then `kaggle competitions download -c histopathologic-cancer-detection`; "
        "unzip into <data root>/histopathologic-cancer-detection/ so that train/ and train_labels.csv lie "
        "there, then pass --data-root."
    ),
    folder_names=("histopathologic-cancer-detection", "kaggle_hcd", "hcd"),
)


def detect(path: Path) -> bool:
    """True when ``path`` holds ``train_labels.csv`` and a ``train/`` folder."""
    return (path / LABELS_FILE).is_file() and (path / TRAIN_DIR).is_dir()


def load(root: Path, *, center_crop: int | None = None, on_bad_label: str = "raise", **options) -> Dataset:
    """Load the labelled Kaggle patches under ``root``.

    Parameters
    ----------
    center_crop
        Give the models only the centre ``center_crop`` x ``center_crop`` pixels (e.g. 32).
    on_bad_label
        ``"raise"`` (default) or ``"skip"``: skip and count CSV rows without an image, images without a
        CSV row and rows whose label is not 0 or 1.

    Raises
    ------
    DataError
        For a missing or malformed ``train_labels.csv`` (bad columns, repeated ids), a row without an image or
        an image without a row (naming it), or fewer than two classes.
    """
    root, bad = open_release(INFO, root, options, on_bad_label=on_bad_label, allowed=("center_crop",))
    crop = check_crop(INFO.name, center_crop)
    csv_path, folder = root / LABELS_FILE, root / TRAIN_DIR
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: the labels of the {TRAIN_DIR}/ images are needed ({INFO.layout})")
    if not folder.is_dir():
        raise DataError(f"{folder} not found: {csv_path} needs the {TRAIN_DIR}/<id>.tif images beside it")
    images = {
        Path(e.name).stem: (Path(e.path), e.stat().st_size)
        for e in entries(folder)
        if e.is_file() and is_image(e.name, _TIFF)
    }
    labels = _read_labels(csv_path, bad)
    samples = []
    for sid, (label, line) in labels.items():
        if sid not in images:
            bad(
                csv_path,
                "row without image",
                f"{csv_path} line {line}: id {sid!r} has no image {folder / (sid + '.tif')}",
            )
            continue
        path = images[sid][0]
        samples.append(
            Sample(
                id=sid,
                label=label,
                image_path=path,
                image_source=FileCrop(path, crop) if crop else None,
            )
        )
    for sid in sorted(set(images) - set(labels)):
        bad(images[sid][0], "image without row", f"{images[sid][0]}: no row for id {sid!r} in {csv_path}")
    if not samples:
        raise DataError(f"data set {INFO.name!r}: no labelled images in {folder} ({len(labels)} rows in {csv_path})")
    samples.sort(key=lambda s: s.id)
    require_classes(INFO.name, samples, INFO.classes, root)
    notes = ["no slide ids in the Kaggle version: image-level CV (patches of one slide may be on both sides)"]
    test = root / "test"
    if test.is_dir():
        notes.append(f"test/ ({sum(1 for e in entries(test) if e.is_file())} unlabelled images) not read")
    if crop:
        notes.append(f"models see the centre {crop}x{crop} pixels of each patch (center_crop={crop})")
    used = [s.id for s in samples]
    extra = [
        f"kaggle_hcd|crop={crop}",
        *(f"{sid}|{images[sid][1]}" for sid in used),
        *sample_fingerprint_lines(samples),
    ]
    fingerprint = quick_fingerprint([csv_path, *(images[sid][0] for sid in spread(used, CONTENT_SAMPLE))], extra=extra)
    return release_dataset(INFO, root, fingerprint=fingerprint, samples=samples, notes=[*notes, *bad.notes()])


def _read_labels(path: Path, bad: BadFiles) -> dict[str, tuple[str, int]]:
    """id -> (class name, CSV line) from ``train_labels.csv``."""
    out: dict[str, tuple[str, int]] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if not {"id", "label"} <= set(header):
            raise DataError(f"{path}: needs columns id,label; found {','.join(header) or 'none (empty file)'}")
        i_id, i_label = header.index("id"), header.index("label")
        for line, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) <= max(i_id, i_label):
                raise DataError(f"{path} line {line}: expected id,label, got {','.join(row)!r}")
            sid, value = row[i_id].strip(), row[i_label].strip()
            if sid in out:
                raise DataError(f"{path} line {line}: id {sid!r} appears again (first on line {out[sid][1]})")
            if value not in ("0", "1"):
                bad(path, "bad label", f"{path} line {line}: label {value!r} for id {sid!r} is not 0 or 1")
                continue
            out[sid] = (_CLASSES[int(value)], line)
    return out


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
