"""Pixels for the deep models: images read once, resized to the input size, cached, fed by ``tf.data``.

The cache is one ``.npy`` array (N × S × S × 3, uint8) per (data set fingerprint, extraction, size, ids),
shared by every fold and model. Cells keep their aspect ratio (long side resized, then padded with the
image's border colour); patches are resized as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from bench.errors import ConfigError, DataError
from bench.types import Sample, stable_hash

PIXEL_VERSION = 1  # bump when resizing or padding changes


@dataclass(frozen=True, kw_only=True)
class PixelSet:
    path: Path
    ids: tuple[str, ...]
    skipped: tuple[str, ...]

    def load(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


def fit_to_square(image: np.ndarray, size: int, *, keep_aspect: bool) -> np.ndarray:
    """Resize ``image`` to ``size``×``size``; with ``keep_aspect`` pad the short side with the border colour."""
    h, w = image.shape[:2]
    if not keep_aspect or h == w:
        interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(image, (size, size), interpolation=interp)
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    colour = [int(v) for v in np.median(border, axis=0)]
    top, left = (size - nh) // 2, (size - nw) // 2
    return cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=colour)


def pixel_cache(
    samples: Sequence[Sample],
    *,
    size: int,
    kind: Literal["cell", "patch"],
    dataset_fingerprint: str,
    extraction: str,
    cache_dir: Path,
    on_bad_image: Literal["raise", "skip"] = "raise",
    progress: bool = True,
) -> PixelSet:
    """The resized pixels of ``samples`` (from the cache when present)."""
    from tqdm.auto import tqdm

    from datasets.io import read_image

    if size < 16:
        raise ConfigError(f"deep input size must be at least 16 px, got {size}")
    ids = [s.id for s in samples]
    key = stable_hash(
        {
            "data": dataset_fingerprint,
            "extraction": extraction,
            "size": size,
            "kind": kind,
            "ids": stable_hash(ids),
            "v": PIXEL_VERSION,
        }
    )
    folder = Path(cache_dir) / "pixels"
    path = folder / f"{key}.npy"
    meta = folder / f"{key}.skipped"
    if path.is_file():
        skipped = tuple(meta.read_text().split()) if meta.is_file() else ()
        if on_bad_image == "skip" or not skipped:
            kept = tuple(i for i in ids if i not in set(skipped))
            return PixelSet(path=path, ids=kept, skipped=skipped)
    out = np.zeros((len(samples), size, size, 3), np.uint8)
    kept_rows, skipped_ids = [], []
    for i, s in enumerate(tqdm(samples, desc=f"pixels {extraction} {size}px", unit="img", disable=not progress)):
        try:
            img = s.image if s.image is not None else read_image(s.image_path)
        except DataError as exc:
            if on_bad_image == "raise":
                raise DataError(f"{exc} (use --on-bad-image skip to skip unreadable images)") from None
            skipped_ids.append(s.id)
            continue
        out[i] = fit_to_square(img, size, keep_aspect=kind == "cell")
        kept_rows.append(i)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp.npy"
    np.save(tmp, out[kept_rows])
    if skipped_ids:
        meta.write_text("\n".join(skipped_ids))
    tmp.replace(path)
    return PixelSet(path=path, ids=tuple(ids[i] for i in kept_rows), skipped=tuple(skipped_ids))


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training-time augmentation (rotation-invariant cells and tissue): flips, 90° turns, colour jitter."""

    enabled: bool = True
    flips: bool = True
    rot90: bool = True
    brightness: float = 0.08
    contrast: float = 0.15
    hue: float = 0.02


def make_dataset(
    images: np.ndarray,
    y: np.ndarray | None,
    *,
    batch_size: int,
    training: bool,
    augment: AugmentConfig,
    seed: int,
):
    """A ``tf.data`` pipeline of float32 images in [0, 255]; shuffled and augmented only when ``training``.

    Augmentation uses stateless random ops seeded by (seed, element counter), so it is deterministic for a
    seed and differs between epochs.
    """
    import tensorflow as tf

    x = tf.data.Dataset.from_tensor_slices(np.asarray(images))
    ds = x if y is None else tf.data.Dataset.zip((x, tf.data.Dataset.from_tensor_slices(np.asarray(y))))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if augment.enabled:
            counter = tf.data.Dataset.counter()
            ds = tf.data.Dataset.zip((ds, counter)).map(
                lambda item, n: _augment(item, n, seed, augment), num_parallel_calls=1, deterministic=True
            )
    if not training or not augment.enabled:
        ds = ds.map(_to_float, num_parallel_calls=1, deterministic=True)
    return ds.batch(batch_size).prefetch(2)


def _to_float(*item):
    import tensorflow as tf

    if len(item) == 1:
        return tf.cast(item[0], tf.float32)
    return tf.cast(item[0], tf.float32), item[1]


def _augment(item, n, seed, cfg: AugmentConfig):
    import tensorflow as tf

    img, label = item
    img = tf.cast(img, tf.float32) / 255.0
    s = tf.stack([tf.cast(seed, tf.int64), n])

    def sub(k):
        return tf.random.experimental.stateless_fold_in(s, k)

    if cfg.flips:
        img = tf.image.stateless_random_flip_left_right(img, sub(1))
        img = tf.image.stateless_random_flip_up_down(img, sub(2))
    if cfg.rot90:
        k = tf.random.stateless_uniform([], sub(3), 0, 4, dtype=tf.int32)
        img = tf.image.rot90(img, k)
    if cfg.brightness:
        img = tf.image.stateless_random_brightness(img, cfg.brightness, sub(4))
    if cfg.contrast:
        img = tf.image.stateless_random_contrast(img, 1 - cfg.contrast, 1 + cfg.contrast, sub(5))
    if cfg.hue:
        img = tf.image.stateless_random_hue(img, cfg.hue, sub(6))
    return tf.clip_by_value(img, 0.0, 1.0) * 255.0, label
