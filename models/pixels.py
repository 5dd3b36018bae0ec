"""Pixels for the deep models: images read once, fitted to the input size, cached, fed by ``tf.data``.

The cache is one ``.npy`` array (N × S × S × 3, uint8) per (data set fingerprint, extraction, size,
kind, padding, ids, image reading and resizing code, decoder versions), shared by every fold and model and
loaded memory-mapped. Cells keep their aspect ratio (long side resized, short side padded with the border
colour or zeros); patches are resized as they are. TensorFlow is imported only by :func:`make_dataset`.
"""

from __future__ import annotations

import inspect
import json
import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from skimage.color import hed2rgb, rgb2hed

from cellbench.core.bars import progress_bar
from cellbench.core.errors import ConfigError, DataError, check_on_bad_image
from cellbench.core.files import atomic_path, seal, sealed_cache_ok, write_json
from cellbench.core.hashing import stable_hash
from cellbench.core.types import DATA_KINDS, DataKind, Sample
from cellbench.datasets.io import as_rgb8, image_ref, read_image, reader_version

PIXEL_VERSION = 2  # bump when resizing, padding or the cache layout changes
KINDS = tuple(DATA_KINDS)
PADS = ("border", "zeros")
MIN_SIZE, MAX_SIZE = 8, 1024
RELEASE_ROWS = 4096  # rows written between releases of the output's pages (bounded resident memory)


@dataclass(frozen=True, kw_only=True)
class PixelSet:
    """A cached pixel array: row ``i`` holds sample ``ids[i]``; ``skipped`` lists unreadable samples."""

    ids: tuple[str, ...]
    path: Path
    skipped: tuple[str, ...] = ()

    def load(self) -> np.ndarray:
        """The N × S × S × 3 uint8 array, memory-mapped (read-only)."""
        return np.load(self.path, mmap_mode="r")


def fit_to_square(
    image: np.ndarray, size: int, *, keep_aspect: bool, pad: Literal["border", "zeros"] = "border"
) -> np.ndarray:
    """Resize an RGB ``image`` to ``size`` × ``size``.

    With ``keep_aspect`` the long side is resized to ``size`` and the short side padded (centred) with
    the median border colour (the background around a cell crop) or zeros; otherwise the image is
    stretched.
    """
    if pad not in PADS:
        raise ConfigError(f"unknown padding {pad!r}; allowed: {', '.join(PADS)}")
    h, w = image.shape[:2]
    if not keep_aspect or h == w:
        interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(image, (size, size), interpolation=interp)
    scale = size / max(h, w)
    nh, nw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if pad == "zeros":
        colour = [0, 0, 0]
    else:
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        colour = [int(v) for v in np.median(border, axis=0)]
    top, left = (size - nh) // 2, (size - nw) // 2
    return cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=colour)


def pixel_cache(
    samples: Sequence[Sample],
    *,
    size: int,
    dataset_fingerprint: str,
    extraction: str,
    cache_dir: str | os.PathLike,
    kind: DataKind = "cell",
    pad: Literal["border", "zeros"] = "border",
    on_bad_image: Literal["raise", "skip"] = "raise",
    progress: bool = True,
) -> PixelSet:
    """The pixels of ``samples`` fitted to ``size`` px, read from the cache or built once and cached.

    ``kind="cell"`` or ``"crop"`` keeps the aspect ratio (padding with ``pad``); ``"patch"`` resizes as is.
    In-memory images are converted by :func:`cellbench.datasets.io.as_rgb8`, files read by
    :func:`cellbench.datasets.io.read_image`.
    The array is written to a temporary file and renamed (:func:`cellbench.core.files.atomic_path`), so a killed
    run never leaves a partial cache.

    Raises
    ------
    DataError
        For an unreadable image when ``on_bad_image="raise"``, or when every image is unreadable.
    """
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"pixel size must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    if kind not in KINDS:
        raise ConfigError(f"unknown sample kind {kind!r}; allowed: {', '.join(KINDS)}")
    if pad not in PADS:
        raise ConfigError(f"unknown padding {pad!r}; allowed: {', '.join(PADS)}")
    check_on_bad_image(on_bad_image)
    ids = [s.id for s in samples]
    key = stable_hash(
        {
            "data": dataset_fingerprint,
            "extraction": extraction,
            "size": size,
            "kind": kind,
            "pad": pad,
            "ids": stable_hash(ids),
            "v": PIXEL_VERSION,
            "reader": reader_version(),
            "resize": _resize_code(),
        }
    )
    folder = Path(cache_dir) / "pixels"
    path, index = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _read_index(path, index)
    if cached is not None and (on_bad_image == "skip" or not cached.skipped):
        return cached

    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(samples), size, size, 3))
        kept, skipped = [], []
        for i, s in enumerate(
            progress_bar(samples, desc=f"pixels {extraction} {size}px", unit="img", enabled=progress)
        ):
            try:
                img = as_rgb8(s.image) if s.image is not None else read_image(image_ref(s))
            except DataError as exc:
                if on_bad_image == "raise":
                    raise DataError(f"sample {s.id}: {exc} (use --on-bad-image skip to skip it)") from None
                skipped.append(s.id)
                continue
            out[i] = fit_to_square(img, size, keep_aspect=kind != "patch", pad=pad)
            kept.append(i)
            if (i + 1) % RELEASE_ROWS == 0:
                _release(out)
        if not kept:
            raise DataError(f"none of the {len(samples)} images could be read ({extraction}, {size} px)")
        if skipped:  # compact the rows of readable images into a second file, renamed over the first
            with atomic_path(tmp) as tmp2:
                compact = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(len(kept), size, size, 3))
                for a in range(0, len(kept), RELEASE_ROWS):  # in blocks: out[kept] at once would copy it all to RAM
                    compact[a : a + RELEASE_ROWS] = out[kept[a : a + RELEASE_ROWS]]
                    _release(compact)
                    _release(out)
                compact.flush()
                del out, compact
        else:
            out.flush()
            del out
        write_json(index, {"ids": [ids[i] for i in kept], "skipped": skipped, "size": size, "key": key})
    seal(path)
    return PixelSet(ids=tuple(ids[i] for i in kept), path=path, skipped=tuple(skipped))


@lru_cache(maxsize=1)
def _resize_code() -> str:
    """Hash of the resizing code's source, so that changing how pixels are fitted rebuilds their caches."""
    return stable_hash(inspect.getsource(fit_to_square))


def _release(array: np.memmap) -> None:
    """Write a memory-mapped array's dirty pages to its file and drop them from this process's resident set,
    so that caching 262,144 patches never holds the whole array in memory (the data stay in the file)."""
    array.flush()
    mapping = getattr(array, "_mmap", None)  # numpy keeps the mmap object here; absent on a view
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _read_index(path: Path, index: Path) -> PixelSet | None:
    if not (index.is_file() and sealed_cache_ok(path, what="pixel cache")):
        return None
    try:
        meta = json.loads(index.read_text())
        n = np.load(path, mmap_mode="r").shape[0]
    except (OSError, ValueError):
        return None  # damaged or half-written by another process: rebuild
    if n != len(meta["ids"]):
        return None
    return PixelSet(ids=tuple(meta["ids"]), path=path, skipped=tuple(meta["skipped"]))


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training-time augmentation for rotation-invariant cells and tissue.

    Random horizontal and vertical flips, random 90° turns, and per-image brightness (± fraction of the
    0-255 range), contrast (factor in 1 ± ``contrast``) and hue (± fraction of the hue circle) jitter; with
    ``hed`` > 0, HED colour augmentation last (:func:`hed_jitter`).
    """

    enabled: bool = True
    flips: bool = True
    rot90: bool = True
    brightness: float = 0.08
    contrast: float = 0.15
    hue: float = 0.02
    hed: float = 0.0

    def __post_init__(self):
        for name, top in (("brightness", 1.0), ("contrast", 1.0), ("hue", 0.5), ("hed", 1.0)):
            value = getattr(self, name)
            if not 0 <= value <= top:
                raise ConfigError(f"augmentation {name} must be between 0 and {top}, got {value!r}")

    @classmethod
    def from_param(cls, value: bool | Mapping[str, Any] | AugmentConfig) -> AugmentConfig:
        """From a model's ``augment`` parameter: ``true``/``false`` or a table of the fields above."""
        if isinstance(value, AugmentConfig):
            return value
        if isinstance(value, bool):
            return cls(enabled=value)
        if isinstance(value, Mapping):
            allowed = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ConfigError(
                    f"unknown augmentation option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
                )
            return cls(**value)
        raise ConfigError(
            f"augment must be true, false or a table of {', '.join(f.name for f in fields(cls))}; got {value!r}"
        )


def make_dataset(
    images: np.ndarray,
    y: np.ndarray | None,
    *,
    batch_size: int,
    training: bool,
    augment: AugmentConfig,
    seed: int,
    preprocess: Callable[[Any], Any] | None = None,
    indices: np.ndarray | None = None,
):
    """A batched, prefetched ``tf.data`` pipeline over rows of ``images`` (uint8, N × S × S × 3).

    Yields float32 images in [0, 255] (then ``preprocess`` if given) and, when ``y`` is given, the rows
    of ``y`` (aligned with ``images``). ``indices`` picks the rows to use, repeats allowed (over-sampling);
    rows are gathered per batch, so a memory-mapped array is never copied whole. With ``training`` the
    order is reshuffled every epoch and ``augment`` is applied; otherwise rows come in order, unchanged.

    Shuffling and augmentation are seeded by ``seed``: ``tf.data``'s seeded random stream gives every
    batch of every epoch its own seed, from which :func:`augment_images` draws, so two runs with the same
    seed see identical batches while each epoch sees new augmentations.
    """
    import tensorflow as tf

    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"images must be an N × S × S × 3 uint8 array, got shape {images.shape}")
    if y is not None and len(y) != len(images):
        raise DataError(f"{len(y)} labels for {len(images)} images")
    idx = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise DataError("no images to feed (empty index)")
    shape = images.shape[1:]
    jitter = training and augment.enabled
    labels = None if y is None else tf.constant(np.asarray(y))

    def gather(rows, batch_seed):
        batch = np.ascontiguousarray(images[rows], dtype=np.uint8)
        if jitter:
            batch = augment_images(batch, rng=np.random.default_rng([seed, int(batch_seed) % 2**63]), config=augment)
        return batch

    def load(rows, batch_seed):
        x = tf.numpy_function(gather, [rows, batch_seed], tf.uint8, stateful=False)
        x = tf.cast(tf.ensure_shape(x, (None, *shape)), tf.float32)
        if preprocess is not None:
            x = preprocess(x)
        return x if labels is None else (x, tf.gather(labels, rows))

    ds = tf.data.Dataset.from_tensor_slices(idx)
    if training:
        ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    # one seeded random value per batch, new each epoch (rerandomised per iteration, deterministic per seed)
    noise = (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        if jitter
        else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat()
    )
    ds = tf.data.Dataset.zip(ds, noise).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


_GREY_AXIS_CROSS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / np.sqrt(3)


def augment_images(batch: np.ndarray, *, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Randomly flip, turn by 90° and colour-jitter each image of a uint8 batch (B × S × S × 3).

    Colour jitter is one affine map per image (OpenCV ``transform``, saturating): a hue rotation about
    the grey axis, a contrast factor about the image's mean colour and a brightness shift.
    """
    n = len(batch)
    turns = rng.integers(0, 4, n) if config.rot90 else np.zeros(n, int)
    flips = rng.integers(0, 2, (n, 2)).astype(bool) if config.flips else np.zeros((n, 2), bool)
    r = rng.uniform(-1.0, 1.0, (n, 3))
    colour = bool(config.hue or config.contrast or config.brightness)
    out = np.empty_like(batch)
    for i in range(n):
        img = batch[i]
        if colour:
            theta = 2 * np.pi * config.hue * r[i, 0]
            rot = np.cos(theta) * np.eye(3) + np.sin(theta) * _GREY_AXIS_CROSS + (1 - np.cos(theta)) / 3
            factor = 1 + config.contrast * r[i, 1]
            mean = np.asarray(cv2.mean(img)[:3])
            shift = (1 - factor) * rot @ mean + 255 * config.brightness * r[i, 2]
            img = cv2.transform(img, np.c_[factor * rot, shift])
        img = np.rot90(img, turns[i])
        if flips[i, 0]:
            img = img[:, ::-1]
        if flips[i, 1]:
            img = img[::-1]
        out[i] = img
    if config.hed:  # drawn after the others, which stay as they were without it
        out = hed_jitter(out, sigma=config.hed, rng=rng)
    return out


def hed_jitter(batch: np.ndarray, *, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """HED colour augmentation (Tellez et al., 2018) of a uint8 batch (B × S × S × 3).

    Each image is separated into haematoxylin, eosin and DAB densities (:func:`skimage.color.rgb2hed`); each
    density is scaled by a factor in 1 ± ``sigma`` and shifted by ± ``sigma`` (uniform, per image and channel),
    and the image recombined (:func:`skimage.color.hed2rgb`).
    """
    out = np.empty_like(batch)
    alpha = rng.uniform(1 - sigma, 1 + sigma, (len(batch), 3))
    beta = rng.uniform(-sigma, sigma, (len(batch), 3))
    for i, img in enumerate(batch):
        hed = rgb2hed(img)
        out[i] = np.clip(np.rint(hed2rgb(hed * alpha[i] + beta[i]) * 255), 0, 255).astype(np.uint8)
    return out
