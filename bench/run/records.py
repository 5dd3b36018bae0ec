"""What the store keeps about each (data set, extraction): typed records with the JSON they are stored as.

The runner builds one :class:`DataSetRecord` per (data set, extraction) it prepares; the store saves it as JSON
(``data_sets.info``) and gives it back; the leaderboard reads its fields. ``as_json``/``from_json`` keep the
stored text as it always was (same keys), so stores written before these records existed read the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


def _known(cls, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True, kw_only=True)
class ExternalInfo:
    """A data set's external test set (see :mod:`cellbench.run.external`): the rule, the leakage check, counts."""

    key: str
    rule: str
    description: str
    fingerprint: str
    overlap_check: str
    notes: tuple[str, ...] = ()
    n_samples: int = 0
    class_counts: Mapping[str, int] = field(default_factory=dict)
    n_groups: int | None = None
    group_kind: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rule": self.rule,
            "description": self.description,
            "fingerprint": self.fingerprint,
            "overlap_check": self.overlap_check,
            "notes": list(self.notes),
            "n_samples": self.n_samples,
            "class_counts": dict(self.class_counts),
            "n_groups": self.n_groups,
            "group_kind": self.group_kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExternalInfo:
        return cls(**{**_known(cls, data), "notes": tuple(data.get("notes", ()))})


@dataclass(frozen=True, kw_only=True)
class ExtractionQuality:
    """How well segmentation found the annotated cells of a field data set (:mod:`cellbench.datasets.extraction`)."""

    targets: int
    found: int
    matched: int
    missed: int
    unmatched: int
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    by_class: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    missed_by_class: Mapping[str, int] = field(default_factory=dict)
    cell_dice: float | None = None
    cell_iou: float | None = None
    nucleus_dice: float | None = None
    nucleus_iou: float | None = None
    cell_dice_all: float | None = None
    nucleus_dice_all: float | None = None
    masks_compared: int = 0
    seconds_per_field: float | None = None
    fields_per_second: float | None = None
    field_sizes: Mapping[str, int] = field(default_factory=dict)
    match_kind: str = ""
    gate: str = ""
    missed_cells: Sequence[Mapping[str, Any]] = ()
    flagged_fields: Sequence[Mapping[str, Any]] = ()  # fields unlike the rest (datasets.fieldcheck)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExtractionQuality:
        return cls(**_known(cls, data))


@dataclass(frozen=True, kw_only=True)
class ExtractionInfo:
    """What an extraction (``manual`` or ``segmentation``) produced: counts, quality, overlay outlines.

    ``raw`` is the extraction's own JSON record (``extraction.json``), kept whole in the store.
    """

    method: str
    fields: int = 0
    cells: int = 0
    windows: str = ""
    excluded: Mapping[str, int] = field(default_factory=dict)
    overlay: Sequence[Mapping[str, Any]] = ()
    quality: ExtractionQuality | None = None
    missed_by_class: Mapping[str, int] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        return dict(self.raw)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExtractionInfo:
        quality = data.get("quality")
        return cls(
            method=str(data.get("method", "")),
            fields=int(data.get("fields", 0)),
            cells=int(data.get("cells", 0)),
            windows=str(data.get("windows", "")),
            excluded=dict(data.get("excluded") or {}),
            overlay=tuple(data.get("overlay") or ()),
            quality=ExtractionQuality.from_json(quality) if quality else None,
            missed_by_class=dict(data.get("missed_by_class") or {}),
            raw=dict(data),
        )


@dataclass(frozen=True, kw_only=True)
class DataSetRecord:
    """One (data set, extraction) as the leaderboard describes it.

    ``extraction`` is the arm's name (``given``, ``manual``, ``segmentation``); ``extracted`` what a field
    extraction reported (stored under the JSON key ``extraction``); ``external`` the external test set, if any.
    """

    dataset: str
    extraction: str
    fingerprint: str = ""
    title: str = ""
    kind: str = "cell"
    synthetic: bool = False
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    primary_metric: str = "balanced_accuracy"
    n_samples: int = 0
    class_counts: Mapping[str, int] = field(default_factory=dict)
    n_groups: int | None = None
    group_kind: str | None = None
    cv: str = ""
    cv_scheme: str = ""
    n_features: int = 0
    families: tuple[str, ...] = ()  # the handcrafted feature families, in column order (empty: none read)
    stain: str = ""  # how images were stain-normalised (cellbench.run.stain); empty: they were not
    notes: tuple[str, ...] = ()
    root: str | None = None
    plan_notes: tuple[str, ...] = ()
    extracted: ExtractionInfo | None = None
    external: ExternalInfo | None = None

    @property
    def positive(self) -> int | None:
        """Index of the positive class in a binary task, else ``None``."""
        if len(self.classes) == 2 and self.positive_class in self.classes:
            return self.classes.index(self.positive_class)
        return None

    @property
    def n_classes(self) -> int:
        return max(len(self.classes), 2)

    def as_json(self) -> dict[str, Any]:
        """The stored JSON (``data_sets.info``): the keys the store always had; the fingerprint has its own column."""
        out: dict[str, Any] = {
            "title": self.title,
            "kind": self.kind,
            "synthetic": self.synthetic,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            "primary_metric": self.primary_metric,
            "n_samples": self.n_samples,
            "class_counts": dict(self.class_counts),
            "n_groups": self.n_groups,
            "group_kind": self.group_kind,
            "cv": self.cv,
            "cv_scheme": self.cv_scheme,
            "n_features": self.n_features,
            "notes": list(self.notes),
            "root": self.root,
            "plan_notes": list(self.plan_notes),
        }
        if self.families:  # only where features were read: older stored records stay as they were
            out["families"] = list(self.families)
        if self.stain:  # only where images were normalised: other stored records stay as they were
            out["stain"] = self.stain
        if self.extracted is not None:
            out["extraction"] = self.extracted.as_json()
        if self.external is not None:
            out["external"] = self.external.as_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, dataset: str, extraction: str, fingerprint: str) -> DataSetRecord:
        known = _known(cls, data)
        for key in ("dataset", "extraction", "extracted", "external", "fingerprint"):
            known.pop(key, None)
        for key in ("classes", "notes", "plan_notes", "families"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(
            **known,
            dataset=dataset,
            extraction=extraction,
            fingerprint=fingerprint,
            extracted=ExtractionInfo.from_json(data["extraction"]) if data.get("extraction") else None,
            external=ExternalInfo.from_json(data["external"]) if data.get("external") else None,
        )


class OfRecord:
    """Mixin for records that carry a :class:`DataSetRecord` as ``record``: its data set, extraction, fingerprint."""

    record: DataSetRecord

    @property
    def dataset(self) -> str:
        return self.record.dataset

    @property
    def extraction(self) -> str:
        return self.record.extraction

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint
