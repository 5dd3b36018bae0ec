"""ALL-IDB1: whole peripheral blood-smear fields with the centroids of their blasts (and of the other cells).

The release keeps the fields in ``ALL_IDB1/im/ImNNN_Y.jpg`` and the blast centroids in ``ALL_IDB1/xyc/ImNNN_Y.xyc``
(one ``x y`` line per blast, full-resolution pixels; empty for the ``_0`` fields of healthy individuals).
Centroids of the *other* objects come from the ALL-IDB Patches work (Genovese et al.), in a folder named
``xyc_other*`` beside them; the shared sample keeps its images in ``images/`` and the blast centroids in
``xyc_blast/``. Both layouts are read.

The "other" centroids mark every other stained object of a field, and most of them are **platelets** (about
380 of the 506 in the shared sample), which are not white cells. With ``screen_platelets`` (default) each
"other" centroid is looked at in the image: when the stain around it (a ring 0.25-0.45 typical white-cell
diameters from it, at the haematoxylin threshold's lower third) covers under a fifth of the ring, the object
is smaller than a white cell and the annotation is labelled ``platelet``, which is not one of the data set's
classes: such annotations are kept out of both extractions (and out of the detection scores) and counted in
the notes. The cut is loose on purpose: ambiguous objects stay white cells, which can only lower the
segmentation's recall. The official blast centroids are never screened.

No patient ids exist: the group of every cell is its field, so CV is field-disjoint (cells of one field are
never on both sides of a split).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.types import Annotation, Dataset, DatasetInfo, Field
from cellbench.datasets.entry import DatasetEntry, FieldDefaults
from cellbench.datasets.fieldsets import centroid_inside, make_field_dataset, open_field_release, read_xyc
from cellbench.datasets.io import image_size
from cellbench.datasets.layout import is_hidden, subdirs
from cellbench.datasets.segmentation import background_colour, stain_channel, stain_threshold

_NAME = re.compile(r"(?P<field>Im(?P<number>\d{3})_(?P<label>[01]))\.(?:jpe?g|tiff?|png)", re.IGNORECASE)
BLAST_DIRS = ("xyc", "xyc_blast")
IMAGE_DIRS = ("im", "images", "img")
# Typical white-cell diameter in the 1712x1368 fields (the 2592x1944 ones are at up to 1.5x the magnification;
# the segmentation adapts its scale per field). The manual window, 2.5 diameters, is ALL-IDB2's 257 px crop.
CELL_DIAMETER = 102.8
SCREEN_DIAMETER = 110.0
SCREEN_RING = (0.25, 0.45)
SCREEN_COVER = 0.2

INFO = DatasetInfo(
    name="allidb1",
    title="ALL-IDB1: whole blood-smear fields, blast vs other white cell",
    description=(
        "Peripheral blood-smear fields (2592x1944 or 1712x1368 JPEG) of ALL patients (ImNNN_1) and healthy "
        "individuals (ImNNN_0), with the official centroids of every blast and, from the ALL-IDB Patches work, "
        "the centroids of the other objects (white cells and platelets; platelets are screened out, see the "
        "adapter). Task: blast vs other white cell, per cell, from cells cut around the centroids (manual "
        "extraction) or found automatically in the fields (segmentation). No patient ids: CV is field-disjoint. "
        "The shared copy allidb1_subset holds 45 of the 108 fields."
    ),
    task="binary",
    kind="cell",
    classes=("other", "blast"),
    positive_class="blast",
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source="https://homes.di.unimi.it/scotti/all/ (other-cell centroids: github.com/AngeloUNIMI/ALL-IDB-Patches)",
    licence=(
        "ALL-IDB terms of use: described as public and free for research, access requested from the authors; "
        "redistribution not verified. Other-cell centroids: GPL-3.0 (ALL-IDB Patches repository)"
    ),
    citation=(
        "Labati RD, Piuri V, Scotti F. ALL-IDB: the acute lymphoblastic leukemia image database for image "
        "processing. ICIP 2011, pp. 2045-2048. doi:10.1109/ICIP.2011.6115881; other cells: Genovese A, Piuri V, "
        "Scotti F et al., ALL-IDB Patches, ICASSP-W 2023"
    ),
    expected_counts={"fields": 108},
    group_kind="field",
    image_size="2592x1944 or 1712x1368 RGB JPEG (one 1226x652)",
    layout="ALL_IDB1/im/ImNNN_<0|1>.jpg (or images/), xyc/ (or xyc_blast/) ImNNN_<0|1>.xyc, xyc_other*/ImNNN_<0|1>.xyc",
    download=(
        "Request ALL-IDB at https://homes.di.unimi.it/scotti/all/ and unzip it so that ALL_IDB1/im/Im001_1.jpg and "
        "ALL_IDB1/xyc/Im001_1.xyc exist; put the other-cell centroids of github.com/AngeloUNIMI/ALL-IDB-Patches "
        "(ALL-IDB1/other/*.xyc) into ALL_IDB1/xyc_other/; then pass --data-root."
    ),
    folder_names=("allidb1_subset", "allidb1", "ALL_IDB1", "ALL-IDB1", "ALL_IDB/ALL_IDB1", "ALL-IDB/ALL_IDB1"),
)


def _image_dir(root: Path) -> Path | None:
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


def _blast_dir(root: Path) -> Path | None:
    for name in BLAST_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


def _other_dirs(root: Path) -> list[Path]:
    return [d for d in subdirs(root) if d.name.lower().startswith("xyc_other")]


def detect(path: Path) -> bool:
    """True when ``path`` holds an image folder with ``ImNNN_<0|1>`` fields and a blast centroid folder."""
    images, blasts = _image_dir(path), _blast_dir(path)
    if images is None or blasts is None:
        return False
    return any(_NAME.fullmatch(p.name) for p in list(images.iterdir())[:50]) and any(
        p.suffix == ".xyc" for p in list(blasts.iterdir())[:50]
    )


def load(root: Path, *, on_bad_annotation: str = "raise", screen_platelets: bool = True, **options) -> Dataset:
    """Load the ALL-IDB1 fields under ``root`` with their blast and other-cell centroids.

    Parameters
    ----------
    on_bad_annotation
        ``"raise"`` (default) or ``"skip"``: skip and count an unreadable ``.xyc`` line, a centroid outside its
        image, a blast centroid in a healthy (``_0``) field, a field without a blast centroid file or a field
        without any annotation.
    screen_platelets
        Label the "other" centroids that mark objects smaller than a white cell ``platelet`` (module docstring).

    Raises
    ------
    DataError
        For a missing folder, no fields, no other-cell centroids, or (with ``"raise"``) a bad annotation.
    """
    root, bad = open_field_release(INFO, root, options, on_bad_annotation=on_bad_annotation,
                                   allowed=("screen_platelets",))  # fmt: skip
    if not isinstance(screen_platelets, bool):
        raise DataError(f"data set 'allidb1': screen_platelets must be true or false, got {screen_platelets!r}")
    images, blasts, others = _image_dir(root), _blast_dir(root), _other_dirs(root)
    if images is None or blasts is None:
        raise DataError(f"data set 'allidb1': no image folder ({'/'.join(IMAGE_DIRS)}) or blast centroid folder "
                        f"({'/'.join(BLAST_DIRS)}) in {root}; expected {INFO.layout}")
    if not others:
        raise DataError(
            f"data set 'allidb1': no centroids of the other white cells (a folder xyc_other*/) in {root}; the "
            "official release annotates blasts only, and blast-vs-other classification needs both. "
            f"{INFO.download}"
        )
    files: list[Path] = []
    fields: list[Field] = []
    n_platelets = 0
    for path in sorted(p for p in images.iterdir() if not is_hidden(p.name) and p.is_file()):
        m = _NAME.fullmatch(path.name)
        if m is None:
            continue
        field = _load_field(path, m, blasts=blasts, others=others, bad=bad, screen=screen_platelets)
        if field is None:
            continue
        files.append(path)
        files.extend(a.meta["file"] for a in field.annotations if "file" in a.meta)
        n_platelets += sum(a.label == "platelet" for a in field.annotations)
        fields.append(field)
    notes = [
        "no patient ids: each cell's group is its field, so CV is field-disjoint",
        *bad.notes(),
    ]
    if screen_platelets:
        n_other = sum(a.label != "blast" for f in fields for a in f.annotations)
        notes.append(
            f"{n_platelets} of {n_other} 'other' centroids mark platelet-sized objects and are left out of both "
            "extractions (screen_platelets; see datasets.allidb1)"
        )
    return make_field_dataset(
        INFO,
        root,
        fields,
        files=files,
        extra=[f"screen={screen_platelets}:{SCREEN_DIAMETER}:{SCREEN_RING}:{SCREEN_COVER}", f"bad={on_bad_annotation}"],
        notes=notes,
    )


def _load_field(path: Path, m: re.Match, *, blasts: Path, others: list[Path], bad, screen: bool) -> Field | None:
    fid = m["field"]
    healthy = m["label"] == "0"
    try:
        size = image_size(path)
    except DataError as exc:
        raise DataError(f"data set 'allidb1': {exc}") from None
    annotations: list[Annotation] = []
    blast_file = blasts / f"{fid}.xyc"
    if not blast_file.is_file():
        bad(str(blast_file), "missing .xyc file", f"field {fid}: its blast centroid file {blast_file} is missing")
        return None
    for line, x, y in read_xyc(blast_file, bad=bad):
        if healthy:
            bad(f"{blast_file.name}:{line}", "blast in a healthy field",
                f"{blast_file}, line {line}: a blast centroid in a field of a healthy individual (_0)")
            continue
        if not centroid_inside(x, y, size):
            bad(f"{blast_file.name}:{line}", "centroid outside the image",
                f"{blast_file}, line {line}: centroid ({x:g}, {y:g}) lies outside the {size[0]}x{size[1]} image {path}")
            continue
        annotations.append(Annotation(label="blast", centroid=(x, y), meta={"file": blast_file, "line": line}))
    other: list[Annotation] = []
    for folder in others:
        f = folder / f"{fid}.xyc"
        if not f.is_file():
            continue
        for line, x, y in read_xyc(f, bad=bad):
            if not centroid_inside(x, y, size):
                bad(f"{f.name}:{line}", "centroid outside the image",
                    f"{f}, line {line}: centroid ({x:g}, {y:g}) lies outside the {size[0]}x{size[1]} image {path}")
                continue
            other.append(Annotation(label="other", centroid=(x, y), meta={"file": f, "line": line}))
    if screen and other:
        small = platelet_like(path, [a.centroid for a in other])
        other = [
            Annotation(label="platelet", centroid=a.centroid, meta={**a.meta, "screened": "platelet-sized"})
            if is_small
            else a
            for a, is_small in zip(other, small)
        ]
    annotations.extend(other)
    if not annotations:
        bad(fid, "field without annotations", f"field {fid} ({path}) has no annotated cell in any centroid file")
        return None
    return Field(
        id=fid,
        image_path=path,
        annotations=tuple(annotations),
        label="ALL" if not healthy else "healthy",
        meta={"width": size[0], "height": size[1], "image_label": int(m["label"])},
    )


def platelet_like(path: Path, centroids: list[tuple[float, float]]) -> list[bool]:
    """For each centroid, whether the stained object there is smaller than a white cell (module docstring)."""
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_4)  # JPEG decodes at 1/4 directly: fast
    if bgr is None:
        raise DataError(f"data set 'allidb1': cannot read image {path}")
    width, _ = image_size(path)
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    s = img.shape[1] / width
    wd = SCREEN_DIAMETER * s
    if wd > 40:  # other formats are not reduced on decoding
        f = 32.0 / wd
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        s, wd = s * f, wd * f
    stain = cv2.GaussianBlur(stain_channel(img, background_colour(img)), (0, 0), 1.0)
    t = stain_threshold(stain, max_share=0.2)
    base = float(np.median(stain))
    low = base + (t - base) / 3.0
    r_in, r_out = SCREEN_RING[0] * wd, SCREEN_RING[1] * wd
    out = []
    h, w = stain.shape
    for x, y in centroids:
        cx, cy = x * s, y * s
        x0, x1 = max(0, int(cx - r_out) - 1), min(w, math.ceil(cx + r_out) + 2)
        y0, y1 = max(0, int(cy - r_out) - 1), min(h, math.ceil(cy + r_out) + 2)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx - cx, yy - cy)
        ring = (d >= r_in) & (d <= r_out)
        cover = float((stain[y0:y1, x0:x1][ring] > low).mean()) if ring.any() else 0.0
        out.append(cover < SCREEN_COVER)
    return out


# manual: ALL-IDB2's 257 px windows (2.5 diameters); segmentation: 110 px with per-field scale adaptation (the
# 2592x1944 fields are at up to 1.5x the magnification); centroids match within 0.6 diameters
FIELD_DEFAULTS = FieldDefaults(
    manual={"cell_diameter": CELL_DIAMETER, "window": 2.5},
    segmentation={"cell_diameter": 110.0, "adapt_scale": True, "max_distance": 0.6},
    white=("other", "blast"),
)
ENTRY = DatasetEntry(info=INFO, load=load, detect=detect, field_defaults=FIELD_DEFAULTS)
