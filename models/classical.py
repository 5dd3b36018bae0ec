"""Classical estimators on handcrafted features, behind the ``MODELS`` registry.

Each entry builds a fresh, unfitted estimator from its parameters and a seed; the pipeline module
wraps it with a scaler and a sampler per fold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cellbench.core.errors import ConfigError
from cellbench.core.registry import Registry

ClassWeightSupport = Literal["param", "sample_weight"] | None


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    ``class_weight`` says how cost-sensitive learning reaches the estimator: through its
    ``class_weight`` parameter, through ``sample_weight`` in ``fit``, or not at all (``None``).
    """

    name: str
    kind: Literal["classical", "deep"]
    input: Literal["features", "pixels"]
    build: Callable[..., Any]
    defaults: Mapping[str, Any]
    class_weight: ClassWeightSupport
    description: str
    constant: bool = False  # predicts the same probabilities for every input (baselines)


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str,
    *,
    defaults: Mapping[str, Any],
    class_weight: ClassWeightSupport,
    description: str,
    kind: Literal["classical", "deep"] = "classical",
    input: Literal["features", "pixels"] = "features",
    constant: bool = False,
):
    """Decorator registering ``build(params: dict, seed: int) -> estimator``."""

    def decorate(build):
        MODELS.add(name, ModelEntry(name, kind, input, build, dict(defaults), class_weight, description, constant))
        return build

    return decorate


def resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge user ``params`` over the model's defaults, refusing unknown parameter names."""
    entry = MODELS[name]
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for model {name!r}; "
            f"allowed: {', '.join(sorted(entry.defaults))}"
        )
    return {**entry.defaults, **params}


@register_model(
    "random_forest",
    defaults={"n_estimators": 300, "max_features": "sqrt", "min_samples_leaf": 1},
    class_weight="param",
    description="Random Forest (scikit-learn)",
)
def _random_forest(params, seed):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params, random_state=seed, n_jobs=1)


@register_model(
    "knn",
    defaults={"n_neighbors": 7, "weights": "distance"},
    class_weight=None,
    description="k-nearest neighbours (no cost-sensitive form)",
)
def _knn(params, seed):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**params, n_jobs=1)


@register_model(
    "svm",
    defaults={"C": 1.0, "gamma": "scale"},
    class_weight="param",
    description="SVM, RBF kernel, sigmoid-calibrated probabilities (inner 5-fold Platt scaling)",
)
def _svm(params, seed):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # SVC(probability=True) is deprecated; this is the replacement scikit-learn recommends
    return CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed, **params), method="sigmoid", ensemble=False)


@register_model(
    "naive_bayes",
    defaults={"var_smoothing": 1e-9},
    class_weight="sample_weight",
    description="Gaussian Naive Bayes",
)
def _naive_bayes(params, seed):
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB(**params)


@register_model(
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
def _xgboost(params, seed):
    from xgboost import XGBClassifier

    return XGBClassifier(**params, tree_method="hist", random_state=seed, n_jobs=1, verbosity=0)


@register_model(
    "logistic_regression",
    defaults={"C": 1.0, "max_iter": 5000},
    class_weight="param",
    description="L2 logistic regression",
)
def _logreg(params, seed):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**params, random_state=seed)


@register_model(
    "dummy",
    defaults={"strategy": "prior"},
    class_weight="sample_weight",
    description="Baseline predicting the training class prior",
    constant=True,
)
def _dummy(params, seed):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(**params, random_state=seed)
