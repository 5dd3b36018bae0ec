"""Classical estimators on handcrafted features, one :class:`~cellbench.models.entry.ModelEntry` each.

Each entry builds a fresh, unfitted scikit-learn-style estimator from its parameters and a seed; the pipeline
module wraps it with a scaler and a sampler per fold. :mod:`cellbench.models.catalog` lists them.
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from xgboost import XGBClassifier

from cellbench.models.entry import ModelEntry, model_entry


@model_entry(
    "random_forest",
    defaults={"n_estimators": 300, "max_features": "sqrt", "min_samples_leaf": 1},
    class_weight="param",
    description="Random Forest (scikit-learn)",
)
def random_forest(params, seed):

    return RandomForestClassifier(**params, random_state=seed, n_jobs=1)


@model_entry(
    "knn",
    defaults={"n_neighbors": 7, "weights": "distance"},
    class_weight=None,
    description="k-nearest neighbours (no cost-sensitive form)",
)
def knn(params, seed):

    return KNeighborsClassifier(**params, n_jobs=1)


@model_entry(
    "svm",
    defaults={"C": 1.0, "gamma": "scale"},
    # balanced weights reach both the SVC and its sigmoid calibrator through sample_weight: a class_weight on the
    # SVC alone would be undone by an unweighted calibrator (predicted-positive rate back near the prior)
    class_weight="sample_weight",
    description="SVM, RBF kernel, sigmoid-calibrated probabilities (inner 5-fold Platt scaling)",
)
def svm(params, seed):

    # SVC(probability=True) is deprecated; this is the replacement scikit-learn recommends
    return CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed, **params), method="sigmoid", ensemble=False)


@model_entry(
    "naive_bayes",
    defaults={"var_smoothing": 1e-9},
    class_weight="sample_weight",
    description="Gaussian Naive Bayes",
)
def naive_bayes(params, seed):

    return GaussianNB(**params)


@model_entry(
    "xgboost",
    defaults={
        "n_estimators": 300,
        "max_depth": 4,
        "learning_rate": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
    },
    class_weight="sample_weight",
    description="XGBoost gradient-boosted trees (hist)",
)
def xgboost(params, seed):

    return XGBClassifier(**params, tree_method="hist", random_state=seed, n_jobs=1, verbosity=0)


@model_entry(
    "logistic_regression",
    defaults={"C": 1.0, "max_iter": 5000},
    class_weight="param",
    description="L2 logistic regression",
)
def logistic_regression(params, seed):

    return LogisticRegression(**params, random_state=seed)


@model_entry(
    "dummy",
    defaults={"strategy": "prior"},
    class_weight="sample_weight",
    description="Baseline predicting the training class prior",
    constant=True,
)
def dummy(params, seed):

    return DummyClassifier(**params, random_state=seed)


CLASSICAL: tuple[ModelEntry, ...] = (random_forest, knn, svm, naive_bayes, xgboost, logistic_regression, dummy)
