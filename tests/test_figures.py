"""cellbench.report.figures: every figure writes a non-empty PNG, byte-identical for identical input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellbench.report import figures as F

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _roc(path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    return F.roc_pr_curves({"svm": (y, y * 0.5 + rng.random(200)), "cnn": (y, rng.random(200))}, path)


def _confusion(path):
    mats = {
        "svm": ([[50, 10], [5, 35]], ["benign", "malignant"]),
        "cnn": ([[40, 20], [3, 37]], ["benign", "malignant"]),
        "rf (3 classes)": ([[10, 2, 1], [0, 0, 0], [1, 1, 9]], ["a", "b", "c"]),
        "xgb": ([[1, 0], [0, 1]], ["benign", "malignant"]),
    }
    return F.confusion_matrices(mats, path)


def _cd(path):
    ranks = {"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}
    return F.cd_diagram(ranks, 1.12, path, alpha=0.10)


def _cd_with_pvalues(path):
    names = ["a", "b", "c"]
    p = pd.DataFrame([[1.0, 0.01, 0.5], [0.01, 1.0, 0.2], [0.5, 0.2, 1.0]], index=names, columns=names)
    return F.cd_diagram({"a": 1.2, "b": 2.8, "c": 2.0}, 1.0, path, nemenyi_p=p, title="three models")


def _training(path):
    epochs = np.arange(15)
    hist = {
        "loss": np.exp(-epochs / 5).tolist(),
        "val_loss": (np.exp(-epochs / 5) + 0.1).tolist(),
        "accuracy": (1 - np.exp(-epochs / 5) / 2).tolist(),
        "val_accuracy": (0.9 - np.exp(-epochs / 5) / 2).tolist(),
    }
    return F.training_curves({"fold 0": hist, "fold 1 (no validation)": {"loss": hist["loss"][:10]}}, path)


def _sweep(path):
    rows = [
        (model, strategy, ratio, 0.9 - 0.02 * i * r, 0.02)
        for i, (model, strategy) in enumerate([("svm", "none"), ("cnn", "class_weight")], start=1)
        for ratio, r in [("1:1", 1), ("1:2", 2), ("1:5", 5), ("1:10", 10)]
    ]
    rows += [("svm", "none", "natural", 0.85, np.nan), ("cnn", "class_weight", "natural", 0.8, 0.03)]
    table = pd.DataFrame(rows, columns=["model", "strategy", "ratio", "mean", "std"])
    return F.imbalance_sweep_plot(table, "balanced_accuracy", path)


FIGURES = [_roc, _confusion, _cd, _cd_with_pvalues, _training, _sweep]


@pytest.mark.parametrize("draw", FIGURES, ids=lambda f: f.__name__.strip("_"))
def test_figure_is_a_deterministic_png(draw, tmp_path):
    first = draw(tmp_path / "sub" / "first.png")
    assert first == tmp_path / "sub" / "first.png"
    data = first.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert b"Matplotlib" not in data  # no "Software" metadata carrying the version
    again = draw(tmp_path / "sub" / "first.png")  # overwrite in place
    assert again.read_bytes() == data
    assert draw(tmp_path / "second.png").read_bytes() == data
    assert not list(tmp_path.rglob("*.tmp"))  # atomic write left no temporary files


def test_sweep_ratio_parsing():
    assert F._ratio_value("1:10") == 10.0
    assert F._ratio_value("2:5") == 2.5
    assert F._ratio_value(20) == 20.0
    assert np.isnan(F._ratio_value("natural"))
    with pytest.raises(ValueError):
        F._ratio_value("ten to one")


def test_confusion_matrices_needs_input(tmp_path):
    with pytest.raises(ValueError):
        F.confusion_matrices({}, tmp_path / "x.png")


def test_cd_diagram_is_identical_across_processes_with_different_hash_seeds(tmp_path):
    """Models under one crossbar sit in a set inside scikit-posthocs; string hashing differs per process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from cellbench.report import figures as F\n"
        "r = {f'model {i} / none': 1 + (i * 7919 % 23) / 2 for i in range(23)}\n"
        "F.cd_diagram(r, 6.0, sys.argv[1])\n"
    )
    repo = Path(__file__).resolve().parents[1]
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{seed}.png")], cwd=repo, env=env, check=True)
    first = (tmp_path / "1.png").read_bytes()
    assert first.startswith(PNG_MAGIC)
    assert (tmp_path / "2.png").read_bytes() == first and (tmp_path / "3.png").read_bytes() == first
