"""Shared helpers of the field data sets (whole images with per-cell annotations).

Reading centroid (``.xyc``) files, checking annotations against the image bounds, the ``on_bad_annotation``
policy (raise, or skip and count: a field without annotations, an annotation outside the image, an unreadable
annotation file or line) and building the :class:`Dataset`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Annotation, Dataset, DatasetInfo, Field
from cellbench.datasets.fingerprint import fingerprint_files
from cellbench.datasets.layout import POLICIES, Skips, check_policy_options, check_root, release_dataset

ON_BAD_ANNOTATION = POLICIES
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_XYC_LINE = re.compile(rf"\s*({_NUMBER})[\s,;]+({_NUMBER})\s*")


def check_field_options(name: str, options: Mapping[str, object], *, on_bad_annotation: str, allowed=()) -> None:
    """Refuse unknown loader options and a bad ``on_bad_annotation`` value, naming the allowed ones."""
    check_policy_options(name, options, option="on_bad_annotation", policy=on_bad_annotation, allowed=allowed)


class BadAnnotations(Skips):
    """The ``on_bad_annotation`` policy of data set ``dataset``: raise on a bad annotation, or skip and count it.

    ``where`` (the first argument of a call) names the file and line; the message says what is wrong and what is
    allowed.
    """

    option, what = "on_bad_annotation", "bad annotation(s)"

    def __init__(self, dataset: str, policy: str):
        super().__init__(policy)
        self.dataset = dataset

    def refusal(self, message: str) -> str:
        return (
            f"data set {self.dataset!r}: {message} (load with on_bad_annotation='skip', e.g. "
            f'`on_bad_annotation = "skip"` in the suite\'s [datasets.{self.dataset}] table or '
            "`--on-bad-annotation skip`, to skip it and count it)"
        )


def open_field_release(
    info: DatasetInfo, root: str | os.PathLike | None, options: Mapping[str, object], *, on_bad_annotation: str,
    allowed=(),
) -> tuple[Path, BadAnnotations]:  # fmt: skip
    """A field loader's first steps: check its options and data folder; the folder and its annotation policy."""
    check_field_options(info.name, options, on_bad_annotation=on_bad_annotation, allowed=allowed)
    return check_root(info.name, root), BadAnnotations(info.name, on_bad_annotation)


def read_xyc(path: Path, *, bad: BadAnnotations) -> list[tuple[int, float, float]]:
    """The centroids of an ALL-IDB ``.xyc`` file as (line number, x, y); blank lines are ignored.

    Each line holds ``x y`` in full-resolution pixels (tab- or space-separated). A line that is not two
    numbers, or a file that cannot be decoded, goes to ``bad``.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        bad(str(path), "unreadable .xyc file", f"cannot read the centroid file {path}: {exc}")
        return []
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _XYC_LINE.fullmatch(line)
        if m is None:
            bad(
                f"{path.name}:{n}",
                "unreadable .xyc line",
                f"{path}, line {n}: {line.strip()[:60]!r} is not a centroid; each line must be 'x y' (two numbers, "
                "pixel coordinates)",
            )
            continue
        out.append((n, float(m[1]), float(m[2])))
    return out


def centroid_inside(x: float, y: float, size: tuple[int, int]) -> bool:
    w, h = size
    return 0 <= x < w and 0 <= y < h


def box_problem(box: tuple[float, float, float, float], size: tuple[int, int]) -> str | None:
    """Why a box (x0, y0, x1, y1) is unusable in an image of ``size`` (width, height), or ``None``."""
    x0, y0, x1, y1 = box
    w, h = size
    if x1 <= x0 or y1 <= y0:
        return "empty box"
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return "box outside the image"
    return None


def make_field_dataset(
    info: DatasetInfo,
    root: Path,
    fields: Sequence[Field],
    *,
    files: Iterable[Path],
    extra: Iterable[str] = (),
    notes: Iterable[str] = (),
) -> Dataset:
    """Check the fields and build a field :class:`Dataset` whose fingerprint covers ``files`` (images and
    annotation files) and ``extra`` (options that change the annotations).

    Raises
    ------
    DataError
        If there are no fields, two fields share an id, or fewer than two classes are annotated.
    """
    fields = sorted(fields, key=lambda f: f.id)
    if not fields:
        raise DataError(f"data set {info.name!r}: no annotated fields found under {root}; expected {info.layout}")
    seen: dict[str, Path] = {}
    for f in fields:
        if f.id in seen:
            raise DataError(
                f"data set {info.name!r}: field {f.id!r} appears twice: {seen[f.id]} and {f.image_path}; "
                "point the data root at one copy"
            )
        seen[f.id] = f.image_path
    present = sorted({a.label for f in fields for a in f.annotations if a.label in info.classes})
    if len(present) < 2:
        raise DataError(
            f"data set {info.name!r} at {root}: annotations of {len(present)} class(es) found "
            f"({', '.join(present) or 'none'}); at least two of {', '.join(info.classes)} are needed"
        )
    fingerprint = fingerprint_files(sorted(set(files)), extra=[info.name, *extra])
    return release_dataset(info, root, fingerprint=fingerprint, fields=fields, notes=notes)


def annotation_counts(fields: Iterable[Field]) -> dict[str, int]:
    """Annotations per label over ``fields``."""
    return dict(Counter(a.label for f in fields for a in f.annotations))


def centroid_annotation(label: str, x: float, y: float, **meta) -> Annotation:
    return Annotation(label=label, centroid=(x, y), meta=meta)
