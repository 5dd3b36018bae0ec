"""The leaderboard's extraction section: how well segmentation finds the annotated cells, and how models trained
on segmented cells compare with models trained on manually extracted cells.

Everything comes from the store: each (data set, extraction)'s info record carries the extraction's counts,
detection quality and overlay outlines (:mod:`cellbench.datasets.extraction`), and the pooled out-of-fold predictions
give the comparisons:

- **extraction quality** per data set: annotated, found, matched, missed and unmatched cells, detection
  precision, recall and F1, Dice and IoU of matched masks where the annotations are masks, time per field;
- **the same cells**: a matched segmented cell has the id of the annotated cell it matched, so the cells found
  by both arms are the ids both arms predicted; on them each model × strategy's primary metric per arm, the
  difference and McNemar's test of the paired predictions;
- **end to end**: the segmentation arm's predictions plus every annotated cell it missed counted as an error
  (a cell that is never found is never classified right).

The figure overlays manual (annotations, and the manual arm's crop windows) and segmented outlines on a few
fields: those with the most annotated cells and those with the most unmatched found cells, with a legend
(matched, missed, unmatched). Fields the per-field sanity check flagged are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Polygon, Rectangle

from cellbench.report.figures import STYLE, new_figure, save_png
from cellbench.report.format import num, p_value, signed, table
from cellbench.run.records import ExtractionInfo, ExtractionQuality
from cellbench.stats import tests as stats
from cellbench.stats.metrics import METRIC_LABELS, metric_function

COLUMNS = 3  # overlay panels per row
MATCHED, UNMATCHED, ANNOTATED, MISSED = "tab:green", "tab:orange", "tab:red", "magenta"
LABEL_METRICS = ("balanced_accuracy", "accuracy")  # metrics that need only hard predictions (end-to-end scores)


@dataclass(frozen=True, kw_only=True, eq=False)
class ExtractionSummary:
    """The extraction section's data.

    ``quality``: (data set, detection quality) per data set with a segmentation arm; ``manual``: the manual
    arm's record per data set; ``compare``: the same-cells / end-to-end table per data set (with the primary
    metric in ``primary``); ``overlays``: per data set and arm the overlay outlines; ``figures``: per data set
    the overlay figure's path relative to the leaderboard.
    """

    quality: tuple[tuple[str, ExtractionQuality], ...] = ()
    manual: Mapping[str, ExtractionInfo] = field(default_factory=dict)
    compare: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    primary: Mapping[str, str] = field(default_factory=dict)
    overlays: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]] = field(default_factory=dict)
    figures: Mapping[str, str] = field(default_factory=dict)


def summarise_extraction(sections) -> ExtractionSummary:
    """The extraction section's data from the leaderboard sections (their records and pooled predictions)."""
    quality, manual, compare, primary, overlays = [], {}, {}, {}, {}
    by_ds: dict[str, dict[str, Any]] = {}
    for s in sections:
        by_ds.setdefault(s.dataset, {})[s.extraction] = s
    for ds, arms in sorted(by_ds.items()):
        seg, man = arms.get("segmentation"), arms.get("manual")
        for name, s in (("manual", man), ("segmentation", seg)):
            if s is not None and s.record.extracted is not None and s.record.extracted.overlay:
                overlays.setdefault(ds, {})[name] = s.record.extracted.overlay
        if man is not None and man.record.extracted is not None:
            manual[ds] = man.record.extracted
        if seg is None or seg.record.extracted is None or seg.record.extracted.quality is None:
            continue
        quality.append((ds, seg.record.extracted.quality))
        if man is not None and man.stats is not None and seg.stats is not None:
            primary[ds] = seg.primary
            compare[ds] = compare_arms(man, seg)
    return ExtractionSummary(quality=tuple(quality), manual=manual, compare=compare, primary=primary,
                             overlays=overlays)  # fmt: skip


def compare_arms(man, seg) -> pd.DataFrame:
    """Per model × strategy: scores on the cells both arms hold, McNemar's test, and the end-to-end score."""
    record = seg.record
    classes = list(record.classes)
    k = record.n_classes
    primary = seg.primary
    fn = metric_function(primary, positive=record.positive, n_classes=k)
    e2e_metric = primary if primary in LABEL_METRICS else "balanced_accuracy"
    e2e_fn = metric_function(e2e_metric, positive=None, n_classes=k)
    missed = record.extracted.missed_by_class
    missed_y = np.concatenate(
        [np.full(int(n), classes.index(c), dtype=int) for c, n in missed.items() if c in classes and n] or [[]]
    ).astype(int)
    rows = []
    for key in sorted(set(man.stats.pooled) & set(seg.stats.pooled)):
        a, b = man.stats.pooled[key], seg.stats.pooled[key]
        common, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
        row: dict[str, Any] = {"model": key[0], "strategy": key[1], "n_common": len(common),
                               "n_manual": len(a.ids), "n_segmentation": len(b.ids)}
        if len(common):
            row["manual_same"] = fn(a.y_true[ia], np.c_[a.y_pred[ia], a.proba[ia]])
            row["segmentation_same"] = fn(b.y_true[ib], np.c_[b.y_pred[ib], b.proba[ib]])
            row["diff_same"] = row["manual_same"] - row["segmentation_same"]
            if np.array_equal(a.y_true[ia], b.y_true[ib]):
                row["mcnemar_p"] = stats.mcnemar_test(a.y_true[ia], a.y_pred[ia], b.y_pred[ib]).p_value
        wrong = (missed_y + 1) % k  # a missed cell is never classified right
        y = np.r_[b.y_true, missed_y]
        pred = np.r_[b.y_pred, wrong]
        row["segmentation_e2e"] = e2e_fn(y, pred[:, None].astype(float))
        row["manual_all"] = e2e_fn(a.y_true, a.y_pred[:, None].astype(float))
        row["e2e_metric"] = e2e_metric
        row["n_missed"] = len(missed_y)
        rows.append(row)
    return pd.DataFrame(rows)


def render_extraction(summary: ExtractionSummary | None, *, timings: bool = True) -> list[str]:
    """Markdown lines of the extraction section (nothing when no data set has a field extraction)."""
    if summary is None or not (summary.quality or summary.manual):
        return []

    lines = ["## Extraction: manual vs automatic segmentation", ""]
    if summary.quality:
        lines += [
            "### Extraction quality — how well segmentation finds the annotated cells",
            "",
            "A found cell and an annotated cell match one-to-one (Hungarian assignment) when their masks or boxes "
            "overlap by the IoU gate, or their centroids lie within the distance gate (in typical cell diameters). "
            "Precision = matched / found (found cells nobody annotated count against it), recall = matched / "
            "annotated. Dice and IoU are over matched cells with an annotated mask; *all* counts a missed cell as 0. "
            "Time per field: segmentation only, one core.",
            "",
        ]
        head = ["data set", "matching", "annotated", "found", "matched", "missed", "unmatched", "precision",
                "recall", "F1", "recall by class", "cell Dice / IoU", "nucleus Dice (all)"]
        if timings:
            head += ["s / field", "fields / s"]
        rows = []
        for ds, q in summary.quality:
            gate = q.gate or ("distance" if q.match_kind == "centroid" else "IoU")
            row = [
                ds, f"{q.match_kind} ({gate})", q.targets, q.found, q.matched, q.missed, q.unmatched,
                num(q.precision), num(q.recall), num(q.f1),
                ", ".join(f"{c} {num(v['recall'], 2)}" for c, v in q.by_class.items()),
                f"{num(q.cell_dice)} / {num(q.cell_iou)}" if q.masks_compared else "—",
                f"{num(q.nucleus_dice)} ({num(q.nucleus_dice_all)})" if q.nucleus_dice else "—",
            ]  # fmt: skip
            if timings:
                row += [num(q.seconds_per_field, 3), num(q.fields_per_second, 1)]
            rows.append(row)
        lines += table(rows, head)
        for ds, q in summary.quality:
            for x in q.flagged_fields:
                lines.append(f"- {ds}: field **{x['field']}** flagged: {'; '.join(x['reasons'])}")
        if any(q.flagged_fields for _, q in summary.quality):
            lines += ["", "Flagged fields lie beyond the robust z limit (`field_z`) of their data set in cell count "
                      "or stain statistics; their cells are in the grid: check them in the overlay or the crops.",
                      ""]  # fmt: skip
    for ds, m in sorted(summary.manual.items()):
        excluded = m.excluded
        lines += [
            f"- {ds}, manual: {m.cells} cells from {m.fields} fields ({m.windows})"
            + (f"; annotations of other labels left out: {', '.join(f'{k} {v}' for k, v in excluded.items())}"
               if excluded else ""),
        ]
    if summary.manual:
        lines.append("")
    for ds, rel in sorted(summary.figures.items()):
        lines += [
            f"**Figure**: {ds} — manual (annotation: red dots, circles or boxes, magenta when segmentation missed "
            "it; manual crop windows: dashed) and segmented outlines (green: matched an annotation; orange: "
            "unmatched) on the fields with the most annotated cells and those with the most unmatched cells.",
            "",
            f"![{ds} extraction overlay]({rel})",
            "",
        ]
    for ds, df in sorted(summary.compare.items()):
        if df.empty:
            continue
        label = METRIC_LABELS.get(summary.primary[ds], summary.primary[ds])
        e2e = METRIC_LABELS.get(df.e2e_metric.iloc[0], df.e2e_metric.iloc[0])
        lines += [
            f"### {ds}: the same cells, and segmentation end to end",
            "",
            f"*Same cells*: {label} of each arm's pooled out-of-fold predictions on the cells both arms hold (a "
            "segmented cell that matched an annotation is that annotated cell), Δ = manual − segmentation, "
            "McNemar's test on the paired hard predictions (`*`: p < 0.05). *End to end*: the segmentation arm's "
            f"{e2e} with each of the {int(df.n_missed.iloc[0])} annotated cells it missed counted as misclassified; "
            f"*manual, all*: the manual arm's pooled {e2e}. Each arm has its own field-disjoint folds (their cells "
            "differ), so per-fold tests do not pair across arms.",
            "",
        ]
        rows = [
            [r.model, r.strategy, r.n_common, num(r.get("manual_same")), num(r.get("segmentation_same")),
             signed(r.get("diff_same")), p_value(r.get("mcnemar_p")),
             num(r.manual_all), num(r.segmentation_e2e)]
            for _, r in df.iterrows()
        ]  # fmt: skip
        lines += table(rows, ["model", "strategy", "cells", "manual (same)", "segmentation (same)", "Δ", "McNemar p",
                              f"manual, all ({e2e})", f"segmentation end to end ({e2e})"])  # fmt: skip
    return lines


def draw_extraction_figures(summary: ExtractionSummary | None, out_dir: Path) -> ExtractionSummary | None:
    """Draw one overlay figure per data set into ``out_dir/figures``; the summary with their relative links."""
    if summary is None:
        return None
    fig_dir = Path(out_dir) / "figures"
    figures = {}
    for ds, arms in sorted(summary.overlays.items()):
        path = overlay_figure(arms, fig_dir / f"{ds}-extraction_overlay.png")
        if path is not None:
            figures[ds] = path.resolve().relative_to(Path(out_dir).resolve()).as_posix()
    return replace(summary, figures=figures)


def overlay_figure(arms: dict[str, list[dict[str, Any]]], path: Path, *, width: int = 900) -> Path | None:
    """Fields with manual and segmented outlines (one panel per field), from the overlay records of the arms."""
    seg = {o["field"]: o for o in arms.get("segmentation", [])}
    man = {o["field"]: o for o in arms.get("manual", [])}
    fields = list(seg) or list(man)
    if not fields:
        return None
    rows = math.ceil(len(fields) / COLUMNS)
    cols = min(COLUMNS, len(fields))
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = new_figure(5.0 * cols, 4.0 * rows + 0.4)
        axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
        for ax in axes[len(fields) :]:
            ax.axis("off")
        for ax, fid in zip(axes, fields):
            rec = seg.get(fid) or man.get(fid)
            w, h = int(rec["width"]), int(rec["height"])
            s = min(1.0, width / w)
            img = _thumbnail(rec["image"], (w, h), s, cv2)
            ax.imshow(img if img is not None else np.full((int(h * s), int(w * s), 3), 235, np.uint8))
            if img is None:
                ax.text(0.5, 0.5, "image not available", transform=ax.transAxes, ha="center")
            for o in (man.get(fid) or {}).get("outlines", []):
                if o["kind"] == "window":
                    x0, y0, x1, y1 = (v * s for v in o["box"])
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=ANNOTATED, lw=0.8, ls="--"))
            for o in (seg.get(fid) or man.get(fid) or {}).get("outlines", []):
                _draw_outline(ax, o, s)
            title = fid if "why" not in rec else f"{fid}\n{rec['why']}"
            ax.set(xticks=[], yticks=[], xlim=(0, w * s), ylim=(h * s, 0))
            ax.set_title(title, fontsize=8)
        handles = [Patch(fc="none", ec=MATCHED, label="found, matched"),
                   Patch(fc="none", ec=UNMATCHED, label="found, unmatched"),
                   Line2D([], [], color=ANNOTATED, marker="o", ls="none", mfc="none", label="annotated, found"),
                   Line2D([], [], color=MISSED, marker="X", ls="none", label="annotated, missed")]  # fmt: skip
        if not seg:
            handles = [Line2D([], [], color=ANNOTATED, marker="o", ls="none", mfc="none", label="annotated")]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
        return save_png(fig, path)


def _draw_outline(ax, o: Mapping[str, Any], s: float) -> None:
    """One outline of an overlay record at scale ``s``: an annotation (missed ones magenta) or a found cell."""
    kind = o["kind"]
    colour = MISSED if o.get("missed") else ANNOTATED
    lw = 1.6 if o.get("missed") else 0.9
    if kind == "centroid":
        x, y = (v * s for v in o["centroid"])
        ax.add_patch(Circle((x, y), o.get("radius", 20) * s, fill=False, ec=colour, lw=lw))
        ax.plot([x], [y], "X" if o.get("missed") else ".", color=colour, ms=6 if o.get("missed") else 3)
    elif kind == "box":
        x0, y0, x1, y1 = (v * s for v in o["box"])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=lw))
    elif kind == "mask" and o.get("polygon"):
        ax.add_patch(Polygon(np.asarray(o["polygon"]) * s, closed=True, fill=False, ec=colour, lw=lw))
    elif kind == "found" and o.get("polygon"):
        ax.add_patch(Polygon(np.asarray(o["polygon"]) * s, closed=True, fill=False,
                             ec=MATCHED if o.get("matched") else UNMATCHED, lw=1.0))  # fmt: skip


def _thumbnail(image_path: str, size: tuple[int, int], scale: float, cv2):
    p = Path(image_path)
    if not p.is_file():
        return None
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or (img.shape[1], img.shape[0]) != tuple(size):
        return None
    out = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    img = cv2.resize(img, out, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
