"""Extractions turn a data set into single-cell samples.

``given`` uses the samples a data set already has (single-cell crops or patches). Field data sets
add ``manual`` (cells cut from annotations) and ``segmentation`` (cells found automatically).
"""

from __future__ import annotations

from collections.abc import Callable

from bench.errors import DataError
from bench.registry import Registry
from bench.types import Dataset, Sample

Extractor = Callable[..., tuple[Sample, ...]]

EXTRACTIONS: Registry[Extractor] = Registry("extraction")


@EXTRACTIONS.register("given")
def given(dataset: Dataset, **options) -> tuple[Sample, ...]:
    """The data set's own single-cell samples."""
    if not dataset.samples:
        raise DataError(
            f"data set {dataset.name!r} holds whole fields, not single cells; choose the extraction "
            f"'manual' or 'segmentation' (known extractions: {', '.join(EXTRACTIONS.names())})"
        )
    return dataset.samples
