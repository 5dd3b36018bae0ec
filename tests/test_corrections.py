"""Corrections of issue 14 that each failed on the code before it: SVM calibration weights, stored precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from cellbench.core.types import JobExtra, JobResult
from cellbench.models import fit_predict
from cellbench.models.fold import Fold
from cellbench.run.store import Store


def _fold(seed: int = 0) -> Fold:
    X, y = make_classification(n_samples=1200, n_features=10, n_informative=4, weights=[0.85], class_sep=0.6,
                               flip_y=0.03, random_state=seed)  # fmt: skip
    idx = np.random.default_rng(seed).permutation(len(y))
    return Fold(inputs=X, y=y, train=np.sort(idx[:800]), test=np.sort(idx[800:]), n_classes=2, positive=1)


def test_the_svm_calibrator_keeps_the_class_weights():
    fold = _fold(1)
    y_test = fold.y[fold.test]
    rates, bal = {}, {}
    for strategy in ("none", "class_weight"):
        out = fit_predict("svm", strategy, fold, seed=0)
        pred = (out.proba[:, 1] >= 0.5).astype(int)
        rates[strategy], bal[strategy] = pred.mean(), balanced_accuracy_score(y_test, pred)
    # an unweighted sigmoid undoes the weighting: the positive rate stays near the unweighted model's
    assert rates["class_weight"] > 1.5 * rates["none"]
    assert rates["class_weight"] > 0.6 * y_test.mean()
    assert bal["class_weight"] > bal["none"] + 0.02


def test_stored_probabilities_are_full_precision(tmp_path):
    p = np.array([1 - 1e-12, 1e-15, 0.5 + 1e-10, 0.123456789012345678, 1 - 3e-9, 2e-9])
    y = np.array([1, 0, 1, 0, 1, 0])
    preds = pd.DataFrame({"sample_id": [f"s{i}" for i in range(6)], "y_true": y, "y_pred": (p >= 0.5).astype(int),
                          "proba_neg": 1 - p, "proba_pos": p})  # fmt: skip
    result = JobResult(key="k1", coordinates={"suite": "t", "dataset": "d", "extraction": "given", "model": "m",
                       "kind": "classical", "imbalance": "none", "ratio": "natural", "fold": 0, "seed": 0, "cv": "x",
                       "folds_key": "f"}, status="ok", metrics={"roc_auc": roc_auc_score(y, p)}, predictions=preds,
                       timings={}, extra=JobExtra())  # fmt: skip
    with Store.open(tmp_path / "s") as store:
        store.write_result(result, run_id=None, spec={})
        back = store.predictions(["k1"])
    stored = np.vstack(back.sort_values("sample_id").proba.to_numpy())
    np.testing.assert_array_equal(stored[:, 1], p)  # bit for bit
    assert roc_auc_score(y, stored[:, 1]) == result.metrics["roc_auc"]
