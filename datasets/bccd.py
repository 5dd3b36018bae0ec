"""BCCD: blood-smear fields (640x480 JPEG) with Pascal VOC boxes of white cells, red cells and platelets.

Layout of the release (``Shenggan/BCCD_Dataset``): ``JPEGImages/BloodImage_NNNNN.jpg`` and one VOC file per
field in ``Annotations/BloodImage_NNNNN.xml`` (``<object><name>WBC|RBC|Platelets</name><bndbox>...``); the
``ImageSets/Main/{train,val,test}.txt`` split of the release goes into each field's ``meta["split"]``.

Task: the cell type of each box (RBC, WBC, Platelets), from box crops (manual extraction). The segmentation
extraction finds white cells only, and is scored against the WBC boxes (detection precision and recall);
with one class it cannot be classified, so suites run bccd with ``extractions = ["manual"]`` and
``python -m bench extract --dataset bccd --method segmentation`` measures the detection.

The release has flaws the loader names: two RBC boxes of zero size (BloodImage_00338, BloodImage_00343). With
the default ``on_bad_annotation = "raise"`` they stop loading; ``"skip"`` leaves them out and counts them.
No patient ids: each cell's group is its field.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Annotation, Dataset, DatasetInfo, Field
from cellbench.datasets.entry import DatasetEntry, FieldDefaults
from cellbench.datasets.fieldsets import BadAnnotations, box_problem, make_field_dataset, open_field_release
from cellbench.datasets.io import image_size
from cellbench.datasets.layout import is_hidden

CLASSES = ("RBC", "WBC", "Platelets")
WHITE = ("WBC",)
CELL_DIAMETER = 170.0  # white cells, px (boxes: median 201x181)

INFO = DatasetInfo(
    name="bccd",
    title="BCCD: blood-cell fields with VOC boxes (RBC, WBC, platelets)",
    description=(
        "364 blood-smear fields (640x480 JPEG) with Pascal VOC bounding boxes of red cells (4155), white cells "
        "(372) and platelets (361). Task: cell type per box. The segmentation extraction finds white cells and "
        "is scored against the WBC boxes. No subtype or cancer labels, no patient ids (CV field-disjoint)."
    ),
    task="multiclass",
    kind="cell",
    classes=CLASSES,
    positive_class=None,
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source="https://github.com/Shenggan/BCCD_Dataset",
    licence="MIT (as stated in the repository README)",
    citation=(
        "BCCD Dataset, https://github.com/Shenggan/BCCD_Dataset (from cosmicad/dataset and "
        "akshaylamba/all_CELL_data)"
    ),
    expected_counts={"RBC": 4155, "WBC": 372, "Platelets": 361, "fields": 364},
    group_kind="field",
    image_size="640x480 RGB JPEG",
    layout="JPEGImages/BloodImage_NNNNN.jpg, Annotations/BloodImage_NNNNN.xml (Pascal VOC), ImageSets/Main/*.txt",
    download="git clone https://github.com/Shenggan/BCCD_Dataset and pass --data-root BCCD_Dataset/BCCD",
    folder_names=("bccd", "BCCD", "BCCD_Dataset/BCCD"),
)


def detect(path: Path) -> bool:
    """True when ``path`` holds ``Annotations/*.xml`` and ``JPEGImages/``."""
    ann = path / "Annotations"
    return ann.is_dir() and (path / "JPEGImages").is_dir() and any(p.suffix == ".xml" for p in list(ann.iterdir())[:20])


def load(root: Path, *, on_bad_annotation: str = "raise", **options) -> Dataset:
    """Load the BCCD fields and their VOC boxes.

    Parameters
    ----------
    on_bad_annotation
        ``"raise"`` (default) or ``"skip"``: skip and count an unreadable XML file (the whole field), a box that is
        empty or outside its image, an unknown class name, or a field without boxes.

    Raises
    ------
    DataError
        For missing folders, an XML file whose image is missing, or (with ``"raise"``) a bad annotation.
    """
    root, bad = open_field_release(INFO, root, options, on_bad_annotation=on_bad_annotation)
    ann_dir, img_dir = root / "Annotations", root / "JPEGImages"
    if not ann_dir.is_dir() or not img_dir.is_dir():
        raise DataError(f"data set 'bccd': {root} lacks Annotations/ or JPEGImages/; expected {INFO.layout}")
    splits = _splits(root)
    fields, files = [], []
    for xml in sorted(p for p in ann_dir.iterdir() if p.suffix.lower() == ".xml" and not is_hidden(p.name)):
        field = read_voc(xml, img_dir, bad=bad, split=splits.get(xml.stem))
        if field is not None:
            fields.append(field)
            files += [xml, field.image_path]
    notes = ["no patient ids: each cell's group is its field, so CV is field-disjoint", *bad.notes()]
    return make_field_dataset(INFO, root, fields, files=files, extra=[f"bad={on_bad_annotation}"], notes=notes)


def _splits(root: Path) -> dict[str, str]:
    out = {}
    main = root / "ImageSets" / "Main"
    for split in ("train", "val", "test"):
        f = main / f"{split}.txt"
        if f.is_file():
            for line in f.read_text(errors="replace").split():
                out.setdefault(line.strip(), split)
    return out


def read_voc(xml: Path, img_dir: Path, *, bad: BadAnnotations, split: str | None = None) -> Field | None:
    """One field from a Pascal VOC file; ``None`` when ``bad`` skips it."""
    try:
        tree = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        bad(str(xml), "unreadable XML", f"cannot read the VOC annotation {xml}: {exc}")
        return None
    name = (tree.findtext("filename") or f"{xml.stem}.jpg").strip()
    image = img_dir / Path(name).name
    if not image.is_file() and (img_dir / f"{xml.stem}.jpg").is_file():
        image = img_dir / f"{xml.stem}.jpg"
    if not image.is_file():
        raise DataError(f"data set 'bccd': {xml} annotates {name}, which is not in {img_dir}")
    size = image_size(image)
    annotations = []
    for k, obj in enumerate(tree.iter("object")):
        label = (obj.findtext("name") or "").strip()
        where = f"{xml.name} object {k + 1}"
        if label not in CLASSES:
            bad(where, "unknown class", f"{xml}, object {k + 1}: class {label!r} is not one of {', '.join(CLASSES)}")
            continue
        try:
            box = tuple(float(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            bad(where, "unreadable box", f"{xml}, object {k + 1} ({label}): <bndbox> lacks numeric xmin/ymin/xmax/ymax")
            continue
        problem = box_problem(box, size)
        if problem:
            bad(where, problem, f"{xml}, object {k + 1} ({label}): {problem}: box {box} in a {size[0]}x{size[1]} image")
            continue
        # VOC pixel coordinates start at 1: [xmin - 1, xmax) in 0-based, end-exclusive pixels
        ibox = (max(0, round(box[0]) - 1), max(0, round(box[1]) - 1), round(box[2]), round(box[3]))
        annotations.append(Annotation(label=label, box=ibox, meta={"file": xml, "object": k + 1,
                                                                   "truncated": obj.findtext("truncated") == "1"}))
    if not annotations:
        bad(str(xml), "field without annotations", f"{xml}: the field {image.name} has no usable box")
        return None
    return Field(
        id=xml.stem,
        image_path=image,
        annotations=tuple(annotations),
        meta={"width": size[0], "height": size[1], **({"split": split} if split else {})},
    )


FIELD_DEFAULTS = FieldDefaults(
    manual={"cell_diameter": CELL_DIAMETER, "margin": 0.1},
    # the boxes hold the whole cell: grow the stained nucleus over its cytoplasm
    segmentation={"cell_diameter": CELL_DIAMETER, "cytoplasm": True, "min_iou": 0.3},
    white=WHITE,
)
ENTRY = DatasetEntry(info=INFO, load=load, detect=detect, field_defaults=FIELD_DEFAULTS)
