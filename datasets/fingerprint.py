"""Data set fingerprints: every byte of small releases (:func:`fingerprint_files`), sampled blocks of large ones.

A data set's fingerprint keys the feature and pixel caches and ties every stored job to its data, so it
is computed on each run. For a 7 GB HDF5 file or 220,000 image files, hashing every byte each time
would cost minutes, so :func:`quick_fingerprint` hashes:

- small files (up to :data:`FULL_HASH_BYTES`) completely — label files, CSVs, small archives;
- larger files by their size plus :data:`BLOCKS` blocks of :data:`BLOCK_BYTES` at evenly spaced offsets
  (always including the first and the last block): about 4 MiB of a 7 GB PCam file;
- the caller's ``extra`` strings: every sample's id, label, group and predefined fold, and the adapter
  options that change the pixels (e.g. a centre crop).

File modification times are deliberately left out, so the same download copied to another machine gets
the same fingerprint (and ``--reproduce`` / ``compare`` see the same jobs). The price: an in-place edit of
pixels that leaves the file size unchanged and falls between the sampled blocks is not noticed; after
editing files in place, clear the cache folder. ``python -m bench datasets verify`` reads every image and
prints a digest of all decoded pixels for a full check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.types import Sample

FULL_HASH_BYTES = 64 * 2**20
BLOCKS = 64
BLOCK_BYTES = 64 * 2**10
VERSION = "quick-1"


def file_digest(path: Path, h) -> None:
    """Feed ``path``'s name, size and content (all of it, or sampled blocks when large) into hash ``h``."""
    try:
        size = path.stat().st_size
        h.update(f"{path.name}|{size}|".encode())
        with path.open("rb") as f:
            if size <= FULL_HASH_BYTES:
                for block in iter(lambda: f.read(2**20), b""):
                    h.update(block)
                return
            last = size - BLOCK_BYTES
            for k in range(BLOCKS):
                f.seek(last * k // (BLOCKS - 1))
                h.update(f.read(BLOCK_BYTES))
    except OSError as exc:
        raise DataError(f"cannot read {path} to fingerprint it: {exc}") from None


def quick_fingerprint(paths: Iterable[Path], *, extra: Iterable[str] = ()) -> str:
    """Fingerprint of files (see the module docstring for what is read) and ``extra`` strings, in order."""
    h = hashlib.blake2b(digest_size=16)
    h.update(VERSION.encode())
    for p in paths:
        file_digest(Path(p), h)
    for e in extra:
        h.update(e.encode())
        h.update(b"\n")
    return h.hexdigest()


def fingerprint_files(paths: Iterable[Path], *, extra: Iterable[str] = ()) -> str:
    """Content fingerprint: a hash over the bytes of every file (in the given order) and ``extra`` strings."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


def fingerprint_samples(samples: Iterable[Sample]) -> str:
    """Fingerprint of samples read from files: content, labels, groups and predefined folds."""
    samples = list(samples)
    paths = [s.image_path for s in samples if s.image_path is not None]
    masks = [s.mask_path for s in samples if s.mask_path is not None]
    return fingerprint_files([*paths, *masks], extra=sample_fingerprint_lines(samples))


def sample_fingerprint_lines(samples) -> Iterable[str]:
    """One line per sample (id, label, group, predefined fold): what a fingerprint must follow besides pixels."""
    for s in samples:
        yield f"{s.id}|{s.label}|{s.group}|{s.meta.get('fold')}"


def spread(items: list, n: int) -> list:
    """``n`` items at evenly spaced positions of ``items`` (all of them when there are fewer), in order."""
    if len(items) <= n:
        return list(items)
    return [items[(len(items) - 1) * k // (n - 1)] for k in range(n)]
