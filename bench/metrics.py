"""Metrics computed from stored per-sample probabilities, so any of them can be recomputed later."""

from __future__ import annotations

import warnings

import numpy as np

METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_weighted",
    "f1_macro",
    "precision",
    "recall",
    "specificity",
    "roc_auc",
    "pr_auc",
    "mcc",
    "brier",
)
LOWER_IS_BETTER = frozenset({"brier"})
METRIC_LABELS = {
    "accuracy": "Acc",
    "balanced_accuracy": "BalAcc",
    "f1_weighted": "F1w",
    "f1_macro": "F1m",
    "precision": "Prec",
    "recall": "Sens",
    "specificity": "Spec",
    "roc_auc": "AUC",
    "pr_auc": "PR-AUC",
    "mcc": "MCC",
    "brier": "Brier",
}


def predict_labels(proba: np.ndarray, *, positive: int | None, threshold: float = 0.5) -> np.ndarray:
    """Hard labels: ``proba[:, positive] >= threshold`` for binary tasks, else the arg-max class."""
    proba = np.asarray(proba)
    if positive is not None and proba.shape[1] == 2:
        return np.where(proba[:, positive] >= threshold, positive, 1 - positive)
    return proba.argmax(axis=1)


def compute_metrics(
    y_true: np.ndarray, proba: np.ndarray, y_pred: np.ndarray, *, positive: int | None
) -> dict[str, float | list]:
    """All metrics of :data:`METRICS` plus the confusion matrix.

    Binary tasks (``positive`` given) report precision, recall and specificity of the positive class;
    multi-class tasks report macro averages and one-vs-rest AUCs. Undefined values (e.g. AUC on a test
    fold with one class) are NaN, not errors.
    """
    from sklearn import metrics as M

    y_true, y_pred, proba = np.asarray(y_true), np.asarray(y_pred), np.asarray(proba, dtype=float)
    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    out: dict[str, float | list] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = M.accuracy_score(y_true, y_pred)
        out["balanced_accuracy"] = M.balanced_accuracy_score(y_true, y_pred)
        out["f1_weighted"] = M.f1_score(y_true, y_pred, average="weighted", labels=labels, zero_division=0)
        out["f1_macro"] = M.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        out["mcc"] = M.matthews_corrcoef(y_true, y_pred)
        cm = M.confusion_matrix(y_true, y_pred, labels=labels)
        onehot = np.eye(n_classes)[y_true]
        out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        if positive is not None and n_classes == 2:
            tn, fp, fn, tp = M.confusion_matrix(y_true == positive, y_pred == positive, labels=[False, True]).ravel()
            out["precision"] = tp / (tp + fp) if tp + fp else 0.0
            out["recall"] = tp / (tp + fn) if tp + fn else float("nan")
            out["specificity"] = tn / (tn + fp) if tn + fp else float("nan")
            both = len(np.unique(y_true)) == 2
            score = proba[:, positive]
            out["roc_auc"] = M.roc_auc_score(y_true == positive, score) if both else float("nan")
            out["pr_auc"] = M.average_precision_score(y_true == positive, score) if both else float("nan")
            out["brier"] = float(np.mean((score - (y_true == positive)) ** 2))
        else:
            out["precision"] = M.precision_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
            out["recall"] = M.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
            spec = []
            for c in labels:
                neg = y_true != c
                spec.append(np.mean(y_pred[neg] != c) if neg.any() else np.nan)
            out["specificity"] = float(np.nanmean(spec))
            present = np.unique(y_true)
            if len(present) == n_classes:
                out["roc_auc"] = M.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
                out["pr_auc"] = float(np.mean([M.average_precision_score(y_true == c, proba[:, c]) for c in labels]))
            else:
                out["roc_auc"] = out["pr_auc"] = float("nan")
    result = {k: float(v) for k, v in out.items()}
    result["confusion_matrix"] = cm.tolist()
    return result


def metric_function(name: str, *, positive: int | None, n_classes: int):
    """A fast ``f(y_true, packed) -> float`` for bootstrapping, where ``packed[:, 0]`` holds the hard
    predictions and ``packed[:, 1:]`` the class probabilities. Balanced accuracy and accuracy are
    computed with numpy (thousands of replicates); other metrics go through :func:`compute_metrics`.
    """

    def balanced_accuracy(y, packed):
        pred = packed[:, 0].astype(int)
        recalls = [np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]
        return float(np.mean(recalls)) if recalls else float("nan")

    def accuracy(y, packed):
        return float(np.mean(packed[:, 0].astype(int) == y))

    def general(y, packed):
        return float(compute_metrics(y, packed[:, 1:], packed[:, 0].astype(int), positive=positive)[name])

    return {"balanced_accuracy": balanced_accuracy, "accuracy": accuracy}.get(name, general)
