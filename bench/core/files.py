"""Atomic files and folders: a reader sees the old content or the new one, never a half-written file.

Every write goes to a temporary name beside its target (same folder, same file system) and is renamed over it
(:func:`os.replace`, atomic on POSIX); on failure the temporary file is removed and the target is untouched.
Cache files are sealed: :func:`seal` writes the file's SHA-256 beside it (``<name>.sha256``) once it is in place,
and :func:`sealed_cache_ok` checks it before the file is reused, so bytes flipped on disk are recomputed rather than
silently read. Folders that are built from many files (an extraction's crops, the synthetic data set) are filled under a
temporary name, get a completion marker last and are renamed into place (:func:`build_folder`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cellbench.core.hashing import file_sha256, json_default

log = logging.getLogger(__name__)

STALE_TMP_S = 3600.0  # temporary folders older than this were left by a killed run


def _tmp_name(path: Path) -> Path:
    # the suffix is kept: some writers choose the format by it (.keras, .npy, .joblib)
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends without error.

    For writers that take a file name (``np.save``, ``model.save``, ``pyarrow.parquet.write_table``). The parent
    folder is created. On an error the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None:
            raise
        # a failed write() (disk full) carries no file name, and the temporary one means nothing to a user
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        with contextlib.suppress(OSError):  # on a read-only file system even a missing file cannot be unlinked
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a new binary file beside ``path``, then rename it to ``path``; return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # not mkstemp: its 0600 mode would stick to the final file; open(..., "x") honours the umask
        with open(tmp, "xb") as fh:
            write(fh)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode(encoding))


def write_json(
    path: str | os.PathLike,
    obj: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    allow_nan: bool = True,
    newline: bool = False,
) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (paths, numpy values, sets and tuples are converted)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=json_default)
    return write_text(path, text + ("\n" if newline else ""))


def is_complete(folder: str | os.PathLike, marker: str) -> bool:
    """Whether ``folder`` was finished by :func:`build_folder` (its marker is written last)."""
    return (Path(folder) / marker).is_file()


def build_folder(final: str | os.PathLike, build: Callable[[Path], object], *, marker: str) -> Path:
    """Build the folder ``final`` once and atomically; return it.

    A complete ``final`` (holding ``marker``) is returned as it is. Otherwise ``build(tmp)`` fills a new temporary
    folder beside it, ``marker`` is written last and the folder is renamed to ``final``. A ``final`` without the
    marker (damaged from outside) is moved aside first; temporary folders that killed runs left (older than
    :data:`STALE_TMP_S`) are removed. When another process finishes the same folder first, its copy is kept.
    """
    final = Path(final)
    if is_complete(final, marker):
        return final
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        _discard(final, parent / f".stale-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}", marker)
    _remove_stale(parent, final.name)
    tmp = parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / marker).write_text("ok\n")
        try:
            tmp.rename(final)
        except OSError:
            if not is_complete(final, marker):  # not "another process finished first": a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _discard(folder: Path, aside: Path, marker: str) -> None:
    try:
        folder.rename(aside)
    except OSError:
        return  # another process moved or replaced it
    if is_complete(aside, marker):  # another process finished in between: put its folder back
        try:
            aside.rename(folder)
            return
        except OSError:
            pass
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale(parent: Path, name: str) -> None:
    now = time.time()
    for p in parent.glob(f".tmp-{name}-*"):
        try:
            if now - p.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


CHECKSUM_SUFFIX = ".sha256"


def checksum_file(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of a sealed file is kept: beside it, ``<name>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def seal(path: str | os.PathLike) -> str:
    """Record the SHA-256 of ``path`` beside it (atomically); return it. Call once the file is in place."""
    digest = file_sha256(path)
    write_text(checksum_file(path), digest + "\n")
    return digest


def seal_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` does not match its seal (``None`` when it does)."""
    side = checksum_file(path)
    if not side.is_file():
        return "it has no checksum (written by an older version, or its writer was killed)"
    expected = side.read_text().strip()
    actual = file_sha256(path)
    return None if actual == expected else f"its SHA-256 is {actual[:12]}…, {expected[:12]}… when it was written"


def sealed_cache_ok(path: str | os.PathLike, *, what: str) -> bool:
    """Whether the cache file ``path`` exists and matches its seal; a damaged one is removed (with a warning naming
    it and the reason) so that the caller recomputes it."""
    path = Path(path)
    if not path.is_file():
        return False
    problem = seal_problem(path)
    if problem is None:
        return True
    log.warning("%s %s failed its integrity check (%s); recomputing it", what, path, problem)
    path.unlink(missing_ok=True)
    checksum_file(path).unlink(missing_ok=True)
    return False
