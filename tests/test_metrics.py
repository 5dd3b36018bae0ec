import numpy as np
import pytest

from cellbench.stats.metrics import compute_metrics, predict_labels


def test_binary_metrics_match_hand_computed_values():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7])
    proba = np.c_[1 - p1, p1]
    pred = predict_labels(proba, positive=1)
    assert pred.tolist() == [0, 0, 1, 0, 1, 1, 0, 1]
    m = compute_metrics(y, proba, pred, positive=1)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75) and m["specificity"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["roc_auc"] == pytest.approx(15 / 16)  # 15 of the 16 positive-negative pairs are ordered
    assert m["brier"] == pytest.approx(np.mean((p1 - y) ** 2))
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]


def test_threshold_moves_hard_labels():
    proba = np.array([[0.7, 0.3], [0.4, 0.6]])
    assert predict_labels(proba, positive=1, threshold=0.25).tolist() == [1, 1]


def test_multiclass_metrics_and_single_class_fold_give_nan_not_error():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    m = compute_metrics(y, proba, proba.argmax(1), positive=None)
    assert m["accuracy"] == pytest.approx(0.75)
    assert np.isfinite(m["roc_auc"])
    one = compute_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 0]), positive=1)
    assert np.isnan(one["roc_auc"]) and one["recall"] == 0.5


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", ["balanced_accuracy", "accuracy", "f1_weighted", "f1_macro", "mcc"])
def test_fast_bootstrap_metrics_equal_compute_metrics(name, n_classes):
    from cellbench.stats.metrics import metric_function

    rng = np.random.default_rng(n_classes)
    positive = 1 if n_classes == 2 else None
    fn = metric_function(name, positive=positive, n_classes=n_classes)
    for trial in range(40):
        n = int(rng.integers(3, 30))
        y = rng.integers(0, n_classes, n)
        proba = rng.dirichlet(np.ones(n_classes), n)
        # sometimes a constant predictor or a class missing from y: the zero-division rules must agree too
        pred = np.full(n, trial % n_classes) if trial % 7 == 0 else predict_labels(proba, positive=positive)
        if trial % 5 == 0:
            y[y == n_classes - 1] = 0
        expected = compute_metrics(y, proba, pred, positive=positive)[name]
        assert fn(y, np.c_[pred, proba]) == pytest.approx(expected, abs=1e-12), (trial, y, pred)
