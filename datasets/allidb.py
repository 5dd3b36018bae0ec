"""ALL-IDB2: single-cell crops, lymphoblast (``ImNNN_1.tif``) vs not (``ImNNN_0.tif``).

The original release keeps all 260 crops in ``ALL_IDB2/img/``; copies often split them into ``blast/`` and
``healthy/``. Files are found recursively; a ``blast``/``healthy`` parent folder is cross-checked with the
name. The release has no patient ids, so samples have no group and CV is image-level.
"""

from __future__ import annotations

import re
from pathlib import Path

from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.layout import check_unique, entries, make_dataset, open_release, sample_id, subdirs, walk_images

NAME_FORMAT = "ImNNN_<0|1>.tif"
_NAME = re.compile(r"Im(?P<number>\d+)_(?P<label>[01])\.tiff?", re.IGNORECASE)
_LABELS = {"0": "healthy", "1": "blast"}
_TIFF = (".tif", ".tiff")

INFO = DatasetInfo(
    name="allidb2",
    title="ALL-IDB2: single-cell crops, lymphoblast vs healthy",
    description=(
        "260 single-cell crops (about 257x257 TIFF) cut from ALL-IDB1 peripheral blood-smear fields; the cell in "
        "the centre is a lymphoblast (ImNNN_1, 130) or not (ImNNN_0, 130). The release has no patient ids, "
        "so CV is image-level (stratified k-fold): cells of one patient can fall in both training and test "
        "folds and scores may be optimistic. Per the readme every _1 image comes from an ALL patient and "
        "every _0 image from a healthy individual. The shared copy allidb2 is the full set (in blast/ and "
        "healthy/ sub-folders)."
    ),
    task="binary",
    kind="cell",
    classes=("healthy", "blast"),
    positive_class="blast",
    primary_metric="balanced_accuracy",
    default_cv="stratified_kfold",
    source="https://homes.di.unimi.it/scotti/all/",
    licence=(
        "ALL-IDB terms of use: described as public and free for research, access requested from the authors; "
        "redistribution not verified"
    ),
    citation=(
        "Labati RD, Piuri V, Scotti F. ALL-IDB: the acute lymphoblastic leukemia image database for image "
        "processing. 18th IEEE International Conference on Image Processing (ICIP), 2011, pp. 2045-2048. "
        "doi:10.1109/ICIP.2011.6115881"
    ),
    expected_counts={"healthy": 130, "blast": 130, "total": 260},
    group_kind=None,
    image_size="257x257 RGB (a few cropped smaller on one side)",
    layout=f"ALL_IDB2/img/{NAME_FORMAT} (found recursively; blast/ and healthy/ folders allowed)",
    download=(
        "Request ALL-IDB at https://homes.di.unimi.it/scotti/all/ and unzip it under your data root so that "
        "ALL_IDB2/img/Im001_1.tif exists, then pass --data-root."
    ),
    folder_names=("allidb2", "ALL_IDB2", "ALL-IDB2", "ALL_IDB/ALL_IDB2", "ALL-IDB/ALL_IDB2"),
)


def detect(path: Path) -> bool:
    """True when ``path`` or one of its sub-folders holds ``ImNNN_<0|1>.tif`` files (looks at a few names)."""
    return any(
        any(_NAME.fullmatch(e.name) for e in entries(folder, limit=50)) for folder in (path, *subdirs(path, limit=100))
    )


def load(root: Path, *, on_bad_label: str = "raise", **options) -> Dataset:
    """Load the ALL-IDB2 crops under ``root`` (recursively).

    Parameters
    ----------
    root
        A folder holding the ``.tif`` crops, at any depth.
    on_bad_label
        ``"raise"`` (default) or ``"skip"``: skip and count badly named or mislabelled files.

    Raises
    ------
    DataError
        For a ``.tif`` whose name does not match, a name/folder label mismatch, an image stored twice,
        or no crops.
    """
    root, bad = open_release(INFO, root, options, on_bad_label=on_bad_label)
    samples: list[Sample] = []
    for path in walk_images(root, _TIFF):
        m = _NAME.fullmatch(path.name)
        if m is None:
            bad(
                path,
                "bad name",
                f"{path}: file name does not match the ALL-IDB2 pattern {NAME_FORMAT} "
                "(e.g. Im001_1.tif blast, Im131_0.tif healthy)",
            )
            continue
        label = _LABELS[m["label"]]
        folder = path.parent.name.lower()
        if folder in _LABELS.values() and folder != label:
            bad(
                path,
                "label mismatch",
                f"{path}: the name says {label!r} (_{m['label']}) but the file lies in folder {path.parent.name!r}",
            )
            continue
        samples.append(
            Sample(
                id=sample_id(path, root),
                label=label,
                group=None,
                image_path=path,
                meta={"number": int(m["number"])},
            )
        )
    check_unique(((f"Im{s.meta['number']:03d}", s.image_path) for s in samples), what="image")
    notes = ["no patient ids: image-level CV", *bad.notes()]
    return make_dataset(INFO, root, samples, notes=notes)


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
