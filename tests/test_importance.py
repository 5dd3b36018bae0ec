"""Named-feature importance of classical models: native RF impurity and XGBoost gain, spread over folds, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

NAMES = ("morph_area", "haralick_contrast", "lbp_3", "int_mean_r", "nuc_ratio", "morph_solidity")


def _data(seed: int = 0, n: int = 300):
    """Feature 4 (nuc_ratio) decides the class; feature 0 carries a little; the rest is noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    y = (X[:, 4] + 0.3 * X[:, 0] + 0.2 * rng.normal(size=n) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("model", ["random_forest", "xgboost"])
def test_native_importance_is_impurity_or_gain_and_finds_the_signal(model):
    from cellbench.models import fit_predict
    from cellbench.models.fold import Fold
    from cellbench.stats.importance import native_importances, permutation_importances

    X, y = _data()
    fold = Fold(inputs=X, y=y, train=np.arange(200), test=np.arange(200, len(X)), n_classes=2, positive=1)
    fitted = fit_predict(model, "none", fold, seed=0, model_params={"n_estimators": 60}).model
    native = native_importances(fitted, names=NAMES)
    assert max(native, key=native.get) == "nuc_ratio"
    assert abs(sum(native.values()) - 1) < 1e-9
    est = fitted.named_steps["model"]
    if model == "random_forest":  # mean decrease in impurity, as scikit-learn computes it
        np.testing.assert_allclose(
            [native[n] for n in NAMES], est.feature_importances_ / est.feature_importances_.sum()
        )
    else:  # XGBoost's average gain per split, mapped from its f<i> names (the scaler hands it a bare array)
        gain = est.get_booster().get_score(importance_type="gain")
        assert set(gain) <= {f"f{i}" for i in range(len(NAMES))}
        total = sum(gain.values())
        np.testing.assert_allclose(native["nuc_ratio"], gain["f4"] / total)
        assert all(native[n] == 0 for i, n in enumerate(NAMES) if f"f{i}" not in gain)
    perm = permutation_importances(fitted, X[200:], y[200:], names=NAMES, seed=0)
    assert max(perm, key=perm.get) == "nuc_ratio" and perm["nuc_ratio"] > 0.2


def test_report_aggregates_importance_over_folds_with_spread_and_families():
    from cellbench.core.types import Importance, JobExtra
    from cellbench.report.markdown import _render_importance
    from cellbench.report.summary import _importances

    rows = []
    for fold, shift in enumerate((0.0, 0.02, 0.04)):
        perm = {n: 0.01 * i + shift for i, n in enumerate(NAMES)}
        native = {n: (i + 1 + fold) / 30 for i, n in enumerate(NAMES)}
        rows.append({"model": "xgboost", "imbalance": "none", "fold": fold,
                     "extra": JobExtra(importance=Importance(permutation=perm, native=native))})  # fmt: skip
    df = _importances(pd.DataFrame(rows))["xgboost / none"]
    assert df.index[0] == "morph_solidity" and df.folds.iloc[0] == 3
    np.testing.assert_allclose(df.loc["morph_area", "perm_std"], 0.02)
    np.testing.assert_allclose(df.loc["morph_area", "native_std"], np.std([1 / 30, 2 / 30, 3 / 30], ddof=1))
    assert dict(zip(df.index, df.family))["nuc_ratio"] == "nucleus/cytoplasm"
    text = "\n".join(_render_importance({"xgboost / none": df}))
    assert "± 0.033" in text  # the native spread is shown
    assert "Best per family:" in text and "shape `morph_solidity`" in text and "nucleus/cytoplasm `nuc_ratio`" in text


def test_quick_suite_explains_random_forest_and_xgboost():
    from cellbench.run.suite import load_suite

    suite = load_suite("quick")
    assert {"random_forest", "xgboost"} <= set(suite.explain_models)


def test_every_built_in_column_has_a_family_and_the_new_families_are_named():
    from cellbench.features import FEATURES, FeatureConfig, feature_names
    from cellbench.stats.importance import feature_family

    config = FeatureConfig(families=tuple(FEATURES.names()))
    families = {feature_family(n) for n in feature_names(config)}
    assert "other" not in families and {"whole image", "stain texture"} <= families
    assert feature_family("img_hem_p90") == "whole image" and feature_family("hed_h_lbp_p8r1_u00") == "stain texture"
