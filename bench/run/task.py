"""Prepared task data: what a job needs, saved once per (data set, extraction, features, folds).

The driver writes one ``.npz`` file per task; workers (local processes or Dask workers reading a
shared path) load it once and keep it in memory for the jobs that follow.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class FoldInputs:
    """One fold's inputs of a stain-normalised task (:mod:`cellbench.run.stain`): features, pixel and embedding
    caches of the images normalised to the reference fitted on that fold's training images."""

    X: np.ndarray | None = None
    pixels: dict[int, str] = field(default_factory=dict)
    embeddings: dict[str, str] = field(default_factory=dict)
    reference: str = ""  # the fold's reference as JSON (cellbench.datasets.stain.StainReference.as_json)


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
    stain: str = "none"  # stain normalisation; other than "none", inputs are per fold in ``by_fold``
    by_fold: dict[int, FoldInputs] | None = None  # fold (-1: the refit on all development data) -> its inputs

    def fold_inputs(self, fold: int) -> FoldInputs:
        """The stain-normalised inputs of ``fold``."""
        if self.by_fold is None or fold not in self.by_fold:
            have = ", ".join(map(str, self.by_fold or ())) or "none"
            raise CellbenchError(f"no stain-normalised inputs for fold {fold} in this task (it has folds: {have})")
        return self.by_fold[fold]

    def features(self, fold: int) -> np.ndarray | None:
        """The handcrafted features ``fold``'s model reads (``None`` where none were extracted)."""
        return self.X if self.by_fold is None else self.fold_inputs(fold).X

    def embedding(self, name: str, fold: int | None = None) -> np.ndarray:
        """The cached embedding vectors ``name`` (``user`` for the user's file), one row per task row; a
        stain-normalised task's frozen-backbone embeddings are ``fold``'s."""
        paths = self.embeddings or {}
        if self.by_fold is not None and name != "user":
            paths = self._of_fold(fold).embeddings
        if name not in paths:
            have = ", ".join(paths) or "none"
            raise CellbenchError(f"no cached embeddings {name!r} for this task (it has: {have})")
        return np.load(paths[name], mmap_mode="r")

    def images(self, size: int, fold: int | None = None) -> np.ndarray:
        """The cached pixels at ``size`` px; a stain-normalised task's are ``fold``'s."""
        pixels = self.pixels if self.by_fold is None else self._of_fold(fold).pixels
        if not pixels or size not in pixels:
            raise KeyError(f"no cached pixels at {size} px for this task")
        return np.load(pixels[size], mmap_mode="r")

    def _of_fold(self, fold: int | None) -> FoldInputs:
        if fold is None:
            raise CellbenchError(f"this task's images are stain-normalised per fold ({self.stain}): name the fold")
        return self.fold_inputs(fold)

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
    if task.by_fold is not None:  # absent from an unnormalised task, whose file (and name) stay as they were
        arrays["stain"] = np.asarray(task.stain)
        for f, inputs in task.by_fold.items():
            arrays[f"fold{f}:reference"] = np.asarray(inputs.reference)
            if inputs.X is not None:
                arrays[f"fold{f}:X"] = np.ascontiguousarray(inputs.X, dtype=np.float64)
            for size, path in inputs.pixels.items():
                arrays[f"fold{f}:pixels_{size}"] = np.asarray(str(path))
            for name, path in inputs.embeddings.items():
                arrays[f"fold{f}:embedding:{name}"] = np.asarray(str(path))
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
            stain=str(z["stain"]) if "stain" in z.files else "none",
            by_fold=_by_fold(z) if "stain" in z.files else None,
        )


def _by_fold(z) -> dict[int, FoldInputs]:
    """The per-fold inputs of a stain-normalised task file (keys ``fold<f>:<what>``)."""
    folds = sorted({int(k[4:].split(":", 1)[0]) for k in z.files if k.startswith("fold") and ":" in k})
    out = {}
    for f in folds:
        prefix = f"fold{f}:"
        own = {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}
        out[f] = FoldInputs(
            X=own.get("X"),
            pixels={int(k.split("_")[1]): str(v) for k, v in own.items() if k.startswith("pixels_")},
            embeddings={k.split(":", 1)[1]: str(v) for k, v in own.items() if k.startswith("embedding:")},
            reference=str(own.get("reference", "")),
        )
    return out
