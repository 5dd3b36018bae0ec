"""The generic class-per-folder adapter: ``<root>/<class>/<image>``, ``<root>/<class>/<patient>/<image>``, or images
labelled by ``labels.csv``.

It has no fixed home, so the user points at the folder with ``--data-root PATH --datasets folder``. The helpers
every adapter shares are in :mod:`cellbench.datasets.layout`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import DATA_KINDS, Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.io import IMAGE_SUFFIXES
from cellbench.datasets.layout import (
    BadFiles,
    entries,
    is_image,
    make_dataset,
    open_release,
    relpath,
    sample_id,
    subdirs,
    walk_images,
)

# -- the generic class-per-folder adapter -----------------------------------------------------------

GROUPS_FILE = "groups.csv"
LABELS_FILE = "labels.csv"
LABEL_MODES = ("auto", "folders", "csv")
LAYOUTS = ("auto", "flat", "patients")  # <class>/<image>, or <class>/<patient>/<image>

INFO = DatasetInfo(
    name="folder",
    title="Generic class-per-folder image set",
    description=(
        "Any image set laid out as <root>/<class>/<image>: one sub-folder per class (the folder names are the "
        "class names, sorted, unless the option classes= gives them in order), images directly inside; or "
        "<root>/<class>/<patient>/<image>, one sub-folder per patient in each class folder (its name the patient "
        "id, the same name under two classes the same patient), which makes CV patient-grouped (layout='auto' "
        "tells the two apart; 'flat' or 'patients' force one). "
        "An optional groups.csv (columns filename,group; filename relative to the root or bare) gives the "
        "patient or slide of each image, which makes CV patient-grouped; without it CV is image-level. "
        "For two classes the positive class is positive_class= or else the last class. "
        "Instead of class folders, a labels.csv (columns filename,label and optionally group; filename relative "
        "to the root or bare) may give each image's class, images anywhere under the root (labels='csv'; the "
        "default labels='auto' uses labels.csv when it has those columns). "
        "It has no fixed home: run with --datasets folder --data-root PATH, PATH holding the class folders. "
        "Its images are single cells unless the option kind= says otherwise: kind='crop' for multi-cell crops "
        "(several cells and background per image), kind='patch' for tissue patches; the kind decides the default "
        "handcrafted feature families and how images are fitted to the deep models' input."
    ),
    task="multiclass",
    kind="cell",
    classes=(),
    positive_class=None,
    primary_metric="balanced_accuracy",
    default_cv="stratified_kfold",
    source="user-supplied",
    licence="as set by the data's owner",
    citation="cite the source of your images",
    group_kind=None,
    image_size="any",
    layout=(
        "<root>/<class>/<image> (png, jpg, bmp, tif), optional <root>/groups.csv with columns filename,group; "
        "or <root>/<class>/<patient>/<image>; "
        "or images under <root> with <root>/labels.csv, columns filename,label[,group]"
    ),
    download="none: put one folder per class under a folder and pass it with --data-root PATH",
    folder_names=("folder",),
)


def detect(path: Path) -> bool:
    """True when a sub-folder of ``path`` (or a sub-folder of one) holds image files (looks at a few names), or
    ``labels.csv`` with columns filename,label lies beside images."""
    if _csv_columns(path / LABELS_FILE) >= {"filename", "label"}:
        return any(e.is_file() and is_image(e.name) for e in entries(path, limit=200)) or any(
            any(e.is_file() and is_image(e.name) for e in entries(sub, limit=50)) for sub in subdirs(path, limit=200)
        )
    for sub in subdirs(path, limit=200):
        if any(e.is_file() and is_image(e.name) for e in entries(sub, limit=50)):
            return True
    return _patient_layout(path)


def _patient_layout(path: Path) -> bool:
    """``<class>/<patient>/<image>``: class folders holding only sub-folders, images in those, and sub-folder names
    that differ between classes (patients), unlike a per-patient release's ``<patient>/<class>/`` (IDC)."""
    classes = subdirs(path, limit=20)
    inner = [[e for e in entries(c, limit=50)] for c in classes]
    if len(classes) < 2 or any(not here or any(e.is_file() for e in here) for here in inner):
        return False
    names = [e.name for here in inner for e in here]
    if 2 * len(set(names)) <= len(names):  # the same few names under every folder: classes, not patients
        return False
    return any(any(f.is_file() and is_image(f.name) for f in entries(Path(e.path), limit=50)) for e in inner[0])


def load(
    root: Path,
    *,
    on_bad_label: str = "raise",
    classes: Sequence[str] | None = None,
    positive_class: str | None = None,
    labels: str = "auto",
    kind: str = "cell",
    layout: str = "auto",
    **options,
) -> Dataset:
    """Load ``<root>/<class>/<image>``, ``<root>/<class>/<patient>/<image>``, or images labelled by
    ``<root>/labels.csv``.

    Parameters
    ----------
    root
        The folder holding one sub-folder per class.
    on_bad_label
        ``"raise"``, or ``"skip"`` to skip (and count) images that ``groups.csv`` gives no group.
    classes
        Class folders to use, in order (default: every sub-folder, sorted); others are ignored.
    positive_class
        The positive class of a two-class set (default: the last class).
    labels
        ``"folders"`` (class folders), ``"csv"`` (``labels.csv``) or ``"auto"`` (default: ``labels.csv`` when it
        has columns filename,label, else class folders).
    kind
        What the images are (:data:`cellbench.core.types.DATA_KINDS`): ``"cell"`` (default), ``"crop"`` or
        ``"patch"``.
    layout
        With class folders: ``"flat"`` (images directly in them), ``"patients"`` (one sub-folder per patient in
        each class folder, its name the patient id: folds are patient-disjoint) or ``"auto"`` (default:
        ``"patients"`` when a class folder holds sub-folders and no images).

    Raises
    ------
    DataError
        For fewer than two class folders, an empty class folder, a bad ``groups.csv``; with ``labels.csv``, a
        row naming no image or an image without a row (or skipped with ``on_bad_label="skip"``).
    ConfigError
        For unknown options, or ``classes``/``positive_class`` that do not fit.
    """
    root, bad = open_release(INFO, root, options, on_bad_label=on_bad_label,
                             allowed=("classes", "positive_class", "labels", "kind", "layout"))  # fmt: skip
    _check_kind(kind)
    if _labels_mode(root, labels) == "csv":
        dataset = _load_labels_csv(root, bad=bad, classes=classes, positive_class=positive_class)
    else:
        dataset = _load_folders(root, bad=bad, classes=classes, positive_class=positive_class, layout=layout)
    if kind == "cell":
        return dataset
    # the kind changes features and pixels: part of the fingerprint, so no cache or job key is shared with "cell"
    fingerprint = stable_hash({"data": dataset.fingerprint, "kind": kind})
    return replace(dataset, info=replace(dataset.info, kind=kind), fingerprint=fingerprint)


def _check_kind(kind: str) -> None:
    if kind not in DATA_KINDS:
        allowed = "; ".join(f"{k!r} ({what})" for k, what in DATA_KINDS.items())
        raise ConfigError(f"data set 'folder': kind={kind!r} is not allowed; use one of {allowed}")


def _load_folders(
    root: Path, *, bad: BadFiles, classes: Sequence[str] | None, positive_class: str | None, layout: str
) -> Dataset:
    """Images in class folders ``<root>/<class>/<image>`` or ``<root>/<class>/<patient>/<image>``."""
    found = [d.name for d in subdirs(root)]
    listed = ", ".join(found) or "none"
    names = _pick_classes(
        found,
        classes,
        few=f"folder with one class: {root} holds {len(found)} class folder(s) ({listed}); a class-per-folder "
        "layout needs at least two",
        kind="class folder names",
        missing=lambda name: f"class folder {root / name} not found; folders under {root}: {listed}",
    )
    notes: list[str] = []
    if ignored := sorted(set(found) - set(names)):
        notes.append(f"folders not used as classes: {', '.join(ignored)}")

    files, groups, layout_notes = _class_files(root, names, layout=layout, bad=bad)
    notes += layout_notes
    labelled = {p: label for label, p in files}
    return _class_dataset(root, labelled, groups, names=names, positive_class=positive_class, notes=notes, bad=bad)


def _class_files(
    root: Path, names: tuple[str, ...], *, layout: str, bad: BadFiles
) -> tuple[list[tuple[str, Path]], dict[Path, str] | None, list[str]]:
    """(class, image) pairs of the class folders ``names``, image -> group (``None``: none known) and notes."""
    if layout not in LAYOUTS:
        raise ConfigError(f"data set 'folder': layout={layout!r} is not allowed; use one of {', '.join(LAYOUTS)}")
    listing = {name: entries(root / name) for name in names}
    direct = {n: sorted(Path(e.path) for e in here if e.is_file() and is_image(e.name)) for n, here in listing.items()}
    folders = {n: sorted(Path(e.path) for e in here if e.is_dir()) for n, here in listing.items()}
    if layout == "auto":
        layout = "patients" if any(folders[n] and not direct[n] for n in names) else "flat"
    if layout == "patients":
        return _patient_files(root, names, direct, folders, bad)
    files: list[tuple[str, Path]] = []
    for name in names:
        if not direct[name]:
            inside = (
                f" (it holds sub-folders: {', '.join(p.name for p in folders[name][:3])}; for <class>/<patient>/"
                "<image> every class folder must hold only patient folders)"
                if folders[name]
                else ""
            )
            raise DataError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_SUFFIXES)}){inside}; fill it, remove "
                "it or choose the classes with classes=[...]"
            )
        files += [(name, p) for p in direct[name]]
    notes = []
    if nested := sum(len(f) for f in folders.values()):
        notes.append(f"{nested} sub-folder(s) inside class folders ignored (images must lie directly in them)")
    groups, group_notes = _read_groups(root / GROUPS_FILE, root, [p for _, p in files], bad)
    notes += group_notes
    if groups is None:
        notes.append("no groups.csv: no patient ids, image-level CV")
    return files, groups, notes


def _patient_files(
    root: Path, names: tuple[str, ...], direct: dict[str, list[Path]], folders: dict[str, list[Path]], bad: BadFiles
) -> tuple[list[tuple[str, Path]], dict[Path, str], list[str]]:
    """``<root>/<class>/<patient>/<image>``: every image under a patient folder (at any depth), grouped by it."""
    if (root / GROUPS_FILE).is_file():
        raise DataError(
            f"{root / GROUPS_FILE} and patient folders (<class>/<patient>/<image>) both give patients; remove "
            "groups.csv, or use layout='flat' with images directly in the class folders"
        )
    files: list[tuple[str, Path]] = []
    groups: dict[Path, str] = {}
    empty: list[str] = []
    for name in names:
        if direct[name]:
            raise DataError(
                f"class folder {root / name} holds images ({direct[name][0].name}, ...) beside patient folders; in "
                "the <class>/<patient>/<image> layout every image lies in a patient folder"
            )
        for patient in folders[name]:
            images = list(walk_images(patient))
            if not images:
                empty.append(relpath(patient, root))
            files += [(name, p) for p in images]
            groups.update(dict.fromkeys(images, patient.name))
        if not any(label == name for label, _ in files):
            raise DataError(
                f"class folder {root / name} holds no patient folder with images ({', '.join(IMAGE_SUFFIXES)})"
            )
    n = len(set(groups.values()))
    notes = [f"patients from the folders <class>/<patient>/: {n} patients"]
    if empty:
        notes.append(f"{len(empty)} patient folder(s) without images ignored, e.g. {', '.join(empty[:3])}")
    return files, groups, notes


def _class_dataset(
    root: Path,
    labels: dict[Path, str],
    groups: dict[Path, str] | None,
    *,
    names: tuple[str, ...],
    positive_class: str | None,
    notes: list[str],
    bad: BadFiles,
) -> Dataset:
    """The images of ``labels`` (path -> class) of the classes ``names`` (and of a group, with ``groups``)."""
    samples = [
        Sample(id=sample_id(p, root), label=label, group=groups.get(p) if groups is not None else None, image_path=p)
        for p, label in labels.items()
        if label in names and (groups is None or p in groups)
    ]
    info = replace(
        INFO,
        classes=names,
        positive_class=_positive(names, positive_class),
        task="binary" if len(names) == 2 else "multiclass",
        default_cv="group_kfold" if groups is not None else "stratified_kfold",
        group_kind="patient" if groups is not None else None,
    )
    return make_dataset(info, root, samples, notes=[*notes, *bad.notes()])


def _pick_classes(
    found: list[str], classes: Sequence[str] | None, *, few: str, kind: str, missing: Callable[[str], str]
) -> tuple[str, ...]:
    """``classes`` (each one of ``found``), else every found class: at least two.

    ``few`` is the error for fewer than two found, ``kind`` what ``classes`` names, ``missing(name)`` the error for
    a class that is not found.
    """
    if classes is None:
        if len(found) < 2:
            raise DataError(few)
        return tuple(found)
    if isinstance(classes, str) or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError(f"classes= must list at least two distinct {kind}; got {classes!r}")
    for name in classes:
        if name not in found:
            raise DataError(missing(name))
    return tuple(classes)


def _positive(names: tuple[str, ...], positive_class: str | None) -> str | None:
    if positive_class is None:
        return names[-1] if len(names) == 2 else None
    if positive_class not in names:
        raise ConfigError(f"positive_class={positive_class!r} is not a class; classes: {', '.join(names)}")
    return positive_class


def _read_csv(path: Path, *, required: Sequence[str], spec: str) -> tuple[list[str], list[dict[str, str]]]:
    """The stripped header and rows of a CSV file, refusing one without the ``required`` columns."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if not set(required) <= set(columns):
            raise DataError(f"{path}: needs columns {spec}; found {','.join(columns) or 'none'}")
        return columns, [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _image_finder(images: Sequence[Path], root: Path, csv_path: Path):
    """``find(name, line)``: the images a CSV row names, by path relative to ``root`` or by bare file name.

    A bare name shared by several images is refused (naming them), since the row cannot say which it means.
    """
    by_rel = {relpath(p, root): p for p in images}
    by_name: dict[str, list[Path]] = {}
    for p in images:
        by_name.setdefault(p.name, []).append(p)

    def find(name: str, line: int) -> list[Path]:
        matches = [by_rel[name]] if name in by_rel else by_name.get(name, [])
        if len(matches) > 1:
            raise DataError(
                f"{csv_path} line {line}: {name!r} names {len(matches)} images "
                f"({', '.join(relpath(m, root) for m in matches)}); give the path relative to {root}"
            )
        return matches

    return find


def _read_groups(path: Path, root: Path, images: list[Path], bad: BadFiles) -> tuple[dict[Path, str] | None, list[str]]:
    """Map image path -> group from ``groups.csv`` (``None`` when there is no such file), and notes."""
    if not path.is_file():
        return None, []
    find = _image_finder(images, root, path)
    _, rows = _read_csv(path, required=("filename", "group"), spec="filename,group")
    groups: dict[Path, str] = {}
    unknown = []
    for line, row in enumerate(rows, start=2):
        name, group = row["filename"].replace("\\", "/"), row["group"]
        matches = find(name, line)
        if not matches:
            unknown.append(name)
            continue
        if not group:
            raise DataError(f"{path} line {line}: empty group for {name!r}")
        if groups.get(matches[0], group) != group:
            raise DataError(f"{path} line {line}: {name!r} is given two groups ({groups[matches[0]]}, {group})")
        groups[matches[0]] = group
    for p in images:
        if p not in groups:
            bad(p, "without group", f"{path} gives no group for {p}; add a row '{relpath(p, root)},<group>'")
    # rows for images of unused class folders (classes=) or removed images are harmless: a note only
    notes = [f"{GROUPS_FILE}: {len(unknown)} row(s) name no image used, e.g. {', '.join(unknown[:3])}"]
    return groups, notes if unknown else []


# -- images labelled by labels.csv ------------------------------------------------------------------


def _csv_columns(path: Path) -> set[str]:
    """The header of a CSV file as a set of stripped names (empty when absent or unreadable)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return {c.strip() for c in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()


def _labels_mode(root: Path, labels: str) -> str:
    if labels not in LABEL_MODES:
        raise ConfigError(f"data set 'folder': labels={labels!r} is not allowed; use one of {', '.join(LABEL_MODES)}")
    path = root / LABELS_FILE
    if labels == "csv":
        if not path.is_file():
            raise DataError(f"labels='csv' but {path} does not exist (columns filename,label[,group])")
        return "csv"
    if labels == "auto" and _csv_columns(path) >= {"filename", "label"}:
        return "csv"
    return "folders"


def _load_labels_csv(
    root: Path, *, bad: BadFiles, classes: Sequence[str] | None, positive_class: str | None
) -> Dataset:
    """Images anywhere under ``root`` with their class (and optionally group) from ``labels.csv``."""
    path = root / LABELS_FILE
    images = list(walk_images(root))
    find = _image_finder(images, root, path)
    columns, rows = _read_csv(path, required=("filename", "label"), spec="filename,label[,group]")
    with_group = "group" in columns
    labelled: dict[Path, tuple[str, str | None, int]] = {}
    for line, row in enumerate(rows, start=2):
        name, label = row["filename"].replace("\\", "/"), row["label"]
        if not name and not label:
            continue
        matches = find(name, line)
        if not matches:
            bad(path, "row without image", f"{path} line {line}: {name!r} names no image under {root}")
            continue
        if not label:
            raise DataError(f"{path} line {line}: empty label for {name!r}")
        group = row.get("group") or None
        if with_group and group is None:
            raise DataError(f"{path} line {line}: empty group for {name!r} (fill every cell of the group column)")
        if matches[0] in labelled:
            raise DataError(f"{path} line {line}: {name!r} is listed again (first on line {labelled[matches[0]][2]})")
        labelled[matches[0]] = (label, group, line)
    for p in images:
        if p not in labelled:
            bad(p, "image without row", f"{p}: no row in {path}; add '{relpath(p, root)},<label>'")
    found = sorted({label for label, _, _ in labelled.values()})
    names = _pick_classes(
        found,
        classes,
        few=f"{path} gives {len(found)} class(es) ({', '.join(found) or 'none'}); at least two needed",
        kind="labels",
        missing=lambda name: f"class {name!r} not found in {path}; labels there: {', '.join(found) or 'none'}",
    )
    notes = [f"labels from {LABELS_FILE}"]
    if ignored := sorted(set(found) - set(names)):
        notes.append(f"{LABELS_FILE} labels not used as classes: {', '.join(ignored)}")
    groups: dict[Path, str] | None = None
    if with_group:
        groups = {p: g for p, (_, g, _) in labelled.items()}
    elif (root / GROUPS_FILE).is_file():
        groups, group_notes = _read_groups(root / GROUPS_FILE, root, list(labelled), bad)
        notes += group_notes
    else:
        notes.append("no group column or groups.csv: no patient ids, image-level CV")
    labels = {p: label for p, (label, _, _) in labelled.items()}
    return _class_dataset(root, labels, groups, names=names, positive_class=positive_class, notes=notes, bad=bad)


ENTRY = DatasetEntry(info=INFO, load=load, detect=detect)
