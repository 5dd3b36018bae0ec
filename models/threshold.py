"""The one decision-threshold tuner of both arms: balanced accuracy on an inner validation split.

Classical pipelines and deep models alike are fitted on the inner training part of a training fold and predict its
inner validation part; :func:`tune_threshold` chooses, on those validation probabilities of the positive class,
the threshold with the best balanced accuracy. The search is scikit-learn's
:class:`~sklearn.model_selection.TunedThresholdClassifierCV` (its grid of 100 thresholds between the lowest and the
highest score; the first best one), run on the given scores through a pre-fitted estimator that returns them.
The test fold is never looked at.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import TunedThresholdClassifierCV

DEFAULT = 0.5  # when there is nothing to tune: one class in the validation part, or one score for every sample


class _GivenScores(ClassifierMixin, BaseEstimator):
    """A fitted binary classifier whose input is its own positive-class probability (one column)."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.asarray(X, dtype=float)[:, 0]
        return np.c_[1 - p, p]


def tune_threshold(is_positive: np.ndarray, score: np.ndarray) -> float:
    """The threshold on ``score`` (validation probabilities of the positive class; ``is_positive`` their labels)
    with the best balanced accuracy; :data:`DEFAULT` when there is nothing to tune."""
    y = np.asarray(is_positive).astype(int)
    score = np.asarray(score, dtype=float).reshape(-1, 1)
    if len(np.unique(y)) < 2 or np.ptp(score) == 0:
        return DEFAULT
    given = _GivenScores().fit(score, y)
    tuned = TunedThresholdClassifierCV(given, scoring="balanced_accuracy", cv="prefit", refit=False)
    return float(tuned.fit(score, y).best_threshold_)
