"""Writers of tiny files in the original release formats (PCam HDF5, Kaggle tif + CSV, MedMNIST npz)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import h5py
import numpy as np

PCAM = "camelyonpatch_level_2_split_"


def write_pcam_split(
    folder: Path,
    split: str,
    labels: list[int] | np.ndarray,
    *,
    slides: list[str] | None = None,
    seed: int = 0,
    chunk: int = 4096,
    n_x: int | None = None,
    side: int = 96,
    copies: dict[int, int] | None = None,
) -> tuple[Path, Path]:
    """Write ``<split>_x.h5`` (random pixels, written ``chunk`` rows at a time), ``_y.h5`` and, with ``slides``,
    ``_meta.csv``. ``n_x`` writes a different number of patches than labels (a damaged pair); ``copies``
    maps a row to the row whose pixels it repeats (duplicate patches)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.uint8)
    n = len(labels) if n_x is None else n_x
    x_path, y_path = folder / f"{PCAM}{split}_x.h5", folder / f"{PCAM}{split}_y.h5"
    rng = np.random.default_rng(seed)
    with h5py.File(x_path, "w") as f:
        x = f.create_dataset("x", shape=(n, side, side, 3), dtype=np.uint8, chunks=(min(max(n, 1), 32), side, side, 3))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            x[start:stop] = np.frombuffer(rng.bytes((stop - start) * side * side * 3), np.uint8).reshape(
                stop - start, side, side, 3
            )
        for dst, src in (copies or {}).items():
            x[dst] = x[src]
    with h5py.File(y_path, "w") as f:
        f.create_dataset("y", data=labels.reshape(-1, 1, 1, 1))
    if slides is not None:
        with (folder / f"{PCAM}{split}_meta.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["", "coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"])
            for i, (lab, wsi) in enumerate(zip(labels.tolist(), slides, strict=True)):
                w.writerow([i, 100 + i, 200 + i, bool(lab), bool(lab), wsi])
    return x_path, y_path


def pcam_patch(x_path: Path, index: int) -> np.ndarray:
    with h5py.File(x_path, "r") as f:
        return f["x"][index]


def write_tif(path: Path, image: np.ndarray) -> Path:
    """An RGB array as a TIFF file (OpenCV writes BGR, so the channels are swapped first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".tif", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_kaggle(folder: Path, labels: dict[str, int], *, seed: int = 0, extra_images: tuple[str, ...] = ()) -> Path:
    """``train/<id>.tif`` (random 96x96 RGB) for every id in ``labels`` and ``extra_images``, and
    ``train_labels.csv`` with the rows of ``labels`` only."""
    rng = np.random.default_rng(seed)
    for sid in [*labels, *extra_images]:
        write_tif(folder / "train" / f"{sid}.tif", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    with (folder / "train_labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for sid, lab in labels.items():
            w.writerow([sid, lab])
    return folder


def write_medmnist(
    path: Path,
    *,
    n: tuple[int, int, int] = (12, 4, 6),
    classes: int = 9,
    rgb: bool = True,
    side: int = 28,
    seed: int = 0,
    drop: tuple[str, ...] = (),
    compressed: bool = True,
) -> dict[str, np.ndarray]:
    """A MedMNIST-style npz: every class appears in every split (labels cycle), images random."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, side, side, 3) if rgb else (count, side, side)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % classes).reshape(-1, 1).astype(np.uint8)
    for key in drop:
        arrays.pop(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays
