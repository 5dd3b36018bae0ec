"""Batch feature extraction: parallel processes, a progress bar, and a Parquet cache.

The cache key combines the data set fingerprint, the extraction, the feature configuration and the
source code of this package, so editing feature code or changing the data invalidates it; a second
call with the same inputs reads the cache and extracts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from bench.errors import ConfigError, DataError
from bench.types import FeatureSet, Sample, stable_hash
from features.config import FeatureConfig

PACKAGE_DIR = Path(__file__).parent
CHUNK = 16


def code_version() -> str:
    """Hash of this package's source files: any change to feature code changes the cache key."""
    h = hashlib.blake2b(digest_size=8)
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def feature_cache_path(
    *, cache_dir: Path, dataset_fingerprint: str, extraction: str, config: FeatureConfig, kind: str
) -> Path:
    key = stable_hash(
        {
            "data": dataset_fingerprint,
            "extraction": extraction,
            "config": config.key(),
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
    kind: Literal["cell", "patch"],
    cache_dir: Path,
    n_jobs: int | None = None,
    on_bad_image: Literal["raise", "skip"] = "raise",
    progress: bool = True,
) -> FeatureSet:
    """Features of every sample, from the cache when present.

    Parameters
    ----------
    on_bad_image
        ``"raise"``: an unreadable image stops extraction with a :class:`DataError` naming it and nothing
        is cached. ``"skip"``: such samples are left out and their ids listed in ``FeatureSet.skipped``.
    n_jobs
        Worker processes (default: all cores); 1 extracts in this process.
    """
    if on_bad_image not in ("raise", "skip"):
        raise ConfigError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
    path = feature_cache_path(
        cache_dir=cache_dir, dataset_fingerprint=dataset_fingerprint, extraction=extraction, config=config, kind=kind
    )
    cached = _read_cache(path)
    if cached is not None and (on_bad_image == "skip" or not cached.skipped):
        return cached
    items = [(s.id, s.image_path, s.image, s.mask_path, s.mask) for s in samples]
    results = _run(items, config=config, kind=kind, n_jobs=n_jobs, progress=progress, desc=f"features {extraction}")
    names: tuple[str, ...] | None = None
    rows, ids, skipped = [], [], []
    for sid, status, payload in results:
        if status == "bad":
            if on_bad_image == "raise":
                raise DataError(f"{payload} (use --on-bad-image skip to skip unreadable images)")
            skipped.append(sid)
            continue
        keys = tuple(payload)
        if names is None:
            names = keys
        elif keys != names:
            raise DataError(f"sample {sid}: feature columns differ from the first sample's")
        rows.append(np.fromiter(payload.values(), dtype=np.float64, count=len(payload)))
        ids.append(sid)
    if not rows:
        raise DataError(f"no readable images among {len(items)} samples")
    fs = FeatureSet(key=path.stem, X=np.vstack(rows), names=names, ids=tuple(ids), skipped=tuple(skipped))
    _write_cache(path, fs)
    return fs


def _run(items, *, config, kind, n_jobs, progress, desc):
    from tqdm.auto import tqdm

    n_jobs = n_jobs or len(os.sched_getaffinity(0))
    bar = tqdm(total=len(items), desc=desc, unit="cell", disable=not progress, dynamic_ncols=True)
    try:
        if n_jobs == 1 or len(items) < 2 * CHUNK:
            for item in items:
                yield _extract_one(item, config, kind)
                bar.update(1)
            return
        import multiprocessing

        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_single_thread) as pool:
            for out in pool.map(_extract_chunk, chunks, [config] * len(chunks), [kind] * len(chunks)):
                yield from out
                bar.update(len(out))
    finally:
        bar.close()


def _single_thread() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _extract_chunk(chunk, config, kind):
    return [_extract_one(item, config, kind) for item in chunk]


def _extract_one(item, config: FeatureConfig, kind: str):
    """``(id, "ok", {name: value})``, or ``(id, "bad", message)`` for an unreadable image or mask."""
    from datasets.io import read_image, read_mask
    from features.extract import extract_features

    sid, image_path, image, mask_path, mask = item
    try:
        img = image if image is not None else read_image(image_path)
        if mask is None and mask_path is not None:
            mask = read_mask(mask_path) > 0
        return sid, "ok", extract_features(img, mask, config=config, kind=kind, sample=sid)
    except DataError as exc:  # unreadable image or mask, empty mask
        return sid, "bad", str(exc)


def _write_cache(path: Path, fs: FeatureSet) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"sample_id": list(fs.ids), **{n: fs.X[:, i] for i, n in enumerate(fs.names)}})
    meta = {b"cellbench": json.dumps({"skipped": list(fs.skipped), "key": fs.key}).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def _read_cache(path: Path) -> FeatureSet | None:
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"cellbench", b"{}"))
    names = tuple(c for c in table.column_names if c != "sample_id")
    X = np.column_stack([table.column(n).to_numpy() for n in names]) if names else np.zeros((table.num_rows, 0))
    return FeatureSet(
        key=path.stem,
        X=X.astype(np.float64),
        names=names,
        ids=tuple(table.column("sample_id").to_pylist()),
        skipped=tuple(meta.get("skipped", [])),
    )
