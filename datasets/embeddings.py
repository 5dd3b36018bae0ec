"""Embeddings the user supplies: a Parquet or ``.npz`` file of vectors keyed by sample id or image path.

Vectors computed elsewhere (a pathology foundation model, say) are named in the suite (``embeddings = "…"`` in a
data set's table) and fitted on by the ``user_*`` heads. :func:`load_user_embeddings` reads the file and returns
its vectors in the order of the samples asked for (:class:`UserEmbeddings`). Every sample must have exactly one
vector: a missing, duplicate or extra key is one :class:`~cellbench.core.errors.ConfigError` naming the file and
the offending keys (the first five and their count).

Layouts
-------
Parquet (``.parquet``, ``.pq``)
    One key column, ``sample_id`` (sample ids) or ``path``/``image``/``image_path`` (image paths relative to the
    data set's root), and either numeric columns, one per dimension (named after them), or one list column
    ``embedding`` (named ``user_000``, ``user_001``, …).
NumPy (``.npz``)
    An array ``ids`` (sample ids) or ``paths`` (image paths), and a 2-D numeric array ``X`` or ``embeddings`` with
    one row per key (named ``user_000``, …). Key arrays must be string arrays (no pickled objects).

Paths match after normalisation: ``\\`` becomes ``/``, ``./`` and repeated separators are dropped, and an
absolute path under ``root`` is made relative to it.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import file_sha256

PARQUET_SUFFIXES = (".parquet", ".pq")
NPZ_SUFFIXES = (".npz",)
ID_COLUMN = "sample_id"
PATH_COLUMNS = ("path", "image", "image_path")
LIST_COLUMN = "embedding"
NPZ_KEYS = {"ids": "sample_id", "paths": "path"}
NPZ_VECTORS = ("X", "embeddings")
EXTRA = ("error", "ignore")
SHOWN = 5  # offending keys named in a message; the rest are counted
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")  # an unnamed index pandas wrote: not a dimension
_WHAT = {"sample_id": "sample id", "path": "image path"}


@dataclass(frozen=True, kw_only=True, eq=False)
class UserEmbeddings:
    """The user's vectors, one row per sample asked for.

    Attributes
    ----------
    X : numpy.ndarray
        ``float32``, shape (samples, dimensions), rows in the order of ``ids``.
    names : tuple of str
        Column names: the file's own (wide Parquet) or ``user_000``, ``user_001``, ….
    path : pathlib.Path
        The file read.
    digest : str
        SHA-256 (hex) of the file's bytes, for cache and job keys.
    key : str
        What the rows were matched on: ``"sample_id"`` or ``"path"``.
    """

    X: np.ndarray
    names: tuple[str, ...]
    path: Path
    digest: str
    key: str


def load_user_embeddings(
    path: str | Path,
    *,
    ids: Sequence[str],
    paths: Sequence[str | None] = (),
    root: Path | None = None,
    extra: str = "error",
) -> UserEmbeddings:
    """Read a user's embeddings file and align its vectors with the samples ``ids``.

    Parameters
    ----------
    path
        A ``.parquet``/``.pq`` or ``.npz`` file (layouts in the module docstring).
    ids
        The samples' ids, in the order the rows are wanted.
    paths
        The samples' image paths (aligned with ``ids``; ``None`` for a sample without one), used when the file is
        keyed by path.
    root
        The data set's root: absolute paths under it, in the file or in ``paths``, are made relative to it.
    extra
        ``"error"`` (default) refuses keys in the file that match no sample; ``"ignore"`` drops them.

    Raises
    ------
    ConfigError
        The file is absent, unreadable or of an unknown suffix; its layout is not one of the above; a value is
        non-numeric, NaN or infinite; vectors are ragged or empty; a key is duplicated; a sample has no vector;
        or (with ``extra="error"``) a key matches no sample. Each names the file and what is wrong.
    """
    file = Path(path).expanduser()
    if extra not in EXTRA:
        raise ConfigError(f"extra must be one of {', '.join(EXTRA)}, got {extra!r}")
    if not file.exists():
        raise ConfigError(f"user embeddings file {file} not found")
    if not file.is_file():
        raise ConfigError(f"user embeddings file {file} is not a file")
    suffix = file.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        kind, keys, X, names = _read_parquet(file)
    elif suffix in NPZ_SUFFIXES:
        kind, keys, X, names = _read_npz(file)
    else:
        raise ConfigError(
            f"user embeddings file {file}: unknown suffix {file.suffix!r}; expected one of "
            f"{', '.join(PARQUET_SUFFIXES + NPZ_SUFFIXES)}"
        )
    if kind == "path":
        keys = [_norm_path(k, root) for k in keys]
    rows = _index(file, kind, keys)
    wanted = _sample_keys(file, kind, ids, paths, root)
    missing = [_describe(sid, k, kind) for sid, k in zip(ids, wanted) if k is None or k not in rows]
    if missing:
        raise ConfigError(
            f"user embeddings file {file}: samples with no vector ({len(missing)} of {len(ids)}, matched on "
            f"{_WHAT[kind]}): {_some(missing)}"
        )
    if extra == "error":
        known = set(wanted)
        unmatched = [k for k in keys if k not in known]
        if unmatched:
            raise ConfigError(
                f"user embeddings file {file}: extra {_WHAT[kind]}s that match no sample ({len(unmatched)}): "
                f"{_some(unmatched)} (remove them, or pass extra='ignore' to drop them)"
            )
    order = np.fromiter((rows[k] for k in wanted), dtype=np.intp, count=len(wanted))
    X = _finite_float32(file, X[order], names, rows=order, keys=keys)  # rows dropped by extra="ignore" unchecked
    return UserEmbeddings(X=np.ascontiguousarray(X), names=names, path=file, digest=file_sha256(file), key=kind)


# ------------------------------------------------------------------------------------------------ reading


def _read_parquet(file: Path) -> tuple[str, list[str], np.ndarray, tuple[str, ...]]:
    try:
        table = pq.read_table(file)
    except Exception as exc:  # not Parquet, truncated, unreadable: one message instead of a traceback
        raise ConfigError(
            f"user embeddings file {file} cannot be read as Parquet ({type(exc).__name__}: {exc})"
        ) from None
    columns = table.column_names
    key_columns = [c for c in columns if c == ID_COLUMN or c in PATH_COLUMNS]
    if len(key_columns) != 1:
        found = f"{', '.join(key_columns)} are all there" if key_columns else f"columns are {', '.join(columns)}"
        raise ConfigError(
            f"user embeddings file {file}: needs exactly one key column, {ID_COLUMN} (sample ids) or one of "
            f"{', '.join(PATH_COLUMNS)} (image paths); {found}"
        )
    (key_column,) = key_columns
    kind = ID_COLUMN if key_column == ID_COLUMN else "path"
    keys = _key_strings(file, key_column, table.column(key_column).combine_chunks())
    value_columns = [c for c in columns if c != key_column and not _PANDAS_INDEX.fullmatch(c)]
    if not value_columns:
        raise ConfigError(f"user embeddings file {file}: no vector columns besides {key_column} (zero-width vectors)")
    if LIST_COLUMN in value_columns and _is_list(table.schema.field(LIST_COLUMN).type):
        if len(value_columns) > 1:
            others = ", ".join(c for c in value_columns if c != LIST_COLUMN)
            raise ConfigError(
                f"user embeddings file {file}: a list column {LIST_COLUMN!r} and other columns ({others}); keep "
                "either the one list column or one numeric column per dimension"
            )
        X = _list_column(file, table.column(LIST_COLUMN).combine_chunks(), keys)
        return kind, keys, X, _generic_names(X.shape[1])
    X = np.empty((table.num_rows, len(value_columns)), dtype=np.float64)
    for j, name in enumerate(value_columns):
        column = table.column(name)
        if not _is_number(column.type):
            raise ConfigError(
                f"user embeddings file {file}: column {name!r} is not numeric ({column.type}); every column but "
                f"{key_column} must hold numbers"
            )
        X[:, j] = column.to_numpy(zero_copy_only=False)  # nulls -> NaN, refused below naming column and row
    return kind, keys, X, tuple(value_columns)


def _list_column(file: Path, column: pa.Array, keys: list[str]) -> np.ndarray:
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ConfigError(f"user embeddings file {file}: {LIST_COLUMN} is null in row {row} (key {keys[row]!r})")
    n = len(column)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    if n and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ConfigError(
            f"user embeddings file {file}: ragged vectors in {LIST_COLUMN!r}: row 0 (key {keys[0]!r}) has "
            f"{lengths[0]} values, row {row} (key {keys[row]!r}) has {lengths[row]}"
        )
    width = int(lengths[0]) if n else 0
    if n and width == 0:
        raise ConfigError(f"user embeddings file {file}: the vectors in {LIST_COLUMN!r} are empty (zero-width)")
    if not _is_number(column.type.value_type):
        raise ConfigError(
            f"user embeddings file {file}: column {LIST_COLUMN!r} holds {column.type.value_type}, not numbers"
        )
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).reshape(n, width)


def _read_npz(file: Path) -> tuple[str, list[str], np.ndarray, tuple[str, ...]]:
    if not zipfile.is_zipfile(file):
        raise ConfigError(f"user embeddings file {file} cannot be read as .npz (not a zip archive)")
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # truncated or damaged archive, pickled objects: one message instead of a traceback
        if "Object arrays" in str(exc):
            raise ConfigError(
                f"user embeddings file {file} holds an object array (ragged vectors, or ids not saved as strings); "
                "save ids/paths with np.array(..., dtype=str) and X as one 2-D numeric array"
            ) from None
        raise ConfigError(f"user embeddings file {file} cannot be read as .npz ({type(exc).__name__}: {exc})") from None
    found = ", ".join(arrays) or "none"
    key_names = [k for k in NPZ_KEYS if k in arrays]
    vector_names = [k for k in NPZ_VECTORS if k in arrays]
    if len(key_names) != 1 or len(vector_names) != 1:
        raise ConfigError(
            f"user embeddings file {file}: needs one key array, ids (sample ids) or paths (image paths), and one "
            f"vector array, X or embeddings; arrays found: {found}"
        )
    (key_name,), (vector_name,) = key_names, vector_names
    raw, X = arrays[key_name], arrays[vector_name]
    if raw.ndim != 1 or raw.dtype.kind not in "USiu":
        raise ConfigError(
            f"user embeddings file {file}: {key_name} must be a 1-D array of strings, got shape {raw.shape} "
            f"dtype {raw.dtype}"
        )
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in raw.tolist()]
    if X.dtype.kind not in "iuf":
        raise ConfigError(f"user embeddings file {file}: {vector_name} is not numeric (dtype {X.dtype})")
    if X.ndim != 2:
        raise ConfigError(
            f"user embeddings file {file}: {vector_name} must be 2-D (one row per key), got shape {X.shape}"
        )
    if X.shape[0] != len(keys):
        raise ConfigError(f"user embeddings file {file}: {len(keys)} {key_name} but {X.shape[0]} rows in {vector_name}")
    if X.shape[1] == 0:
        raise ConfigError(f"user embeddings file {file}: {vector_name} has zero columns (zero-width vectors)")
    return NPZ_KEYS[key_name], keys, X, _generic_names(X.shape[1])


# ------------------------------------------------------------------------------------------------ checks


def _key_strings(file: Path, name: str, column: pa.Array) -> list[str]:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_integer(column.type)):  # fmt: skip
        raise ConfigError(f"user embeddings file {file}: key column {name!r} must hold strings, not {column.type}")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ConfigError(f"user embeddings file {file}: key column {name!r} is empty in row {row}")
    return [str(k) for k in column.to_pylist()]


def _finite_float32(
    file: Path, X: np.ndarray, names: tuple[str, ...], *, rows: np.ndarray, keys: list[str]
) -> np.ndarray:
    """``X`` (the file's rows ``rows``) as float32, refusing NaN, infinite or (beyond float32's range) overflowing
    values."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(X, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        i, col = (int(v) for v in np.argwhere(bad)[0])
        row = int(rows[i])
        raise ConfigError(
            f"user embeddings file {file}: {int(bad.sum())} values are NaN, missing or infinite (as float32); the "
            f"first in column {names[col]!r}, row {row} (key {keys[row]!r}): {X[i, col]}"
        )
    return out


def _index(file: Path, kind: str, keys: list[str]) -> dict[str, int]:
    counts = Counter(keys)
    duplicates = [k for k, n in counts.items() if n > 1]
    if duplicates:
        raise ConfigError(
            f"user embeddings file {file}: duplicate {_WHAT[kind]}s ({len(duplicates)}): {_some(duplicates)}"
        )
    return {k: i for i, k in enumerate(keys)}


def _sample_keys(file: Path, kind: str, ids: Sequence[str], paths: Sequence[str | None],
                 root: Path | None) -> list[str | None]:  # fmt: skip
    """What each sample is looked up by: its id, or its normalised image path (``None`` when it has none)."""
    ids = [str(i) for i in ids]
    if kind == ID_COLUMN:
        return ids
    if not paths and ids:
        raise ConfigError(
            f"user embeddings file {file} is keyed by image path, but the samples have no image paths; "
            "key it by sample_id"
        )
    if len(paths) != len(ids):
        raise ConfigError(f"{len(paths)} image paths given for {len(ids)} samples (reading {file})")
    keys = [None if p is None else _norm_path(p, root) for p in paths]
    owners: dict[str, list[str]] = {}
    for sid, k in zip(ids, keys):
        if k is not None:
            owners.setdefault(k, []).append(sid)
    shared = [f"{k} ({', '.join(s[:3])}{', …' if len(s) > 3 else ''})" for k, s in owners.items() if len(s) > 1]
    if shared:
        raise ConfigError(
            f"user embeddings file {file} is keyed by image path, but image paths are shared by several samples "
            f"(cells cut from one image; {len(shared)}): {_some(shared)}; key the file by sample_id"
        )
    return keys


# ------------------------------------------------------------------------------------------------ helpers


def _norm_path(value: str | PurePath, root: Path | None) -> str:
    """``value`` with ``/`` separators, no ``./`` or repeated separators, relative to ``root`` when under it."""
    text = str(value).replace("\\", "/")
    if not text:
        return text
    text = posixpath.normpath(text)
    if root is not None:
        base = posixpath.normpath(str(root).replace("\\", "/")).rstrip("/") + "/"
        if text.startswith(base):
            text = text[len(base) :]
    return text


def _describe(sample_id: str, key: str | None, kind: str) -> str:
    if kind == ID_COLUMN:
        return sample_id
    return f"{sample_id} (no image path)" if key is None else f"{sample_id} ({key})"


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _generic_names(width: int) -> tuple[str, ...]:
    digits = max(3, len(str(width - 1)))
    return tuple(f"user_{j:0{digits}d}" for j in range(width))


def _some(items: Sequence[object]) -> str:
    shown = ", ".join(repr(str(i)) for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
