"""Automatic white-cell segmentation of stained blood-smear fields.

The pipeline (:func:`segment_field`), in order:

1. **Scale.** Cells are detected on a copy downscaled so that a typical white cell is ``work_diameter`` pixels
   wide (32 by default): whole ALL-IDB1 fields (2592x1944) are handled in a fraction of a second. The typical
   diameter is a parameter in pixels (``diameter_unit = "px"``) or as a fraction of the image's shorter side
   (``"image"``, for single-cell images). With ``adapt_scale`` the diameter is measured on the cells found in
   a first pass (median equivalent diameter of the convex ones, when there are at least three) and the field is
   segmented again at that scale when it is over 20 % larger or 15 % smaller: magnification varies between fields
   of one data set.
2. **Stain separation.** The field is normalised by its own background colour (the median colour of its
   brightest quarter), turned into optical density and projected on the haematoxylin vector of Ruifrok and
   Johnston's colour deconvolution (:data:`skimage.color.hed_from_rgb`): nuclei and the bluish cytoplasm of
   white cells stand out, red cells and background stay low.
3. **Threshold.** Otsu's threshold of the stain channel; while more than ``max_stained_share`` of the field lies
   above it (Otsu split background from red cells, as when a field holds one white cell), Otsu's threshold
   within the upper class is taken instead (three times at most). Opening removes specks, small holes (pale
   nucleoli) are filled.
4. **Splitting touching cells.** A marker-controlled watershed (:func:`skimage.segmentation.watershed`) on a
   relief that adds the smoothed distance transform of the mask (in cell radii) and ``intensity_weight`` times
   the smoothed stain (dense nuclei are brighter than the rims where cells touch); markers are its local maxima
   at least ``seed_distance`` cell diameters apart (:func:`skimage.feature.peak_local_max`). Regions that still
   look like clumps (larger than the largest cell, or non-convex and larger than 1.5 cells) are split again on
   their own distance transform with markers half as far apart (``split_clumps``). Adjacent pieces whose union
   is convex (solidity >= ``merge_solidity``) and not larger than the largest allowed cell are merged again (a
   textured nucleus split in two).
5. **Size filter.** Regions whose equivalent diameter lies outside ``[min_diameter, max_diameter]`` typical
   diameters are dropped: platelets and debris below, unsplit clumps above.
   **Stain test (the second threshold).** A per-field threshold can adapt itself onto red cells: on a field
   holding one white cell among pale red cells, Otsu splits red cells from background and every red cell
   passes the size filter. So a region is kept only if its stained core (the mean stain of its densest
   quarter) reaches ``min_stain`` (an absolute haematoxylin optical density: nuclei of every shared data set
   reach it, red cells do not) and ``red_factor`` times the field's red-cell level (the median stain over the
   field's cells of any kind: what is darker than background by the lower of the three-class Otsu thresholds
   of the total optical density; red cells outnumber white cells in a smear, and overlapping red cells are
   twice as dense as one). Rejected regions are counted
   (:attr:`FieldSegmentation.rejected`) and never drive the scale adaptation.
6. **Full-resolution outline and nucleus.** Each cell's outline is refined on the full-resolution image (the
   same threshold, within a band around the upscaled region, never across a neighbour), and its nucleus is
   the darker-green part of the cell (:func:`cellbench.datasets.masks.nucleus_mask`, Otsu on the green channel).

With ``keep = "central"`` only the cell nearest the image centre is kept (single-cell images such as
Zheng et al.'s). Every parameter is a field of :class:`SegmentationParams`; suites set them per data set
(``[datasets.NAME.segmentation]``) over each data set's defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.color import hed_from_rgb
from skimage.feature import peak_local_max
from skimage.filters import threshold_multiotsu, threshold_otsu
from skimage.measure import regionprops
from skimage.morphology import remove_small_holes
from skimage.segmentation import watershed

from cellbench.core.errors import ConfigError
from cellbench.datasets.checks import check_choice, check_flags, check_number
from cellbench.datasets.masks import fill_holes, largest_region, nucleus_mask

SEGMENTATION_VERSION = 2  # bump whenever the found cells of the same image and parameters change
UNITS = ("px", "image")
KEEP = ("all", "central")
# scale adaptation: the median diameter of at least 3 convex cells, when it is outside 0.85-1.2 typical diameters
ADAPT_MIN_CELLS = 3
ADAPT_SOLIDITY = 0.9
ADAPT_BAND = (0.85, 1.2)
_CLOSED, _OPEN_LOW = (True, True), (False, True)
# (field, low, high, ends included) of the numeric parameters besides the diameters' scale
_RANGES = (
    ("min_diameter", 0.0, 10.0, _CLOSED),
    ("max_diameter", 0.0, 20.0, _OPEN_LOW),
    ("max_stained_share", 0.0, 1.0, _OPEN_LOW),
    ("opening", 0.0, 1.0, _CLOSED),
    ("hole", 0.0, 2.0, _CLOSED),
    ("seed_distance", 0.05, 2.0, _CLOSED),
    ("intensity_weight", 0.0, 10.0, _CLOSED),
    ("merge_solidity", 0.0, 2.0, _CLOSED),
    ("min_stain", 0.0, 5.0, _CLOSED),
    ("red_factor", 0.0, 20.0, _CLOSED),
    ("field_z", 0.0, math.inf, _OPEN_LOW),
)
CORE_SHARE = 0.25  # a region's stained core: its densest quarter
RED_PERCENTILE = 50.0  # the red-cell level: this percentile of the stain over the field's cells


@dataclass(frozen=True, kw_only=True)
class SegmentationParams:
    """Parameters of :func:`segment_field`; lengths are in typical cell diameters unless said otherwise.

    Parameters
    ----------
    cell_diameter
        Typical white-cell diameter: pixels (``diameter_unit="px"``) or a fraction of the image's shorter side
        (``"image"``).
    diameter_unit
        ``"px"`` or ``"image"``.
    work_diameter
        Pixels a typical cell spans at the detection scale (the field is downscaled, never enlarged).
    adapt_scale
        Measure the diameter on the cells of a first pass and segment again at that scale if it differs.
    min_diameter, max_diameter
        Size filter on the equivalent diameter.
    max_stained_share
        Largest share of the field expected above the stain threshold (see the module docstring).
    opening
        Radius of the opening that removes specks.
    hole
        Holes below a disc of this diameter are filled.
    seed_distance
        Least distance between two watershed markers.
    intensity_weight
        Weight of the stain against the distance transform in the watershed relief (0 = distance only).
    merge_solidity
        Adjacent pieces whose union has at least this solidity are merged (above 1: never).
    split_clumps
        Split again the regions that look like several cells (see :func:`split_clumps`).
    cytoplasm
        Grow each cell over the pale cytoplasm around its stained part (see :func:`_add_cytoplasm`).
    keep
        ``"all"`` cells, or only the ``"central"`` one.
    min_stain
        Least haematoxylin optical density of a region's stained core (0: no floor).
    red_factor
        A region's core must reach this multiple of the field's red-cell level (0: no test; single-cell images,
        where the white cell fills the image, cannot measure that level).
    field_z
        The extraction flags a field whose cell count or stain statistics lie more than this many robust
        standard deviations from the data set's median (see :mod:`cellbench.datasets.fieldcheck`).
    """

    cell_diameter: float = 110.0
    diameter_unit: Literal["px", "image"] = "px"
    work_diameter: float = 32.0
    adapt_scale: bool = True
    min_diameter: float = 0.45
    max_diameter: float = 2.2
    max_stained_share: float = 0.2
    opening: float = 0.1
    hole: float = 0.5
    seed_distance: float = 0.35
    intensity_weight: float = 0.5
    merge_solidity: float = 0.93
    split_clumps: bool = True
    cytoplasm: bool = False
    keep: Literal["all", "central"] = "all"
    min_stain: float = 0.25
    red_factor: float = 3.0
    field_z: float = 3.5

    def __post_init__(self):
        check_number(self, "cell_diameter", low=0.0, high=math.inf, closed=(False, True))
        check_choice(self, "diameter_unit", UNITS)
        if self.diameter_unit == "image" and self.cell_diameter > 1:
            raise ConfigError(
                f"cell_diameter is a fraction of the image side with diameter_unit='image'; got {self.cell_diameter!r}"
            )
        check_number(self, "work_diameter", low=8.0, high=256.0)
        check_flags(self, ("adapt_scale", "split_clumps", "cytoplasm"))
        for name, low, high, closed in _RANGES:
            check_number(self, name, low=low, high=high, closed=closed)
        if self.min_diameter >= self.max_diameter:
            raise ConfigError(
                f"min_diameter ({self.min_diameter}) must be smaller than max_diameter ({self.max_diameter})"
            )
        check_choice(self, "keep", KEEP)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, *, base: SegmentationParams | None = None):
        """``base`` (default: the class defaults) with ``options`` applied; unknown names are refused."""
        options = dict(options or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown segmentation parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
            )
        return replace(base, **options) if base is not None else cls(**options)

    def canonical(self) -> dict[str, Any]:
        return {"version": SEGMENTATION_VERSION, **asdict(self)}

    def diameter_px(self, shape: tuple[int, ...]) -> float:
        """The typical diameter in pixels for an image of ``shape``."""
        return self.cell_diameter * (min(shape[:2]) if self.diameter_unit == "image" else 1.0)


@dataclass(frozen=True, kw_only=True, eq=False)
class FoundCell:
    """One segmented cell at full resolution.

    ``box`` is (x0, y0, x1, y1), end exclusive; ``mask`` and ``nucleus`` are boolean arrays of the box's size.
    """

    box: tuple[int, int, int, int]
    centroid: tuple[float, float]
    mask: np.ndarray
    nucleus: np.ndarray
    solidity: float
    touches_border: bool

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def diameter(self) -> float:
        return 2.0 * math.sqrt(self.area / math.pi)

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The cell's mask placed in an image of ``shape``."""
        out = np.zeros(shape, bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class FieldSegmentation:
    """The cells found in one image and how: the diameter used (px), the detection scale and threshold, the
    field's red-cell stain level, the share of the field above the threshold, the regions the stain test
    rejected and the background colour."""

    cells: tuple[FoundCell, ...]
    shape: tuple[int, int]
    diameter: float
    scale: float
    threshold: float
    seconds: float
    red_level: float = float("nan")
    stained_share: float = 0.0
    rejected: int = 0
    background: tuple[float, float, float] = (float("nan"),) * 3

    def label_image(self) -> np.ndarray:
        """Instance labels at full resolution: 0 = background, k = ``cells[k - 1]``."""
        out = np.zeros(self.shape, np.int32)
        for k, c in enumerate(self.cells, start=1):
            x0, y0, x1, y1 = c.box
            out[y0:y1, x0:x1][c.mask] = k
        return out


# -- colour -------------------------------------------------------------------------------------------------


def background_colour(image: np.ndarray, *, percentile: float = 75.0) -> np.ndarray:
    """The median RGB colour of the brightest quarter of the image (by smoothed luminance)."""
    f = image.astype(np.float32)
    lum = cv2.GaussianBlur(f.sum(axis=2), (0, 0), 2.0)
    bright = lum >= np.percentile(lum, percentile)
    return np.median(f[bright], axis=0)


def stain_channel(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density of an RGB ``uint8`` image normalised by its ``background`` colour."""
    f = image.astype(np.float32)
    od = np.maximum(-np.log((f + 1.0) / (np.asarray(background, np.float32) + 1.0)), 0.0)
    return od @ hed_from_rgb[:, 0].astype(np.float32)


def stain_threshold(stain: np.ndarray, *, max_share: float) -> float:
    """Otsu's threshold, raised to Otsu's within the upper class while too much of the image lies above it."""
    values = stain.ravel()
    t = float(threshold_otsu(values))
    for _ in range(3):
        upper = values[values > t]
        if upper.size <= max_share * values.size or upper.size < 2 or upper.min() == upper.max():
            break
        t = float(threshold_otsu(upper))
    return t


# -- the pipeline -------------------------------------------------------------------------------------------


def segment_field(image: np.ndarray, params: SegmentationParams | None = None) -> FieldSegmentation:
    """Find the white cells of an RGB ``uint8`` image (see the module docstring)."""
    params = params or SegmentationParams()
    t0 = time.perf_counter()
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"segment_field needs an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    diameter = params.diameter_px(image.shape)
    background = background_colour(image)
    found = _detect(image, background, diameter, params)
    measured = [d for d, s in zip(found.diameters, found.solidities) if s >= ADAPT_SOLIDITY]
    if params.adapt_scale and len(measured) >= ADAPT_MIN_CELLS:
        d = float(np.median(measured))
        if not ADAPT_BAND[0] <= d / diameter <= ADAPT_BAND[1]:
            diameter = d
            found = _detect(image, background, diameter, params)
    cells = _refine(image, background, found, diameter)
    if params.keep == "central" and cells:
        h, w = image.shape[:2]
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        cells = [min(cells, key=lambda c: _centre_distance(c, centre))]
    return FieldSegmentation(
        cells=tuple(cells),
        shape=image.shape[:2],
        diameter=diameter,
        scale=found.scale,
        threshold=found.threshold,
        seconds=time.perf_counter() - t0,
        red_level=found.red_level,
        stained_share=found.stained_share,
        rejected=found.rejected,
        background=tuple(float(v) for v in background),
    )


def _centre_distance(cell: FoundCell, centre: np.ndarray) -> float:
    x0, y0, x1, y1 = cell.box
    cx, cy = round(centre[0]), round(centre[1])
    if x0 <= cx < x1 and y0 <= cy < y1 and cell.mask[cy - y0, cx - x0]:
        return 0.0
    return float(np.hypot(*(np.asarray(cell.centroid) - centre)))


@dataclass(kw_only=True)
class _Detection:
    labels: np.ndarray  # low-resolution instance labels, filtered and numbered 1..n
    regions: list[int]
    diameters: list[float]  # full-resolution equivalent diameters
    solidities: list[float]
    scale: float
    threshold: float
    cell_threshold: float | None = None  # set when the cytoplasm was added: the not-background threshold
    red_level: float = float("nan")
    stained_share: float = 0.0
    rejected: int = 0  # regions of the right size that failed the stain test


def _disc(radius: float) -> np.ndarray:
    r = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _detect(image: np.ndarray, background: np.ndarray, diameter: float, p: SegmentationParams) -> _Detection:

    s = min(1.0, p.work_diameter / diameter)
    wd = diameter * s
    small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image
    stain = cv2.GaussianBlur(stain_channel(small, background), (0, 0), max(0.5, 0.03 * wd))
    empty = _Detection(labels=np.zeros(stain.shape, np.int32), regions=[], diameters=[], solidities=[], scale=s,
                       threshold=float("nan"))
    if float(stain.max() - stain.min()) < 1e-6:
        return empty
    t = stain_threshold(stain, max_share=p.max_stained_share)
    fg = stain > t
    red = red_level(small, background, stain, wd=wd)
    empty.threshold, empty.red_level, empty.stained_share = t, red, float(np.count_nonzero(fg)) / fg.size
    if p.opening > 0:
        fg = cv2.morphologyEx(fg.view(np.uint8), cv2.MORPH_OPEN, _disc(p.opening * wd)) > 0
    if p.hole > 0:
        fg = remove_small_holes(fg, max_size=int(math.pi * (p.hole * wd / 2) ** 2))
    if not fg.any():
        return empty
    dist = ndi.distance_transform_edt(fg).astype(np.float32)
    dist = cv2.GaussianBlur(dist, (0, 0), max(0.5, 0.05 * wd))
    smooth = cv2.GaussianBlur(stain, (0, 0), 0.22 * wd)
    relief = dist / (wd / 2)
    if p.intensity_weight > 0:
        relief = relief + p.intensity_weight * smooth / max(float(np.percentile(smooth[fg], 90)), 1e-6)
    components, _ = ndi.label(fg)
    peaks = peak_local_max(
        relief, min_distance=max(1, round(p.seed_distance * wd)), labels=components, exclude_border=False
    )
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-relief, markers, mask=fg)
    largest = math.pi * (p.max_diameter * wd / 2) ** 2
    if p.split_clumps:
        labels = split_clumps(labels, wd=wd, largest=largest, smallest=math.pi * (p.min_diameter * wd / 2) ** 2)
    t_cell = None
    if p.cytoplasm:
        labels, t_cell = _add_cytoplasm(small, background, labels, wd=wd, p=p)
    if p.merge_solidity <= 1:
        labels = merge_convex(labels, min_solidity=p.merge_solidity, max_area=largest)
    smallest = math.pi * (p.min_diameter * wd / 2) ** 2
    out = np.zeros_like(labels)
    regions, diameters, solidities = [], [], []
    floor = p.min_stain
    if p.red_factor > 0 and math.isfinite(red):
        floor = max(floor, p.red_factor * red)
    rejected = 0
    for rp in regionprops(labels, intensity_image=stain):
        if not smallest <= rp.area <= largest:
            continue
        if floor > 0 and stained_core(rp.image_intensity[rp.image]) < floor:
            rejected += 1
            continue
        k = len(regions) + 1
        out[rp.slice][rp.image] = k
        regions.append(k)
        diameters.append(float(rp.equivalent_diameter_area) / s)
        solidities.append(float(rp.solidity))
    return _Detection(labels=out, regions=regions, diameters=diameters, solidities=solidities, scale=s, threshold=t,
                      cell_threshold=t_cell, red_level=red, stained_share=empty.stained_share, rejected=rejected)


def stained_core(values: np.ndarray) -> float:
    """Mean of the densest :data:`CORE_SHARE` of a region's stain values (its nucleus, for a white cell)."""
    values = np.asarray(values, np.float32).ravel()
    if values.size == 0:
        return -math.inf
    k = max(1, math.ceil(CORE_SHARE * values.size))
    return float(np.partition(values, values.size - k)[-k:].mean())


def red_level(image: np.ndarray, background: np.ndarray, stain: np.ndarray, *, wd: float) -> float:
    """The stain level of a field's red cells: the :data:`RED_PERCENTILE` percentile of ``stain`` over the pixels
    darker than background (total optical density above the lower three-class Otsu threshold; red cells
    outnumber white cells in a smear). NaN when the field holds no such pixels."""
    od = cv2.GaussianBlur(density(image, background), (0, 0), max(0.5, 0.03 * wd))
    if float(od.max() - od.min()) < 1e-6:
        return float("nan")
    try:
        cells = od > float(threshold_multiotsu(od, classes=3)[0])
    except ValueError:  # fewer grey levels than classes
        return float("nan")
    return float(np.percentile(stain[cells], RED_PERCENTILE)) if cells.any() else float("nan")


def density(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Total optical density (summed over R, G, B) of an RGB image relative to its background colour."""
    f = image.astype(np.float32)
    return np.maximum(-np.log((f + 1.0) / (np.asarray(background, np.float32) + 1.0)), 0.0).sum(axis=2)


def _add_cytoplasm(small, background, labels, *, wd: float, p: SegmentationParams) -> tuple[np.ndarray, float]:
    """Grow the stained regions over the pale cytoplasm around them.

    Everything darker than the background (Otsu's threshold of the total optical density: cells of any kind) is
    split by a watershed on its distance transform whose markers are the stained regions and, for the red cells,
    the distance maxima away from them; a stained region keeps its basin within ``max_diameter`` / 2 of it.
    """
    od = cv2.GaussianBlur(density(small, background), (0, 0), max(0.5, 0.03 * wd))
    # three classes (background, cytoplasm and red cells, nuclei): the lower threshold takes in the cytoplasm
    t_cell = float(threshold_multiotsu(od, classes=3)[0])
    dark = (od > t_cell) | (labels > 0)
    dark = remove_small_holes(dark, max_size=int(math.pi * (0.5 * wd / 2) ** 2))
    dark = cv2.morphologyEx(dark.view(np.uint8), cv2.MORPH_OPEN, _disc(max(1.0, p.opening * wd))) > 0
    dark |= labels > 0
    dist = cv2.GaussianBlur(ndi.distance_transform_edt(dark).astype(np.float32), (0, 0), max(0.5, 0.05 * wd))
    stained = labels > 0
    near = cv2.dilate(stained.view(np.uint8), _disc(0.3 * wd)) > 0
    others = peak_local_max(dist, min_distance=max(1, round(0.3 * wd)), labels=(dark & ~near).view(np.uint8),
                            exclude_border=False)
    n = int(labels.max())
    markers = labels.copy()
    markers[tuple(others.T)] = np.arange(n + 1, n + 1 + len(others))
    grown = watershed(-dist, markers, mask=dark)
    grown[grown > n] = 0
    reach = ndi.distance_transform_edt(~stained) <= p.max_diameter * wd / 4
    grown[~reach] = 0
    grown[stained] = labels[stained]
    return grown, t_cell


def split_clumps(labels: np.ndarray, *, wd: float, largest: float, smallest: float) -> np.ndarray:
    """Split again the regions that look like several cells: larger than ``largest``, or larger than 1.5 typical
    cells and not convex (solidity under 0.9). Each is cut by a watershed on its own distance transform with
    markers half as far apart (0.25 typical diameters); the cut is kept when every piece is at least ``smallest``.
    """
    typical = math.pi * (wd / 2) ** 2
    out = labels.copy()
    n = int(labels.max())
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == k
        area = int(np.count_nonzero(region))
        if not (area > largest or (area > 1.5 * typical and solidity(region) < 0.9)):
            continue
        padded = np.pad(region, 1)
        dist = cv2.GaussianBlur(ndi.distance_transform_edt(padded).astype(np.float32), (0, 0), max(0.5, 0.05 * wd))
        peaks = peak_local_max(dist, min_distance=max(1, round(0.25 * wd)), labels=padded.view(np.uint8),
                               threshold_abs=0.25 * wd / 2, exclude_border=False)
        if len(peaks) < 2:
            continue
        markers = np.zeros(padded.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        pieces = watershed(-dist, markers, mask=padded)[1:-1, 1:-1]
        sizes = np.bincount(pieces.ravel(), minlength=len(peaks) + 1)[1:]
        if (sizes < smallest).any():
            continue
        sub = out[sl]
        for j in range(1, len(peaks)):  # piece 0 keeps the label k
            n += 1
            sub[pieces == j + 1] = n
    return out


def adjacent_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (a < b) of labels that touch (8-connectivity)."""
    pairs: set[tuple[int, int]] = set()
    shifts = (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1]),
    )
    for a, b in shifts:
        touch = (a != b) & (a > 0) & (b > 0)
        if touch.any():
            lo, hi = np.minimum(a[touch], b[touch]), np.maximum(a[touch], b[touch])
            pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def solidity(mask: np.ndarray) -> float:
    """Area over convex-hull area (the hull of the pixel squares, so a lone pixel has solidity 1)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    # the contour runs through pixel centres: add half a pixel around it (area + perimeter / 2 + 1)
    return float(np.count_nonzero(mask)) / max(cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0, 1.0)


def merge_convex(labels: np.ndarray, *, min_solidity: float, max_area: float) -> np.ndarray:
    """Merge touching regions, most convex union first, while a union is convex enough and not too large."""
    labels = labels.copy()
    while True:
        objects = ndi.find_objects(labels)
        best = None
        for a, b in adjacent_pairs(labels):
            sa, sb = objects[a - 1], objects[b - 1]
            y0, y1 = min(sa[0].start, sb[0].start), max(sa[0].stop, sb[0].stop)
            x0, x1 = min(sa[1].start, sb[1].start), max(sa[1].stop, sb[1].stop)
            sub = labels[y0:y1, x0:x1]
            union = (sub == a) | (sub == b)
            if np.count_nonzero(union) > max_area:
                continue
            s = solidity(union)
            if s >= min_solidity and (best is None or s > best[0]):
                best = (s, a, b)
        if best is None:
            return labels
        labels[labels == best[2]] = best[1]


def _refine(image: np.ndarray, background: np.ndarray, det: _Detection, diameter: float) -> list[FoundCell]:
    """Full-resolution outlines and nuclei of the detected regions."""
    h, w = image.shape[:2]
    s = det.scale
    cells = []
    if not det.regions:
        return cells
    objects = ndi.find_objects(det.labels)
    band = 0 if s >= 1 else math.ceil(1.5 / s)
    sigma = max(0.5, 0.03 * diameter)
    for k, sl in zip(det.regions, objects):
        if sl is None:
            continue
        x0 = max(0, math.floor(sl[1].start / s) - band - 2)
        y0 = max(0, math.floor(sl[0].start / s) - band - 2)
        x1 = min(w, math.ceil(sl[1].stop / s) + band + 2)
        y1 = min(h, math.ceil(sl[0].stop / s) + band + 2)
        if s < 1:
            # the low-resolution labels covering this box, upscaled (nearest) onto its full-resolution pixels
            ys = np.minimum(((np.arange(y0, y1) + 0.5) * s).astype(int), det.labels.shape[0] - 1)
            xs = np.minimum(((np.arange(x0, x1) + 0.5) * s).astype(int), det.labels.shape[1] - 1)
            up = det.labels[np.ix_(ys, xs)]
        else:
            up = det.labels[y0:y1, x0:x1]
        own = up == k
        crop = image[y0:y1, x0:x1]
        if band:
            if det.cell_threshold is None:
                above = cv2.GaussianBlur(stain_channel(crop, background), (0, 0), sigma) > det.threshold
            else:
                above = cv2.GaussianBlur(density(crop, background), (0, 0), sigma) > det.cell_threshold
            near = cv2.dilate(own.view(np.uint8), _disc(band)) > 0
            others = (up > 0) & ~own
            mask = above & near & ~others
            mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, _disc(max(1.0, 0.02 * diameter))) > 0
            mask = largest_region(mask) if mask.any() else own
            mask = fill_holes(mask) & ~others if mask.any() else own
            if np.count_nonzero(mask) < 0.5 * np.count_nonzero(own):
                mask = own
        else:
            mask = own
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        by0, by1, bx0, bx1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        mask = mask[by0:by1, bx0:bx1]
        crop = crop[by0:by1, bx0:bx1]
        box = (x0 + int(bx0), y0 + int(by0), x0 + int(bx1), y0 + int(by1))
        cells.append(
            FoundCell(
                box=box,
                centroid=(float(xs.mean() + x0), float(ys.mean() + y0)),
                mask=mask,
                nucleus=nucleus_mask(np.ascontiguousarray(crop), mask),
                solidity=solidity(mask),
                touches_border=box[0] == 0 or box[1] == 0 or box[2] == w or box[3] == h,
            )
        )
    return cells
