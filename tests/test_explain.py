"""`python -m bench explain`: fold models (saved or retrained), cell choice, nucleus regions, gallery, leaderboard."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from cellbench.core.errors import ConfigError
from cellbench.core.types import Sample
from cellbench.tools.cli import main
from tests.conftest import shared

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUITE = """
name = "ex"
seed = 0
strategies = ["none"]
[cv]
folds = 2
[datasets.synthetic]
n_patients = 8
fields_per_patient = 2
[models]
cnn_tiny = {}
[deep]
size = 32
max_epochs = 2
save_models = true
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from cellbench.run.runner import run_suite
    from cellbench.run.suite import load_suite

    root = tmp_path_factory.mktemp("explain")
    suite_file = root / "ex.toml"
    suite_file.write_text(SUITE)
    summary = run_suite(load_suite(suite_file), results_root=root / "results", workers=1, progress=False)
    assert summary.failed == 0
    return suite_file, root / "results"


def _explain(suite_file, results, *extra):
    argv = ["explain", "--suite", str(suite_file), "--dataset", "synthetic", "--model", "cnn_tiny"]
    return main([*argv, "--results", str(results), "--n", "2", "--quiet", *extra])


def test_explain_writes_a_gallery_from_the_saved_model_and_links_it(run):
    suite_file, results = run
    folder = results / "ex"
    assert _explain(suite_file, results) == 0
    png = folder / "figures" / "explain-synthetic-given-cnn_tiny-none-fold0.png"
    doc = json.loads(png.with_suffix(".json").read_text())
    assert png.stat().st_size > 10_000
    assert doc["model_source"]["how"] == "saved"
    # the saved model reproduces the stored test predictions
    assert doc["model_source"]["same_labels_as_stored"] == 1.0 and doc["model_source"]["max_abs_proba_diff"] < 1e-5
    assert doc["target_layer"] == "relu2" and doc["logit_layer"] == "logits" and doc["target_shape"] == [16, 16, 16]
    assert doc["per_class"] == 2
    assert doc["methods"] == ["gradcam", "hirescam", "guided-backprop", "guided-gradcam", "guided-hirescam"]
    # at most 2 correct and 2 wrong per class, each as many as the fold has
    for c, avail in doc["available"].items():
        for correct, key in ((True, "correct"), (False, "wrong")):
            shown = [x for x in doc["cells"] if x["true"] == c and x["correct"] == correct]
            assert len(shown) == min(2, avail[key])
    assert all(x["explained"] == x["predicted"] for x in doc["cells"])
    energy = doc["energy"]
    assert energy["n_cells"] == doc["n_test"] and "exact nuclei" in energy["source"][0]
    for m in doc["methods"]:
        e = energy["methods"][m]
        total = e["nucleus"]["mean"] + e["cytoplasm"]["mean"] + e["outside"]["mean"]
        assert abs(total - 1) < 1e-3
    stages = doc["sanity"]["stages"]
    assert [s["layers"] for s in stages] == [["logits"], ["logits", "dense"], ["logits", "dense", "conv2"]]
    board = (folder / "LEADERBOARD.md").read_text()
    assert "figures/explain-synthetic-given-cnn_tiny-none-fold0.png" in board
    assert "Where the deep models look" in board and "HiResCAM" in board and "sanity cascade" in board
    assert "computed on the class **logit**" in board and "(16×16 × 16 channels)" in board


@pytest.mark.slow
def test_explain_retrains_a_missing_fold_model_identically(run):
    suite_file, results = run
    folder = results / "ex"
    models = sorted((folder / "models").glob("*.keras"))
    for m in models:
        m.rename(m.with_name(m.name + ".bak"))
    try:
        assert _explain(suite_file, results, "--fold", "1", "--method", "gradcam") == 0
        doc = json.loads((folder / "figures" / "explain-synthetic-given-cnn_tiny-none-fold1.json").read_text())
        src = doc["model_source"]
        assert src["how"] == "retrained" and src["same_labels_as_stored"] == 1.0
        assert src["max_abs_proba_diff"] < 1e-5  # op determinism: the same model as the run's
        assert doc["methods"] == ["gradcam"]
    finally:
        for m in folder.glob("models/*.keras.bak"):
            m.rename(m.with_name(m.name.removesuffix(".bak")))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "random_forest"], "classical model"),
        (["--method", "smoothgrad"], "unknown CAM method"),
        (["--fold", "5"], "fold 5 does not exist"),
        (["--layer", "nope"], "no layer 'nope'"),
    ],
)
def test_explain_refuses_bad_requests(run, capsys, extra, message):
    suite_file, results = run
    argv = ["explain", "--suite", str(suite_file), "--dataset", "synthetic", "--model", "cnn_tiny"]
    if extra[0] == "--model":
        argv = argv[:-2]
    assert main([*argv, "--results", str(results), "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- choices


def test_select_cells_takes_the_most_confident_correct_and_wrong_per_class():
    from cellbench.tools.explain import available_cells, select_cells

    preds = pd.DataFrame(
        {
            "sample_id": list("abcdefgh"),
            "y_true": [0, 0, 0, 0, 1, 1, 1, 1],
            "y_pred": [0, 0, 1, 1, 1, 1, 1, 0],
            "proba": [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8], [0.1, 0.9], [0.4, 0.6], [0.9, 0.1]],
        }
    )
    picks = select_cells(preds, n_classes=2, n=1)
    assert preds.sample_id[picks].tolist() == ["a", "c", "f", "h"]
    assert preds.sample_id[select_cells(preds, n_classes=2, n=5)].tolist() == list("abcdfegh")
    assert available_cells(preds, ["x", "y"]) == {"x": {"correct": 2, "wrong": 2}, "y": {"correct": 3, "wrong": 1}}


# ---------------------------------------------------------------------------------------------------- regions


def test_synthetic_nuclei_are_re_rendered_exactly():
    from cellbench.datasets import load_dataset
    from cellbench.datasets.io import read_image, read_mask
    from cellbench.models.regions import colour_regions, sample_regions

    ds = load_dataset("synthetic", n_patients=8, fields_per_patient=2)
    dice = []
    for s in ds.samples[:12]:
        r = sample_regions(s, kind="cell")
        assert r.source == "generator"
        assert int(r.nucleus.sum()) == s.meta["nucleus_area"]  # the generator's own count
        np.testing.assert_array_equal(r.cell, read_mask(s.mask_path) > 0)
        assert not (r.nucleus & r.cytoplasm).any()
        c = colour_regions(read_image(s.image_path), r.cell)
        dice.append(2 * (c.nucleus & r.nucleus).sum() / (c.nucleus.sum() + r.nucleus.sum()))
    assert np.mean(dice) > 0.85  # the colour fallback agrees with the truth on synthetic cells


def test_three_level_masks_and_geometry():
    from cellbench.models.regions import mask_regions, sample_regions

    mask = np.zeros((40, 60), np.uint8)
    mask[5:35, 10:50] = 128
    mask[12:28, 20:40] = 255
    r = sample_regions(Sample(id="x", label="a", image=np.zeros((40, 60, 3), np.uint8), mask=mask), kind="cell")
    assert r.source == "mask" and r.nucleus.sum() == 16 * 20 and r.cytoplasm.sum() == 30 * 40 - 16 * 20
    f = r.fitted(30)  # long side 60 -> 30, short side padded as the pixels are
    assert f.nucleus.shape == (30, 30) and abs(f.nucleus.sum() - 16 * 20 / 4) <= 12
    assert f.nucleus[:, :5].sum() == 0 and f.nucleus[:5].sum() == 0
    assert mask_regions(mask > 0) is None and mask_regions((mask > 0).astype(np.uint8) * 255) is None
    assert sample_regions(Sample(id="p", label="a", image=np.zeros((8, 8, 3), np.uint8)), kind="patch") is None


def test_zheng_expert_masks_give_nucleus_and_cytoplasm():
    from cellbench.datasets.io import read_mask
    from cellbench.models.regions import sample_regions

    root = shared("wbc_seg_zheng2018")
    masks = sorted((root / "dataset1" / "masks").glob("*.png"))[:5]
    assert masks
    for path in masks:
        image = root / "dataset1" / "images" / f"{path.stem}.bmp"
        r = sample_regions(Sample(id=path.stem, label="wbc", image_path=image, mask_path=path), kind="cell")
        m = read_mask(path)
        assert r.source == "mask"
        np.testing.assert_array_equal(r.nucleus, m >= 192)
        assert r.nucleus.any() and r.cytoplasm.any() and not (r.nucleus & r.cytoplasm).any()


# ---------------------------------------------------------------------------------------------------- leaderboard


def test_find_and_render_galleries(tmp_path):
    from cellbench.report.galleries import find_galleries, render_galleries

    stat = {"mean": 0.5, "std": 0.1, "n": 10}
    doc = {
        "format": 1,
        "dataset": "synthetic",
        "extraction": "given",
        "model": "cnn",
        "strategy": "none",
        "fold": 0,
        "png": "explain-synthetic-given-cnn-none-fold0.png",
        "methods": ["gradcam"],
        "method_maps": {"gradcam": "ReLU(...)"},
        "model_source": {"how": "saved"},
        "target_layer": "relu4",
        "logit_layer": "logits",
        "explained_class": "predicted",
        "available": {"normal": {"correct": 3, "wrong": 0}},
        "cells": [{"true": "normal", "correct": True}],
        "energy": {
            "n_cells": 10,
            "source": ["exact"],
            "area_share": {"nucleus": stat, "cytoplasm": stat, "outside": stat},
            "methods": {"gradcam": {"nucleus": stat, "cytoplasm": stat, "outside": stat}},
        },
        "sanity": {"stages": [{"layers": ["logits"], "methods": {"gradcam": {**stat, "n_constant": 0}}}]},
    }
    fig = tmp_path / "figures"
    fig.mkdir()
    (fig / doc["png"]).write_bytes(b"png")
    (fig / "explain-synthetic-given-cnn-none-fold0.json").write_text(json.dumps(doc))
    (fig / "explain-synthetic-manual-cnn-none-fold0.json").write_text(
        json.dumps({**doc, "extraction": "manual", "png": "missing.png"})
    )
    found = find_galleries(fig, "synthetic-given")
    assert len(found) == 1 and found[0]["link"] == "figures/explain-synthetic-given-cnn-none-fold0.png"
    imp = pd.DataFrame({"perm_mean": [0.2, 0.1], "family": ["shape", "texture"]}, index=["morph_a", "lbp_b"])
    text = "\n".join(render_galleries(found, {"rf / none": imp}))
    assert "normal: 1 of 3 correct, 0 of 0 wrong" in text
    assert "Grad-CAM" in text and "0.50 ± 0.10" in text and "ReLU(...)" in text
    assert "rf / none: shape 67%, texture 33%" in text and "Grad-CAM energy in the nucleus 50%" in text
    assert find_galleries(fig, "synthetic-manual") == ()  # its PNG is missing
    patches = "\n".join(render_galleries([{**found[0], "energy": None}]))
    assert "energy: nucleus" not in patches and "no nucleus masks for these images" not in patches  # no importance
    with_imp = "\n".join(render_galleries([{**found[0], "energy": None}], {"rf / none": imp}))
    assert "no nucleus masks for these images" in with_imp


def test_explain_options_are_checked():
    from cellbench.tools.explain import ExplainOptions, explain_suite

    with pytest.raises(ConfigError, match="--n must be a positive"):
        ExplainOptions(n=0)
    with pytest.raises(ConfigError, match="unknown explained class"):
        ExplainOptions(target="other")
    with pytest.raises(ConfigError, match=r"unknown CAM method\(s\) .saliency.; known: gradcam"):
        ExplainOptions(methods="gradcam,saliency")
    assert ExplainOptions(methods="gradcam").methods == ("gradcam",)
    with pytest.raises(ConfigError, match="'knn' is a classical model; CAMs explain deep models"):
        explain_suite(suite="quick", dataset="synthetic", models=["knn"])
