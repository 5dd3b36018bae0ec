"""Extractions turn a data set into single-cell samples.

- ``given``: the samples a data set already has (single-cell crops or patches).
- ``manual``: cells cut from the annotations of whole fields: the mask's bounding box (plus ``margin``) with the
  annotated mask where masks exist, the box (plus ``margin``) for boxes, and for centroids a square window of
  ``window`` typical cell diameters centred on the centroid (padded with the field's background colour at the
  border). Each sample keeps its annotation's label.
- ``segmentation``: cells found automatically (:mod:`cellbench.datasets.segmentation`) and matched one-to-one to the
  annotations (:mod:`cellbench.datasets.matching`) to inherit their labels. Unmatched found cells (no label) and missed
  annotated cells are counted in the extraction's quality record, never dropped silently; each found cell's crop
  carries its segmented mask (0 background, 128 cytoplasm, 255 nucleus).

A sample's id is ``<field>/a<NNN>``, NNN being its annotation's position in the field, in *both* field
extractions: a cell found by segmentation has the id of the annotated cell it matched, so the cells found by
both arms are the ids they share. Groups are the field's patient where known, else the field itself
(field-disjoint CV).

Crops are written once into ``<cache>/extractions/<data set>-<method>-<key>/`` (``cells/``, ``index.csv``,
``extraction.json``, a ``COMPLETE`` marker written last; built in a temporary folder and renamed into place by
:func:`cellbench.core.files.build_folder`) with ``key`` a hash of the data fingerprint, the parameters and this
code; feature and pixel caches key on it too. Parameters come from the suite (``[datasets.NAME.manual]``,
``[datasets.NAME.segmentation]``) over each data set's defaults (``field_defaults`` of its catalog entry).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from cellbench.core import files, paths
from cellbench.core.bars import progress_bar
from cellbench.core.errors import ConfigError, DataError, check_on_bad_image
from cellbench.core.hashing import stable_hash
from cellbench.core.registry import Registry
from cellbench.core.types import Annotation, Dataset, Field, Sample
from cellbench.core.workers import process_pool
from cellbench.datasets.catalog import field_defaults
from cellbench.datasets.checks import check_number
from cellbench.datasets.fieldcheck import flag_fields
from cellbench.datasets.io import crop_window, read_image, read_mask, write_png
from cellbench.datasets.matching import (
    Candidate,
    MatchParams,
    Target,
    detection_scores,
    dice_iou,
    mask_overlap,
    match_cells,
)
from cellbench.datasets.segmentation import SegmentationParams, background_colour, segment_field

log = logging.getLogger(__name__)

Extractor = Callable[..., Any]

EXTRACTION_VERSION = 1
OPTION_TABLES = ("manual", "segmentation")  # per-extraction option tables of a suite's data set entry
COMPLETE = "COMPLETE"
OVERLAY_FIELDS = 3  # the overlay shows the fields with the most annotated cells
OVERLAY_WORST = 3  # and, for segmentation, those with the most unmatched found cells
RED_LEVEL_FLOOR = 0.02  # below this red-cell stain level (optical density) the threshold ratio is not compared
INDEX_COLUMNS = (
    "sample_id", "field", "group", "label", "annotation", "status", "x0", "y0", "x1", "y1", "cx", "cy",
    "image", "mask", "match_score",
)  # fmt: skip
# What the cache key says about the code: the source hash of extraction, segmentation, matching and masks at
# 50df44d, frozen as a constant so that moving or restyling code keeps the keys (and the stores' job keys) as
# they were. Change it, or EXTRACTION_VERSION, when what an extraction produces changes; the golden-output test
# in tests/test_extraction.py fails when it does.
EXTRACTION_CODE = "e788bf46a0a44e44"


@dataclass(frozen=True, kw_only=True, eq=False)
class Extracted:
    """What an extraction produced: samples, the fingerprint caches key on, a JSON-able ``info`` record (counts,
    parameters, quality, overlay outlines) and notes for the leaderboard. Iterating yields the samples."""

    samples: tuple[Sample, ...]
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    folder: Path | None = None

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True, kw_only=True)
class ManualParams:
    """Parameters of the manual extraction.

    Parameters
    ----------
    cell_diameter, diameter_unit
        Typical cell diameter, in pixels (``"px"``) or as a fraction of the image's shorter side (``"image"``).
    window
        Side of the square window cut around a centroid, in typical diameters.
    margin
        Margin around a mask's or a box's bounding box, as a fraction of its longer side.
    """

    cell_diameter: float = 100.0
    diameter_unit: Literal["px", "image"] = "px"
    window: float = 2.5
    margin: float = 0.1

    def __post_init__(self):
        # the same rules as the segmentation's diameter
        SegmentationParams(cell_diameter=self.cell_diameter, diameter_unit=self.diameter_unit)
        object.__setattr__(self, "cell_diameter", float(self.cell_diameter))
        check_number(self, "window", low=0.5, high=10.0)
        check_number(self, "margin", low=0.0, high=2.0)

    def window_px(self, shape: tuple[int, ...]) -> int:
        d = self.cell_diameter * (min(shape[:2]) if self.diameter_unit == "image" else 1.0)
        return max(8, round(self.window * d))


def resolve_options(
    dataset: str, method: str, options: Mapping[str, Any] | None
) -> ManualParams | tuple[SegmentationParams, MatchParams]:
    """The parameters of ``method`` on ``dataset``: its defaults, then ``options``; unknown names are refused."""
    defaults = field_defaults(dataset)
    where = f"[datasets.{dataset}.{method}]"
    options = dict(options or {})
    if method == "manual":
        merged = {**defaults.manual, **options}
        known = [f.name for f in fields(ManualParams)]
        _refuse_unknown(merged, known, where)
        try:
            return ManualParams(**merged)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if method == "segmentation":
        merged = {**defaults.segmentation, **options}
        seg_names = [f.name for f in fields(SegmentationParams)]
        match_names = [f.name for f in fields(MatchParams)]
        _refuse_unknown(merged, seg_names + match_names, where)
        try:
            seg = SegmentationParams(**{k: v for k, v in merged.items() if k in seg_names})
            match = MatchParams(**{k: v for k, v in merged.items() if k in match_names})
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return seg, match
    raise ConfigError(f"extraction {method!r} takes no options; only {', '.join(OPTION_TABLES)} do")


def _refuse_unknown(options: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


def check_suite_options(dataset: str, options: Mapping[str, Any]) -> None:
    """Validate the ``manual``/``segmentation`` tables of a suite's data set entry (used when a suite loads)."""
    for method in OPTION_TABLES:
        if method in options:
            table = options[method]
            if not isinstance(table, Mapping):
                raise ConfigError(f"[datasets.{dataset}.{method}] must be a table of parameters, got {table!r}")
            resolve_options(dataset, method, table)


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """A data set entry's options without the extraction tables, and the extraction tables."""
    rest = {k: v for k, v in options.items() if k not in OPTION_TABLES}
    return rest, {k: options[k] for k in OPTION_TABLES if k in options}


def run_extraction(
    name: str,
    dataset: Dataset,
    *,
    options: Mapping[str, Any] | None = None,
    progress: bool = True,
    n_jobs: int | None = None,
    on_bad_image: str = "raise",
    cache_dir: str | os.PathLike | None = None,
) -> Extracted:
    """Run extraction ``name`` on ``dataset`` (from its crop cache when present).

    ``on_bad_image``: ``"raise"`` stops at a field whose image cannot be read, naming it; ``"skip"`` leaves such
    fields out and counts them in the notes. ``n_jobs``: worker processes over the fields (``None`` or 1: this
    process). ``cache_dir``: the folder the crop cache lives in (``None``: the default cache folder).
    """
    check_on_bad_image(on_bad_image)
    extract = EXTRACTIONS[name]
    cache = paths.cache_dir() if cache_dir is None else Path(cache_dir)
    result = extract(dataset, options=options, progress=progress, n_jobs=n_jobs, on_bad_image=on_bad_image,
                     cache_dir=cache)  # fmt: skip
    if isinstance(result, Extracted):
        return result
    return Extracted(samples=tuple(result), fingerprint=dataset.fingerprint)


def given(dataset: Dataset, **options) -> tuple[Sample, ...]:
    """The data set's own single-cell samples."""
    if not dataset.samples:
        raise DataError(
            f"data set {dataset.name!r} holds whole fields, not single cells; choose the extraction "
            f"'manual' or 'segmentation' (known extractions: {', '.join(EXTRACTIONS.names())})"
        )
    return dataset.samples


def manual(dataset: Dataset, *, options=None, **run) -> Extracted:
    """Cells cut from the annotations (see the module docstring); ``run`` as :func:`_extract` takes it."""
    return _extract(dataset, "manual", resolve_options(dataset.name, "manual", options), **run)


def segmentation(dataset: Dataset, *, options=None, **run) -> Extracted:
    """Cells found automatically and matched to the annotations (see the module docstring)."""
    return _extract(dataset, "segmentation", resolve_options(dataset.name, "segmentation", options), **run)


EXTRACTIONS: Registry[Extractor] = Registry("extraction")
for _name, _extractor in (("given", given), ("manual", manual), ("segmentation", segmentation)):
    EXTRACTIONS.add(_name, _extractor)


# -- the crop cache -----------------------------------------------------------------------------------------


def _canonical(params) -> dict[str, Any]:
    if isinstance(params, tuple):
        return {"segmentation": params[0].canonical(), "match": asdict(params[1])}
    return asdict(params)


def extraction_key(dataset: Dataset, method: str, params, *, on_bad_image: str = "raise") -> str:
    """The crop cache's key: data fingerprint, method, parameters, target labels, classes and code version."""
    defaults = field_defaults(dataset.name)
    extra = {"on_bad_image": on_bad_image} if on_bad_image != "raise" else {}
    return stable_hash(
        {
            **extra,
            "data": dataset.fingerprint,
            "method": method,
            "params": _canonical(params),
            "white": defaults.white,
            "classes": list(dataset.classes),
            "version": EXTRACTION_VERSION,
            "code": EXTRACTION_CODE,
        }
    )


def _extract(
    dataset: Dataset,
    method: str,
    params,
    *,
    progress: bool,
    n_jobs: int | None,
    on_bad_image: str,
    cache_dir: Path,
) -> Extracted:
    if not dataset.fields:
        raise DataError(
            f"data set {dataset.name!r} has no whole fields to extract cells from (extraction {method!r}); "
            "use the extraction 'given'"
        )
    key = extraction_key(dataset, method, params, on_bad_image=on_bad_image)
    final = Path(cache_dir) / "extractions" / f"{dataset.name}-{method}-{key}"

    def build(folder: Path) -> None:
        _build(dataset, method, params, folder, key=key, progress=progress, n_jobs=n_jobs,
               skip_bad=on_bad_image == "skip")  # fmt: skip

    files.build_folder(final, build, marker=COMPLETE)
    return read_extraction(final, dataset=dataset, fingerprint=key)


def read_extraction(folder: Path, *, dataset: Dataset | None = None, fingerprint: str | None = None) -> Extracted:
    """The samples and info of a complete extraction folder."""
    folder = Path(folder)
    info = json.loads((folder / "extraction.json").read_text())
    samples = []
    with (folder / "index.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["status"] != "sample":
                continue
            samples.append(
                Sample(
                    id=r["sample_id"],
                    label=r["label"],
                    group=r["group"] or None,
                    image_path=folder / r["image"],
                    mask_path=folder / r["mask"] if r["mask"] else None,
                    meta={
                        "field": r["field"],
                        "annotation": int(r["annotation"]),
                        "box": tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1")),
                        "extraction": info["method"],
                    },
                )
            )
    return Extracted(
        samples=tuple(samples),
        fingerprint=fingerprint or info.get("key", ""),
        info=info,
        notes=tuple(info.get("notes", ())),
        folder=folder,
    )


def _build(
    dataset: Dataset,
    method: str,
    params,
    folder: Path,
    *,
    key: str,
    progress: bool,
    n_jobs: int | None,
    skip_bad: bool,
) -> None:
    """Fill the (temporary) extraction folder ``folder``: crops, ``index.csv`` and ``extraction.json``."""
    (folder / "cells").mkdir()
    white = field_defaults(dataset.name).white
    targets = tuple(c for c in dataset.classes if white is None or c in white)
    overlay_ids = _overlay_fields(dataset)
    job = _FieldJob(method=method, params=params, classes=tuple(dataset.classes), targets=targets, folder=folder,
                    overlay=frozenset(overlay_ids), skip_bad=skip_bad)  # fmt: skip
    results = []
    bar = progress_bar(total=len(dataset.fields), desc=f"{method} {dataset.name}", unit="field", enabled=progress,
                       dynamic_ncols=True)  # fmt: skip
    try:
        for out in _map(job, dataset.fields, n_jobs=n_jobs):
            results.append(out)
            bar.update(1)
    finally:
        bar.close()
    unreadable = [(r.field, r.error) for r in results if r.error]
    results = [r for r in results if not r.error]
    if not results:
        raise DataError(f"{method} {dataset.name}: no readable field (e.g. {unreadable[0][1]})")
    info = _summarise(dataset, method, params, results, targets=targets, overlay_ids=overlay_ids)
    if unreadable:
        info["unreadable_fields"] = [f for f, _ in unreadable]
        info["notes"].append(
            f"{len(unreadable)} field(s) with an unreadable image skipped (--on-bad-image skip): "
            + ", ".join(f for f, _ in unreadable[:5])
        )
    info["key"] = key
    with (folder / "index.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for out in results for r in out.rows)
    (folder / "extraction.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=str) + "\n")


def _overlay_fields(dataset: Dataset) -> list[str]:
    """The fields shown in the overlay figure: those with the most annotated cells of the data set's classes."""
    counts = [(-sum(a.label in dataset.classes for a in f.annotations), f.id) for f in dataset.fields]
    return [fid for _, fid in sorted(counts)[:OVERLAY_FIELDS]]


def _overlay_records(method: str, results: Sequence[_FieldResult], first: Sequence[str]) -> list[dict[str, Any]]:
    """The overlay records shown: the ``first`` fields (most annotated cells) and, for segmentation, the
    :data:`OVERLAY_WORST` fields with the most unmatched found cells (then most missed cells), each with ``why``."""
    by_field = {r.field: r for r in results if r.overlay is not None}
    shown = [{**by_field[f].overlay, "why": "most annotated cells"} for f in first if f in by_field]
    if method != "segmentation":
        return shown
    seen = set(first)

    def unmatched(r: _FieldResult) -> int:
        return r.stats["found"] - r.stats["matched"]

    worst = sorted((r for r in by_field.values() if r.field not in seen and unmatched(r) > 0),
                   key=lambda r: (-unmatched(r), -len(r.stats["missed"]), r.field))[:OVERLAY_WORST]  # fmt: skip
    return shown + [{**r.overlay, "why": f"most unmatched ({unmatched(r)} unmatched, {len(r.stats['missed'])} missed)"}
                    for r in worst]  # fmt: skip


def _map(job: _FieldJob, items: Sequence[Field], *, n_jobs: int | None):
    """``job`` of each field, in order: in this process, or over ``n_jobs`` single-threaded worker processes."""
    if n_jobs is None or n_jobs <= 1 or len(items) < 4:
        yield from map(job, items)
        return
    with process_pool(n_jobs) as pool:
        yield from pool.map(job, items, chunksize=2)


# -- one field ----------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _FieldResult:
    field: str
    rows: list[dict[str, Any]]
    stats: dict[str, Any]
    overlay: dict[str, Any] | None = None
    error: str | None = None  # the field's image could not be read (skipped on request)


@dataclass(frozen=True, kw_only=True)
class _FieldJob:
    """Extracts one field (a picklable callable, so fields can be spread over worker processes)."""

    method: str
    params: Any
    classes: tuple[str, ...]
    targets: tuple[str, ...]
    folder: Path
    overlay: frozenset[str]
    skip_bad: bool = False

    def __call__(self, f: Field) -> _FieldResult:
        try:
            image = read_image(f.image_path)
        except DataError as exc:
            if not self.skip_bad:
                raise DataError(f"field {f.id}: {exc} (use --on-bad-image skip to skip unreadable fields)") from None
            return _FieldResult(field=f.id, rows=[], stats={}, error=str(exc))
        masks = _AnnotationMasks(f, image.shape[:2])
        if self.method == "manual":
            return self._manual(f, image, masks)
        return self._segmentation(f, image, masks)

    # manual: cut every annotation of a known class
    def _manual(self, f: Field, image: np.ndarray, masks: _AnnotationMasks) -> _FieldResult:
        p: ManualParams = self.params
        h, w = image.shape[:2]
        fill = tuple(int(v) for v in np.round(background_colour(image)))
        rows, outlines, excluded = [], [], Counter()
        for idx, ann in enumerate(f.annotations):
            if ann.label not in self.classes:
                excluded[ann.label] += 1
                continue
            mask, nucleus = masks.get(idx)
            if mask is not None:
                x0, y0, x1, y1 = _padded(_bbox(mask), p.margin, (w, h))
                crop, cmask = image[y0:y1, x0:x1], _encode_mask(mask[y0:y1, x0:x1], nucleus, (x0, y0, x1, y1))
                outline = {"kind": "mask", "polygon": _polygon(mask, (0, 0))}
            elif ann.box is not None:
                x0, y0, x1, y1 = _padded(ann.box, p.margin, (w, h))
                crop, cmask = image[y0:y1, x0:x1], None
                outline = {"kind": "box", "box": list(ann.box)}
            elif ann.centroid is not None:
                side = p.window_px(image.shape)
                x0 = round(ann.centroid[0] - side / 2)
                y0 = round(ann.centroid[1] - side / 2)
                x1, y1 = x0 + side, y0 + side
                crop, cmask = crop_window(image, x0=x0, y0=y0, size=side, fill=fill), None
                outline = {"kind": "window", "box": [x0, y0, x1, y1], "centroid": [round(v, 1) for v in ann.centroid]}
            else:
                raise DataError(f"field {f.id}: annotation {idx} has no mask, box or centroid")
            sid = f"{f.id}/a{idx:03d}"
            rows.append(self._write(f, sid, ann.label, idx, "sample", (x0, y0, x1, y1), crop, cmask, None))
            outlines.append({**outline, "label": ann.label})
        kinds = Counter(o["kind"] for o in outlines)
        stats = {"cells": len(rows), "excluded": dict(excluded), "kinds": dict(kinds), "width": w, "height": h}
        return _FieldResult(field=f.id, rows=rows, stats=stats,
                            overlay=self._overlay(f, image, outlines) if f.id in self.overlay else None)

    # segmentation: find, match, cut the matched ones (and keep the unmatched for inspection)
    def _segmentation(self, f: Field, image: np.ndarray, masks: _AnnotationMasks) -> _FieldResult:
        seg_params, match_params = self.params
        h, w = image.shape[:2]
        seg = segment_field(image, seg_params)
        target_idx = [i for i, a in enumerate(f.annotations) if a.label in self.targets]
        targets = [self._target(f.annotations[i], *masks.get(i)) for i in target_idx]
        found = [Candidate(box=c.box, mask=c.mask, centroid=c.centroid) for c in seg.cells]
        m = match_cells(found, targets, diameter=seg.diameter, params=match_params)
        rows, outlines = [], []
        cell_scores, nucleus_scores = [], []
        matched_to = {fi: ti for fi, ti, _ in m.pairs}
        score_of = {fi: s for fi, _, s in m.pairs}
        for k, cell in enumerate(seg.cells):
            x0, y0, x1, y1 = _padded(cell.box, 0.15, (w, h))
            crop = image[y0:y1, x0:x1]
            full = np.zeros((y1 - y0, x1 - x0), bool)
            nuc = np.zeros_like(full)
            bx0, by0 = cell.box[0] - x0, cell.box[1] - y0
            full[by0 : by0 + cell.mask.shape[0], bx0 : bx0 + cell.mask.shape[1]] = cell.mask
            nuc[by0 : by0 + cell.mask.shape[0], bx0 : bx0 + cell.mask.shape[1]] = cell.nucleus
            cmask = np.where(nuc, 255, np.where(full, 128, 0)).astype(np.uint8)
            if k in matched_to:
                idx = target_idx[matched_to[k]]
                ann = f.annotations[idx]
                sid, label, status = f"{f.id}/a{idx:03d}", ann.label, "sample"
                gt_mask, gt_nucleus = masks.get(idx)
                if gt_mask is not None:
                    cell_scores.append(_overlap(cell.mask, cell.box, gt_mask))
                    if gt_nucleus is not None:
                        nucleus_scores.append(_overlap(cell.nucleus, cell.box, gt_nucleus))
            else:
                sid, label, status, idx = f"{f.id}/s{k:03d}", "", "unmatched", -1
            if status == "sample" and label not in self.classes:
                status = "unmatched"
            rows.append(self._write(f, sid, label, idx, status, (x0, y0, x1, y1), crop, cmask, score_of.get(k)))
            outlines.append({"kind": "found", "polygon": _polygon(cell.mask, cell.box[:2]), "label": label,
                             "matched": k in matched_to})
        missed = [
            {"annotation": target_idx[j], "label": f.annotations[target_idx[j]].label,
             "at": _position(f.annotations[target_idx[j]], masks.get(target_idx[j])[0])}
            for j in m.missed
        ]
        stats = {
            "targets": len(targets),
            "gt_nuclei": sum(masks.get(i)[1] is not None for i in target_idx),
            "gt_masks": sum(t.kind == "mask" for t in targets),
            "found": len(seg.cells),
            "matched": len(m.pairs),
            "targets_by_class": dict(Counter(f.annotations[i].label for i in target_idx)),
            "matched_by_class": dict(Counter(f.annotations[target_idx[t]].label for _, t, _ in m.pairs)),
            "missed": missed,
            "cell_scores": cell_scores,
            "nucleus_scores": nucleus_scores,
            "seconds": seg.seconds,
            "diameter": seg.diameter,
            "width": w,
            "height": h,
            "match_kind": targets[0].kind if targets else None,
        }
        ratio = seg.threshold / seg.red_level if seg.red_level > RED_LEVEL_FLOOR else None
        stats.update(threshold=seg.threshold, stained_share=seg.stained_share, rejected=seg.rejected,
                     red_level=seg.red_level, threshold_ratio=ratio,
                     brightness=float(np.mean(seg.background)))  # fmt: skip
        # every field's outlines: the summary picks the fields to show once it knows which are worst
        missed_idx = {target_idx[j] for j in m.missed}
        manual = [{**self._manual_outline(f.annotations[i], masks.get(i)[0], seg_params, image.shape),
                   "missed": i in missed_idx} for i in target_idx]  # fmt: skip
        overlay = self._overlay(f, image, manual + outlines)
        return _FieldResult(field=f.id, rows=rows, stats=stats, overlay=overlay)

    @staticmethod
    def _target(ann: Annotation, mask, nucleus) -> Target:
        if mask is not None:
            box = _bbox(mask)
            return Target(mask=mask[box[1] : box[3], box[0] : box[2]], mask_box=box)
        if ann.box is not None:
            return Target(box=tuple(ann.box))
        return Target(centroid=tuple(ann.centroid))

    @staticmethod
    def _manual_outline(ann: Annotation, mask, seg_params: SegmentationParams, shape) -> dict[str, Any]:
        if mask is not None:
            return {"kind": "mask", "polygon": _polygon(mask, (0, 0)), "label": ann.label}
        if ann.box is not None:
            return {"kind": "box", "box": list(ann.box), "label": ann.label}
        return {"kind": "centroid", "centroid": [round(v, 1) for v in ann.centroid], "label": ann.label,
                "radius": round(seg_params.diameter_px(shape) / 2, 1)}

    def _overlay(self, f: Field, image: np.ndarray, outlines: list[dict]) -> dict[str, Any]:
        return {"field": f.id, "image": str(f.image_path), "width": image.shape[1], "height": image.shape[0],
                "outlines": outlines}

    def _write(self, f, sid, label, idx, status, box, crop, cmask, score) -> dict[str, Any]:
        name = sid.replace("/", "__")
        write_png(self.folder / "cells" / f"{name}.png", np.ascontiguousarray(crop))
        mask_rel = ""
        if cmask is not None:
            write_png(self.folder / "cells" / f"{name}_mask.png", cmask)
            mask_rel = f"cells/{name}_mask.png"
        x0, y0, x1, y1 = box
        return {
            "sample_id": sid, "field": f.id, "group": f.group or f.id, "label": label, "annotation": idx,
            "status": status, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "cx": f"{(x0 + x1) / 2:.1f}", "cy": f"{(y0 + y1) / 2:.1f}",
            "image": f"cells/{name}.png", "mask": mask_rel, "match_score": "" if score is None else f"{score:.4f}",
        }  # fmt: skip


class _AnnotationMasks:
    """Full-field masks of a field's mask annotations (cell, nucleus or None), read once per file."""

    def __init__(self, f: Field, shape: tuple[int, int]):
        self.field, self.shape = f, shape
        self._files: dict[str, np.ndarray] = {}

    def get(self, idx: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        ann = self.field.annotations[idx]
        if ann.mask is not None:
            m = np.asarray(ann.mask)
            return self._check(m > 0, idx), None
        path = ann.meta.get("mask_path")
        if path is None:
            return None, None
        key = str(path)
        if key not in self._files:
            self._files[key] = read_mask(path)
        m = self._files[key]
        if "instance" in ann.meta:
            return self._check(m == int(ann.meta["instance"]), idx), None
        level = ann.meta.get("nucleus_level")
        cell = self._check(m > 0, idx)
        return cell, (m >= int(level)) if level is not None else None

    def _check(self, mask: np.ndarray, idx: int) -> np.ndarray:
        if mask.shape != self.shape:
            raise DataError(
                f"field {self.field.id}: the mask of annotation {idx} is {mask.shape[1]}x{mask.shape[0]}, "
                f"its image {self.shape[1]}x{self.shape[0]}"
            )
        if not mask.any():
            raise DataError(f"field {self.field.id}: the mask of annotation {idx} marks no pixel")
        return mask


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _padded(box, margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in box)
    pad = round(margin * max(x1 - x0, y1 - y0))
    w, h = size
    return max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)


def _encode_mask(cell: np.ndarray, nucleus: np.ndarray | None, box) -> np.ndarray:
    """0 background, 255 cell; with a nucleus: 128 cytoplasm, 255 nucleus."""
    if nucleus is None:
        return cell.astype(np.uint8) * 255
    x0, y0, x1, y1 = box
    nuc = nucleus[y0:y1, x0:x1] & cell
    return np.where(nuc, 255, np.where(cell, 128, 0)).astype(np.uint8)


def _overlap(mask: np.ndarray, box, gt: np.ndarray) -> list[float]:
    gbox = _bbox(gt) if gt.any() else (0, 0, 1, 1)
    inter, na, nb = mask_overlap(mask, tuple(box), gt[gbox[1] : gbox[3], gbox[0] : gbox[2]], gbox)
    return list(dice_iou(inter, na, nb))


def _polygon(mask: np.ndarray, origin) -> list[list[int]]:
    """The outer contour of ``mask`` (simplified), in field coordinates."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    c = max(contours, key=cv2.contourArea)
    eps = max(0.5, 0.01 * cv2.arcLength(c, True))
    c = cv2.approxPolyDP(c, eps, True).reshape(-1, 2)
    return [[int(x) + int(origin[0]), int(y) + int(origin[1])] for x, y in c]


def _position(ann: Annotation, mask) -> list[float]:
    if ann.centroid is not None:
        return [round(float(v), 1) for v in ann.centroid]
    if ann.box is not None:
        return [round((ann.box[0] + ann.box[2]) / 2, 1), round((ann.box[1] + ann.box[3]) / 2, 1)]
    if mask is not None:
        ys, xs = np.nonzero(mask)
        return [round(float(xs.mean()), 1), round(float(ys.mean()), 1)]
    return []


# -- the summary --------------------------------------------------------------------------------------------


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _summarise(dataset: Dataset, method: str, params, results: list[_FieldResult], *, targets, overlay_ids):
    n_samples = sum(r["status"] == "sample" for res in results for r in res.rows)
    by_class = Counter(r["label"] for res in results for r in res.rows if r["status"] == "sample")
    info: dict[str, Any] = {
        "method": method,
        "dataset": dataset.name,
        "params": _canonical(params),
        "fields": len(results),
        "cells": n_samples,
        "cells_by_class": dict(sorted(by_class.items())),
        "overlay": _overlay_records(method, results, overlay_ids),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    notes = []
    if method == "manual":
        excluded, kinds = Counter(), Counter()
        for res in results:
            excluded.update(res.stats["excluded"])
            kinds.update(res.stats["kinds"])
        info["excluded"] = dict(excluded)
        p: ManualParams = params
        unit = " px" if p.diameter_unit == "px" else " of the image side"
        how = {
            "mask": f"{kinds['mask']} mask crops (bounding box + {p.margin:.0%}, with the annotated mask)",
            "box": f"{kinds['box']} box crops (box + {p.margin:.0%})",
            "window": f"{kinds['window']} centroid windows of {p.window:g} typical diameters "
            f"({p.window * p.cell_diameter:.0f}{unit} at {p.cell_diameter:g}{unit})",
        }
        info["windows"] = "; ".join(how[k] for k in ("mask", "box", "window") if kinds[k])
        notes.append(
            f"manual extraction: {n_samples} cells cut from the annotations of {len(results)} fields: {info['windows']}"
            + (f"; annotations of other labels left out: {', '.join(f'{k} {v}' for k, v in sorted(excluded.items()))}"
               if excluded else "")
        )
    else:
        q = _quality(results, targets)
        gate = params[1]
        q["gate"] = (f"within {gate.max_distance:g} diameters" if q["match_kind"] == "centroid"
                     else f"IoU ≥ {gate.min_iou:g}")
        single = params[0].keep == "central"
        flagged = flag_fields([{"field": r.field, **r.stats} for r in results], max_z=params[0].field_z,
                              ignore=("threshold_ratio", "red_level") if single else ())  # fmt: skip
        q["flagged_fields"] = flagged
        info["quality"] = q
        info["missed_by_class"] = q["missed_by_class"]
        notes.append(
            f"segmentation: {q['matched']} of {q['targets']} annotated cells ({', '.join(targets)}) found "
            f"(recall {q['recall']:.3f}); {q['found']} cells found (precision {q['precision']:.3f}). "
            f"{q['missed']} missed cells are not samples of this arm (the end-to-end score counts them as errors); "
            f"{q['unmatched']} found cells matched no annotation and have no label (left out)"
        )
        if flagged:
            notes.append(
                f"segmentation: {len(flagged)} field(s) unlike the rest of the data set (cell count or stain "
                f"statistics beyond {params[0].field_z:g} robust SDs; check them): "
                + "; ".join(f"{x['field']} ({', '.join(x['reasons'])})" for x in flagged[:10])
                + (f"; and {len(flagged) - 10} more" if len(flagged) > 10 else "")
            )
    info["notes"] = notes
    return info


def _quality(results: list[_FieldResult], targets: Sequence[str]) -> dict[str, Any]:
    st = [r.stats for r in results]
    n_t, n_f, n_m = (sum(s[k] for s in st) for k in ("targets", "found", "matched"))
    t_by, m_by = Counter(), Counter()
    for s in st:
        t_by.update(s["targets_by_class"])
        m_by.update(s["matched_by_class"])
    cells = [c for s in st for c in s["cell_scores"]]
    nuclei = [c for s in st for c in s["nucleus_scores"]]
    seconds = [s["seconds"] for s in st]
    sizes = Counter(f"{s['width']}x{s['height']}" for s in st)
    kinds = sorted({s["match_kind"] for s in st if s["match_kind"]})
    q: dict[str, Any] = {
        "targets": n_t,
        "found": n_f,
        "matched": n_m,
        "missed": n_t - n_m,
        "unmatched": n_f - n_m,
        **detection_scores(matched=n_m, found=n_f, annotated=n_t),
        "by_class": {c: {"annotated": t_by[c], "matched": m_by[c], "recall": m_by[c] / t_by[c] if t_by[c] else None}
                     for c in targets},
        "missed_by_class": {c: t_by[c] - m_by[c] for c in targets},
        "cell_dice": _mean(c[0] for c in cells),
        "cell_iou": _mean(c[1] for c in cells),
        "nucleus_dice": _mean(c[0] for c in nuclei),
        "nucleus_iou": _mean(c[1] for c in nuclei),
        # over every annotated cell with a mask, a missed cell counting 0
        "cell_dice_all": sum(c[0] for c in cells) / n_masks if (n_masks := sum(s["gt_masks"] for s in st)) else None,
        "nucleus_dice_all": sum(c[0] for c in nuclei) / n_nuc if (n_nuc := sum(s["gt_nuclei"] for s in st)) else None,
        "masks_compared": len(cells),
        "seconds_per_field": _mean(seconds),
        "fields_per_second": 1.0 / _mean(seconds) if seconds and _mean(seconds) else None,
        "field_sizes": dict(sizes.most_common()),
        "match_kind": ", ".join(kinds),
        "missed_cells": [{"field": r.field, **m} for r in results for m in r.stats["missed"]][:500],
    }
    return q


EXPORT_MARKER = ".cellbench-export"


def check_export_folder(out_dir: Path) -> None:
    """Refuse ``out_dir`` when it exists, is not empty and holds no :data:`EXPORT_MARKER` (see
    :func:`export_extraction`); callers check it before extracting, so a refusal costs nothing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file, not a folder; give a new or empty folder, or a previous export")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / EXPORT_MARKER).is_file():
        raise DataError(
            f"{out_dir} exists, is not empty and was not written by `extract` (no {EXPORT_MARKER} in it); "
            "give a new or empty folder, or a previous export"
        )


def export_extraction(extracted: Extracted, out_dir: Path) -> Path:
    """Copy an extraction's crops, masks, ``index.csv`` and ``extraction.json`` into ``out_dir``.

    Refuses a folder that exists and holds anything but a previous export (known by the marker file
    :data:`EXPORT_MARKER` that every export leaves), so that a folder the user keeps other files in is never emptied.
    """
    out_dir = Path(out_dir)
    if extracted.folder is None:
        raise DataError("this extraction has no crop folder to export (the 'given' extraction is the data itself)")
    check_export_folder(out_dir)
    if (out_dir / "cells").is_dir():
        shutil.rmtree(out_dir / "cells")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EXPORT_MARKER).write_text("written by `python -m bench extract`; cells/ is replaced on the next one\n")
    shutil.copytree(extracted.folder / "cells", out_dir / "cells")
    for name in ("index.csv", "extraction.json"):
        shutil.copy2(extracted.folder / name, out_dir / name)
    return out_dir


def summary_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Human-readable lines of an extraction's info record (for the command line)."""
    rows = [("method", info["method"]), ("fields", str(info["fields"])), ("cells (samples)", str(info["cells"]))]
    rows.append(("cells by class", ", ".join(f"{k} {v}" for k, v in info.get("cells_by_class", {}).items())))
    q = info.get("quality")
    if q:
        def f(x, d=3):
            return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"

        rows += [
            ("annotated cells (targets)", str(q["targets"])),
            ("found / matched / missed / unmatched",
             f"{q['found']} / {q['matched']} / {q['missed']} / {q['unmatched']}"),
            ("precision / recall / F1", f"{f(q['precision'])} / {f(q['recall'])} / {f(q['f1'])}"),
            ("recall by class", ", ".join(f"{c} {f(v['recall'])} ({v['matched']}/{v['annotated']})"
                                          for c, v in q["by_class"].items())),
            ("cell Dice / IoU (matched masks)", f"{f(q['cell_dice'])} / {f(q['cell_iou'])} (n={q['masks_compared']})"),
            ("nucleus Dice / IoU", f"{f(q['nucleus_dice'])} / {f(q['nucleus_iou'])}"),
            ("seconds per field", f(q["seconds_per_field"], 3)),
            ("matching", q["match_kind"]),
            ("flagged fields", ", ".join(x["field"] for x in q.get("flagged_fields", [])) or "none"),
        ]
    if info.get("excluded"):
        rows.append(("annotations left out", ", ".join(f"{k} {v}" for k, v in info["excluded"].items())))
    return rows


def replace_fingerprint(dataset: Dataset, extracted: Extracted) -> Dataset:
    """``dataset`` with the extraction's fingerprint and notes (what feature and pixel caches key on)."""
    return replace(dataset, fingerprint=extracted.fingerprint, notes=(*dataset.notes, *extracted.notes))

