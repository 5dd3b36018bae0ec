"""Stain normalisation per fold: a reference fitted on each training fold's images, every image normalised to it.

A suite's ``[stain] method`` (``reinhard`` or ``macenko``) makes both arms read normalised images: for each
outer fold (and for fold -1, the refit on all development data, where one runs) the reference is fitted on a
seeded sample of that fold's training images only, and every sample of the task (training, test and external)
is normalised to it. The fold's features, pixels and embeddings are then computed from these images and cached
under a fingerprint that adds the reference's key to the data set's; ``method = "none"`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Sample
from cellbench.datasets.io import as_rgb8, image_ref, read_image
from cellbench.datasets.stain import StainReference, fit_reference, normalise
from cellbench.run.cv import Folds


@dataclass(frozen=True, kw_only=True)
class FoldStain:
    """One fold's reference and the fingerprint its normalised images are cached under."""

    fold: int
    reference: StainReference
    fingerprint: str


def read_rgb(sample: Sample) -> np.ndarray:
    """The sample's image as uint8 RGB (in memory or read from its file)."""
    if sample.image is not None:
        return as_rgb8(sample.image, where=f"sample {sample.id}")
    if image_ref(sample) is None:
        raise DataError(f"sample {sample.id}: it has neither an image nor an image path")
    return read_image(image_ref(sample))


def training_positions(folds: Folds, fold: int) -> np.ndarray:
    """Positions (in ``folds.ids``) of the training samples of ``fold``; fold -1: every development sample."""
    return np.arange(len(folds.ids)) if fold < 0 else folds.train_test(fold)[0]


def fold_reference(dev: Sequence[Sample], folds: Folds, fold: int, *, method: str, max_images: int,
                   seed: int, fingerprint: str) -> FoldStain:  # fmt: skip
    """The reference of ``fold``, fitted on at most ``max_images`` of its training images (a seeded choice).

    Only the training samples of ``fold`` are read: a test image cannot change the reference.
    """
    train = training_positions(folds, fold)
    rng = np.random.default_rng([seed, fold + 1])
    picked = np.sort(rng.choice(train, min(max_images, len(train)), replace=False))
    reference = fit_reference((read_rgb(dev[i]) for i in picked), method=method, seed=seed)
    return FoldStain(
        fold=fold, reference=reference, fingerprint=stable_hash({"data": fingerprint, "stain": reference.key})
    )


def normalised(samples: Sequence[Sample], stain: FoldStain) -> tuple[Sample, ...]:
    """``samples`` with their images normalised to ``stain``'s reference, held in memory."""
    return tuple(replace(s, image=normalise(read_rgb(s), stain.reference)) for s in samples)


def stain_key(method: str, stains: Sequence[FoldStain]) -> str:
    """What a job's key adds for a normalised task: the method and every fold's reference."""
    return f"{method}:{stable_hash({s.fold: s.reference.key for s in stains}, length=16)}"
