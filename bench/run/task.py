"""Prepared task data: what a job needs, saved once per (data set, extraction, features, folds).

The driver writes one ``.npz`` file per task; workers (local processes or Dask workers reading a
shared path) load it once and keep it in memory for the jobs that follow.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class TaskData:
    """Features, labels, groups and fold assignments of one (data set, extraction)."""

    ids: np.ndarray  # str
    y: np.ndarray  # class indices
    groups: np.ndarray | None  # str, or None when unknown
    X: np.ndarray | None  # features, or None when no classical model runs
    feature_names: tuple[str, ...]
    tests: tuple[np.ndarray, ...]  # test positions per fold
    classes: tuple[str, ...]
    positive: int | None
    pixels: dict[int, str] | None = None  # input size -> cached pixel array (rows aligned with ``ids``)
    kind: str = "cell"  # "cell" or "patch": how images were fitted to pixels and which features apply
    feature_config: str = ""  # canonical JSON of the FeatureConfig the columns of ``X`` came from
    external: np.ndarray | None = None  # positions of an external test set: in no fold, never trained on
    embeddings: dict[str, str] | None = None  # embedding id -> cached .npy of vectors (rows aligned with ``ids``)

    def embedding(self, name: str) -> np.ndarray:
        """The cached embedding vectors ``name`` (``user`` for the user's file), one row per task row."""
        if not self.embeddings or name not in self.embeddings:
            have = ", ".join(self.embeddings or ()) or "none"
            raise CellbenchError(f"no cached embeddings {name!r} for this task (it has: {have})")
        return np.load(self.embeddings[name], mmap_mode="r")

    def images(self, size: int) -> np.ndarray:
        if not self.pixels or size not in self.pixels:
            raise KeyError(f"no cached pixels at {size} px for this task")
        return np.load(self.pixels[size], mmap_mode="r")

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(training, test) positions of ``fold``; fold -1 is the whole development set vs the external set (none
        without one: a final model's refit, :mod:`cellbench.run.final`)."""
        if fold < 0:
            test = self.external if self.external is not None else np.empty(0, dtype=np.int64)
        else:
            test = self.tests[fold]
        mask = np.ones(len(self.ids), bool)
        mask[test] = False
        if self.external is not None:
            mask[self.external] = False
        return np.flatnonzero(mask), test


def save_task(task: TaskData, folder: Path) -> Path:
    """Write ``task`` atomically into ``folder`` under a name derived from its content; return the path."""
    arrays = {
        "ids": task.ids.astype(str),
        "y": task.y.astype(np.int64),
        "classes": np.asarray(task.classes, dtype=str),
        "positive": np.asarray(-1 if task.positive is None else task.positive),
        "feature_names": np.asarray(task.feature_names, dtype=str),
        "kind": np.asarray(task.kind),
        "feature_config": np.asarray(task.feature_config),
    }
    if task.groups is not None:
        arrays["groups"] = task.groups.astype(str)
    if task.X is not None:
        arrays["X"] = np.ascontiguousarray(task.X, dtype=np.float64)
    if task.external is not None:
        arrays["external"] = task.external.astype(np.int64)
    for size, path in (task.pixels or {}).items():
        arrays[f"pixels_{size}"] = np.asarray(str(path))
    for name, path in (task.embeddings or {}).items():
        arrays[f"embedding:{name}"] = np.asarray(str(path))
    for f, t in enumerate(task.tests):
        arrays[f"test_{f}"] = t.astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"task-{_digest(arrays)}.npz"
    if path.exists() and _damage(path) is not None:
        log.warning("task file %s failed its integrity check (%s); writing it again", path, _damage(path))
        path.unlink()
    if not path.exists():
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
    return path


def _digest(arrays) -> str:
    """The content hash a task file is named by (names, shapes and bytes of its arrays)."""
    h = hashlib.blake2b(digest_size=12)
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(str(arrays[k].shape).encode())
        h.update(arrays[k].tobytes())
    return h.hexdigest()


def _damage(path: Path) -> str | None:
    """Why the task file ``path`` does not hold what its name says (``None`` when it does)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            digest = _digest({k: z[k] for k in z.files})
    except Exception as exc:  # a truncated or garbled zip raises any of several types
        return f"unreadable: {type(exc).__name__}: {exc}"
    return None if path.stem == f"task-{digest}" else f"its content hashes to {digest}"


@functools.lru_cache(maxsize=8)
def load_task(path: str) -> TaskData:
    """Load a task file (cached per process), after checking that its content matches its name.

    Raises
    ------
    DataError
        When the file was changed or damaged since it was written.
    """
    if (problem := _damage(Path(path))) is not None:
        raise DataError(f"task file {path} is damaged ({problem}); rerun the suite to write it again")
    with np.load(path, allow_pickle=False) as z:
        n_folds = sum(1 for k in z.files if k.startswith("test_"))
        positive = int(z["positive"])
        return TaskData(
            ids=z["ids"],
            y=z["y"],
            groups=z["groups"] if "groups" in z.files else None,
            X=z["X"] if "X" in z.files else None,
            feature_names=tuple(z["feature_names"].tolist()),
            tests=tuple(z[f"test_{f}"] for f in range(n_folds)),
            classes=tuple(z["classes"].tolist()),
            positive=None if positive < 0 else positive,
            pixels={int(k.split("_")[1]): str(z[k]) for k in z.files if k.startswith("pixels_")} or None,
            kind=str(z["kind"]) if "kind" in z.files else "cell",
            feature_config=str(z["feature_config"]) if "feature_config" in z.files else "",
            external=z["external"] if "external" in z.files else None,
            embeddings={k.split(":", 1)[1]: str(z[k]) for k in z.files if k.startswith("embedding:")} or None,
        )
