"""Reading images and masks with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bench.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as an RGB ``uint8`` array of shape (H, W, 3).

    Grey images are repeated to three channels, an alpha channel is dropped and 16-bit images are
    scaled to 8 bits.

    Raises
    ------
    DataError
        If the file is missing, empty or not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"cannot read image {path}: the file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DataError(
            f"cannot read image {path}: not a valid image file (readable formats: {', '.join(IMAGE_SUFFIXES)})"
        )
    return _to_rgb8(img, path)


def _to_rgb8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        finite = np.nan_to_num(img.astype(np.float64))
        lo, hi = float(finite.min()), float(finite.max())
        img = ((finite - lo) / (hi - lo or 1.0) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise DataError(f"cannot read image {path}: unsupported shape {img.shape} (grey, RGB or RGBA expected)")
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask image as a label array (grey levels kept; 0 = background)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    m = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DataError(f"cannot read mask {path}: not a valid image file")
    if m.ndim == 3:
        m = m[:, :, 0]
    return m


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an RGB or grey ``uint8`` array as PNG (atomically: a temporary file is renamed)."""
    path = Path(path)
    arr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise DataError(f"cannot encode PNG for {path}")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
