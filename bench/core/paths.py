"""Where caches, results and real data live, and where cellbench runs from.

The cache and data folders are resolved once, where a command starts (:func:`cache_dir`, :func:`data_root`),
and passed down as arguments; nothing below the entry points reads or sets the environment for them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cellbench.core.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the cellbench package: the folder bench/ of a checkout


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder, created: ``explicit`` (``--cache``), else ``$CELLBENCH_CACHE``, else ``~/.cache/cellbench``."""
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


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(value: object, *, what: str) -> str:
    """``value`` if it is a safe name (:data:`NAME_RULE`): one path component that cannot climb or be absolute.

    Suite, data set, model and results names become folder and file names; this is where they are checked.

    Raises
    ------
    ConfigError
        Naming ``what``, the value and the rule.
    """
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or ".." in value:
        raise ConfigError(f"{what} {value!r} is not a valid name; a name is {NAME_RULE}, without '..'")
    return value


def inside(root: str | os.PathLike, *parts: str | os.PathLike, what: str = "path") -> Path:
    """``root / parts`` resolved, after checking it lies inside ``root`` (resolved too); the one gate for every
    path the harness writes or deletes below ``--results`` or ``--cache``.

    Raises
    ------
    ConfigError
        When the joined path (through ``..``, an absolute part or a symbolic link) leaves ``root``.
    """
    base = Path(root).expanduser().resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"{what} {path} lies outside {base}; refusing to write or delete there")
    return path
