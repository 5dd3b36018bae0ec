"""Matching found cells to annotated cells, and the detection and mask-overlap scores.

One-to-one matching by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) on a cost that
depends on what the annotation gives: ``1 - IoU`` of the masks for mask annotations, ``1 - IoU`` of the found
cell's bounding box with the annotated box for boxes, and the distance between centroids for centroids. Pairs
beyond the gate (IoU under ``min_iou``, distance over ``max_distance``) never match. Found cells left without a
partner are *unmatched* (false detections, or cells nobody annotated); annotated cells left without one are
*missed*. Both are counted, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from cellbench.datasets.checks import check_number

_NO = 1e9


@dataclass(frozen=True, kw_only=True)
class MatchParams:
    """Gates of the matching: ``min_iou`` for masks and boxes, ``max_distance`` (in typical cell diameters) for
    centroids."""

    min_iou: float = 0.3
    max_distance: float = 0.6

    def __post_init__(self):
        check_number(self, "min_iou", low=0.0, high=1.0, closed=(False, True))
        check_number(self, "max_distance", low=0.0, high=5.0, closed=(False, True))


@dataclass(frozen=True, kw_only=True)
class Target:
    """An annotated cell as matching sees it: a full-image mask, a box (x0, y0, x1, y1) or a centroid."""

    mask: np.ndarray | None = None  # bool, in ``mask_box`` coordinates
    mask_box: tuple[int, int, int, int] | None = None
    box: tuple[int, int, int, int] | None = None
    centroid: tuple[float, float] | None = None

    @property
    def kind(self) -> str:
        return "mask" if self.mask is not None else "box" if self.box is not None else "centroid"


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A found cell: its mask in ``box`` coordinates and its centroid."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    centroid: tuple[float, float]


@dataclass(kw_only=True)
class Matching:
    """``pairs[i] = (found index, target index, score)``; score = IoU, or distance in pixels for centroids."""

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    def target_of(self) -> dict[int, int]:
        return {f: t for f, t, _ in self.pairs}


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_overlap(
    a: np.ndarray, a_box: tuple[int, int, int, int], b: np.ndarray, b_box: tuple[int, int, int, int]
) -> tuple[int, int, int]:
    """(intersection, area of a, area of b) of two masks given in their own boxes."""
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    x0, y0 = max(a_box[0], b_box[0]), max(a_box[1], b_box[1])
    x1, y1 = min(a_box[2], b_box[2]), min(a_box[3], b_box[3])
    if x1 <= x0 or y1 <= y0:
        return 0, na, nb
    sa = a[y0 - a_box[1] : y1 - a_box[1], x0 - a_box[0] : x1 - a_box[0]]
    sb = b[y0 - b_box[1] : y1 - b_box[1], x0 - b_box[0] : x1 - b_box[0]]
    return int(np.count_nonzero(sa & sb)), na, nb


def dice_iou(inter: int, na: int, nb: int) -> tuple[float, float]:
    """Dice and IoU from an intersection and two areas (both 1 when both are empty)."""
    if na + nb == 0:
        return 1.0, 1.0
    return 2.0 * inter / (na + nb), inter / (na + nb - inter)


def match_cells(
    found: Sequence[Candidate], targets: Sequence[Target], *, diameter: float, params: MatchParams | None = None
) -> Matching:
    """Match found cells to annotated cells one-to-one (see the module docstring).

    ``diameter`` is the typical cell diameter in pixels (it scales the centroid gate).
    """
    params = params or MatchParams()
    nf, nt = len(found), len(targets)
    if nf == 0 or nt == 0:
        return Matching(unmatched=list(range(nf)), missed=list(range(nt)))
    cost = np.full((nf, nt), _NO)
    score = np.zeros((nf, nt))
    gate = params.max_distance * diameter
    for j, t in enumerate(targets):
        for i, f in enumerate(found):
            if t.kind == "mask":
                inter, na, nb = mask_overlap(f.mask, f.box, t.mask, t.mask_box)
                if inter == 0:
                    continue
                iou = inter / (na + nb - inter)
                if iou >= params.min_iou:
                    cost[i, j], score[i, j] = 1.0 - iou, iou
            elif t.kind == "box":
                iou = box_iou(f.box, t.box)
                if iou >= params.min_iou:
                    cost[i, j], score[i, j] = 1.0 - iou, iou
            else:
                d = float(np.hypot(f.centroid[0] - t.centroid[0], f.centroid[1] - t.centroid[1]))
                if d <= gate:
                    cost[i, j], score[i, j] = d / gate, d
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(i), int(j), float(score[i, j])) for i, j in zip(rows, cols) if cost[i, j] < _NO]
    used_f, used_t = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    return Matching(
        pairs=sorted(pairs),
        unmatched=[i for i in range(nf) if i not in used_f],
        missed=[j for j in range(nt) if j not in used_t],
    )


def detection_scores(*, matched: int, found: int, annotated: int) -> dict[str, float]:
    """Precision (matched / found), recall (matched / annotated) and their F1; NaN where undefined."""
    precision = matched / found if found else float("nan")
    recall = matched / annotated if annotated else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if found and annotated and precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1 if found and annotated else float("nan")}
