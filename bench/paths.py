"""Where caches, results and real data live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache folder: ``$CELLBENCH_CACHE`` or ``~/.cache/cellbench``."""
    root = os.environ.get("CELLBENCH_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "cellbench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The real-data root: the ``--data-root`` option, else ``$CELLBENCH_DATA``, else ``None``."""
    value = explicit or os.environ.get("CELLBENCH_DATA")
    return Path(value).expanduser().resolve() if value else None
