"""Breast histopathology IDC patches: ``<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png``.

The Kaggle "breast histopathology images" release (Janowczyk & Madabhushi 2016): 50x50 RGB patches of
whole-slide images of invasive ductal carcinoma, one folder per patient with a sub-folder per class.
The patient folder is the group, so CV is patient-disjoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.types import Dataset, DatasetInfo, Sample
from datasets.folder import (
    BadFiles,
    check_options,
    check_root,
    entries,
    make_dataset,
    sample_id,
    subdirs,
    walk_images,
)
from datasets.registry import register_dataset

NAME_FORMAT = "<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png"
_NAME = re.compile(r"(?P<patient>\d+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png", re.IGNORECASE)
_LABELS = {"0": "non_idc", "1": "idc"}

INFO = DatasetInfo(
    name="idc",
    title="Breast histopathology: invasive ductal carcinoma (IDC) patches",
    description=(
        "50x50 px RGB patches of H&E-stained breast cancer whole-slide images (40x scans), labelled IDC or "
        "non-IDC; 277,524 patches from 279 patients in the full release (198,738 negative, 78,786 positive). "
        "The shared development sample idc_dev holds 3,873 patches of 100 patients. Patients come from the "
        "folder names, so CV is patient-disjoint. Some edge patches are narrower than 50 px."
    ),
    task="binary",
    kind="patch",
    classes=("non_idc", "idc"),
    positive_class="idc",
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source="https://www.kaggle.com/datasets/paultimothymooney/breast-histopathology-images",
    licence="CC0 1.0 (as reported for the Kaggle release)",
    citation=(
        "Janowczyk A, Madabhushi A. Deep learning for digital pathology image analysis: a comprehensive tutorial "
        "with selected use cases. J Pathol Inform 2016;7:29. Cruz-Roa A et al., SPIE Medical Imaging 2014."
    ),
    expected_counts={"non_idc": 198738, "idc": 78786, "total": 277524, "patients": 279},
    group_kind="patient",
    image_size="50x50 RGB",
    layout=NAME_FORMAT,
    download=(
        "Download the Kaggle data set 'breast-histopathology-images' and unzip it under your data root so that "
        "<root>/IDC_regular_ps50_idx5/<patient>/0/*.png exists (or point --data-root at the patient folders)."
    ),
    folder_names=("idc_dev", "IDC_regular_ps50_idx5", "breast-histopathology-images", "idc"),
)


def detect(path: Path) -> bool:
    """True when ``path`` holds patient folders with ``0``/``1`` sub-folders of IDC patch names."""
    for patient in subdirs(path, limit=20):
        for cls in subdirs(patient, limit=3):
            if cls.name in _LABELS and any(_NAME.fullmatch(e.name) for e in entries(cls, limit=10)):
                return True
    return False


@register_dataset(INFO, detect=detect)
def load(root: Path, *, on_bad_label: str = "raise", **options) -> Dataset:
    """Load the IDC patches under ``root`` (patient folders).

    Raises
    ------
    DataError
        For a patch whose name does not match, whose ``class<C>`` disagrees with its folder, or whose
        patient in the name differs from its patient folder.
    """
    check_options(INFO.name, options, on_bad_label=on_bad_label)
    root = check_root(INFO.name, root)
    bad = BadFiles(on_bad_label, root)
    samples: list[Sample] = []
    for path in walk_images(root, (".png",)):
        m = _NAME.fullmatch(path.name)
        if m is None:
            bad(path, "bad name", f"{path}: file name does not match the IDC pattern {NAME_FORMAT}")
            continue
        folder, patient_dir = path.parent.name, path.parent.parent.name
        if folder in _LABELS and folder != m["label"]:
            bad(
                path,
                "label mismatch",
                f"{path}: the name says class{m['label']} but the file lies in folder {folder!r}",
            )
            continue
        if patient_dir != m["patient"]:
            bad(
                path,
                "patient mismatch",
                f"{path}: the name says patient {m['patient']} but the folder is {patient_dir!r}",
            )
            continue
        samples.append(
            Sample(
                id=sample_id(path, root),
                label=_LABELS[m["label"]],
                group=m["patient"],
                image_path=path,
                meta={"x": int(m["x"]), "y": int(m["y"])},
            )
        )
    return make_dataset(INFO, root, samples, notes=bad.notes())
