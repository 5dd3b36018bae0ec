"""The embedded default data set: SYNTHETIC stained blood-smear fields with white-cell masks.

A deterministic generator of microscopy-like fields (pale background, overlapping red blood cells and a
few non-overlapping white cells with a class each) and the matching single-cell crops. Two classes are
modelled on what separates leukaemic blasts from normal lymphocytes: nucleus size, nucleus-to-cytoplasm
ratio, chromatin texture (coarse and dark vs fine and pale with nucleoli) and nuclear contour
irregularity. A cell's look is driven by one latent "atypia" value whose class-conditional means are
``3.2 / difficulty`` standard deviations apart, so the classes overlap and no model is perfect (the
Bayes limit of the balanced accuracy is about ``Phi(1.6 / difficulty)``, 0.945 at the default).
Patients differ in stain hue and strength, white balance, focus, noise, cell size and how atypical
their blasts are, so features also carry the patient and random cross-validation looks better than
patient-disjoint cross-validation. Leukaemic patients have mostly blasts, healthy subjects only normal
cells.

Layout of a generated folder ``<cache>/synthetic/<fingerprint>/``::

    params.json               the configuration, generator version and fingerprint
    index.csv                 one row per white cell (see ``INDEX_COLUMNS``)
    fields/<field_id>.png     RGB uint8 field
    masks/<field_id>.png      uint16 grey instance labels: 0 = background and red cells, k = the white
                              cell whose ``instance`` is k in ``index.csv``
    cells/<cell_id>.png       RGB uint8 crop of ``crop_size`` square around the cell's box centre; parts
                              outside the field are padded with the field's median background colour
    cells/<cell_id>_mask.png  uint8, 255 = the cell, 0 elsewhere
    COMPLETE                  written last; a folder without it is never used

Generation writes into a temporary sibling folder that is renamed into place once complete
(:func:`cellbench.core.files.build_folder`), so a killed run leaves no folder that looks complete and concurrent
processes are safe (the first rename wins; the others discard their copy).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from cellbench.core import files
from cellbench.core.errors import ConfigError, DataError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Annotation, Dataset, DatasetInfo, Field, Sample
from cellbench.datasets.checks import check_integer, check_number
from cellbench.datasets.entry import DatasetEntry, FieldDefaults
from cellbench.datasets.io import crop_window, write_png

GENERATOR_VERSION = 1  # bump whenever the generated pixels, masks or index change
CLASSES = ("normal", "blast")
COMPLETE_MARKER = "COMPLETE"
INDEX_COLUMNS = (
    "cell_id",
    "field_id",
    "patient",
    "diagnosis",
    "label",
    "instance",
    "x0",
    "y0",
    "x1",
    "y1",
    "cx",
    "cy",
    "crop_x0",
    "crop_y0",
    "cell_area",
    "nucleus_area",
    "nc_ratio",
)

# Latent atypia: normal ~ N(0, 1), blast ~ N(SEPARATION / difficulty, 1), scaled per leukaemic patient.
SEPARATION = 3.2
# Stain optical densities per unit concentration (R, G, B); intensity = white * exp(-sum(c * od)).
OD_EOSIN = np.array([0.05, 0.40, 0.24], dtype=np.float32)
OD_NUCLEUS = np.array([0.78, 1.00, 0.36], dtype=np.float32)
OD_CYTOPLASM = np.array([0.36, 0.22, 0.06], dtype=np.float32)
WHITE = np.array([247.0, 243.0, 246.0], dtype=np.float32)
RBC_RADIUS = 12.5
SIZE_RANGE = (0.8, 1.25)  # bounds of a patient's cell-size scale
MIN_CROP = 72
_INTEGERS = (("seed", 0), ("n_patients", 2), ("fields_per_patient", 1), ("field_size", 128), ("crop_size", MIN_CROP))
# (field, low, high, ends included)
_NUMBERS = (
    ("blast_fraction", 0.0, 1.0, (False, False)),
    ("leukemic_blast_share", 0.0, 1.0, (False, True)),
    ("difficulty", 0.0, math.inf, (False, False)),
    ("patient_shift", 0.0, 10.0, (True, True)),
    ("noise", 0.0, 10.0, (True, True)),
    ("rbc_density", 0.0, 0.8, (True, True)),
)


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """Parameters of the synthetic data set; the same values always give byte-identical files.

    Parameters
    ----------
    seed
        Seed of every random draw.
    n_patients, fields_per_patient
        Subjects and fields per subject.
    cells_per_field
        Inclusive (low, high) range of white cells per field.
    blast_fraction
        Overall share of blasts among the white cells, in (0, 1); 0.3 is close to C-NMC (about 1:2.3).
    leukemic_blast_share
        Share of blasts among a leukaemic patient's white cells, in (0, 1]; the number of leukaemic
        patients follows from it and ``blast_fraction``, the others are healthy (normal cells only).
    field_size, crop_size
        Side of the square fields and of the single-cell crops, in pixels.
    difficulty
        > 0; larger brings the classes closer (1.0 gives a best balanced accuracy of about 0.9).
    patient_shift
        >= 0; scale of the per-patient stain, illumination and morphology shifts (0 = none).
    noise
        >= 0; scale of the sensor noise.
    rbc_density
        Share of the field area covered by red cells, in [0, 0.8].
    """

    seed: int = 0
    n_patients: int = 40
    fields_per_patient: int = 4
    cells_per_field: tuple[int, int] = (3, 6)
    blast_fraction: float = 0.3
    leukemic_blast_share: float = 0.8
    field_size: int = 384
    crop_size: int = 96
    difficulty: float = 1.0
    patient_shift: float = 1.0
    noise: float = 1.0
    rbc_density: float = 0.45

    def __post_init__(self):
        # TOML and JSON give lists; keep the tuple so the config stays hashable
        if isinstance(self.cells_per_field, list):
            self._set("cells_per_field", tuple(self.cells_per_field))
        for name, low in _INTEGERS:
            check_integer(self, name, low=low)
        cpf = self.cells_per_field
        if not (isinstance(cpf, tuple) and len(cpf) == 2) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in cpf
        ):
            raise ConfigError(f"cells_per_field must be a pair of integers (low, high), got {cpf!r}")
        most = max_cells_per_field(self.field_size)
        if not 1 <= cpf[0] <= cpf[1] <= most:
            raise ConfigError(
                f"cells_per_field must satisfy 1 <= low <= high <= {most} (for field_size "
                f"{self.field_size}), got {cpf!r}"
            )
        if self.crop_size > self.field_size:
            raise ConfigError(f"crop_size must not exceed field_size ({self.field_size}), got {self.crop_size!r}")
        for name, low, high, closed in _NUMBERS:
            check_number(self, name, low=low, high=high, closed=closed)

    @property
    def n_fields(self) -> int:
        return self.n_patients * self.fields_per_patient

    def canonical(self) -> dict[str, Any]:
        return {"generator": GENERATOR_VERSION, **asdict(self)}

    @property
    def fingerprint(self) -> str:
        """Stable hash of the configuration and the generator version (names the cache folder)."""
        return stable_hash(self.canonical())

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


def max_cells_per_field(field_size: int) -> int:
    """Most white cells a field of this side holds with room to spare (about one per 80x80 px)."""
    return max(1, int(0.5 * field_size**2 / (math.pi * 40.0**2)))


# --------------------------------------------------------------------------------------------------
# plan: who is leukaemic, how many cells per field, which are blasts (no pixels yet)


@dataclass(frozen=True, kw_only=True)
class FieldPlan:
    """One field to render: its id, patient and the label of each white cell."""

    field_id: str
    patient: str
    patient_index: int
    field_index: int
    leukemic: bool
    labels: tuple[str, ...]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    # independent streams per purpose, patient and field: a field's pixels do not depend on the others
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def patient_ids(n_patients: int) -> list[str]:
    width = max(3, len(str(n_patients)))
    return [f"P{i + 1:0{width}d}" for i in range(n_patients)]


def plan_fields(config: SyntheticConfig) -> list[FieldPlan]:
    """Decide cell counts, leukaemic patients and cell labels for every field.

    The number of blasts is ``round(blast_fraction * cells)`` (at least one of each class); they are
    spread over leukaemic patients in proportion to their cell counts.
    """
    rng = _rng(config.seed, 0)
    lo, hi = config.cells_per_field
    counts = rng.integers(lo, hi + 1, size=(config.n_patients, config.fields_per_patient))
    per_patient = counts.sum(axis=1)
    total = int(per_patient.sum())
    n_blast = min(max(round(config.blast_fraction * total), 1), total - 1)

    order = rng.permutation(config.n_patients)
    leukemic: list[int] = []
    capacity = 0
    for p in order:
        if capacity * config.leukemic_blast_share >= n_blast:
            break
        leukemic.append(int(p))
        capacity += int(per_patient[p])
    if capacity < n_blast:  # unreachable with valid configs; kept as a guard
        raise ConfigError(f"cannot place {n_blast} blasts in {total} cells")

    blasts = _largest_remainder(n_blast, [int(per_patient[p]) for p in leukemic])
    blasts_of = dict(zip(leukemic, blasts))
    ids = patient_ids(config.n_patients)
    plans = []
    for p in range(config.n_patients):
        labels = np.array(["normal"] * int(per_patient[p]), dtype=object)
        labels[rng.permutation(int(per_patient[p]))[: blasts_of.get(p, 0)]] = "blast"
        start = 0
        for f in range(config.fields_per_patient):
            n = int(counts[p, f])
            plans.append(
                FieldPlan(
                    field_id=f"{ids[p]}_F{f + 1:02d}",
                    patient=ids[p],
                    patient_index=p,
                    field_index=f,
                    leukemic=p in blasts_of,
                    labels=tuple(labels[start : start + n]),
                )
            )
            start += n
    return plans


def _largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (integers, each capped at its weight)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    base = np.minimum(np.floor(exact).astype(int), np.asarray(weights))
    rest = total - int(base.sum())
    for i in np.argsort(-(exact - base), kind="stable"):
        if rest == 0:
            break
        if base[i] < weights[i]:
            base[i] += 1
            rest -= 1
    return base.tolist()


def expected_counts(config: SyntheticConfig) -> dict[str, int]:
    """Cells per class, patients and fields of a configuration (cheap: no pixels are made)."""
    plans = plan_fields(config)
    labels = [lab for p in plans for lab in p.labels]
    return {
        "normal": labels.count("normal"),
        "blast": labels.count("blast"),
        "total": len(labels),
        "patients": config.n_patients,
        "leukemic_patients": len({p.patient for p in plans if p.leukemic}),
        "fields": len(plans),
    }


# --------------------------------------------------------------------------------------------------
# appearance: per patient, per cell


@dataclass(frozen=True, kw_only=True, eq=False)
class PatientStyle:
    """Per-patient stain, optics and morphology shifts."""

    blast_mean: float  # mean latent atypia of this patient's blasts
    size_scale: float
    od_eosin: np.ndarray
    od_nucleus: np.ndarray
    od_cytoplasm: np.ndarray
    eosin_gain: float
    nucleus_gain: float
    cytoplasm_gain: float
    background: float
    white: np.ndarray
    blur: float
    noise: float


def patient_style(rng: np.random.Generator, *, config: SyntheticConfig) -> PatientStyle:
    """Draw one patient's stain and optics; ``patient_shift`` scales every deviation from the base."""
    s = config.patient_shift

    def jitter(base: np.ndarray, sd: float) -> np.ndarray:
        return (base * np.exp(rng.normal(0.0, sd * s, 3))).astype(np.float32)

    mean = SEPARATION / config.difficulty
    return PatientStyle(
        blast_mean=mean * max(0.4, 1.0 + 0.15 * s * rng.normal()),
        size_scale=float(np.clip(np.exp(rng.normal(0.0, 0.05 * s)), *SIZE_RANGE)),
        od_eosin=jitter(OD_EOSIN, 0.12),
        od_nucleus=jitter(OD_NUCLEUS, 0.18),
        od_cytoplasm=jitter(OD_CYTOPLASM, 0.25),
        eosin_gain=float(np.exp(rng.normal(0.0, 0.15 * s))),
        nucleus_gain=float(np.exp(rng.normal(0.0, 0.12 * s))),
        cytoplasm_gain=float(np.exp(rng.normal(0.0, 0.18 * s))),
        background=float(0.09 * np.exp(rng.normal(0.0, 0.35 * s))),
        white=jitter(WHITE, 0.05).clip(150, 255),
        blur=float(0.8 * np.exp(rng.normal(0.0, 0.2 * s))),
        noise=float(config.noise * np.exp(rng.normal(0.0, 0.3 * s))),
    )


@dataclass(frozen=True, kw_only=True)
class CellLook:
    """Shape and stain parameters of one white cell, all driven by its latent atypia."""

    label: str
    atypia: float
    radius: float
    nucleus_fraction: float
    nucleus_offset: float
    cell_aspect: float
    nucleus_aspect: float
    cell_roughness: float
    nucleus_roughness: float
    notch: float
    chromatin: float
    chromatin_scale: float
    chromatin_contrast: float
    nucleoli: int
    cytoplasm: float


def cell_look(rng: np.random.Generator, *, label: str, style: PatientStyle, limit: float) -> CellLook:
    """Draw a white cell: normal ~ small, dense coarse nucleus; blast ~ large, pale fine, irregular."""
    t = rng.normal(style.blast_mean if label == "blast" else 0.0, 1.0)
    a = t / SEPARATION  # about 0 for normal cells, about 1 for blasts at the default difficulty
    n = rng.normal
    return CellLook(
        label=label,
        atypia=float(t),
        radius=float(np.clip((14.5 + 6.0 * a + n(0, 1.3)) * style.size_scale, 11.0, limit)),
        nucleus_fraction=float(np.clip(0.74 + 0.09 * a + n(0, 0.04), 0.55, 0.93)),
        nucleus_offset=float(rng.uniform(0.0, 0.8)),
        cell_aspect=float(1.0 + abs(n(0, 0.07))),
        nucleus_aspect=float(1.0 + abs(n(0, 0.08))),
        cell_roughness=float(abs(n(0.02, 0.01))),
        nucleus_roughness=float(np.clip(0.025 + 0.03 * a + n(0, 0.012), 0.005, 0.12)),
        notch=float(rng.uniform(0.1, 0.3)) if rng.random() < np.clip(0.1 + 0.45 * a, 0, 0.85) else 0.0,
        chromatin=float(np.clip(1.5 - 0.4 * a + n(0, 0.12), 0.5, 2.5)),
        chromatin_scale=float(np.clip(2.2 - 1.1 * a + n(0, 0.3), 0.6, 3.5)),
        chromatin_contrast=float(np.clip(0.38 - 0.18 * a + n(0, 0.06), 0.06, 0.7)),
        nucleoli=int(min(3, rng.poisson(max(0.0, 2.0 * a - 0.3)))),
        cytoplasm=float(np.clip(0.75 + 0.25 * a + n(0, 0.15), 0.3, 1.6)),
    )


def radial_contour(
    rng: np.random.Generator,
    *,
    center: tuple[float, float],
    radius: float,
    aspect: float = 1.0,
    roughness: float = 0.0,
    notch: float = 0.0,
    limit: float = math.inf,
    n_points: int = 72,
) -> np.ndarray:
    """Polygon (n, 2) of a blob: an ellipse with random low Fourier harmonics and an optional cleft.

    ``roughness`` is the RMS relative deviation of the radius; ``notch`` the relative depth of one
    indentation; no point lies farther than ``limit`` from ``center``.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    rot = rng.uniform(0.0, np.pi)
    a, b = math.sqrt(aspect), 1.0 / math.sqrt(aspect)
    r = radius / np.sqrt((np.cos(theta - rot) / a) ** 2 + (np.sin(theta - rot) / b) ** 2)
    k = np.arange(2, 7)
    amps = rng.normal(0.0, 1.0, k.size) / k**0.8
    amps *= roughness * math.sqrt(2.0) / max(float(np.sqrt((amps**2).sum())), 1e-9)
    phases = rng.uniform(0.0, 2.0 * np.pi, k.size)
    r = r * (1.0 + (amps[:, None] * np.cos(k[:, None] * theta + phases[:, None])).sum(axis=0))
    if notch > 0:
        d = np.angle(np.exp(1j * (theta - rng.uniform(0.0, 2.0 * np.pi))))
        r = r * (1.0 - notch * np.exp(-((d / 0.35) ** 2)))
    r = np.minimum(r, limit)
    return np.stack([center[0] + r * np.cos(theta), center[1] + r * np.sin(theta)], axis=1)


def _fill(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation.

    Wide filters run on a coarser grid that is then resized (same look, a fraction of the time).
    """
    step = max(1, int(sigma // 3))
    small = (-(-shape[0] // step), -(-shape[1] // step))
    g = cv2.GaussianBlur(rng.standard_normal(small, dtype=np.float32), (0, 0), sigma / step)
    if step > 1:
        g = cv2.resize(g, (small[1] * step, small[0] * step), interpolation=cv2.INTER_LINEAR)
        g = g[: shape[0], : shape[1]]
    return g / max(float(g.std()), 1e-6)


def _rbc_template(rng: np.random.Generator, *, radius: float) -> np.ndarray:
    """Eosin concentration of one red cell: a disc with a darker rim and a pale centre."""
    half = math.ceil(radius * 1.25) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    rot = rng.uniform(0.0, np.pi)
    aspect = 1.0 + abs(rng.normal(0.0, 0.06))
    u = (xx * math.cos(rot) + yy * math.sin(rot)) / math.sqrt(aspect)
    v = (-xx * math.sin(rot) + yy * math.cos(rot)) * math.sqrt(aspect)
    d = np.sqrt(u**2 + v**2) / radius
    disc = 1.0 / (1.0 + np.exp((d - 1.0) / 0.035))
    pallor = rng.uniform(0.35, 0.65)
    body = 1.0 - pallor * np.exp(-((d / 0.5) ** 2)) + 0.15 * np.exp(-(((d - 0.88) / 0.1) ** 2))
    return (disc * body * rng.uniform(0.85, 1.1)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# rendering


@dataclass(frozen=True, kw_only=True, eq=False)
class RenderedField:
    """A rendered field: RGB image, uint16 instance mask, per-cell records and background colour."""

    image: np.ndarray
    instances: np.ndarray
    nuclei: np.ndarray
    looks: tuple[CellLook, ...]
    background: tuple[int, int, int]


def _place_cells(
    rng: np.random.Generator, radii: list[float], *, size: int, gap: float = 8.0
) -> list[tuple[float, float]]:
    """Random centres for non-overlapping discs of the given outer radii, all inside the field."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(5000):
            x, y = rng.uniform(r + 2, size - r - 3, 2)
            if all(math.hypot(x - cx, y - cy) >= r + rr + gap for (cx, cy), rr in zip(centres, radii)):
                centres.append((float(x), float(y)))
                break
        else:
            raise ConfigError(
                f"cannot fit {len(radii)} white cells in a field of {size} px; lower cells_per_field "
                "or raise field_size"
            )
    return centres


def render_field(
    rng: np.random.Generator, style: PatientStyle, *, labels: tuple[str, ...], config: SyntheticConfig
) -> RenderedField:
    """Render one field with the given white-cell labels (instance k + 1 is ``labels[k]``)."""
    size = config.field_size
    limit = config.crop_size / 2.0 - 3.0  # outer radius bound: every cell fits its crop
    # room for a white cell's window and for red cells centred up to one radius beyond the edge
    pad = max(math.ceil(limit), math.ceil(2.8 * RBC_RADIUS * SIZE_RANGE[1])) + 8
    shape = (size + 2 * pad, size + 2 * pad)

    looks = [cell_look(rng, label=lab, style=style, limit=limit / 1.15) for lab in labels]
    outer = [min(limit, lk.radius * 1.15) for lk in looks]
    centres = _place_cells(rng, outer, size=size)

    background = style.background * (1.0 + 0.15 * _smooth_noise(rng, shape, 20.0))
    eosin = background.copy()
    nucleus = np.zeros(shape, np.float32)
    cytoplasm = np.zeros(shape, np.float32)
    instances = np.zeros(shape, np.uint16)
    nuclei = np.zeros(shape, bool)

    _draw_red_cells(rng, eosin, centres=centres, outer=outer, style=style, config=config, pad=pad)
    for k, (look, (cx, cy)) in enumerate(zip(looks, centres)):
        _draw_white_cell(
            rng, look, center=(cx + pad, cy + pad), limit=limit, style=style,
            planes=(eosin, nucleus, cytoplasm, background, instances, nuclei), instance=k + 1,
        )  # fmt: skip

    inner = (slice(pad, pad + size), slice(pad, pad + size))
    image = _compose(rng, eosin[inner], nucleus[inner], cytoplasm[inner], style=style, size=size)
    instances, nuclei = instances[inner], nuclei[inner]
    # background colour for padding crops: median of a sparse grid of pixels free of cells
    sub = (slice(None, None, 4), slice(None, None, 4))
    free = (instances[sub] == 0) & (eosin[inner][sub] < 2.0 * background[inner][sub] + 0.1)
    pixels = image[sub][free] if free.any() else image[sub].reshape(-1, 3)
    bg = np.median(pixels, axis=0)
    return RenderedField(
        image=image,
        instances=instances,
        nuclei=nuclei,
        looks=tuple(looks),
        background=tuple(int(v) for v in bg),
    )


def sparse_field(
    *,
    seed: int = 0,
    white_cells: int = 1,
    label: str = "normal",
    field_size: int = 384,
    rbc_density: float = 0.6,
    stain: float = 0.7,
    red_tint: float = 0.5,
) -> RenderedField:
    """A field of few white cells (none with ``white_cells=0``) among many red cells, its stain pale.

    The case a per-field threshold must survive: a healthy donor's field holding one lymphocyte (``label``
    ``"normal"``) among red cells crowded to ``rbc_density``, the red cells' eosin and the white cell's
    cytoplasm scaled by ``stain`` (< 1: paler). The white cells keep a dense nucleus. ``red_tint`` mixes that
    share of the nucleus stain into the red cells' colour: on real smears red cells take up some of the
    blue-violet stain (on ALL-IDB1's healthy fields enough for Otsu's threshold to split them from
    background), which is what lets a per-field threshold settle on them. Otherwise generated as the default
    data set's fields (same stains, optics and noise), from its own random stream.
    """
    config = SyntheticConfig(seed=seed, field_size=field_size, rbc_density=rbc_density)
    if not 0.0 <= red_tint <= 1.0:
        raise ConfigError(f"red_tint must be in [0, 1], got {red_tint!r}")
    if not 0.05 <= stain <= 1.0:
        raise ConfigError(f"stain must be in [0.05, 1] (1 = the default stain), got {stain!r}")
    if label not in CLASSES:
        raise ConfigError(f"label must be one of {', '.join(CLASSES)}, got {label!r}")
    most = max_cells_per_field(field_size)
    if isinstance(white_cells, bool) or not isinstance(white_cells, int) or not 0 <= white_cells <= most:
        raise ConfigError(
            f"white_cells must be an integer in [0, {most}] (field_size {field_size}), got {white_cells!r}"
        )
    style = patient_style(_rng(seed, 3, 0), config=config)
    tinted = ((1.0 - red_tint) * style.od_eosin + red_tint * style.od_nucleus).astype(np.float32)
    style = replace(style, od_eosin=tinted, eosin_gain=style.eosin_gain * stain,
                    cytoplasm_gain=style.cytoplasm_gain * stain)  # fmt: skip
    return render_field(_rng(seed, 3, 1), style, labels=(label,) * white_cells, config=config)


def _draw_red_cells(
    rng: np.random.Generator,
    eosin: np.ndarray,
    *,
    centres: list[tuple[float, float]],
    outer: list[float],
    style: PatientStyle,
    config: SyntheticConfig,
    pad: int,
) -> None:
    """Stamp red cells (some overlapping, some touching white cells) into the eosin plane in place."""
    size = config.field_size
    r_mean = RBC_RADIUS * style.size_scale
    templates = [_rbc_template(rng, radius=r_mean * rng.uniform(0.88, 1.12)) for _ in range(12)]
    n = int(rng.poisson(config.rbc_density * (size + 2 * r_mean) ** 2 / (math.pi * r_mean**2)))
    # candidates are drawn at once; those on a white cell are dropped, the rest accepted in order
    # unless they nearly cover an accepted red cell (partial overlaps are fine)
    cand = rng.uniform(-r_mean, size + r_mean, (4 * n, 2))
    which = rng.integers(len(templates), size=4 * n)
    wbc = np.asarray(centres, dtype=float).reshape(-1, 2)
    dist = np.hypot(cand[:, None, 0] - wbc[None, :, 0], cand[:, None, 1] - wbc[None, :, 1])
    free = np.all(dist >= np.asarray(outer, dtype=float) + 0.45 * r_mean, axis=1)
    min_d2 = (1.1 * r_mean) ** 2
    cell = 1.1 * r_mean
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}
    placed = 0
    for (x, y), t_idx in zip(cand[free].tolist(), which[free].tolist()):
        if placed == n:
            break
        gx, gy = int(x // cell), int(y // cell)
        near = (q for i in (-1, 0, 1) for j in (-1, 0, 1) for q in grid.get((gx + i, gy + j), ()))
        if any((x - qx) ** 2 + (y - qy) ** 2 < min_d2 for qx, qy in near):
            continue
        grid.setdefault((gx, gy), []).append((x, y))
        placed += 1
        t = templates[t_idx]
        h = t.shape[0] // 2
        # the canvas padding exceeds a red cell's reach, so the stamp never leaves the canvas
        x0, y0 = round(x) + pad - h, round(y) + pad - h
        eosin[y0 : y0 + t.shape[0], x0 : x0 + t.shape[1]] += style.eosin_gain * t


def _draw_white_cell(
    rng: np.random.Generator,
    look: CellLook,
    *,
    center: tuple[float, float],
    limit: float,
    style: PatientStyle,
    planes: tuple[np.ndarray, ...],
    instance: int,
) -> None:
    """Draw cytoplasm, nucleus (chromatin texture, nucleoli) and masks of one white cell in place."""
    eosin, nucleus, cytoplasm, background, instances, nuclei = planes
    half = math.ceil(limit) + 3
    ox, oy = math.floor(center[0]) - half, math.floor(center[1]) - half
    win = (slice(oy, oy + 2 * half + 1), slice(ox, ox + 2 * half + 1))
    shape = (2 * half + 1, 2 * half + 1)
    local = (center[0] - ox, center[1] - oy)

    cell = _fill(
        shape,
        radial_contour(
            rng, center=local, radius=look.radius, aspect=look.cell_aspect,
            roughness=look.cell_roughness, limit=limit,
        ),
    )  # fmt: skip
    r_n = look.radius * look.nucleus_fraction
    shift = (look.radius - r_n) * look.nucleus_offset
    angle = rng.uniform(0.0, 2.0 * np.pi)
    n_centre = (local[0] + shift * math.cos(angle), local[1] + shift * math.sin(angle))
    nuc = _fill(
        shape,
        radial_contour(
            rng, center=n_centre, radius=r_n, aspect=look.nucleus_aspect,
            roughness=look.nucleus_roughness, notch=look.notch, limit=limit,
        ),
    )  # fmt: skip
    # the nucleus stays inside the cell with at least a one-pixel rim of cytoplasm
    nuc &= cv2.erode(cell.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    texture = _smooth_noise(rng, shape, look.chromatin_scale)
    # tanh makes coarse chromatin clumpy rather than merely blurred
    chrom = look.chromatin * (1.0 + look.chromatin_contrast * np.tanh(1.5 * texture) / math.tanh(1.5))
    blue = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    for _ in range(look.nucleoli):
        rho, phi = r_n * 0.45 * math.sqrt(rng.random()), rng.uniform(0.0, 2.0 * np.pi)
        px, py = n_centre[0] + rho * math.cos(phi), n_centre[1] + rho * math.sin(phi)
        spot = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2.0 * rng.uniform(1.4, 2.4) ** 2))
        chrom = chrom * (1.0 - 0.6 * spot)
        blue += 0.5 * spot

    cyto = look.cytoplasm * (1.0 + 0.12 * _smooth_noise(rng, shape, 3.0))
    eosin[win][cell] = 0.6 * background[win][cell]
    cytoplasm[win][cell] = style.cytoplasm_gain * np.where(nuc, blue, cyto)[cell]
    nucleus[win][nuc] = style.nucleus_gain * np.clip(chrom[nuc], 0.05, None)
    instances[win][cell] = instance
    nuclei[win] |= nuc


def _compose(
    rng: np.random.Generator,
    eosin: np.ndarray,
    nucleus: np.ndarray,
    cytoplasm: np.ndarray,
    *,
    style: PatientStyle,
    size: int,
) -> np.ndarray:
    """Beer-Lambert mix of the stain planes, uneven illumination, blur and sensor noise -> uint8 RGB."""
    yy, xx = _grid(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.float32(rng.uniform(0.0, 0.08))
    light = 1.0 + ramp * (xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle)))
    light -= np.float32(rng.uniform(0.0, 0.25)) * (xx * xx + yy * yy)
    # per channel on 2-D planes: numpy broadcasting over a trailing axis of 3 is several times slower
    channels = []
    for c in range(3):
        od = eosin * style.od_eosin[c] + nucleus * style.od_nucleus[c] + cytoplasm * style.od_cytoplasm[c]
        channels.append(cv2.exp(-od) * (light * style.white[c]))
    img = cv2.merge(channels)
    img = cv2.GaussianBlur(img, (0, 0), style.blur * rng.uniform(0.85, 1.15))
    # Poisson-like shot noise plus read noise; the three channels take row-shifted windows of one
    # draw (independent values per pixel and channel at a third of the cost of three draws)
    sd = cv2.sqrt(img * np.float32(0.06) + np.float32(2.0)) * np.float32(style.noise)
    z = rng.standard_normal((size + 2, size), dtype=np.float32)
    img += sd * cv2.merge([z[c : c + size] for c in range(3)])
    np.rint(img, out=img)
    return np.minimum(np.maximum(img, 0.0, out=img), 255.0, out=img).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to [-0.5, 0.5), as float32 (read only)."""
    c = np.arange(size, dtype=np.float32) / size - 0.5
    yy, xx = np.broadcast_to(c[:, None], (size, size)), np.broadcast_to(c[None, :], (size, size))
    return yy, xx


# --------------------------------------------------------------------------------------------------
# writing and loading


def generate(config: SyntheticConfig | None = None, *, out_dir: str | os.PathLike) -> Path:
    """Generate the data set into ``out_dir/<fingerprint>/`` unless a complete copy is there; return that folder.

    ``config`` defaults to ``SyntheticConfig()``. A folder without its completion marker (damaged from outside)
    is replaced, and temporary folders of killed runs are removed (:func:`cellbench.core.files.build_folder`).
    """
    config = config or SyntheticConfig()
    final = Path(out_dir) / config.fingerprint
    return files.build_folder(final, lambda tmp: _write_all(config, tmp), marker=COMPLETE_MARKER)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished generation (its completion marker is written last)."""
    return files.is_complete(folder, COMPLETE_MARKER) and (Path(folder) / "index.csv").is_file()


def _write_all(config: SyntheticConfig, folder: Path) -> None:
    for sub in ("fields", "masks", "cells"):
        (folder / sub).mkdir()
    styles = {}
    rows = []
    for plan in plan_fields(config):
        p = plan.patient_index
        if p not in styles:
            styles[p] = patient_style(_rng(config.seed, 1, p), config=config)
        rng = _rng(config.seed, 2, p, plan.field_index)
        field = render_field(rng, styles[p], labels=plan.labels, config=config)
        write_png(folder / "fields" / f"{plan.field_id}.png", field.image)
        write_png(folder / "masks" / f"{plan.field_id}.png", field.instances)
        rows.extend(_write_cells(field, plan=plan, folder=folder, crop=config.crop_size))
    _write_index(folder / "index.csv", rows)
    params = {"config": asdict(config), "generator": GENERATOR_VERSION, "fingerprint": config.fingerprint}
    (folder / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def _write_cells(field: RenderedField, *, plan: FieldPlan, folder: Path, crop: int) -> list[dict]:
    rows = []
    boxes = ndimage.find_objects(field.instances, max_label=len(field.looks))
    for k, (look, box) in enumerate(zip(field.looks, boxes), start=1):
        if box is None:  # guarded by the minimum radius; a bug if ever hit
            raise DataError(f"cell {k} of {plan.field_id} has an empty mask")
        y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
        local = field.instances[box] == k
        ys, xs = np.nonzero(local)
        ys, xs = ys + y0, xs + x0
        if x1 - x0 > crop or y1 - y0 > crop:  # guarded by the radius limit; a bug if ever hit
            raise DataError(f"cell {k} of {plan.field_id} does not fit a {crop} px crop")
        cx0 = (x0 + x1 - crop) // 2
        cy0 = (y0 + y1 - crop) // 2
        cell_id = f"{plan.field_id}_C{k:02d}"
        image = crop_window(field.image, x0=cx0, y0=cy0, size=crop, fill=field.background)
        mask = np.zeros(field.instances.shape, np.uint8)
        mask[box][local] = 255
        cmask = crop_window(mask, x0=cx0, y0=cy0, size=crop, fill=0)
        write_png(folder / "cells" / f"{cell_id}.png", image)
        write_png(folder / "cells" / f"{cell_id}_mask.png", cmask)
        cell_area = int(local.sum())
        nucleus_area = int((local & field.nuclei[box]).sum())
        rows.append(
            {
                "cell_id": cell_id,
                "field_id": plan.field_id,
                "patient": plan.patient,
                "diagnosis": "leukemic" if plan.leukemic else "healthy",
                "label": look.label,
                "instance": k,
                "x0": x0,
                "y0": y0,
                "x1": x1,
                "y1": y1,
                "cx": f"{xs.mean():.2f}",
                "cy": f"{ys.mean():.2f}",
                "crop_x0": cx0,
                "crop_y0": cy0,
                "cell_area": cell_area,
                "nucleus_area": nucleus_area,
                "nc_ratio": f"{nucleus_area / max(cell_area - nucleus_area, 1):.4f}",
            }
        )
    return rows


def _write_index(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_index(folder: Path) -> list[dict[str, str]]:
    """Rows of ``index.csv`` as dicts of strings."""
    with (Path(folder) / "index.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# expected_counts(SyntheticConfig()); a test keeps them in step with the generator
DEFAULT_COUNTS = {"normal": 517, "blast": 221, "total": 738, "patients": 40, "leukemic_patients": 15, "fields": 160}

INFO = DatasetInfo(
    name="synthetic",
    title="Synthetic blood-smear white cells (cellbench's embedded default)",
    description=(
        "SYNTHETIC data, not real patients: generated stained blood-smear-like fields (pale background, "
        "overlapping red cells, purple-nucleus white cells) with instance masks and 96x96 single-cell "
        "crops. Two classes modelled on leukaemic blasts vs normal lymphocytes (nucleus size, "
        "nucleus-to-cytoplasm ratio, chromatin texture, nuclear contour irregularity) with overlapping "
        "class distributions; per-patient stain, illumination and morphology shifts make "
        "patient-disjoint cross-validation matter. Leukaemic patients have mostly blasts, healthy ones "
        "only normal cells. Made on first use in seconds, identical for the same seed."
    ),
    task="binary",
    kind="cell",
    classes=CLASSES,
    positive_class="blast",
    primary_metric="balanced_accuracy",
    default_cv="group_kfold",
    source="generated by cellbench",
    licence="MIT (generated)",
    citation="n/a",
    expected_counts=DEFAULT_COUNTS,
    group_kind="patient",
    image_size="fields 384x384 RGB, cell crops 96x96 RGB (defaults)",
    layout="generated: fields/, masks/ (uint16 instances), cells/ (crop + _mask), index.csv, params.json",
    download="",
    synthetic=True,
)


def config_from_options(options: dict[str, Any]) -> SyntheticConfig:
    """A :class:`SyntheticConfig` from loader options, refusing unknown names."""
    known = [f.name for f in fields(SyntheticConfig)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for data set 'synthetic'; "
            f"known options: {', '.join(known)}"
        )
    return SyntheticConfig(**options)


def load_synthetic(root: Path | None = None, *, cache_dir: str | os.PathLike, **options) -> Dataset:
    """Generate (first use) and load the synthetic set; ``options`` are :class:`SyntheticConfig` fields.

    ``root`` is ignored: the data live in ``cache_dir/synthetic/<fingerprint>/``. Samples are the cell crops
    (group = patient); fields carry one :class:`Annotation` per white cell with the mask path and instance id in
    ``meta`` (masks are not loaded).
    """
    config = config_from_options(options)
    folder = generate(config, out_dir=Path(cache_dir) / "synthetic")
    rows = read_index(folder)
    samples = []
    by_field: dict[str, list[Annotation]] = {}
    patient_of: dict[str, tuple[str, str]] = {}
    for r in rows:
        bbox = (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))
        centroid = (float(r["cx"]), float(r["cy"]))
        meta = {
            "field": r["field_id"],
            "instance": int(r["instance"]),
            "bbox": bbox,
            "centroid": centroid,
            "crop_origin": (int(r["crop_x0"]), int(r["crop_y0"])),
            "cell_area": int(r["cell_area"]),
            "nucleus_area": int(r["nucleus_area"]),
        }
        samples.append(
            Sample(
                id=r["cell_id"],
                label=r["label"],
                group=r["patient"],
                image_path=folder / "cells" / f"{r['cell_id']}.png",
                mask_path=folder / "cells" / f"{r['cell_id']}_mask.png",
                meta=meta,
            )
        )
        mask_path = folder / "masks" / f"{r['field_id']}.png"
        by_field.setdefault(r["field_id"], []).append(
            Annotation(
                label=r["label"],
                box=bbox,
                centroid=centroid,
                meta={"mask_path": mask_path, "instance": int(r["instance"]), "cell_id": r["cell_id"]},
            )
        )
        patient_of[r["field_id"]] = (r["patient"], r["diagnosis"])
    field_list = tuple(
        Field(
            id=fid,
            image_path=folder / "fields" / f"{fid}.png",
            annotations=tuple(anns),
            group=patient_of[fid][0],
            meta={"mask_path": folder / "masks" / f"{fid}.png", "diagnosis": patient_of[fid][1]},
        )
        for fid, anns in by_field.items()
    )
    return Dataset(
        name="synthetic",
        classes=CLASSES,
        positive_class="blast",
        info=INFO,
        fingerprint=config.fingerprint,
        samples=tuple(samples),
        fields=field_list,
        root=folder,
        notes=("synthetic data generated by cellbench; not real patients",),
    )


ENTRY = DatasetEntry(
    info=INFO,
    load=load_synthetic,
    needs_data=False,
    uses_cache=True,
    # the fields' white cells are about 33 px across (red cells 25 px), with instance masks
    field_defaults=FieldDefaults(
        manual={"cell_diameter": 33.0, "margin": 0.25},
        segmentation={"cell_diameter": 33.0, "cytoplasm": True, "min_iou": 0.3},
    ),
)
