"""Reading images and masks with errors that name the file, and the one rule that turns any array into RGB."""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.files import write_bytes
from cellbench.core.hashing import module_versions, source_digest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
READER_LIBRARIES = ("numpy", "cv2", "h5py")  # the libraries that decode and convert images
# a file OpenCV cannot decode becomes one DataError naming it; OpenCV's own C++ log lines would only add noise
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
MAX_PIXELS = 64_000_000  # default bound on a decoded image: far above microscopy fields (ALL-IDB1: 2592 x 1944)
MAX_PIXELS_ENV = "CELLBENCH_MAX_PIXELS"


def max_pixels() -> int:
    """The largest image (width x height) that is decoded: ``$CELLBENCH_MAX_PIXELS``, else :data:`MAX_PIXELS`.

    Read from the environment (not passed down) because worker processes decode images too and inherit it.

    Raises
    ------
    ConfigError
        When the variable is not a positive integer.
    """
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None or value == "":
        return MAX_PIXELS
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive integer (pixels), got {value!r}")
    return n


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header without decoding the pixels.

    Raises
    ------
    DataError
        When the file is missing or its header cannot be read.
    """
    bomb_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only the header is read; max_pixels() bounds
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")  # Pillow's notes on odd tags; the decoder has the last word on the file
            return im.size
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:  # Pillow's parsers raise all of these
        raise DataError(f"cannot read image {path}: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit


def check_size(path: str | Path, *, what: str = "image") -> None:
    """Refuse a file whose header declares more than :func:`max_pixels` pixels, before anything is decoded.

    A header Pillow cannot read is left to the decoder (which names the file if it cannot read it either).
    """
    try:
        width, height = image_size(path)
    except DataError:
        return
    limit = max_pixels()
    if width * height > limit:
        raise DataError(
            f"{what} {path} is {width} x {height} = {width * height:,} pixels, more than the {limit:,} allowed; "
            f"set {MAX_PIXELS_ENV} to read larger images"
        )


def reader_version() -> dict[str, str]:
    """What decides the pixels an image file reads as: this module's source hash and the decoders' versions.

    Every cache of values derived from pixels (features, pixel arrays, content digests) includes it in its key,
    so a change to image reading or an upgraded decoder rebuilds the caches instead of reusing stale ones. A fresh
    dict each call (the hashing is memoised), so a caller that edits it cannot change later keys.
    """
    return dict(_reader_version_items())


@lru_cache(maxsize=1)
def _reader_version_items() -> tuple[tuple[str, str], ...]:
    return ("code", source_digest(__file__)), *module_versions(*READER_LIBRARIES).items()


def as_rgb8(image: np.ndarray, *, where: str = "") -> np.ndarray:
    """``image`` (channels in RGB order) as a contiguous RGB ``uint8`` array (H, W, 3).

    The one rule for every image, decoded from a file, read from a container (HDF5, npz) or given in memory:

    - grey (H, W) or (H, W, 1) is repeated to three channels; an alpha channel (H, W, 4) is dropped;
    - ``uint8`` is kept as it is, ``uint16`` divided by 257 (65535 -> 255), ``bool`` True is 255;
    - other numbers (floats, other integers; NaN and infinities read as 0): floats within [0, 1] are multiplied
      by 255, values within [0, 255] kept, anything else stretched from its minimum and maximum to 0..255;
      then rounded.

    Raises
    ------
    DataError
        For another shape, an empty image or a non-numeric type; the message starts with ``where`` (the source)
        and names the shape and type.
    """
    img = np.asarray(image)
    prefix = f"{where}: " if where else ""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise DataError(
            f"{prefix}unsupported image shape {np.shape(image)} ({img.dtype}); grey (H, W), RGB (H, W, 3) or "
            "RGBA (H, W, 4) expected"
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"{prefix}the image is empty (shape {np.shape(image)})")
    img = _as_uint8(img[:, :, :3], prefix)
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def _as_uint8(img: np.ndarray, prefix: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img / 257.0).round().astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * np.uint8(255)
    floating = np.issubdtype(img.dtype, np.floating)
    if not (floating or np.issubdtype(img.dtype, np.integer)):
        raise DataError(f"{prefix}unsupported pixel type {img.dtype} (shape {img.shape}); a numeric image expected")
    x = np.where(np.isfinite(img), img, 0).astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if floating and lo >= 0.0 and hi <= 1.0:
        x *= 255.0
    elif lo < 0.0 or hi > 255.0:
        x = (x - lo) * (255.0 / ((hi - lo) or 1.0))
    return x.round().astype(np.uint8)


def read_image(path: str | Path | ImageSource) -> np.ndarray:
    """Read an image as an RGB ``uint8`` array of shape (H, W, 3), converted by :func:`as_rgb8`.

    ``path`` may be an :class:`ImageSource` (one image inside a larger file).

    Raises
    ------
    DataError
        If the file is missing, empty, not a readable image, or larger than :func:`max_pixels` (checked from the
        header, before decoding).
    """
    if isinstance(path, ImageSource):
        return path.read()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"cannot read image {path}: the file is empty")
    check_size(path)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. "Insufficient memory" on a huge image Pillow could not size
        raise DataError(f"cannot read image {path}: {str(exc).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise DataError(
            f"cannot read image {path}: not a valid image file (readable formats: {', '.join(IMAGE_SUFFIXES)})"
        )
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[:, :, 2::-1]  # OpenCV decodes BGR(A): RGB order (alpha dropped)
    return as_rgb8(img, where=f"image {path}")


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask image as a label array (grey levels kept; 0 = background)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    check_size(path, what="mask")
    try:
        m = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"cannot read mask {path}: {str(exc).strip().splitlines()[-1]}") from None
    if m is None:
        raise DataError(f"cannot read mask {path}: not a valid image file")
    if m.ndim == 3:
        m = m[:, :, 0]
    return m


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an RGB or grey ``uint8`` array as PNG (atomically, :func:`cellbench.core.files.write_bytes`)."""
    arr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise DataError(f"cannot encode PNG for {path}")
    write_bytes(path, buf.tobytes())


# -- lazy image sources: one image of a larger file, read only when needed -----------------------------


class ImageSource(ABC):
    """A lazy reference to one image's pixels, cheap to keep for every sample and to send to worker processes.

    :func:`read_image` accepts a source wherever it accepts a path, so feature extraction and the pixel
    cache read it like a file.
    """

    @abstractmethod
    def read(self) -> np.ndarray:
        """The image as RGB ``uint8`` (H, W, 3); a :class:`DataError` naming the file if it cannot be read."""

    @abstractmethod
    def describe(self) -> str:
        """Where the pixels come from, for messages (e.g. ``x.h5[12]``)."""

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, slots=True)
class H5Row(ImageSource):
    """Row ``index`` of the HDF5 dataset ``key`` in ``file`` (N × H × W × C or N × H × W), optionally
    centre-cropped to ``crop`` × ``crop`` pixels. Open files are cached per process (:func:`h5_file`)."""

    file: Path
    key: str
    index: int
    crop: int | None = None

    def read(self) -> np.ndarray:
        data = h5_dataset(self.file, self.key)
        try:
            img = np.asarray(data[self.index])
        except (OSError, ValueError, IndexError) as exc:
            raise DataError(f"cannot read {self.describe()}: {exc}") from None
        img = as_rgb8(img, where=self.describe())
        return center_crop(img, self.crop, self.describe()) if self.crop else img

    def describe(self) -> str:
        return f"{self.file}[{self.key}][{self.index}]"


@dataclass(frozen=True, slots=True)
class FileCrop(ImageSource):
    """The centre ``crop`` × ``crop`` pixels of the image file ``path``."""

    path: Path
    crop: int

    def read(self) -> np.ndarray:
        return center_crop(read_image(self.path), self.crop, str(self.path))

    def describe(self) -> str:
        return f"{self.path} (centre {self.crop}x{self.crop})"


def image_ref(sample) -> Path | ImageSource | None:
    """What :func:`read_image` should read for ``sample`` when it has no in-memory ``image``."""
    return sample.image_source if sample.image_source is not None else sample.image_path


def crop_window(image: np.ndarray, *, x0: int, y0: int, size: int, fill: tuple[int, ...] | int) -> np.ndarray:
    """The ``size`` square at (x0, y0) of ``image``; parts outside are filled with ``fill``."""
    h, w = image.shape[:2]
    out = np.empty((size, size, *image.shape[2:]), dtype=image.dtype)
    out[...] = fill
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + size), min(h, y0 + size)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def center_crop(img: np.ndarray, size: int, where: str) -> np.ndarray:
    """The centre ``size`` × ``size`` pixels of ``img`` (PCam's label refers to the centre 32 × 32)."""
    h, w = img.shape[:2]
    if size > h or size > w:
        raise DataError(f"{where}: cannot crop the centre {size}x{size} pixels of a {w}x{h} image")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[top : top + size, left : left + size])


H5_CACHE_BYTES = 8 * 2**20  # HDF5 chunk cache per open dataset: a few chunks of patches, bounded
MAX_OPEN_H5 = 16
_OPEN: dict[tuple, object] = {}  # (path, pid, size, mtime_ns) -> open h5py.File, oldest first
_DATASETS: dict[tuple, object] = {}  # (path, key, pid, size, mtime_ns) -> h5py.Dataset


def _file_key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"HDF5 file not found: {path}") from None
    # a forked child or a rewritten file gets its own handle
    return (str(path), os.getpid(), st.st_size, st.st_mtime_ns)


def h5_file(path: str | Path):
    """The HDF5 file at ``path``, opened read-only once per process (and reopened when it changes).

    At most :data:`MAX_OPEN_H5` files stay open; :func:`close_h5_files` closes them.

    Raises
    ------
    DataError
        If the file is missing or not an HDF5 file.
    """
    key = _file_key(Path(path))
    f = _OPEN.get(key)
    if f is None:
        if len(_OPEN) >= MAX_OPEN_H5:
            _close(next(iter(_OPEN)))
        try:
            f = h5py.File(key[0], "r", rdcc_nbytes=H5_CACHE_BYTES)
        except OSError as exc:
            raise DataError(f"cannot open {path}: not a readable HDF5 file ({exc})") from None
        _OPEN[key] = f
    return f


def h5_dataset(path: str | Path, key: str):
    """The dataset ``key`` of the HDF5 file at ``path`` (kept open like the file), or a DataError naming the
    file and the keys it has."""
    fkey = _file_key(Path(path))
    ds = _DATASETS.get((*fkey, key))
    if ds is None:
        ds = _DATASETS[(*fkey, key)] = h5_key(h5_file(path), key, path)
    return ds


def h5_key(f, key: str, path: str | Path):
    """Dataset ``key`` of the open HDF5 file ``f``, or a DataError naming the file and the keys it has."""
    if key not in f:
        found = ", ".join(sorted(f.keys())) or "none"
        raise DataError(f"{path}: no dataset {key!r} in the HDF5 file (datasets found: {found})")
    return f[key]


def h5_open(path: str | Path):
    """The HDF5 file at ``path`` opened read-only and not kept (use it in a ``with`` block), or a DataError."""
    if not Path(path).is_file():
        raise DataError(f"HDF5 file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot open {path}: not a readable HDF5 file ({exc})") from None


def _close(key: tuple) -> None:
    for k in [k for k in _DATASETS if k[:4] == key]:
        del _DATASETS[k]
    f = _OPEN.pop(key)
    try:
        f.close()
    except Exception:  # pragma: no cover - closing a handle of a vanished file
        pass


def close_h5_files() -> None:
    """Close the HDF5 files this process keeps open for :class:`H5Row` reads (they reopen on the next read)."""
    for key in list(_OPEN):
        _close(key)
