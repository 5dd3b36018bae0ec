"""Image content: reading every sample's pixels once, content digests and duplicate images.

A digest is a hash of the decoded RGB pixels as the models see them (after a centre crop, grey repeated to
three channels), so byte-identical files and the same image stored twice in an HDF5 file are found alike.
:func:`find_duplicates` caches the digests per (data fingerprint, extraction, sample ids) in the cache
folder, so the pass over the images runs once per data version; the CV layer keeps copies of one image on
the same side of every split (:func:`cellbench.run.cv.make_folds`, ``duplicates=``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellbench.core.bars import progress_bar
from cellbench.core.errors import DataError
from cellbench.core.files import write_json
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Sample
from cellbench.datasets.io import (
    H5Row,
    as_rgb8,
    center_crop,
    close_h5_files,
    h5_dataset,
    image_ref,
    read_image,
    reader_version,
)

DIGEST_VERSION = 1  # bump when what is hashed changes
BLOCK_ROWS = 512  # HDF5 rows read at once: 512 x 96 x 96 x 3 = 14 MB


def pixel_digest(image: np.ndarray) -> str:
    """Hash of an RGB uint8 image's shape and pixels."""
    img = np.ascontiguousarray(image)
    h = hashlib.blake2b(digest_size=16)
    h.update(("x".join(map(str, img.shape)) + "|").encode())
    h.update(img.data)
    return h.hexdigest()


Read = tuple[np.ndarray | None, str | None]


def iter_images(samples: Sequence[Sample], *, block: int = BLOCK_ROWS) -> Iterator[Read]:
    """``(image, None)`` or ``(None, error message)`` for each sample, in order, as RGB uint8.

    Runs of samples that are consecutive rows of one HDF5 dataset are read ``block`` rows at a time (memory
    stays bounded by one block); everything else is read one image at a time.
    """
    i = 0
    while i < len(samples):
        src = samples[i].image_source if samples[i].image is None else None
        if isinstance(src, H5Row):
            j = i + 1
            while j < len(samples) and j - i < block and _next_row(samples[j], src, j - i):
                j += 1
            yield from _h5_block(samples[i:j], src)
            i = j
            continue
        yield _one(samples[i])
        i += 1


def _next_row(s: Sample, first: H5Row, offset: int) -> bool:
    src = s.image_source
    return (
        s.image is None
        and isinstance(src, H5Row)
        and src.file == first.file
        and src.key == first.key
        and src.crop == first.crop
        and src.index == first.index + offset
    )


def _h5_block(samples: Sequence[Sample], first: H5Row) -> Iterator[Read]:
    try:
        rows = h5_dataset(first.file, first.key)[first.index : first.index + len(samples)]
    except (DataError, OSError, ValueError):
        yield from (_one(s) for s in samples)  # find the bad row one by one
        return
    for s, row in zip(samples, rows):
        try:
            img = as_rgb8(row, where=s.image_source.describe())
            yield (center_crop(img, first.crop, s.image_source.describe()) if first.crop else img), None
        except DataError as exc:
            yield None, str(exc)


def _one(s: Sample) -> Read:
    try:
        if s.image is not None:
            return as_rgb8(s.image, where=f"sample {s.id}"), None
        ref = image_ref(s)
        if ref is None:
            return None, f"sample {s.id} has neither an image nor an image path"
        return read_image(ref), None
    except DataError as exc:
        return None, str(exc)


@dataclass(frozen=True, kw_only=True)
class Duplicates:
    """Samples with identical pixels: ``keys[i]`` is sample ``i``'s digest (``None`` when unreadable);
    ``sets`` lists the positions of each set of two or more identical images."""

    keys: tuple[str | None, ...]
    sets: tuple[tuple[int, ...], ...] = ()
    conflicting: int = 0  # sets whose copies carry different labels
    across_folds: int = 0  # sets whose copies lie in different predefined folds
    across_groups: int = 0  # sets whose copies belong to different groups (patients, slides)
    examples: tuple[str, ...] = field(default=())

    @property
    def n_sets(self) -> int:
        return len(self.sets)

    @property
    def n_extra(self) -> int:
        """Images beyond the first of each set (what de-duplication would remove)."""
        return sum(len(s) - 1 for s in self.sets)

    def note(self) -> str:
        """One sentence for the leaderboard."""
        if not self.sets:
            return "no duplicate images (by content hash)"
        parts = [
            f"{sum(map(len, self.sets))} images are copies of each other by content hash ({self.n_sets} set(s), "
            f"{self.n_extra} extra copies; e.g. {', '.join(self.examples[:2])})"
        ]
        if self.conflicting:
            parts.append(f"{self.conflicting} set(s) with conflicting labels")
        if self.across_groups:
            parts.append(f"{self.across_groups} set(s) across patients/slides")
        tail = "; copies kept on the same side of every split"
        if self.across_folds:
            tail = (
                f"; ⚠ {self.across_folds} set(s) span the release's predefined folds and stay there as released "
                "([cv] allow_duplicates_across_folds; test scores may be optimistic); the others are kept on one side"
            )
        return "; ".join(parts) + tail


def summarise_duplicates(samples: Sequence[Sample], keys: Sequence[str | None]) -> Duplicates:
    """Group equal digests into sets and describe them (labels, predefined folds, groups)."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        if k is not None:
            by_key[k].append(i)
    sets = tuple(tuple(v) for v in by_key.values() if len(v) > 1)

    def spans(attr) -> int:
        return sum(len({attr(samples[i]) for i in s}) > 1 for s in sets)

    return Duplicates(
        keys=tuple(keys),
        sets=sets,
        conflicting=spans(lambda s: s.label),
        across_folds=spans(lambda s: s.meta.get("fold")),
        across_groups=spans(lambda s: s.group),
        examples=tuple(" = ".join(samples[i].id for i in s[:2]) for s in sets[:3]),
    )


def find_duplicates(
    samples: Sequence[Sample],
    *,
    fingerprint: str,
    extraction: str,
    cache_dir: str | os.PathLike,
    progress: bool = True,
) -> Duplicates:
    """Digests of every sample (cached under ``<cache_dir>/content``) and the duplicate sets among them."""
    ids = [s.id for s in samples]
    key = stable_hash(
        {
            "data": fingerprint,
            "extraction": extraction,
            "ids": stable_hash(ids),
            "v": DIGEST_VERSION,
            "reader": reader_version(),
        }
    )
    path = Path(cache_dir) / "content" / f"{key}.json"
    digests = _read_cache(path, ids)
    if digests is None:
        digests = content_digests(samples, progress=progress, desc=f"content hashes {extraction}")
        _write_cache(path, ids, digests)
    return summarise_duplicates(samples, digests)


def content_digests(samples: Sequence[Sample], *, progress: bool = True, desc: str = "content hashes") -> list:
    """The pixel digest of each sample (``None`` where it cannot be read), with a progress bar."""
    out = []
    for img, _ in progress_bar(iter_images(samples), total=len(samples), desc=desc, unit="img", enabled=progress):
        out.append(pixel_digest(img) if img is not None else None)
    close_h5_files()  # leave no file open after a full pass (they reopen when read again)
    return out


def _read_cache(path: Path, ids: list[str]) -> list | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    digests = data.get("digests")
    if data.get("ids") != ids or not isinstance(digests, list) or len(digests) != len(ids):
        return None
    return digests


def _write_cache(path: Path, ids: list[str], digests: list) -> None:
    write_json(path, {"ids": ids, "digests": digests})
