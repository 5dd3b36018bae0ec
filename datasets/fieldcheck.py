"""A per-field sanity check of a segmentation extraction: fields unlike the rest of their data set.

A field whose cell count or stain statistics lie far from the data set's distribution (an over-exposed image, a
field where the threshold settled on red cells, a blank or out-of-focus field) is flagged, so that the extraction
report lists it instead of passing it silently to the grid. Each statistic's robust z-score is its distance from
the median of the data set's fields over 1.4826 median absolute deviations; the scale never falls under a floor
(so that a statistic equal on almost every field, such as one cell per image, does not flag its first outlier by
a hair). Counts are compared on a log scale (``log1p``). On single-cell images (``keep = "central"``) the red-cell
level is the white cell's own stain, so the extraction leaves out the statistics built on it. The share of a field
above the threshold is not compared: it follows the number of white cells, which varies legitimately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_FIELDS = 8  # fewer fields give no distribution to compare with


@dataclass(frozen=True, kw_only=True)
class FieldStatistic:
    """One statistic of a field: its ``key`` in the field's stats, a label, a transform and the scale floor."""

    key: str
    label: str
    floor: float
    transform: Callable[[float], float] = float


STATISTICS = (
    FieldStatistic(key="found", label="cells found", floor=0.5, transform=math.log1p),
    FieldStatistic(key="rejected", label="red-cell-like regions rejected", floor=0.5, transform=math.log1p),
    FieldStatistic(key="threshold", label="stain threshold", floor=0.05),
    # near 1 when the threshold settled on red cells; on a log scale
    FieldStatistic(key="threshold_ratio", label="threshold over red-cell level", floor=0.25, transform=math.log),
    FieldStatistic(key="red_level", label="red-cell stain level", floor=0.05),
    FieldStatistic(key="brightness", label="background brightness", floor=5.0),
)


def flag_fields(
    stats: Sequence[Mapping[str, Any]], *, max_z: float, ignore: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The fields (each a mapping with ``field`` and the keys of :data:`STATISTICS`) with a statistic beyond
    ``max_z`` robust standard deviations; each flagged field as ``{"field", "reasons"}``, in input order.
    Statistics whose key is in ``ignore`` are not compared."""
    if len(stats) < MIN_FIELDS:
        return []
    reasons: dict[str, list[str]] = {}
    for st in STATISTICS:
        if st.key in ignore:
            continue
        raw = np.array([_number(s.get(st.key)) for s in stats])
        values = np.array([_transformed(st.transform, v) for v in raw])
        ok = np.isfinite(values)
        if ok.sum() < MIN_FIELDS:
            continue
        centre = float(np.median(values[ok]))
        scale = max(1.4826 * float(np.median(np.abs(values[ok] - centre))), st.floor)
        typical = float(np.median(raw[ok]))
        for s, v, r in zip(stats, values, raw):
            if math.isfinite(v) and abs(z := (v - centre) / scale) > max_z:
                reasons.setdefault(s["field"], []).append(f"{st.label} {r:.3g} (median {typical:.3g}, z {z:+.1f})")
    return [{"field": s["field"], "reasons": reasons[s["field"]]} for s in stats if s["field"] in reasons]


def _transformed(transform: Callable[[float], float], value: float) -> float:
    """``transform(value)``; NaN for a missing value or one outside the transform's domain (log of 0)."""
    if not math.isfinite(value):
        return math.nan
    try:
        return transform(value)
    except ValueError:
        return math.nan


def _number(value: Any) -> float:
    return float(value) if value is not None else math.nan
