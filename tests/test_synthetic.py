"""The synthetic default data set: determinism, layout, labels, caching and atomic generation."""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cellbench.core.errors import ConfigError
from cellbench.datasets import load_dataset
from cellbench.datasets.io import read_image, read_mask
from cellbench.datasets.synthetic import (
    COMPLETE_MARKER,
    DEFAULT_COUNTS,
    INFO,
    SyntheticConfig,
    expected_counts,
    generate,
    is_complete,
    load_synthetic,
    plan_fields,
)

SMALL = {"n_patients": 6, "fields_per_patient": 2, "field_size": 256}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CELLBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "index.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_config_gives_identical_bytes(tmp_path):
    a = generate(SyntheticConfig(**SMALL), out_dir=tmp_path / "a")
    b = generate(SyntheticConfig(**SMALL), out_dir=tmp_path / "b")
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert all(fa[k] == fb[k] for k in fa), [k for k in fa if fa[k] != fb[k]][:5]
    other = generate(SyntheticConfig(**SMALL, seed=1), out_dir=tmp_path / "a")
    assert other != a
    assert (other / "index.csv").read_bytes() != (a / "index.csv").read_bytes()


def test_layout_crops_and_masks(cache):
    config = SyntheticConfig(**SMALL)
    folder = generate(config, out_dir=cache / "synthetic")
    assert folder == cache / "synthetic" / config.fingerprint
    rows = _rows(folder)
    assert len(rows) == expected_counts(config)["total"]
    assert {r["field_id"] for r in rows} == {p.field_id for p in plan_fields(config)}
    for r in rows:
        image = read_image(folder / "cells" / f"{r['cell_id']}.png")
        mask = read_mask(folder / "cells" / f"{r['cell_id']}_mask.png")
        assert image.shape == (config.crop_size, config.crop_size, 3)
        assert set(np.unique(mask)) == {0, 255}
        assert int((mask > 0).sum()) == int(r["cell_area"])
        # the whole cell lies inside the crop: nothing on the crop border
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert not border.any(), r["cell_id"]
        assert 0 < int(r["nucleus_area"]) < int(r["cell_area"])
    field_masks = {}
    for r in rows:
        fid = r["field_id"]
        if fid not in field_masks:
            field_masks[fid] = read_mask(folder / "masks" / f"{fid}.png")
            assert field_masks[fid].dtype == np.uint16
        cell = field_masks[fid] == int(r["instance"])
        ys, xs = np.nonzero(cell)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1"))
    for fid, m in field_masks.items():
        assert read_image(folder / "fields" / f"{fid}.png").shape == (256, 256, 3)
        assert int(m.max()) == sum(r["field_id"] == fid for r in rows)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.8])
def test_class_ratio_follows_the_config(fraction):
    config = SyntheticConfig(n_patients=40, fields_per_patient=4, blast_fraction=fraction)
    counts = expected_counts(config)
    assert counts["blast"] + counts["normal"] == counts["total"]
    assert abs(counts["blast"] / counts["total"] - fraction) <= 1.0 / counts["total"]
    # healthy subjects have normal cells only; leukaemic patients mostly blasts
    for plan in plan_fields(config):
        if not plan.leukemic:
            assert "blast" not in plan.labels


def test_default_counts_match_the_generator():
    counts = expected_counts(SyntheticConfig())
    assert counts == dict(DEFAULT_COUNTS) == dict(INFO.expected_counts)
    assert 600 <= counts["total"] <= 900
    assert 0.27 <= counts["blast"] / counts["total"] <= 0.33


def test_load_returns_cells_grouped_by_patient(cache):
    ds = load_dataset("synthetic", **SMALL)
    assert ds.name == "synthetic" and ds.classes == ("normal", "blast") and ds.positive_class == "blast"
    assert ds.info.synthetic and "SYNTHETIC" in ds.info.description and ds.info.group_kind == "patient"
    assert ds.has_groups
    assert {s.group for s in ds.samples} == {f"P{i:03d}" for i in range(1, SMALL["n_patients"] + 1)}
    for s in ds.samples:
        assert s.id.startswith(f"{s.group}_") and s.meta["field"].startswith(s.group)
        assert s.image_path.is_file() and s.mask_path.is_file()
    counts = ds.class_counts()
    assert counts["blast"] > 0 and counts["normal"] > 0
    assert len(ds.fields) == SMALL["n_patients"] * SMALL["fields_per_patient"]
    for f in ds.fields:
        assert f.image_path.is_file() and f.group and f.annotations
        for a in f.annotations:
            assert a.label in ds.classes and Path(a.meta["mask_path"]).is_file() and a.meta["instance"] >= 1
    assert ds.fingerprint == SyntheticConfig(**SMALL).fingerprint
    assert load_synthetic(**SMALL, seed=3, cache_dir=cache).fingerprint != ds.fingerprint


def test_the_cache_folder_is_passed_down_explicitly(tmp_path, cache):
    ds = load_dataset("synthetic", **SMALL, cache_dir=tmp_path / "elsewhere")
    assert ds.root == tmp_path / "elsewhere" / "synthetic" / SyntheticConfig(**SMALL).fingerprint
    assert not cache.exists()  # $CELLBENCH_CACHE was not used


def test_complete_folder_is_reused(cache):
    config = SyntheticConfig(**SMALL)
    folder = generate(config, out_dir=cache / "synthetic")
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "index.csv", *sorted(folder.glob("fields/*"))[:3])}
    assert generate(config, out_dir=cache / "synthetic") == folder
    load_synthetic(**SMALL, cache_dir=cache)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(p.name for p in folder.parent.iterdir()) == [config.fingerprint]


def test_half_written_generation_is_not_taken_as_complete(cache):
    config = SyntheticConfig(**SMALL)
    parent = cache / "synthetic"
    # a killed run's temporary folder and a final folder that lost its completion marker
    tmp = parent / f".tmp-{config.fingerprint}-1-dead"
    (tmp / "cells").mkdir(parents=True)
    (tmp / "index.csv").write_text("cell_id\n")
    final = parent / config.fingerprint
    (final / "fields").mkdir(parents=True)
    (final / "index.csv").write_text("cell_id\n")
    assert not is_complete(tmp) and not is_complete(final)

    folder = generate(config, out_dir=cache / "synthetic")
    assert folder == final and is_complete(folder)
    assert (folder / COMPLETE_MARKER).is_file()
    assert len(_rows(folder)) == expected_counts(config)["total"]


def test_concurrent_generation_is_safe(cache):
    config = SyntheticConfig(**SMALL)
    with ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: generate(config, out_dir=cache / "synthetic"), range(3)))
    assert len(set(folders)) == 1 and is_complete(folders[0])
    assert [p.name for p in folders[0].parent.iterdir()] == [config.fingerprint]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"blast_fraction": 1.2}, r"blast_fraction .*\(0, 1\).*1\.2"),
        ({"blast_fraction": 0}, r"blast_fraction .*got 0"),
        ({"n_patients": 1}, r"n_patients .*>= 2.*got 1"),
        ({"difficulty": -1.0}, r"difficulty .*got -1\.0"),
        ({"crop_size": 32}, r"crop_size .*>= 72.*got 32"),
        ({"cells_per_field": (4, 2)}, r"cells_per_field .*\(4, 2\)"),
        ({"seed": "zero"}, r"seed .*'zero'"),
    ],
)
def test_invalid_config_names_the_value(options, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticConfig(**options)


def test_unknown_option_lists_the_known_ones(cache):
    with pytest.raises(ConfigError, match=r"'colour'.*known options: seed, n_patients"):
        load_synthetic(colour="red", cache_dir=cache)


def test_equal_configs_share_a_fingerprint():
    assert SyntheticConfig(difficulty=1).fingerprint == SyntheticConfig(difficulty=1.0).fingerprint
    assert SyntheticConfig(cells_per_field=[3, 6]) == SyntheticConfig()
    assert SyntheticConfig(difficulty=1.5).fingerprint != SyntheticConfig().fingerprint
