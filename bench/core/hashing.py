"""Canonical JSON and stable hashes: the same object always gives the same text and the same key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same object always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default)


def json_default(obj: Any):
    """``default=`` for :func:`json.dumps`: paths, numpy scalars and arrays, sets and tuples as JSON values."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def stable_hash(obj: Any, *, length: int = 16) -> str:
    """Hex digest (BLAKE2b) of the canonical JSON of ``obj``, cut to ``length`` characters."""
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=32).hexdigest()[:length]


def source_digest(*paths: str | Path) -> str:
    """Hash of the names and bytes of source files: editing any of them changes it.

    Cache keys include it so that a code change which alters what is cached (image reading, feature code,
    resizing) invalidates the cache instead of serving results of the old code.
    """
    h = hashlib.blake2b(digest_size=8)
    for path in paths:
        p = Path(path)
        h.update(p.name.encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def module_versions(*modules: str) -> dict[str, str]:
    """``{module: version}`` of the given importable modules (their ``__version__``), for cache keys.

    A library upgrade can change decoded pixels (an image codec) or computed values (a resize kernel), so caches
    of such values are keyed on the versions of the libraries that produced them.
    """
    import importlib

    versions = {}
    for name in modules:
        module = importlib.import_module(name)
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
