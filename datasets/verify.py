"""Verification of a data set on disk: read everything once and compare it with the data set's card.

``python -m bench datasets verify NAME --data-root PATH`` loads the data set with its adapter, reads every
image once (with a progress bar) and reports: counts per class and per release split against the card's
expected counts, unreadable images, duplicate images by content hash (decoded pixels, see
:mod:`cellbench.datasets.content`), class balance, image sizes, the groups found (and groups that span splits), and
a digest of all decoded pixels that two copies of a download can compare.
"""

from __future__ import annotations

import hashlib
import os
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from cellbench.core.bars import progress_bar
from cellbench.core.errors import ConfigError
from cellbench.core.types import Dataset
from cellbench.datasets.bitdepth import TWELVE_BIT_MAX, low_range_16bit
from cellbench.datasets.catalog import load_dataset
from cellbench.datasets.content import Duplicates, iter_images, pixel_digest, summarise_duplicates
from cellbench.datasets.io import close_h5_files

MIN_PIXELS = 64  # fewer pixels hold no cell, nucleus or texture to measure (IDC's 50x2 edge strips still pass)


@dataclass(kw_only=True)
class Verification:
    """What :func:`verify_dataset` found; :meth:`render` prints it, :attr:`problems` makes the exit status."""

    dataset: Dataset
    seconds: float
    unreadable: list[tuple[str, str]]
    sizes: Counter
    duplicates: Duplicates
    digest: str
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:

        ds, info = self.dataset, self.dataset.info
        n = len(ds.samples)
        lines = [
            f"# verify {ds.name}: {info.title}",
            "",
            f"data: {ds.root}",
            f"read {n:,} images once in {self.seconds:.1f} s: {len(self.unreadable):,} unreadable",
            "",
        ]
        counts = ds.class_counts()
        rows = [("samples", f"{n:,}", _expected(info.expected_counts.get("total"), n))]
        for c in ds.classes:
            share = f" ({counts.get(c, 0) / n:.1%})" if n else ""
            card = _expected(info.expected_counts.get(c), counts.get(c, 0))
            rows.append((f"class {c}", f"{counts.get(c, 0):,}{share}", card))
        groups = Counter(s.group for s in ds.samples if s.group is not None)
        kind = f"{info.group_kind}s" if info.group_kind else "groups"
        if groups or kind in info.expected_counts:
            rows.append((kind, f"{len(groups):,}", _expected(info.expected_counts.get(kind), len(groups))))
        splits = Counter(str(s.meta.get("split")) for s in ds.samples if s.meta.get("split") is not None)
        for name in dict.fromkeys([*info.expected_split_counts, *sorted(splits)]):
            card = _expected(info.expected_split_counts.get(name), splits.get(name, 0))
            rows.append((f"split {name}", f"{splits.get(name, 0):,}", card))
        lines += [tabulate(rows, headers=["", "found", "card (full release)"], tablefmt="github"), ""]
        if ds.positive_class is not None and n:
            pos = counts.get(ds.positive_class, 0)
            lines.append(f"class balance: positive class {ds.positive_class} {pos / n:.1%} ({pos:,} of {n:,})")
        else:
            lines.append("class balance: " + ", ".join(f"{c} {counts.get(c, 0) / max(n, 1):.1%}" for c in ds.classes))
        lines.append(_groups_line(ds, groups, kind))
        folds = Counter(str(s.meta["fold"]) for s in ds.samples if s.meta.get("fold") is not None)
        if folds:
            lines.append("predefined folds: " + ", ".join(f"{k} {v:,}" for k, v in sorted(folds.items())))
        if spanning := _spanning(ds):
            lines.append(f"{kind} in more than one split: {len(spanning)} (e.g. {', '.join(spanning[:3])})")
        sizes = ", ".join(f"{k} px: {v:,}" for k, v in self.sizes.most_common(6))
        more = f" and {len(self.sizes) - 6} other sizes" if len(self.sizes) > 6 else ""
        lines += [f"image sizes (W x H, as the models see them): {sizes or 'none read'}{more}", ""]
        lines.append("duplicates (identical decoded pixels): " + _dup_text(self.duplicates))
        if self.unreadable:
            lines.append(f"unreadable images: {len(self.unreadable):,}")
            lines += [f"  - {sid}: {why}" for sid, why in self.unreadable[:10]]
            if len(self.unreadable) > 10:
                lines.append(f"  - ... and {len(self.unreadable) - 10} more")
        lines.append(f"content digest (all decoded pixels, in sample order): {self.digest}")
        lines.append(f"fingerprint (what caches and stored jobs are keyed by): {ds.fingerprint}")
        if ds.notes:
            lines += ["", "adapter notes:", *(f"  - {x}" for x in ds.notes)]
        lines += ["", "problems: " + ("; ".join(self.problems) if self.problems else "none")]
        return "\n".join(lines)


def _expected(card: int | None, found: int) -> str:
    if card is None:
        return "—"
    return f"{card:,}" + ("" if card == found else f" (found {found / card:.1%} of it)" if card else "")


def _groups_line(ds: Dataset, groups: Counter, kind: str) -> str:
    if not groups:
        return f"{kind}: none known (no group ids: CV is image-level)"
    sizes = np.asarray(list(groups.values()))
    labels: dict[str, set[str]] = {}
    for s in ds.samples:
        labels.setdefault(s.group, set()).add(s.label)
    mixed = sum(len(v) > 1 for v in labels.values())
    missing = sum(s.group is None for s in ds.samples)
    return (
        f"{kind}: {len(groups):,}; samples per {kind.removesuffix('s')} min {sizes.min()}, "
        f"median {int(np.median(sizes))}, "
        f"max {sizes.max()}; {mixed:,} with more than one class"
        + (f"; {missing:,} samples without a group" if missing else "")
    )


def _spanning(ds: Dataset) -> list[str]:
    where: dict[str, set[str]] = {}
    for s in ds.samples:
        if s.group is not None and s.meta.get("split") is not None:
            where.setdefault(s.group, set()).add(str(s.meta["split"]))
    return sorted(g for g, v in where.items() if len(v) > 1)


def _dup_text(d: Duplicates) -> str:
    if not d.sets:
        return "none"
    parts = [f"{sum(map(len, d.sets)):,} images in {d.n_sets:,} set(s) ({d.n_extra:,} extra copies)"]
    if d.conflicting:
        parts.append(f"{d.conflicting:,} set(s) with conflicting labels")
    if d.across_folds:
        parts.append(f"{d.across_folds:,} set(s) across predefined folds")
    if d.across_groups:
        parts.append(f"{d.across_groups:,} set(s) across groups")
    parts.append("e.g. " + "; ".join(d.examples))
    return "; ".join(parts) + ". The CV layer keeps copies on one side of every k-fold split."


def verify_dataset(dataset: Dataset, *, progress: bool = True) -> Verification:
    """Read every image of ``dataset`` once and collect what :class:`Verification` reports."""
    t0 = time.perf_counter()
    samples = dataset.samples
    unreadable: list[tuple[str, str]] = []
    tiny: list[str] = []
    sizes: Counter = Counter()
    digests: list[str | None] = []
    total = hashlib.blake2b(digest_size=16)
    reads = iter_images(samples)
    bar = progress_bar(reads, total=len(samples), desc=f"verify {dataset.name}", unit="img", enabled=progress)
    for s, (img, error) in zip(samples, bar):
        if img is None:
            unreadable.append((s.id, error or "unreadable"))
            digests.append(None)
            continue
        sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
        if img.shape[0] * img.shape[1] < MIN_PIXELS:
            tiny.append(s.id)
        d = pixel_digest(img)
        digests.append(d)
        total.update(d.encode())
    close_h5_files()
    dup = summarise_duplicates(samples, digests)
    problems = []
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable image(s)")
    if tiny:
        problems.append(
            f"{len(tiny)} image(s) of fewer than {MIN_PIXELS} pixels, too small to hold a cell or a texture "
            f"(e.g. {', '.join(map(str, tiny[:3]))})"
        )
    low = low_range_16bit(s.image_path for s in samples if s.image is None and s.image_path is not None)
    if low:
        problems.append(
            f"{len(low)} 16-bit image(s) whose values never exceed {TWELVE_BIT_MAX} (12-bit data?): they are read "
            "as 16-bit and scaled by 1/257, so they use only 0..16 of 0..255; rescale them to the full 16-bit range "
            f"or save them as 8-bit (e.g. {', '.join(p.name for p in low[:3])})"
        )
    if dup.conflicting:
        problems.append(f"{dup.conflicting} duplicate set(s) with conflicting labels")
    if dup.across_folds:
        problems.append(
            f"{dup.across_folds} duplicate set(s) across the release's predefined folds (a run refuses them unless "
            "[cv] allow_duplicates_across_folds = true)"
        )
    return Verification(
        dataset=dataset,
        seconds=time.perf_counter() - t0,
        unreadable=unreadable,
        sizes=sizes,
        duplicates=dup,
        digest=total.hexdigest(),
        problems=problems,
    )


def verify(
    name: str,
    *,
    data_root: Path | None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    **options,
) -> Verification:
    """Load data set ``name`` (found under ``data_root``; generated data in ``cache_dir``) and verify it."""
    dataset = load_dataset(name, data_root=data_root, cache_dir=cache_dir, **options)
    return verify_dataset(dataset, progress=progress)


def parse_options(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings as adapter options; VALUE is read as a TOML value (``32``, ``["test"]``,
    ``true``) and otherwise kept as text."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out
