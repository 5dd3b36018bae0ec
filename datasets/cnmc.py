"""C-NMC 2019 (ISBI 2019 ALL challenge): leukemic blast (``all``) vs normal (``hem``) single cells.

Reads the training release as published: ``fold_<k>/{all,hem}/UID_<patient>_<image>_<cell>_<all|hem>.bmp``,
fold folders found at any depth (the Kaggle mirror nests them as ``C-NMC_Leukemia/training_data/fold_0``),
or ``{all,hem}/`` directly under the root without folds (the shared sample). The label comes from the
name's suffix and must agree with the class folder. Patient ids come from the name: ALL patients are
numbers, HEM subjects ``H<n>``; ids are upper-cased because the release spells one subject both ``h3``
and ``H3`` (one subject, as the shared sample's MANIFEST records).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets import layout
from cellbench.datasets.entry import DatasetEntry

NAME_FORMAT = "UID_<patient>_<image>_<cell>_<all|hem>.bmp"
_NAME = re.compile(r"UID_(?P<patient>H?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<label>all|hem)\.bmp", re.IGNORECASE)
_FOLD = re.compile(r"fold_?(\d+)", re.IGNORECASE)
_CLASSES = ("hem", "all")

INFO = DatasetInfo(
    name="cnmc",
    title="C-NMC 2019: normal vs malignant B-lymphoid cells (ISBI 2019 ALL challenge)",
    description=(
        "Segmented single white-cell images from bone-marrow smears (450x450 BMP, black outside the cell), "
        "stain-normalised; classify leukemic B-lymphoblasts (all) vs normal B-lymphoid cells (hem). "
        "Patient ids come from the file names (ALL patients are numbers, HEM subjects H<n>; the release spells "
        "one subject h3 and H3, read as one subject H3). The training release has three patient-level folds "
        "fold_0..2, used as predefined CV folds; without fold folders CV is patient-grouped k-fold. Only the "
        "labelled training data are read (the test-phase folders carry no labels in their names). "
        "The shared sample cnmc_sample has 54 cells (27 all / 27 hem) of 13 ALL patients and 13 HEM subjects, "
        "without fold folders: enough for pipeline tests, not for conclusions."
    ),
    task="binary",
    kind="cell",
    classes=_CLASSES,
    positive_class="all",
    primary_metric="f1_weighted",
    default_cv="predefined",
    source="https://doi.org/10.7937/tcia.2019.dc64i46r (TCIA collection C-NMC 2019)",
    licence="CC BY 3.0 as listed for the TCIA collection, with the challenge's data-usage terms (not verified here)",
    citation=(
        "Gupta A, Gupta R. ALL Challenge dataset of ISBI 2019 [Data set]. The Cancer Imaging Archive, 2019. "
        "doi:10.7937/tcia.2019.dc64i46r. The challenge also asks to cite Duggal R, Gupta A, Gupta R, Mallick P. "
        "SD-Layer: Stain Deconvolutional Layer for CNNs in Medical Microscopic Imaging. MICCAI 2017, LNCS 10435, "
        "pp. 435-443, and the further papers listed in its rules."
    ),
    expected_counts={"all": 7272, "hem": 3389, "total": 10661, "patients": 76},
    group_kind="patient",
    image_size="450x450 RGB",
    layout=f"fold_<k>/{{all,hem}}/{NAME_FORMAT} (or {{all,hem}}/... without fold folders)",
    download=(
        "Register and download the training data from TCIA (doi:10.7937/tcia.2019.dc64i46r), or the Kaggle "
        "mirror: `kaggle datasets download -d andrewmvd/leukemia-classification`; unzip under your data root "
        "so that C-NMC_Leukemia/training_data/fold_0/all/*.bmp exists, then pass --data-root."
    ),
    folder_names=("cnmc_sample", "C-NMC_Leukemia", "cnmc", "C-NMC_2019", "C-NMC_Leukemia/training_data"),
)


def detect(path: Path) -> bool:
    """True when ``path`` has ``{all,hem}/UID_*.bmp``, directly or in fold folders up to two levels down."""
    if _has_cells(path):
        return True
    for sub in layout.subdirs(path, limit=100):
        if _FOLD.fullmatch(sub.name):
            if _has_cells(sub):
                return True
            continue
        if any(_FOLD.fullmatch(f.name) and _has_cells(f) for f in layout.subdirs(sub, limit=100)):
            return True
    return False


def _has_cells(path: Path) -> bool:
    return any(
        d.name.lower() in _CLASSES and any(_NAME.fullmatch(e.name) for e in layout.entries(d, limit=20))
        for d in layout.subdirs(path, limit=100)
    )


def load(root: Path, *, on_bad_label: str = "raise", **options) -> Dataset:
    """Load the C-NMC training cells under ``root``.

    Parameters
    ----------
    root
        A folder with ``{all,hem}/`` or ``fold_<k>/{all,hem}/`` (at any depth).
    on_bad_label
        ``"raise"`` (default) or ``"skip"``: skip and count badly named or mislabelled files.

    Raises
    ------
    DataError
        For a name that does not match the pattern, a name/folder label mismatch, a mix of files in and
        outside fold folders, or no cells.
    """
    root, bad = layout.open_release(INFO, root, options, on_bad_label=on_bad_label)
    samples: list[Sample] = []
    ignored: list[Path] = []
    lower_ids: set[str] = set()
    for path in layout.walk_images(root):
        place = _place(path, root)
        if place is None:
            ignored.append(path)
            continue
        folder, fold = place
        m = _NAME.fullmatch(path.name)
        if m is None:
            bad(
                path,
                "bad name",
                f"{path}: file name does not match the C-NMC pattern {NAME_FORMAT} "
                f"(e.g. UID_11_1_1_all.bmp, UID_H3_2_1_hem.bmp)",
            )
            continue
        label = m["label"].lower()
        if label != folder:
            bad(
                path,
                "label mismatch",
                f"{path}: the name says {label!r} but the file lies in class folder {path.parent.name!r}",
            )
            continue
        patient = m["patient"].upper()
        if m["patient"] != patient:
            lower_ids.add(m["patient"])
        meta = {"patient": patient, "image": int(m["image"]), "cell": int(m["cell"])}
        if fold is not None:
            meta["fold"] = fold
        samples.append(Sample(id=layout.sample_id(path, root), label=label, group=patient, image_path=path, meta=meta))
    layout.check_unique(((s.image_path.name.lower(), s.image_path) for s in samples), what="cell image")
    folds = _check_folds(samples, root)
    notes = _notes(samples, folds, ignored, lower_ids, root)
    info = INFO if folds else replace(INFO, default_cv="group_kfold")
    return layout.make_dataset(info, root, samples, notes=[*notes, *bad.notes()])


def _place(path: Path, root: Path) -> tuple[str, int | None] | None:
    """(class folder, fold) of a file in ``{all,hem}/`` under the root or under a fold folder, else None."""
    folder, parent = path.parent.name.lower(), path.parent.parent
    if folder not in _CLASSES:
        return None
    if parent == root:
        return folder, None
    m = _FOLD.fullmatch(parent.name)
    return (folder, int(m[1])) if m else None


def _check_folds(samples: list[Sample], root: Path) -> set[int]:
    with_fold = [s for s in samples if "fold" in s.meta]
    if with_fold and len(with_fold) < len(samples):
        loose = next(s for s in samples if "fold" not in s.meta)
        raise DataError(
            f"{root}: some cells lie in fold_<k> folders (e.g. {layout.relpath(with_fold[0].image_path, root)}) and "
            f"some do not (e.g. {layout.relpath(loose.image_path, root)}); keep either fold_<k>/{{all,hem}}/ or "
            "{all,hem}/ under the data root"
        )
    return {s.meta["fold"] for s in with_fold}


def _notes(samples: list[Sample], folds: set[int], ignored: list[Path], lower_ids: set[str], root: Path) -> list[str]:
    notes = []
    if not folds:
        notes.append("no fold_<k> folders: patient-grouped k-fold CV instead of the challenge's predefined folds")
    elif len(folds) < 2:
        notes.append(f"only fold {min(folds)} present: predefined CV needs at least two folds")
    patient_folds: dict[str, set[int]] = {}
    for s in samples:
        if "fold" in s.meta:
            patient_folds.setdefault(s.group, set()).add(s.meta["fold"])
    if shared := sorted(p for p, f in patient_folds.items() if len(f) > 1):
        notes.append(f"patients in more than one fold: {', '.join(shared)}")
    if lower_ids:
        ids = ", ".join(sorted(lower_ids))
        notes.append(f"subject id(s) {ids} read upper-case (the release spells one HEM subject h3 and H3)")
    if ignored:
        notes.append(
            f"{len(ignored)} image file(s) outside {{all,hem}} class folders ignored "
            f"(e.g. {layout.relpath(ignored[0], root)}; unlabelled test-phase data)"
        )
    return notes


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
