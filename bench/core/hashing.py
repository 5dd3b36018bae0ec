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
