"""Breast histopathology IDC patches: ``<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png``.

The group is the patient folder; the label comes from the ``class<C>`` suffix and must agree with the
``0``/``1`` folder (and the name's patient with the patient folder). The Kaggle archive holds the patient
folders twice, at its top level and in ``IDC_regular_ps50_idx5/``: only one copy is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.layout import BadFiles, entries, is_image, make_dataset, open_release, sample_id, subdirs

NAME_FORMAT = "<patient>_idx5_x<X>_y<Y>_class<0|1>.png"
_NAME = re.compile(r"(?P<patient>[^_]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png", re.IGNORECASE)
_LABELS = {"0": "non_idc", "1": "idc"}
_NESTED = "IDC_regular_ps50_idx5"

INFO = DatasetInfo(
    name="idc",
    title="Breast histopathology: invasive ductal carcinoma (IDC) patches",
    description=(
        "50x50 RGB patches cut from 162 whole-slide images of breast-cancer specimens scanned at 40x; a patch is "
        "IDC (class1) or not (class0). The patient id is the folder name, so CV is patient-grouped. Naturally "
        "imbalanced (about 28% IDC). The shared sample idc_dev has 3,873 patches (2,819 non-IDC / 1,054 IDC) "
        "from 100 patients."
    ),
    task="binary",
    kind="patch",
    classes=("non_idc", "idc"),
    positive_class="idc",
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source=(
        "https://www.kaggle.com/datasets/paultimothymooney/breast-histopathology-images "
        "(from http://www.andrewjanowczyk.com/use-case-6-invasive-ductal-carcinoma-idc-segmentation/)"
    ),
    licence="CC0 1.0 as stated for the Kaggle data set (not verified here)",
    citation=(
        "Janowczyk A, Madabhushi A. Deep learning for digital pathology image analysis: a comprehensive tutorial "
        "with selected use cases. J Pathol Inform 2016;7:29. doi:10.4103/2153-3539.186902. Cruz-Roa A et al. "
        "Automatic detection of invasive ductal carcinoma in whole slide images with convolutional neural "
        "networks. Proc. SPIE 9041, Medical Imaging 2014: Digital Pathology, 904103. doi:10.1117/12.2043872"
    ),
    expected_counts={"non_idc": 198738, "idc": 78786, "total": 277524, "patients": 279},
    group_kind="patient",
    image_size="50x50 RGB (some edge patches smaller)",
    layout=f"<patient>/<0|1>/{NAME_FORMAT}",
    download=(
        "`kaggle datasets download -d paultimothymooney/breast-histopathology-images`; unzip under your data "
        "root as breast-histopathology-images/ (or IDC_regular_ps50_idx5/), then pass --data-root."
    ),
    folder_names=("idc_dev", _NESTED, "breast-histopathology-images", "idc"),
)


def detect(path: Path) -> bool:
    """True when ``path`` (or its ``IDC_regular_ps50_idx5/``) has ``<patient>/<0|1>/`` patches."""
    for sub in subdirs(path, limit=50):
        for cls in ("0", "1"):
            if any(_NAME.fullmatch(e.name) for e in entries(sub / cls, limit=20)):
                return True
    nested = path / _NESTED
    return path.name != _NESTED and nested.is_dir() and detect(nested)


def _is_patient(folder: Path) -> bool:
    return (folder / "0").is_dir() or (folder / "1").is_dir()


def load(root: Path, *, on_bad_label: str = "raise", **options) -> Dataset:
    """Load the IDC patches under ``root``.

    Parameters
    ----------
    root
        A folder of patient folders, or one holding them in ``IDC_regular_ps50_idx5/``.
    on_bad_label
        ``"raise"`` (default) or ``"skip"``: skip and count badly named or mislabelled files.

    Raises
    ------
    DataError
        For a name that does not match, a label or patient mismatch between name and folders, or no patches.
    """
    root, bad = open_release(INFO, root, options, on_bad_label=on_bad_label)
    folders = subdirs(root)
    if not any(_is_patient(f) for f in folders) and (root / _NESTED).is_dir():
        root = root / _NESTED
        folders = subdirs(root)
        bad = BadFiles(on_bad_label, root)
    samples: list[Sample] = []
    ignored: list[str] = []
    for folder in folders:
        if not _is_patient(folder):
            ignored.append(folder.name)
            continue
        for cls in ("0", "1"):
            samples += _patches(root, folder, cls, bad)
    notes = [f"folders without 0/ or 1/ sub-folders ignored: {', '.join(ignored)}"] if ignored else []
    return make_dataset(INFO, root, samples, notes=[*notes, *bad.notes()])


def _patches(root: Path, folder: Path, cls: str, bad: BadFiles) -> list[Sample]:
    samples = []
    files = sorted(Path(e.path) for e in entries(folder / cls) if e.is_file() and is_image(e.name))
    for path in files:
        m = _NAME.fullmatch(path.name)
        if m is None:
            bad(path, "bad name", f"{path}: file name does not match the IDC pattern {NAME_FORMAT}")
            continue
        if m["label"] != cls:
            bad(path, "label mismatch", f"{path}: the name says class{m['label']} but it lies in folder {cls}/")
            continue
        if m["patient"] != folder.name:
            bad(
                path,
                "patient mismatch",
                f"{path}: the name says patient {m['patient']!r} but it lies in patient folder {folder.name!r}",
            )
            continue
        samples.append(
            Sample(
                id=sample_id(path, root),
                label=_LABELS[cls],
                group=folder.name,
                image_path=path,
                meta={"patient": folder.name, "x": int(m["x"]), "y": int(m["y"])},
            )
        )
    return samples


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
