"""Manual vs segmentation extraction on small synthetic fields: the segmentation pipeline, matching, the crop
cache, the CLI command, the suite options and the leaderboard's extraction section."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import cellbench.datasets.extraction as ext
from cellbench.core.errors import ConfigError, DataError
from cellbench.core.types import Annotation, Dataset, Field
from cellbench.datasets import load_dataset
from cellbench.datasets.extraction import EXTRACTIONS, extraction_key, resolve_options, run_extraction
from cellbench.datasets.io import read_mask, write_png
from cellbench.datasets.matching import Candidate, MatchParams, Target, detection_scores, match_cells
from cellbench.datasets.segmentation import SegmentationParams, segment_field
from cellbench.tools.cli import main
from tests.conftest import leaderboard

SMALL = {"n_patients": 4, "fields_per_patient": 2}


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    return load_dataset("synthetic", **SMALL)


# -- segmentation ------------------------------------------------------------------------------------------


def test_segmentation_finds_the_synthetic_white_cells(synthetic):
    """Every generated white cell is found once, with a mask that overlaps its instance mask."""
    from cellbench.datasets.io import read_image

    found = annotated = matched = 0
    params = SegmentationParams(cell_diameter=33.0, cytoplasm=True)
    for f in synthetic.fields:
        image = read_image(f.image_path)
        instances = read_mask(f.meta["mask_path"])
        seg = segment_field(image, params)
        targets = []
        for a in f.annotations:
            m = instances == a.meta["instance"]
            ys, xs = np.nonzero(m)
            box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            targets.append(Target(mask=m[box[1] : box[3], box[0] : box[2]], mask_box=box))
        cands = [Candidate(box=c.box, mask=c.mask, centroid=c.centroid) for c in seg.cells]
        m = match_cells(cands, targets, diameter=seg.diameter, params=MatchParams(min_iou=0.5))
        found, annotated, matched = found + len(cands), annotated + len(targets), matched + len(m.pairs)
        for c in seg.cells:
            assert c.mask.shape == (c.box[3] - c.box[1], c.box[2] - c.box[0])
            assert not (c.nucleus & ~c.mask).any()  # the nucleus lies inside the cell
            assert 0 <= c.box[0] < c.box[2] <= image.shape[1] and 0 <= c.box[1] < c.box[3] <= image.shape[0]
    scores = detection_scores(matched=matched, found=found, annotated=annotated)
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9, scores


def test_a_blank_image_has_no_cells():
    seg = segment_field(np.full((200, 300, 3), 230, np.uint8))
    assert seg.cells == () and seg.label_image().max() == 0


def test_segmentation_refuses_a_grey_image():
    with pytest.raises(ValueError, match="RGB uint8"):
        segment_field(np.zeros((50, 50), np.uint8))


def test_central_keeps_the_cell_nearest_the_centre(synthetic):
    from cellbench.datasets.io import read_image

    image = read_image(synthetic.fields[0].image_path)
    all_cells = segment_field(image, SegmentationParams(cell_diameter=33.0))
    central = segment_field(image, SegmentationParams(cell_diameter=33.0, keep="central"))
    assert len(all_cells.cells) > 1 and len(central.cells) == 1
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    d = [np.hypot(*(np.array(c.centroid) - centre)) for c in all_cells.cells]
    assert np.allclose(central.cells[0].centroid, all_cells.cells[int(np.argmin(d))].centroid)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell_diamter": 3}, "unknown segmentation parameter"),
        ({"cell_diameter": -1}, "cell_diameter must be a number"),
        ({"min_diameter": 3, "max_diameter": 2}, "must be smaller than max_diameter"),
        ({"keep": "largest"}, "keep must be one of all, central"),
        ({"diameter_unit": "image", "cell_diameter": 50}, "fraction of the image side"),
    ],
)
def test_segmentation_parameters_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationParams.from_options(options)


# -- matching ----------------------------------------------------------------------------------------------


def _cand(x, y, r=5):
    box = (int(x - r), int(y - r), int(x + r), int(y + r))
    return Candidate(box=box, mask=np.ones((2 * r, 2 * r), bool), centroid=(float(x), float(y)))


def test_centroid_matching_is_one_to_one_and_global():
    # greedy nearest-first would pair found 0 with target 1 (distance 1) and leave target 0 unmatched
    found = [_cand(10, 0), _cand(21, 0)]
    targets = [Target(centroid=(0.0, 0.0)), Target(centroid=(11.0, 0.0))]
    m = match_cells(found, targets, diameter=20.0, params=MatchParams(max_distance=0.6))
    assert sorted((f, t) for f, t, _ in m.pairs) == [(0, 0), (1, 1)]
    assert m.unmatched == [] and m.missed == []


def test_gates_leave_unmatched_and_missed_cells_counted():
    found = [_cand(0, 0), _cand(100, 100)]
    targets = [Target(centroid=(2.0, 0.0)), Target(centroid=(300.0, 300.0)), Target(centroid=(50.0, 50.0))]
    m = match_cells(found, targets, diameter=10.0, params=MatchParams(max_distance=0.6))
    assert [(f, t) for f, t, _ in m.pairs] == [(0, 0)]
    assert m.unmatched == [1] and m.missed == [1, 2]
    s = detection_scores(matched=1, found=2, annotated=3)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_box_and_mask_matching_use_iou():
    found = [_cand(20, 20, r=10)]
    assert match_cells(found, [Target(box=(10, 10, 30, 30))], diameter=20.0).pairs[0][2] == pytest.approx(1.0)
    assert match_cells(found, [Target(box=(25, 25, 60, 60))], diameter=20.0).missed == [0]
    half = np.zeros((20, 20), bool)
    half[:, :10] = True
    m = match_cells(found, [Target(mask=half, mask_box=(10, 10, 30, 30))], diameter=20.0)
    assert m.pairs[0][2] == pytest.approx(0.5)
    assert match_cells(found, [Target(mask=half, mask_box=(10, 10, 30, 30))], diameter=20.0,
                       params=MatchParams(min_iou=0.6)).missed == [0]  # fmt: skip


# -- the extractions ---------------------------------------------------------------------------------------


def test_manual_cuts_every_annotated_cell_with_its_mask(synthetic):
    ex = run_extraction("manual", synthetic, progress=False)
    n_annotated = sum(len(f.annotations) for f in synthetic.fields)
    assert len(ex.samples) == n_annotated
    areas = {s.id: s.meta["cell_area"] for s in synthetic.samples}
    for s in ex.samples:
        field_id, idx = s.id.split("/a")
        f = next(f for f in synthetic.fields if f.id == field_id)
        ann = f.annotations[int(idx)]
        assert s.label == ann.label and s.group == f.group
        mask = read_mask(s.mask_path)
        assert int((mask > 0).sum()) == areas[ann.meta["cell_id"]]  # the whole instance mask, nothing else
    groups = {s.group for s in ex.samples}
    assert groups == {f.group for f in synthetic.fields}  # patients, not fields, where the data know them


def test_segmentation_samples_share_the_ids_of_the_annotated_cells(synthetic):
    manual = {s.id: s for s in run_extraction("manual", synthetic, progress=False)}
    seg = run_extraction("segmentation", synthetic, progress=False)
    q = seg.info["quality"]
    assert q["matched"] + q["missed"] == q["targets"] == len(manual)
    assert q["matched"] + q["unmatched"] == q["found"]
    assert len(seg.samples) == q["matched"]
    for s in seg.samples:
        assert s.id in manual and s.label == manual[s.id].label
        m = read_mask(s.mask_path)
        assert set(np.unique(m)) <= {0, 128, 255}
    with Path(seg.folder / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["status"] == "unmatched" for r in rows) == q["unmatched"]  # kept for inspection, not samples


def test_extractions_are_cached_and_keyed_on_their_parameters(synthetic, monkeypatch):
    first = run_extraction("segmentation", synthetic, progress=False)

    def boom(*a, **k):
        raise AssertionError("extracted again")

    monkeypatch.setattr(ext, "segment_field", boom)
    again = run_extraction("segmentation", synthetic, progress=False)
    assert again.fingerprint == first.fingerprint and [s.id for s in again] == [s.id for s in first]
    params = resolve_options("synthetic", "segmentation", {"seed_distance": 0.5})
    assert extraction_key(synthetic, "segmentation", params) != first.fingerprint
    assert first.fingerprint != synthetic.fingerprint  # feature and pixel caches key on the extraction


# What the extractions of a small synthetic set produced when EXTRACTION_CODE was frozen: index rows (ids,
# labels, boxes, statuses, match scores) and the counts, not the PNG bytes. The keys are those of existing caches;
# the segmentation keys changed with SEGMENTATION_VERSION 2 (the stain test's parameters), its digest did not.
GOLDEN_KEYS = {"manual": "08b2966fe43be476", "segmentation": "74449312c4775b7d"}
GOLDEN_CLASS_DEFAULT_KEYS = {"manual": "96e2768c704d842c", "segmentation": "b1b95158344300ed"}
GOLDEN_DIGESTS = {"manual": "a58bce9cfeefd2b7", "segmentation": "8ccafe43deeb353e"}
_ROW_KEYS = ("sample_id", "field", "group", "label", "annotation", "status", "x0", "y0", "x1", "y1", "match_score")
_QUALITY_KEYS = ("targets", "found", "matched", "missed", "unmatched", "cell_dice", "nucleus_dice", "masks_compared")


def _output_digest(ex) -> str:
    from cellbench.core.hashing import stable_hash

    with (ex.folder / "index.csv").open(newline="") as fh:
        rows = [[r[k] for k in _ROW_KEYS] for r in csv.DictReader(fh)]
    info = ex.info
    counts = {"cells": info["cells"], "cells_by_class": info["cells_by_class"], "excluded": info.get("excluded")}
    if q := ex.info.get("quality"):
        counts["quality"] = {k: round(q[k], 6) if isinstance(q[k], float) else q[k] for k in _QUALITY_KEYS}
    return stable_hash({"rows": rows, "counts": counts})


@pytest.fixture(scope="module")
def golden_set(tmp_path_factory):
    cache = tmp_path_factory.mktemp("golden-cache")
    return load_dataset("synthetic", n_patients=4, fields_per_patient=1, cache_dir=cache), cache


@pytest.mark.parametrize("method", ["manual", "segmentation"])
def test_extraction_keys_stay_those_of_existing_caches(golden_set, method):
    from cellbench.datasets.matching import MatchParams

    ds, _ = golden_set
    assert extraction_key(ds, method, resolve_options(ds.name, method, None)) == GOLDEN_KEYS[method]
    plain = ext.ManualParams() if method == "manual" else (SegmentationParams(), MatchParams())
    assert extraction_key(ds, method, plain) == GOLDEN_CLASS_DEFAULT_KEYS[method]


@pytest.mark.parametrize("method", ["manual", "segmentation"])
def test_extraction_output_is_unchanged(golden_set, method):
    ds, cache = golden_set
    ex = run_extraction(method, ds, progress=False, cache_dir=cache)
    assert ex.fingerprint == GOLDEN_KEYS[method]
    assert _output_digest(ex) == GOLDEN_DIGESTS[method], (
        f"the extraction's output changed ({method}): bump EXTRACTION_VERSION (and record the new digest here)"
    )


def test_fields_extracted_in_worker_processes_give_the_same_output(golden_set, tmp_path):
    ds, _ = golden_set
    ex = run_extraction("segmentation", ds, progress=False, n_jobs=2, cache_dir=tmp_path)
    assert ex.folder.parent == tmp_path / "extractions" and _output_digest(ex) == GOLDEN_DIGESTS["segmentation"]


def test_centroid_windows_have_the_documented_size_and_are_padded(tmp_path):
    img = np.full((100, 160, 3), 200, np.uint8)
    img[40:60, 70:90] = (90, 40, 140)
    write_png(tmp_path / "f.png", img)
    anns = (Annotation(label="a", centroid=(80.0, 50.0)), Annotation(label="b", centroid=(3.0, 4.0)),
            Annotation(label="platelet", centroid=(120.0, 20.0)))  # fmt: skip
    ds = Dataset(
        name="toy", classes=("a", "b"), positive_class="b", info=_info(),
        fingerprint="toy1", fields=(Field(id="F1", image_path=tmp_path / "f.png", annotations=anns),),
    )  # fmt: skip
    ex = run_extraction("manual", ds, options={"cell_diameter": 20, "window": 2.0}, progress=False)
    from cellbench.datasets.io import read_image

    assert [s.id for s in ex.samples] == ["F1/a000", "F1/a001"]  # the platelet is not a class: left out
    assert ex.info["excluded"] == {"platelet": 1}
    for s in ex.samples:
        crop = read_image(s.image_path)
        assert crop.shape[:2] == (40, 40) and s.mask_path is None and s.group == "F1"
    corner = read_image(ex.samples[1].image_path)
    assert (corner[0, 0] == 200).all()  # outside the field: the field's background colour


def _info():
    from cellbench.datasets.synthetic import INFO

    return replace(INFO, name="toy", classes=("a", "b"), positive_class="b", group_kind="field", synthetic=False)


def test_given_refuses_fields_and_field_extractions_refuse_single_cells(synthetic):
    fields_only = replace(synthetic, samples=())
    with pytest.raises(DataError, match="holds whole fields"):
        run_extraction("given", fields_only)
    cells_only = replace(synthetic, fields=())
    with pytest.raises(DataError, match="no whole fields"):
        run_extraction("manual", cells_only)
    assert set(EXTRACTIONS.names()) >= {"given", "manual", "segmentation"}


def test_suite_options_are_validated():
    from cellbench.run.suite import parse_suite

    base = {"name": "x", "models": {"dummy": {}}, "datasets": {"synthetic": {"extractions": ["segmentation"]}}}
    base["datasets"]["synthetic"]["segmentation"] = {"cell_diameter": 30, "min_iou": 0.4}
    parse_suite(base, source="t")
    base["datasets"]["synthetic"]["segmentation"] = {"cell_diametre": 30}
    with pytest.raises(ConfigError, match=r"\[datasets.synthetic.segmentation\]: unknown parameter.*cell_diametre"):
        parse_suite(base, source="t")
    base["datasets"]["synthetic"]["segmentation"] = {}
    base["datasets"]["synthetic"]["manual"] = {"window": 0}
    with pytest.raises(ConfigError, match="window must be a number"):
        parse_suite(base, source="t")


# -- command line ------------------------------------------------------------------------------------------


def test_extract_command_writes_crops_masks_index_and_quality(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["extract", "--dataset", "synthetic", "--method", "segmentation", "--out", str(out), "--quiet"]
    args += [f"--option={k}={v}" for k, v in SMALL.items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "precision / recall / F1" in text and "cells written to" in text
    info = json.loads((out / "extraction.json").read_text())
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == info["quality"]["found"]
    assert all((out / r["image"]).is_file() and (out / r["mask"]).is_file() for r in rows)
    assert (out / "overlay.png").stat().st_size > 1000
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main([a if a != str(out) else str(other) for a in args]) == 2
    assert "not empty" in capsys.readouterr().err and (other / "notes.txt").read_text() == "mine"
    # a folder of the user's that happens to hold an index.csv and a cells/ folder is not an export: left alone
    (other / "index.csv").write_text("filename,label\n")
    (other / "cells").mkdir()
    (other / "cells" / "keep.png").write_bytes(b"mine")
    assert main([a if a != str(out) else str(other) for a in args]) == 2
    assert "was not written by `extract`" in capsys.readouterr().err
    assert (other / "cells" / "keep.png").read_bytes() == b"mine"
    assert main(args) == 0  # a previous export is replaced
    capsys.readouterr()
    assert main(["extract", "--dataset", "synthetic", "--method", "segmentation", "--out", str(out),
                 "--param", "keep=middle", "--quiet"]) == 2  # fmt: skip
    assert "keep must be one of" in capsys.readouterr().err


# -- through the grid and into the leaderboard -------------------------------------------------------------


def test_both_arms_run_through_the_grid_and_the_leaderboard_compares_them(tmp_path):
    from cellbench.run.runner import run_suite
    from cellbench.run.store import Store
    from cellbench.run.suite import parse_suite

    suite = parse_suite(
        {
            "name": "ext",
            "seed": 0,
            "strategies": ["none"],
            "cv": {"folds": 3},
            "datasets": {"synthetic": {"n_patients": 6, "fields_per_patient": 2,
                                       "extractions": ["manual", "segmentation"]}},
            "models": {"logistic_regression": {}},
        },
        source="test",
    )  # fmt: skip
    summary = run_suite(suite, results_root=tmp_path, workers=1, progress=False)
    assert summary.failed == 0
    text = leaderboard(summary)
    assert "## synthetic — extraction `manual`" in text and "## synthetic — extraction `segmentation`" in text
    assert "Extraction quality" in text and "the same cells, and segmentation end to end" in text
    assert "synthetic: manual vs segmentation extraction" in text
    assert (tmp_path / "ext" / "figures" / "synthetic-extraction_overlay.png").is_file()
    with Store.open(tmp_path / "ext", write=False) as store:
        infos = store.data_sets()
        seg = infos[("synthetic", "segmentation")].extracted
        man = infos[("synthetic", "manual")].extracted
        assert seg.quality.targets == man.cells
        ids = {e: set(store.samples("synthetic", e).sample_id) for e in ("manual", "segmentation")}
    assert ids["segmentation"] <= ids["manual"]
    assert infos[("synthetic", "manual")].group_kind == "patient"


def test_same_cells_and_end_to_end_scores_are_computed_as_documented():
    """Two arms' pooled predictions: the same-cells scores use the shared ids; end to end counts missed cells
    as misclassified."""
    from types import SimpleNamespace

    from cellbench.report.extraction import compare_arms, render_extraction, summarise_extraction
    from cellbench.stats.comparisons import Pooled

    def pooled(ids, y, pred):
        proba = np.eye(2)[np.asarray(pred)]
        return Pooled(ids=np.asarray(ids), y_true=np.asarray(y), y_pred=np.asarray(pred), proba=proba)

    from cellbench.run.records import DataSetRecord, ExtractionInfo

    def arm(extraction: str, extracted: dict, ids, y, pred) -> SimpleNamespace:
        record = DataSetRecord(dataset="d", extraction=extraction, classes=("other", "blast"), positive_class="blast",
                               extracted=ExtractionInfo.from_json({"method": extraction, **extracted}))  # fmt: skip
        return SimpleNamespace(dataset="d", extraction=extraction, primary="balanced_accuracy", record=record,
                               stats=SimpleNamespace(pooled={("lr", "none"): pooled(ids, y, pred)}))  # fmt: skip

    ids = ["f/a0", "f/a1", "f/a2", "f/a3", "f/a4", "f/a5"]
    man = arm("manual", {"cells": 6, "fields": 2}, ids, [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0])
    quality = {"targets": 6, "found": 5, "matched": 4, "missed": 2, "unmatched": 1, "precision": 0.8,
               "recall": 4 / 6, "f1": 0.727, "by_class": {}, "match_kind": "centroid",
               "gate": "within 0.6 diameters"}  # fmt: skip
    seg = arm("segmentation", {"quality": quality, "missed_by_class": {"other": 1, "blast": 1}},
              ["f/a0", "f/a2", "f/a3", "f/a4"], [0, 0, 1, 1], [0, 0, 1, 1])  # fmt: skip
    row = compare_arms(man, seg).iloc[0]
    assert row.n_common == 4
    assert row.manual_same == pytest.approx(0.75)  # other: a0 right, a2 wrong; blast: a3, a4 right
    assert row.segmentation_same == pytest.approx(1.0)
    assert row.diff_same == pytest.approx(-0.25)
    # end to end: other 2 right of 3 (one missed), blast 2 right of 3 (one missed)
    assert row.segmentation_e2e == pytest.approx(2 / 3)
    assert row.manual_all == pytest.approx(((2 / 3) + (2 / 3)) / 2)
    summary = summarise_extraction([man, seg])
    text = "\n".join(render_extraction(summary, timings=False))
    assert "| d " in text and "within 0.6 diameters" in text and "s / field" not in text
    assert "segmentation end to end (BalAcc)" in text and "0.667" in text


def test_an_unreadable_field_image_is_named_and_skipped_on_request(tmp_path):
    img = np.full((80, 80, 3), 200, np.uint8)
    write_png(tmp_path / "good.png", img)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    fields = tuple(
        Field(id=name, image_path=tmp_path / f"{name}.png",
              annotations=(Annotation(label="a", centroid=(40.0, 40.0)), Annotation(label="b", centroid=(20.0, 20.0))))
        for name in ("bad", "good")
    )  # fmt: skip
    ds = Dataset(name="toy", classes=("a", "b"), positive_class="b", info=_info(), fingerprint="toy2", fields=fields)
    with pytest.raises(DataError, match=r"field bad: cannot read image .*bad.png.*--on-bad-image skip"):
        run_extraction("manual", ds, options={"cell_diameter": 20}, progress=False)
    ex = run_extraction("manual", ds, options={"cell_diameter": 20}, progress=False, on_bad_image="skip")
    assert [s.id for s in ex.samples] == ["good/a000", "good/a001"]
    assert ex.info["unreadable_fields"] == ["bad"] and any("unreadable image skipped" in n for n in ex.notes)
