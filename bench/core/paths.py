"""Where caches, results and real data live, and where cellbench runs from.

The cache and data folders are resolved once, where a command starts (:func:`cache_dir`, :func:`data_root`),
and passed down as arguments; nothing below the entry points reads or sets the environment for them.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the cellbench package: the folder bench/ of a checkout


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder, created: ``explicit`` (``--cache``), else ``$CELLBENCH_CACHE``, else ``~/.cache/cellbench``.
    """
    value = explicit or os.environ.get("CELLBENCH_CACHE")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "cellbench"
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The real-data root: ``explicit`` (``--data-root``), else ``$CELLBENCH_DATA``, else ``None``."""
    value = explicit or os.environ.get("CELLBENCH_DATA")
    return Path(value).expanduser().resolve() if value else None


def checkout_root() -> Path | None:
    """The source checkout cellbench runs from (an editable install), or ``None`` when it is installed as a wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "features").is_dir() else None
