"""Segmentation on fields unlike those it was tuned on (issue 17): a sparse, pale field with one white cell among
many red cells, a field without white cells, the per-field sanity check and the overlay's worst fields."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from cellbench.core.errors import ConfigError
from cellbench.datasets import load_dataset
from cellbench.datasets.extraction import resolve_options, run_extraction, summary_rows
from cellbench.datasets.fieldcheck import MIN_FIELDS, flag_fields
from cellbench.datasets.io import read_image, write_png
from cellbench.datasets.segmentation import SegmentationParams, segment_field, stained_core
from cellbench.datasets.synthetic import sparse_field
from cellbench.report.extraction import ExtractionSummary, overlay_figure, render_extraction
from cellbench.run.records import ExtractionQuality

SEEDS = range(4)


def _params() -> SegmentationParams:
    return resolve_options("synthetic", "segmentation", None)[0]


def _iou(cell, instance: np.ndarray) -> float:
    found = cell.full_mask(instance.shape)
    return float((found & instance).sum() / (found | instance).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_a_sparse_pale_field_gives_its_one_white_cell_and_no_red_cell(seed):
    field = sparse_field(seed=seed, white_cells=1)
    seg = segment_field(field.image, _params())
    assert len(seg.cells) == 1, f"{len(seg.cells)} objects found on a field with one white cell"
    assert _iou(seg.cells[0], field.instances == 1) >= 0.5
    assert seg.rejected > 0  # red cells did pass the threshold and the size filter: the stain test removed them


@pytest.mark.parametrize("seed", SEEDS)
def test_a_field_without_white_cells_gives_no_object(seed):
    field = sparse_field(seed=seed, white_cells=0)
    assert not field.instances.any()
    seg = segment_field(field.image, _params())
    assert seg.cells == (), f"{len(seg.cells)} objects found on a field without white cells"


def test_without_the_stain_test_the_red_cells_of_a_sparse_field_become_white_cells():
    """The failure the stain test guards against, reproduced by switching it off."""
    field = sparse_field(seed=0, white_cells=1)
    seg = segment_field(field.image, replace(_params(), min_stain=0.0, red_factor=0.0))
    assert len(seg.cells) > 10


def test_the_sparse_field_and_stain_parameters_are_checked():
    with pytest.raises(ConfigError, match="white_cells must be an integer"):
        sparse_field(white_cells=-1)
    with pytest.raises(ConfigError, match="stain must be in"):
        sparse_field(stain=2.0)
    with pytest.raises(ConfigError, match="label must be one of normal, blast"):
        sparse_field(label="red")
    with pytest.raises(ConfigError, match="min_stain must be a number"):
        SegmentationParams(min_stain=-0.1)
    with pytest.raises(ConfigError, match="field_z must be a number"):
        SegmentationParams(field_z=0)


def test_stained_core_is_the_mean_of_the_densest_quarter():
    assert stained_core(np.arange(8, dtype=float)) == pytest.approx(6.5)
    assert stained_core(np.array([])) == -np.inf


# -- the per-field sanity check -----------------------------------------------------------------------------


def _stats(n: int, **odd) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = [
        {"field": f"f{i}", "found": int(rng.integers(4, 8)), "rejected": 0, "threshold": 0.5 + 0.02 * rng.normal(),
         "stained_share": 0.05, "red_level": 0.08, "brightness": 220.0 + rng.normal()}
        for i in range(n)
    ]  # fmt: skip
    rows[-1].update(odd)
    return rows


def test_flag_fields_names_the_odd_field_and_why():
    flagged = flag_fields(_stats(12, found=160), max_z=3.5)
    assert [x["field"] for x in flagged] == ["f11"] and "cells found 160" in flagged[0]["reasons"][0]
    assert flag_fields(_stats(12), max_z=3.5) == []
    assert flag_fields(_stats(MIN_FIELDS - 1, found=160), max_z=3.5) == []  # too few fields to compare
    assert flag_fields(_stats(12, found=160), max_z=3.5, ignore=("found",)) == []


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The small synthetic set plus an over-exposed copy of its first field, extracted by segmentation."""
    tmp = tmp_path_factory.mktemp("planted")
    ds = load_dataset("synthetic", n_patients=4, fields_per_patient=2, cache_dir=tmp / "cache")
    first = ds.fields[0]
    bright = np.clip(read_image(first.image_path).astype(np.float32) * 1.6 + 40, 0, 255).astype(np.uint8)
    write_png(tmp / "overexposed.png", bright)
    odd = replace(first, id=f"{first.id}_overexposed", image_path=tmp / "overexposed.png")
    ds = replace(ds, fields=(*ds.fields, odd), fingerprint=ds.fingerprint + "-planted")
    return run_extraction("segmentation", ds, progress=False, cache_dir=tmp / "cache"), odd.id


def test_the_per_field_check_flags_an_over_exposed_field(planted):
    ex, odd = planted
    flagged = ex.info["quality"]["flagged_fields"]
    assert [x["field"] for x in flagged] == [odd]
    assert any("background brightness" in r for r in flagged[0]["reasons"])
    assert any(odd in n and "unlike the rest" in n for n in ex.notes)
    assert dict(summary_rows(ex.info))["flagged fields"] == odd


def test_the_overlay_shows_the_worst_fields_with_a_legend(planted, tmp_path):
    ex, _ = planted
    overlay = ex.info["overlay"]
    first = [o for o in overlay if o["why"] == "most annotated cells"]
    worst = [o for o in overlay if o["why"].startswith("most unmatched")]
    assert len(first) == 3 and len({o["field"] for o in overlay}) == len(overlay)
    rows = {}
    for line in (ex.folder / "index.csv").read_text().splitlines()[1:]:
        f, status = line.split(",")[1], line.split(",")[5]
        rows[f] = rows.get(f, 0) + (status == "unmatched")
    shown = {o["field"] for o in first}
    expected = sorted((f for f, n in rows.items() if n and f not in shown), key=lambda f: -rows[f])[:3]
    assert sorted(o["field"] for o in worst) == sorted(expected)
    path = overlay_figure({"segmentation": overlay}, tmp_path / "overlay.png")
    assert path is not None and cv2.imread(str(path)) is not None


def test_the_extraction_section_lists_the_flagged_fields(planted):
    ex, odd = planted
    quality = ExtractionQuality.from_json(ex.info["quality"])
    text = "\n".join(render_extraction(ExtractionSummary(quality=(("synthetic", quality),))))
    line = next(x for x in text.splitlines() if x.startswith(f"- synthetic: field **{odd}** flagged: "))
    assert "background brightness 255" in line
