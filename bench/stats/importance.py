"""Named-feature importance of fitted classical pipelines: permutation (model-agnostic) and model-native."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.inspection import permutation_importance

FAMILIES = {
    "morph": "shape",
    "haralick": "texture",
    "lbp": "texture",
    "int": "intensity",
    "nuc": "nucleus/cytoplasm",
    "img": "whole image",
    "hed": "stain texture",
}


def feature_family(name: str) -> str:
    """The family of a feature column from its prefix (``morph_area`` -> shape)."""
    return FAMILIES.get(name.split("_", 1)[0], "other")


def permutation_importances(
    fitted,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    names: Sequence[str],
    seed: int,
    n_repeats: int = 3,
    scoring: str = "balanced_accuracy",
) -> dict[str, float]:
    """Mean drop of ``scoring`` on the test fold when each named feature is permuted (scikit-learn)."""
    res = permutation_importance(
        fitted, X_test, y_test, scoring=scoring, n_repeats=n_repeats, random_state=seed, n_jobs=1
    )
    return {n: float(v) for n, v in zip(names, res.importances_mean)}


def native_importances(fitted, *, names: Sequence[str]) -> dict[str, float] | None:
    """Model-native importance, normalised to sum 1: XGBoost gain, forest impurity decrease; else ``None``."""
    est = fitted.named_steps["model"] if hasattr(fitted, "named_steps") else fitted
    if hasattr(est, "get_booster"):
        gain = est.get_booster().get_score(importance_type="gain")
        values = np.array([gain.get(f"f{i}", 0.0) for i in range(len(names))], dtype=float)
    elif hasattr(est, "feature_importances_"):
        values = np.asarray(est.feature_importances_, dtype=float)
    else:
        return None
    total = values.sum()
    values = values / total if total > 0 else values
    return {n: float(v) for n, v in zip(names, values)}
