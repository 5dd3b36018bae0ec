"""Metrics computed from stored per-sample probabilities, so any of them can be recomputed later."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as M

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
    predictions and ``packed[:, 1:]`` the class probabilities.

    Thousands of replicates are drawn per row of a leaderboard, so the label metrics (accuracy, balanced
    accuracy, weighted and macro F1, MCC) are computed from one ``numpy.bincount`` confusion matrix with the
    same definitions and zero-division rules as :func:`compute_metrics` (a test checks they agree); the other
    metrics call :func:`compute_metrics`.
    """
    k = n_classes

    def confusion(y, packed) -> np.ndarray:
        pred = packed[:, 0].astype(np.int64)
        return np.bincount(np.asarray(y, dtype=np.int64) * k + pred, minlength=k * k).reshape(k, k)

    def f1_per_class(cm):
        tp = np.diag(cm).astype(float)
        denom = 2 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
        return np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)

    def balanced_accuracy(y, packed):
        cm = confusion(y, packed)
        support = cm.sum(axis=1)
        present = support > 0
        return float(np.mean(np.diag(cm)[present] / support[present])) if present.any() else float("nan")

    def accuracy(y, packed):
        return float(np.trace(confusion(y, packed)) / len(y))

    def f1_weighted(y, packed):
        cm = confusion(y, packed)
        support = cm.sum(axis=1)
        return float(np.sum(f1_per_class(cm) * support) / support.sum())

    def f1_macro(y, packed):
        return float(np.mean(f1_per_class(confusion(y, packed))))

    def mcc(y, packed):
        cm = confusion(y, packed).astype(float)
        t, p, c, n = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
        denom = np.sqrt((n**2 - p @ p) * (n**2 - t @ t))
        return float((c * n - t @ p) / denom) if denom > 0 else 0.0

    def general(y, packed):
        return float(compute_metrics(y, packed[:, 1:], packed[:, 0].astype(int), positive=positive)[name])

    fast = {
        "balanced_accuracy": balanced_accuracy,
        "accuracy": accuracy,
        "f1_weighted": f1_weighted,
        "f1_macro": f1_macro,
        "mcc": mcc,
    }
    return fast.get(name, general)
