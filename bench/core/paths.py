"""Where caches, results and real data live."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the cellbench package: the folder bench/ of a checkout


def checkout_root() -> Path | None:
    """The source checkout cellbench runs from (an editable install), or ``None`` when it is installed as a wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "features").is_dir() else None


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
