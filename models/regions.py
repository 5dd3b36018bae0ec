"""Nucleus and cytoplasm regions of single-cell samples, in the geometry of the deep models' pixels.

Used to ask where a CNN looks: the share of a CAM's energy inside the nucleus, the cytoplasm and outside
the cell. Sources, in order of preference (the one used is named in every result):

1. ``mask``: the sample's own three-level mask (file or array: 0 background, 128 cytoplasm, 255 nucleus), as the
   ``manual`` extraction cuts from expert masks (Zheng et al. 2018) and the ``segmentation`` extraction writes
   for the cells it finds. A few stray grey levels are tolerated: levels >= 192 count as nucleus, 64-191 as
   cytoplasm, when at least 95 % of the labelled pixels are exactly 128 or 255.
2. ``generator``: the synthetic default's exact nucleus, re-rendered from the generator (deterministic, the
   same pixels as the stored crop; the crop's cell mask file does not encode the nucleus).
3. ``colour``: the sample's cell mask (or, without one, :func:`cellbench.datasets.masks.cell_mask`) split by
   :func:`cellbench.datasets.masks.nucleus_mask` (Otsu's threshold on green inside the cell).

Tissue patches (``kind = "patch"``) have no cell and nucleus masks: :func:`sample_regions` returns ``None``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.types import Sample
from cellbench.datasets import synthetic as syn
from cellbench.datasets.io import crop_window, image_ref, read_image, read_mask
from cellbench.datasets.masks import cell_mask, nucleus_mask
from cellbench.models.pixels import fit_to_square

EXPERT_SHARE = 0.95


@dataclass(frozen=True, kw_only=True, eq=False)
class Regions:
    """Boolean nucleus and cytoplasm masks (same shape) and the name of their source."""

    nucleus: np.ndarray
    cytoplasm: np.ndarray
    source: str

    @property
    def cell(self) -> np.ndarray:
        return self.nucleus | self.cytoplasm

    def fitted(self, size: int, *, keep_aspect: bool = True) -> Regions:
        """The regions resized as :func:`cellbench.models.pixels.fit_to_square` resizes the image (zero padding)."""
        def fit(m: np.ndarray) -> np.ndarray:
            return fit_to_square(m.astype(np.uint8) * 255, size, keep_aspect=keep_aspect, pad="zeros") >= 128

        nucleus = fit(self.nucleus)
        return Regions(nucleus=nucleus, cytoplasm=fit(self.cytoplasm) & ~nucleus, source=self.source)


def mask_regions(mask: np.ndarray) -> Regions | None:
    """Regions from a three-level mask (0 / 128 cytoplasm / 255 nucleus), or None if it is not one."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    if m.dtype != np.uint8:
        return None
    labelled = m[m > 0]
    if labelled.size == 0:
        return None
    exact = np.isin(labelled, (128, 255)).mean()
    if exact < EXPERT_SHARE or not (labelled == 128).any() or not (labelled == 255).any():
        return None
    return Regions(nucleus=m >= 192, cytoplasm=(m >= 64) & (m < 192), source="mask")


def colour_regions(image: np.ndarray, cell: np.ndarray | None = None) -> Regions:
    """Regions from colour: the cell mask (found from colour when not given) split by the nucleus mask."""
    cell = cell_mask(image) if cell is None else np.asarray(cell, bool)
    nucleus = nucleus_mask(image, cell)
    return Regions(nucleus=nucleus, cytoplasm=cell & ~nucleus, source="colour")


def synthetic_regions(sample: Sample) -> Regions | None:
    """The exact nucleus and cytoplasm of a synthetic cell crop, re-rendered from the generator, or None
    when ``sample`` is not one (no generator parameters beside its crop)."""
    meta = sample.meta or {}
    if sample.image_path is None or not {"field", "instance", "crop_origin"} <= set(meta):
        return None
    folder = Path(sample.image_path).parent.parent
    if not (folder / "params.json").is_file():
        return None
    nuclei, instances, crop = _rendered(str(folder), str(meta["field"]))
    x0, y0 = (int(v) for v in meta["crop_origin"])
    cell = crop_window((instances == int(meta["instance"])).view(np.uint8), x0=x0, y0=y0, size=crop, fill=0) > 0
    nucleus = crop_window(nuclei.view(np.uint8), x0=x0, y0=y0, size=crop, fill=0) > 0
    return Regions(nucleus=nucleus & cell, cytoplasm=cell & ~nucleus, source="generator")


@functools.lru_cache(maxsize=64)
def _rendered(folder: str, field_id: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Nucleus and instance masks of one synthetic field, rendered again (deterministic)."""
    params = json.loads((Path(folder) / "params.json").read_text())
    config = syn.SyntheticConfig(**params["config"])
    if params.get("generator") != syn.GENERATOR_VERSION or params.get("fingerprint") != config.fingerprint:
        raise DataError(
            f"synthetic data in {folder} were made by generator version {params.get('generator')}; this cellbench "
            f"renders version {syn.GENERATOR_VERSION}, so their nuclei cannot be re-rendered"
        )
    plan = next((p for p in syn.plan_fields(config) if p.field_id == field_id), None)
    if plan is None:
        raise DataError(f"synthetic field {field_id!r} is not part of the data in {folder}")
    style = syn.patient_style(syn._rng(config.seed, 1, plan.patient_index), config=config)
    rng = syn._rng(config.seed, 2, plan.patient_index, plan.field_index)
    field = syn.render_field(rng, style, labels=plan.labels, config=config)
    return field.nuclei, field.instances, config.crop_size


def sample_regions(sample: Sample, *, kind: str, image: np.ndarray | None = None) -> Regions | None:
    """The nucleus and cytoplasm of ``sample`` at its original resolution (see the module docstring).

    ``image`` (RGB uint8) is read from the sample when needed and not given. Returns None for patches.
    """
    if kind == "patch":
        return None
    mask = sample.mask if sample.mask is not None else (read_mask(sample.mask_path) if sample.mask_path else None)
    if mask is not None:
        found = mask_regions(mask)
        if found is not None:
            return found
    found = synthetic_regions(sample)
    if found is not None:
        return found
    if image is None:
        image = sample.image if sample.image is not None else read_image(image_ref(sample))
    cell = None
    if mask is not None:
        m = np.asarray(mask)
        cell = (m[..., 0] if m.ndim == 3 else m) > 0
    return colour_regions(image, cell)
