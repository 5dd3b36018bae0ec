"""Per-fold pipelines: ``imblearn.Pipeline(scaler, sampler, estimator)``, threshold tuning, fitting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cellbench.core.errors import ConfigError
from cellbench.models.catalog import MODELS, STRATEGIES, resolve_params
from cellbench.models.entry import applies


def applicable(model: str, strategy: str) -> tuple[bool, str]:
    """Whether ``strategy`` can be applied to ``model``; if not, the reason for the leaderboard."""
    return applies(MODELS[model], STRATEGIES[strategy])


def build_pipeline(
    model: str,
    strategy: str,
    *,
    y: np.ndarray,
    seed: int,
    model_params: Mapping[str, Any] | None = None,
    strategy_params: Mapping[str, Any] | None = None,
):
    """A fresh, unfitted pipeline for one training fold with labels ``y`` (class indices)."""
    from imblearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    ok, why = applicable(model, strategy)
    if not ok:
        raise ConfigError(f"strategy {strategy!r} does not apply to model {model!r}: {why}")
    entry, strat = MODELS[model], STRATEGIES[strategy]
    params = resolve_params(model, model_params or {})
    if strat.class_weight and entry.class_weight == "param":
        params["class_weight"] = "balanced"
    sparams = strat.resolve(strategy_params or {})
    sampler = strat.sampler(sparams, seed, y) if strat.sampler else "passthrough"
    return Pipeline([("scale", StandardScaler()), ("sample", sampler), ("model", entry.build(params, seed))])


def fit_predict(
    model: str,
    strategy: str,
    *,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    seed: int,
    n_classes: int,
    positive: int | None,
    inner_split: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    model_params: Mapping[str, Any] | None = None,
    strategy_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit on the training fold and return test probabilities (and the decision threshold if tuned).

    Returns
    -------
    dict
        ``proba`` (n_test × n_classes, columns in class-index order), ``threshold`` (binary only, 0.5
        unless tuned), ``fit_s``, ``predict_s`` and the fitted ``model``.
    """
    import time

    from sklearn.utils.class_weight import compute_sample_weight

    pipe = build_pipeline(
        model, strategy, y=y_train, seed=seed, model_params=model_params, strategy_params=strategy_params
    )
    fit_params = {}
    if STRATEGIES[strategy].class_weight and MODELS[model].class_weight == "sample_weight":
        fit_params["model__sample_weight"] = compute_sample_weight("balanced", y_train)
    threshold = 0.5
    t0 = time.perf_counter()
    if STRATEGIES[strategy].tune_threshold:
        if positive is None:
            raise ConfigError("threshold tuning applies to binary tasks only")
        if inner_split is None:
            raise ConfigError("threshold tuning needs an inner validation split of the training fold")
        from sklearn.model_selection import TunedThresholdClassifierCV

        tuned = TunedThresholdClassifierCV(
            pipe, scoring="balanced_accuracy", cv=list(inner_split), refit=True, random_state=seed
        )
        tuned.fit(X_train, y_train)
        fitted, threshold = tuned.estimator_, float(tuned.best_threshold_)
    else:
        fitted = pipe.fit(X_train, y_train, **fit_params)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = _full_proba(fitted, X_test, n_classes)
    return {
        "proba": proba,
        "threshold": threshold,
        "fit_s": fit_s,
        "predict_s": time.perf_counter() - t0,
        "model": fitted,
    }


def _full_proba(fitted, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class index, even classes absent from training."""
    raw = fitted.predict_proba(X)
    classes = np.asarray(fitted.classes_, dtype=int)
    out = np.zeros((len(X), n_classes))
    out[:, classes] = raw
    return out
