"""White-cell images with expert nucleus and cytoplasm masks (Zheng et al. 2018, ``zxaoyou/segmentation_WBC``).

Layout of the release: ``Dataset 1/NNN.bmp`` (300 images, mostly 120x120, yellowish background) and
``Dataset 2/NNN.bmp`` (100 images 300x300, CellaVision), each with its ground truth ``NNN.png`` beside it
(0 = background and red cells, 128 = cytoplasm, 255 = nucleus) and the class of each image in
``Class Labels of Dataset N.csv`` (1 neutrophil, 2 lymphocyte, 3 monocyte, 4 eosinophil, 5 basophil; the README
warns that some labels were set by the authors, not by experts). Copies that keep ``datasetN/images/NNN.bmp`` and
``datasetN/masks/NNN.png`` (the shared sample) are read too.

Each image is a field holding one annotated white cell with its expert mask: the manual extraction cuts the
cell with its expert mask; the segmentation extraction finds the cell (the one nearest the image centre) and is
scored against the mask (Dice and IoU of the cell and of the nucleus). A few masks carry stray grey values
besides 0/128/255: values of 192 and above count as nucleus, other non-zero values as cytoplasm.
No patient ids: the group of each cell is its image.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Annotation, Dataset, DatasetInfo, Field
from cellbench.datasets.entry import DatasetEntry, FieldDefaults
from cellbench.datasets.fieldsets import BadAnnotations, make_field_dataset, open_field_release
from cellbench.datasets.io import image_size, read_mask

CLASSES = ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil")
NUCLEUS_LEVEL = 192
CELL_DIAMETER = 0.6  # of the image's shorter side (dataset 1: ~0.69, dataset 2: ~0.52)
_IMAGE = re.compile(r"(\d{3})\.bmp", re.IGNORECASE)

INFO = DatasetInfo(
    name="zheng2018",
    title="White-cell images with expert nucleus/cytoplasm masks (Zheng et al. 2018)",
    description=(
        "400 single white-cell images (dataset 1: 300 of about 120x120 px, Jiangxi Tecom; dataset 2: 100 of "
        "300x300 px, CellaVision blog) with expert masks of nucleus and cytoplasm and one of five white-cell types "
        "each (some set by the authors, not by experts). For segmentation quality (Dice, IoU against the expert "
        "masks) and manual-mask vs segmented-mask features on the same cells. No cancer labels, no patient ids."
    ),
    task="multiclass",
    kind="cell",
    classes=CLASSES,
    positive_class=None,
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source="https://github.com/zxaoyou/segmentation_WBC",
    licence="GPL-3.0 (repository licence); acknowledge Jiangxi Tecom (dataset 1) and the CellaVision blog (dataset 2)",
    citation=(
        "Zheng X, Wang Y, Wang G, Liu J. Fast and robust segmentation of white blood cell images by "
        "self-supervised learning. Micron 107 (2018) 55-71. doi:10.1016/j.micron.2018.01.010"
    ),
    expected_counts={
        "neutrophil": 209, "lymphocyte": 90, "monocyte": 63, "eosinophil": 34, "basophil": 4, "total": 400,
    },
    group_kind="field",
    image_size="dataset 1: 120x120 (some 88-120), dataset 2: 300x300 RGB BMP",
    layout="Dataset 1/NNN.bmp + NNN.png, Dataset 2/..., Class Labels of Dataset 1.csv, Class Labels of Dataset 2.csv",
    download="git clone https://github.com/zxaoyou/segmentation_WBC and pass --data-root segmentation_WBC",
    folder_names=("wbc_seg_zheng2018", "segmentation_WBC", "zheng2018"),
)


def _subset_dirs(root: Path, k: int) -> tuple[Path, Path] | None:
    """(image folder, mask folder) of dataset ``k``, in the release's or the shared sample's layout."""
    for name in (f"Dataset {k}", f"dataset{k}", f"Dataset{k}", f"dataset {k}"):
        d = root / name
        if (d / "images").is_dir():
            return d / "images", d / "masks"
        if d.is_dir():
            return d, d
    return None


def _labels_file(root: Path, k: int) -> Path | None:
    f = root / f"Class Labels of Dataset {k}.csv"
    return f if f.is_file() else None


def detect(path: Path) -> bool:
    """True when ``path`` holds a dataset 1 or 2 folder and its class label file."""
    return any(_subset_dirs(path, k) is not None and _labels_file(path, k) is not None for k in (1, 2))


def load(root: Path, *, on_bad_annotation: str = "raise", **options) -> Dataset:
    """Load the white-cell images, their expert masks and class labels.

    Parameters
    ----------
    on_bad_annotation
        ``"raise"`` (default) or ``"skip"``: skip and count an unreadable class-label line, an image without a
        label or without a mask, an empty mask or one whose size differs from its image.

    Raises
    ------
    DataError
        For a missing folder or label file, or (with ``"raise"``) a bad annotation.
    """
    root, bad = open_field_release(INFO, root, options, on_bad_annotation=on_bad_annotation)
    fields, files = [], []
    found_any = False
    for k in (1, 2):
        dirs, labels_file = _subset_dirs(root, k), _labels_file(root, k)
        if dirs is None:
            continue
        if labels_file is None:
            raise DataError(f"data set 'zheng2018': dataset {k} has images but no 'Class Labels of Dataset {k}.csv' "
                            f"in {root}")
        found_any = True
        labels = read_labels(labels_file, bad=bad)
        files.append(labels_file)
        image_dir, mask_dir = dirs
        for img in sorted(p for p in image_dir.iterdir() if _IMAGE.fullmatch(p.name)):
            field = _field(k, img, mask_dir / f"{img.stem}.png", labels, bad=bad)
            if field is not None:
                fields.append(field)
                files += [img, field.annotations[0].meta["mask_path"]]
    if not found_any:
        raise DataError(f"data set 'zheng2018': no 'Dataset 1' or 'Dataset 2' folder in {root}; expected {INFO.layout}")
    notes = ["no patient ids: one cell per image, CV image-disjoint", *bad.notes()]
    return make_field_dataset(INFO, root, fields, files=files, extra=[f"bad={on_bad_annotation}"], notes=notes)


def read_labels(path: Path, *, bad: BadAnnotations) -> dict[int, str]:
    """Image number -> class name from a ``Class Labels of Dataset N.csv`` file (header, then ``id,class``)."""
    out: dict[int, str] = {}
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        rows = list(csv.reader(fh))
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            image, label = int(row[0]), int(row[1])
            if not 1 <= label <= len(CLASSES):
                raise IndexError(label)
            out[image] = CLASSES[label - 1]
        except (ValueError, IndexError):
            bad(f"{path.name}:{n}", "unreadable label line",
                f"{path}, line {n}: {','.join(row)[:60]!r} is not 'image id,class' with a class from 1 to 5")
    return out


def _field(k: int, image: Path, mask: Path, labels: dict[int, str], *, bad: BadAnnotations) -> Field | None:
    fid = f"dataset{k}/{image.stem}"
    label = labels.get(int(image.stem))
    if label is None:
        bad(fid, "image without a label", f"{image} has no class in 'Class Labels of Dataset {k}.csv'")
        return None
    if not mask.is_file():
        bad(fid, "image without a mask", f"{image} has no expert mask {mask}")
        return None
    size = image_size(image)
    m = read_mask(mask)
    if m.shape != (size[1], size[0]):
        bad(fid, "mask size differs", f"mask {mask} is {m.shape[1]}x{m.shape[0]}, its image {size[0]}x{size[1]}")
        return None
    if not m.any():
        bad(fid, "empty mask", f"mask {mask} marks no cell pixel")
        return None
    ann = Annotation(
        label=label, meta={"mask_path": mask, "nucleus_level": NUCLEUS_LEVEL, "file": mask}
    )
    return Field(id=fid, image_path=image, annotations=(ann,), meta={"subset": k, "width": size[0], "height": size[1]})


FIELD_DEFAULTS = FieldDefaults(
    manual={"cell_diameter": CELL_DIAMETER, "diameter_unit": "image", "margin": 0.1},
    # one cell fills up to half the image: more of it lies above the stain threshold than in a smear field
    segmentation={
        "cell_diameter": CELL_DIAMETER,
        "diameter_unit": "image",
        "keep": "central",
        "max_stained_share": 0.6,
        "cytoplasm": True,
        "min_iou": 0.3,
        # the cell fills much of the image: the median stain of its cells is the white cell's, not red cells'
        "red_factor": 0.0,
    },
)
ENTRY = DatasetEntry(info=INFO, load=load, detect=detect, field_defaults=FIELD_DEFAULTS)
