"""Batch feature extraction: parallel processes, a progress bar, and an atomic Parquet cache.

The cache holds one file per feature family: ``<cache_dir>/features/<key>.parquet`` with ``key`` the stable hash
of the data set fingerprint, the extraction, the data kind, the family with the config fields it reads
(:meth:`cellbench.features.family.Family.key`) and :func:`code_version` (a hash of this package's source files, of
image reading and of the libraries' versions, so editing feature code, changing how images are read or upgrading a
library invalidates the cache). A second call with the same inputs reads the files and extracts nothing; a config
that adds a family to cached ones computes only that family. Each file holds a ``sample_id`` column and one float
column per feature; its schema metadata (``cellbench.features``) holds the column order, the skipped sample ids
(with the reasons) and the key. It is written to a temporary file, renamed and sealed (SHA-256 beside it), so a
killed run never leaves a half-written cache and a changed one is recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cellbench.core.bars import progress_bar
from cellbench.core.errors import ConfigError, DataError, check_on_bad_image
from cellbench.core.files import atomic_path, seal, sealed_cache_ok
from cellbench.core.hashing import module_versions, source_digest, stable_hash
from cellbench.core.types import DataKind, FeatureSet, Sample
from cellbench.core.workers import default_workers, process_pool
from cellbench.datasets import masks
from cellbench.datasets.io import image_ref, read_image, read_mask, reader_version
from cellbench.features.catalog import get_family
from cellbench.features.config import FeatureConfig, check_kind
from cellbench.features.extract import feature_names, feature_vector

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
META_KEY = b"cellbench.features"


FEATURE_LIBRARIES = ("numpy", "cv2")  # the libraries feature code computes with


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of everything that decides the feature values besides the inputs.

    This package's source files and the mask finder's (:mod:`cellbench.datasets.masks`), image reading
    (:func:`cellbench.datasets.io.reader_version`: its code and the decoders' versions) and the versions of the
    libraries the features are computed with: a change to any of them changes the cache key.
    """
    return stable_hash(
        {
            # the mask finder decides the values of every sample that comes without a mask
            "features": source_digest(*sorted(PACKAGE_DIR.glob("*.py")), Path(masks.__file__)),
            "reader": reader_version(),
            "libraries": module_versions(*FEATURE_LIBRARIES),
        }
    )


def feature_cache_path(
    *,
    cache_dir: str | os.PathLike,
    dataset_fingerprint: str,
    extraction: str,
    config: FeatureConfig,
    kind: str,
    family: str,
) -> Path:
    """Where :func:`extract_feature_set` caches the values of ``family`` (one of ``config.families``)."""
    key = stable_hash(
        {
            "data": dataset_fingerprint,
            "extraction": extraction,
            "family": get_family(family).key(config),
            "kind": kind,
            "code": code_version(),
        }
    )
    return Path(cache_dir) / "features" / f"{key}.parquet"


def extract_feature_set(
    samples: Sequence[Sample],
    *,
    config: FeatureConfig,
    dataset_fingerprint: str,
    extraction: str,
    kind: DataKind,
    cache_dir: str | os.PathLike,
    n_jobs: int | None = None,
    on_bad_image: Literal["raise", "skip"] = "raise",
    progress: bool = True,
    name: str | None = None,
) -> FeatureSet:
    """Features of every sample, from the cache when present.

    Images come from ``Sample.image`` or ``Sample.image_path``; the mask from ``Sample.mask`` or
    ``Sample.mask_path`` (non-zero = cell), else :func:`cellbench.datasets.masks.cell_mask` for cells and the
    whole image for patches.

    Parameters
    ----------
    n_jobs
        Worker processes (default: the cores this process may use, :func:`cellbench.core.workers.default_workers`),
        each single-threaded (:func:`cellbench.core.workers.process_pool`); 1 extracts in this process.
    on_bad_image
        ``"raise"``: an unreadable image or mask (or an empty mask) stops extraction with a
        :class:`DataError` naming it, and nothing is cached. ``"skip"``: such samples are left out, their
        ids listed in ``FeatureSet.skipped`` (and in the cache).
    name
        Label of the progress bar (``features <name>``); defaults to the extraction and fingerprint.

    Returns
    -------
    FeatureSet
        Rows in the order of ``samples`` (skipped ones left out), columns as
        :func:`cellbench.features.extract.feature_names`.

    Raises
    ------
    UnknownNameError
        For a family of ``config`` outside the catalog, before anything is read or extracted.
    """
    check_on_bad_image(on_bad_image)
    check_kind(kind)
    names = feature_names(config)
    if n_jobs is not None and (not isinstance(n_jobs, int) or n_jobs < 1):
        raise ConfigError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"duplicate sample ids: {', '.join(map(str, dup[:5]))}")
    paths = {
        f: feature_cache_path(
            cache_dir=cache_dir,
            dataset_fingerprint=dataset_fingerprint,
            extraction=extraction,
            config=config,
            kind=kind,
            family=f,
        )
        for f in config.families
    }
    key = stable_hash([p.stem for p in paths.values()])
    parts: dict[str, FeatureSet] = {}
    for f, path in paths.items():
        cached = read_feature_cache(path)
        if cached is None:
            continue
        if set(cached.ids) | set(cached.skipped) != set(ids):
            log.info("features cache %s holds other samples; extracting %s again", path, f)
        elif not (cached.skipped and on_bad_image == "raise"):
            parts[f] = _reorder(cached, ids)
    missing = tuple(f for f in config.families if f not in parts)
    if not missing:
        log.info("features %s: read %d families from the cache", extraction, len(parts))
        return _joined(parts, config.families, ids, key)
    if parts:
        log.info("features %s: cached %s; extracting %s", extraction, ", ".join(parts), ", ".join(missing))
    todo = replace(config, families=missing)

    # an image source (one row of an HDF5 file, a centre crop) is read like a path by datasets.io.read_image
    items = [(s.id, image_ref(s), s.image, s.mask_path, s.mask) for s in samples]
    rows, kept, skipped, reasons = [], [], [], {}
    results = _run(
        items, config=todo, kind=kind, n_jobs=n_jobs, progress=progress, desc=f"features {name or extraction}"
    )
    try:
        for sid, values, error in results:
            if error is not None:
                if on_bad_image == "raise":
                    raise DataError(f"sample {sid}: {error} (use --on-bad-image skip to skip unreadable images)")
                log.warning("features: skipped sample %s: %s", sid, error)
                skipped.append(sid)
                reasons[sid] = error
                continue
            rows.append(values)
            kept.append(sid)
    finally:
        results.close()
    if not rows:
        example = f" (e.g. {reasons[skipped[0]]})" if skipped else ""
        raise DataError(f"no readable images among {len(items)} samples{example}")
    X = np.vstack(rows)
    start = 0
    for f in missing:
        width = len(get_family(f).names(config))
        path = paths[f]
        part = FeatureSet(
            key=path.stem,
            X=X[:, start : start + width],
            names=get_family(f).names(config),
            ids=tuple(kept),
            skipped=tuple(skipped),
        )
        write_feature_cache(path, part, reasons=reasons)
        parts[f] = part
        start += width
    joined = _joined(parts, config.families, ids, key)
    assert joined.names == names
    return joined


def _joined(parts: dict[str, FeatureSet], families: tuple[str, ...], ids: list[str], key: str) -> FeatureSet:
    """The families' columns side by side, on the samples every family has (a skip in one is a skip in all)."""
    skipped = set().union(*(p.skipped for p in parts.values()))
    kept = [i for i in ids if i not in skipped]
    blocks = []
    for f in families:
        part = parts[f]
        if list(part.ids) != kept:
            row = {sid: r for r, sid in enumerate(part.ids)}
            part = FeatureSet(key=part.key, X=part.X[[row[i] for i in kept]], names=part.names, ids=tuple(kept))
        blocks.append(part)
    return FeatureSet(
        key=key,
        X=np.hstack([b.X for b in blocks]),
        names=tuple(n for b in blocks for n in b.names),
        ids=tuple(kept),
        skipped=tuple(i for i in ids if i in skipped),
    )


def read_feature_cache(path: str | os.PathLike) -> FeatureSet | None:
    """The feature set cached at ``path``, or ``None`` when there is none, it fails its checksum (removed, with a
    warning) or it cannot be read."""
    path = Path(path)
    if not sealed_cache_ok(path, what="feature cache"):
        return None
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[META_KEY])
        names = tuple(meta["names"])
        X = np.empty((table.num_rows, len(names)), np.float64)
        for i, n in enumerate(names):
            X[:, i] = table.column(n).to_numpy()
        ids = tuple(table.column("sample_id").to_pylist())
    except Exception as exc:  # a damaged or foreign file is a cache miss, not an error
        log.warning("ignoring unreadable feature cache %s: %s", path, exc)
        return None
    return FeatureSet(key=path.stem, X=X, names=names, ids=ids, skipped=tuple(meta.get("skipped", ())))


def write_feature_cache(path: str | os.PathLike, fs: FeatureSet, *, reasons: dict[str, str] | None = None) -> None:
    """Write ``fs`` to ``path`` atomically (:func:`cellbench.core.files.atomic_path`)."""
    columns = {"sample_id": pa.array(list(fs.ids), pa.string())}
    columns.update({n: pa.array(fs.X[:, i], pa.float64()) for i, n in enumerate(fs.names)})
    meta = {
        "key": fs.key,
        "names": list(fs.names),
        "skipped": list(fs.skipped),
        "skipped_reasons": reasons or {},
        "code_version": code_version(),
    }
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    seal(path)


def _reorder(fs: FeatureSet, ids: list[str]) -> FeatureSet:
    if list(fs.ids) == [i for i in ids if i in set(fs.ids)]:
        return fs
    row = {sid: r for r, sid in enumerate(fs.ids)}
    order = [row[i] for i in ids if i in row]
    kept = tuple(fs.ids[r] for r in order)
    return FeatureSet(key=fs.key, X=fs.X[order], names=fs.names, ids=kept, skipped=fs.skipped)


def _run(items, *, config, kind, n_jobs, progress, desc) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """Results in the order of ``items``, from this process or a pool of single-threaded workers."""
    if n_jobs is None:
        n_jobs = default_workers()
    bar = progress_bar(total=len(items), desc=desc, unit="img", enabled=progress, dynamic_ncols=True)
    try:
        if n_jobs == 1 or len(items) < 8:
            for item in items:
                yield _extract_one(item, config, kind)
                bar.update(1)
            return
        # chunks: a few per worker for load balance, large enough to amortise the transfers
        size = max(1, min(64, len(items) // (4 * n_jobs)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        pool = process_pool(min(n_jobs, len(chunks)))
        try:
            futures = [pool.submit(_extract_chunk, chunk, config, kind) for chunk in chunks]
            for future in futures:
                out = future.result()
                yield from out
                bar.update(len(out))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def _extract_chunk(chunk, config: FeatureConfig, kind: str):
    return [_extract_one(item, config, kind) for item in chunk]


def _extract_one(item, config: FeatureConfig, kind: str) -> tuple[str, np.ndarray | None, str | None]:
    """``(id, values, None)``, or ``(id, None, message)`` for an unreadable image or mask or an empty mask."""
    sid, image_path, image, mask_path, mask = item
    try:
        if image is None:
            if image_path is None:
                raise DataError("the sample has neither an image nor an image path")
            image = read_image(image_path)
        if mask is None and mask_path is not None:
            mask = read_mask(mask_path) > 0
        return sid, feature_vector(image, mask, config=config, kind=kind, sample=sid), None
    except DataError as exc:
        return sid, None, str(exc)
