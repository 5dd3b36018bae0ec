"""The result store: one embedded SQLite database per results folder.

A job's result (its row and all its per-sample predictions) is written in one transaction, so a run
killed at any point leaves either the whole result or nothing. Only the driver writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cellbench.core.errors import ConfigError
from cellbench.core.files import write_text
from cellbench.core.hashing import canonical_json
from cellbench.core.types import JobExtra, JobResult
from cellbench.core.values import json_safe
from cellbench.run.records import DataSetRecord

APP = "cellbench"
SCHEMA_VERSION = "1"
STORE_NAME = "store.sqlite"
LOCK_NAME = "store.lock"  # who holds the folder (the lock itself is on the folder)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, suite TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, manifest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_sets (
    dataset TEXT NOT NULL, extraction TEXT NOT NULL, fingerprint TEXT NOT NULL, info TEXT NOT NULL,
    PRIMARY KEY (dataset, extraction));
CREATE TABLE IF NOT EXISTS samples (
    dataset TEXT NOT NULL, extraction TEXT NOT NULL, sample_id TEXT NOT NULL, grp TEXT, label TEXT NOT NULL,
    PRIMARY KEY (dataset, extraction, sample_id));
CREATE TABLE IF NOT EXISTS fold_sets (
    folds_key TEXT PRIMARY KEY, dataset TEXT NOT NULL, extraction TEXT NOT NULL, scheme TEXT NOT NULL,
    description TEXT NOT NULL, n_folds INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS folds (
    folds_key TEXT NOT NULL, fold INTEGER NOT NULL, sample_id TEXT NOT NULL,
    PRIMARY KEY (folds_key, fold, sample_id));
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, run_id INTEGER, suite TEXT, dataset TEXT NOT NULL, extraction TEXT NOT NULL,
    model TEXT NOT NULL, kind TEXT NOT NULL, imbalance TEXT NOT NULL, ratio TEXT NOT NULL,
    fold INTEGER NOT NULL, seed INTEGER NOT NULL, cv TEXT NOT NULL, folds_key TEXT, status TEXT NOT NULL,
    metrics TEXT NOT NULL, timings TEXT NOT NULL, error TEXT, extra TEXT NOT NULL, spec TEXT NOT NULL,
    written REAL NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    job_key TEXT NOT NULL, sample_id TEXT NOT NULL, y_true INTEGER NOT NULL, y_pred INTEGER NOT NULL,
    proba TEXT NOT NULL, PRIMARY KEY (job_key, sample_id));
"""


def external_predictions_key(job_key: str) -> str:
    """Where a CV job's fold model stores its predictions of the external test set (see bench.external)."""
    return f"{job_key}@external"


class StoreError(ConfigError):
    """The results folder holds something that is not a usable cellbench store, or is locked."""


class Store:
    """A cellbench result store at ``path`` (a folder); see :meth:`open`."""

    def __init__(self, folder: Path, conn: sqlite3.Connection, lock_fd: int | None):
        self.folder, self.conn, self._lock_fd = folder, conn, lock_fd

    @classmethod
    def open(cls, folder: str | os.PathLike, *, write: bool = True) -> Store:
        """Open (creating if needed) the store in ``folder``.

        With ``write`` a lock file is taken so that a second run on the same folder is refused, not
        interleaved. A file that is not a cellbench store is refused and left untouched.
        """
        folder = Path(folder)
        path = folder / STORE_NAME
        existed = path.exists() and path.stat().st_size > 0
        if existed:
            _check_foreign(path)
        elif not write:
            raise StoreError(f"no result store at {path}; run the suite first (python -m bench run --suite ...)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the results folder {folder}: {exc.strerror}; choose --results") from None
        writable = os.access(folder, os.W_OK)
        if write and not writable:
            raise StoreError(f"results folder {folder} is not writable (read-only or not yours); choose --results")
        lock_fd = _take_lock(folder) if write else None
        conn = None
        try:
            if writable:
                conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            else:  # WAL needs a -shm file beside the store; in a read-only folder the file is read as immutable
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)
            if existed:
                _check_meta(conn, path)  # before writing anything into a file that may be foreign
            if writable:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            if write:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?), ('schema', ?)", (APP, SCHEMA_VERSION))
                # the lock is ours, so a run still marked running was killed before it could say so
                conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            _check_meta(conn, path)
        except (sqlite3.DatabaseError, StoreError) as exc:
            if conn is not None:
                conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"{path} is not a usable cellbench store ({exc}); "
                "refusing to touch it (move it away or choose --results)"
            ) from None
        return cls(folder, conn, lock_fd)

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # runs ---------------------------------------------------------------------------------------
    def start_run(self, suite: str, manifest: Mapping[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (suite, started, status, manifest) VALUES (?, ?, 'running', ?)",
            (suite, time.time(), canonical_json(manifest)),
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        self.conn.execute("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def runs(self) -> pd.DataFrame:
        """The runs table; read without the lock, a run still marked running while no process holds the folder
        was killed and is shown as ``interrupted`` (the next writer records that)."""
        runs = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", self.conn)
        if self._lock_fd is None and (runs.status == "running").any() and not _locked(self.folder):
            runs.loc[runs.status == "running", "status"] = "interrupted"
        return runs

    # data sets and folds ------------------------------------------------------------------------
    def save_data_set(self, record: DataSetRecord) -> None:
        """Save (or replace) the description of one (data set, extraction)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO data_sets VALUES (?, ?, ?, ?)",
            (record.dataset, record.extraction, record.fingerprint, canonical_json(record.as_json())),
        )

    def data_sets(self) -> dict[tuple[str, str], DataSetRecord]:
        """Every (data set, extraction) saved, by name."""
        rows = self.conn.execute("SELECT dataset, extraction, fingerprint, info FROM data_sets").fetchall()
        return {
            (d, e): DataSetRecord.from_json(json.loads(i), dataset=d, extraction=e, fingerprint=f)
            for d, e, f, i in rows
        }

    def save_samples(self, dataset: str, extraction: str, ids, groups, labels) -> None:
        """Sample ids with their group (patient) and label, for patient-level statistics."""
        with self._tx():
            self.conn.execute("DELETE FROM samples WHERE dataset = ? AND extraction = ?", (dataset, extraction))
            self.conn.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?)",
                ((dataset, extraction, i, g, lab) for i, g, lab in zip(ids, groups, labels)),
            )

    def samples(self, dataset: str, extraction: str) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT sample_id, grp, label FROM samples WHERE dataset = ? AND extraction = ? ORDER BY sample_id",
            self.conn,
            params=(dataset, extraction),
        )

    def save_folds(self, folds, *, dataset: str, extraction: str) -> None:
        """Save a fold set once; saving the same key again is a no-op."""
        if self.conn.execute("SELECT 1 FROM fold_sets WHERE folds_key = ?", (folds.key,)).fetchone():
            return
        with self._tx():
            self.conn.execute(
                "INSERT INTO fold_sets VALUES (?, ?, ?, ?, ?, ?)",
                (folds.key, dataset, extraction, folds.scheme, folds.description, len(folds)),
            )
            self.conn.executemany(
                "INSERT INTO folds VALUES (?, ?, ?)",
                ((folds.key, f, folds.ids[i]) for f, test in enumerate(folds.test) for i in test),
            )

    def fold_sets(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM fold_sets", self.conn)

    def fold_ids(self, folds_key: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for f, sid in self.conn.execute(
            "SELECT fold, sample_id FROM folds WHERE folds_key = ? ORDER BY fold, sample_id", (folds_key,)
        ):
            out.setdefault(f, []).append(sid)
        return out

    # jobs ---------------------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        return {k for (k,) in self.conn.execute("SELECT key FROM jobs WHERE status = 'ok'")}

    def write_result(self, result: JobResult, *, run_id: int | None, spec: Mapping[str, Any]) -> None:
        """Write one job's row and predictions in a single transaction (replacing an earlier error row)."""
        c = result.coordinates
        preds = result.predictions
        with self._tx():
            self.conn.execute(
                "DELETE FROM predictions WHERE job_key IN (?, ?)", (result.key, external_predictions_key(result.key))
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.key,
                    run_id,
                    c["suite"],
                    c["dataset"],
                    c["extraction"],
                    c["model"],
                    c["kind"],
                    c["imbalance"],
                    c["ratio"],
                    int(c["fold"]),
                    int(c["seed"]),
                    c["cv"],
                    c.get("folds_key"),
                    result.status,
                    canonical_json(json_safe(result.metrics)),
                    canonical_json(result.timings),
                    result.error,
                    canonical_json(result.extra.as_json()),
                    canonical_json(spec),
                    time.time(),
                ),
            )
            for key, table in (
                (result.key, preds),
                (external_predictions_key(result.key), result.external_predictions),
            ):
                if table is not None and len(table):
                    self._insert_predictions(key, table)

    def _insert_predictions(self, key: str, preds: pd.DataFrame) -> None:
        proba_cols = [col for col in preds.columns if col.startswith("proba_")]
        self.conn.executemany(
            "INSERT INTO predictions VALUES (?, ?, ?, ?, ?)",
            (
                (key, sid, int(yt), int(yp), canonical_json([float(v) for v in pr]))  # float repr: lossless
                for sid, yt, yp, pr in zip(
                    preds["sample_id"], preds["y_true"], preds["y_pred"], preds[proba_cols].to_numpy()
                )
            ),
        )

    def jobs(self, *, status: str | None = None) -> pd.DataFrame:
        query = "SELECT * FROM jobs" + (" WHERE status = ?" if status else "") + " ORDER BY key"
        df = pd.read_sql_query(query, self.conn, params=(status,) if status else None)
        for col in ("metrics", "timings"):
            df[col] = df[col].map(json.loads)
        df["extra"] = df["extra"].map(lambda text: JobExtra.from_json(json.loads(text)))
        return df

    def predictions(self, job_keys: Iterable[str] | None = None) -> pd.DataFrame:
        if job_keys is None:
            df = pd.read_sql_query("SELECT * FROM predictions ORDER BY job_key, sample_id", self.conn)
        else:
            keys = list(job_keys)
            marks = ",".join("?" * len(keys))
            df = pd.read_sql_query(
                f"SELECT * FROM predictions WHERE job_key IN ({marks}) ORDER BY job_key, sample_id",
                self.conn,
                params=keys,
            )
        df["proba"] = df["proba"].map(json.loads)
        return df

    def _tx(self):
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _check_foreign(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if path.stat().st_size and head != b"SQLite format 3\x00":
        raise StoreError(
            f"{path} exists but is not a SQLite database; refusing to overwrite it (move it away or use --results)"
        )


def _check_meta(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        rows = {}
    if rows.get("app") != APP:
        raise StoreError(
            f"{path} is a SQLite database but not a cellbench store; refusing to use it (choose --results)"
        )
    if rows.get("schema") != SCHEMA_VERSION:
        raise StoreError(
            f"{path} has store schema {rows.get('schema')!r}; this cellbench reads schema {SCHEMA_VERSION}"
        )


def _locked(folder: Path) -> bool:
    """Whether a process holds the folder's run lock (probed with a non-blocking lock, released at once)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken on it
    return False


def _take_lock(folder: Path) -> int:
    """Lock the results folder itself (``flock`` on its descriptor, released when the process dies); the pid of
    the holder goes to ``store.lock`` for the message only, so deleting that file does not free the folder."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = (folder / LOCK_NAME).read_text(errors="replace").strip() or "another process"
        except OSError:
            holder = "another process"
        os.close(fd)
        raise StoreError(
            f"results folder {folder} is in use by a run ({holder}); wait for it or choose --results"
        ) from None
    write_text(folder / LOCK_NAME, f"pid {os.getpid()}\n")
    return fd
