"""Per-fold pipelines: ``imblearn.Pipeline(scaler, sampler, estimator)``, threshold tuning, fitting."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from cellbench.core.errors import ConfigError
from cellbench.models.catalog import MODELS, STRATEGIES, resolve_params
from cellbench.models.entry import applies
from cellbench.models.fold import Fitted, Fold
from cellbench.models.threshold import tune_threshold


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
    fold: Fold,
    *,
    seed: int,
    model_params: Mapping[str, Any] | None = None,
    strategy_params: Mapping[str, Any] | None = None,
) -> Fitted:
    """Fit a fresh pipeline on the fold's training rows and predict its test rows.

    ``threshold`` first tunes the decision threshold on ``fold.inner`` (:func:`_inner_threshold`), then fits the
    whole training fold; the other strategies fit the training fold once.
    """
    X, y_train = np.asarray(fold.inputs), fold.y_train
    pipe = build_pipeline(
        model, strategy, y=y_train, seed=seed, model_params=model_params, strategy_params=strategy_params
    )
    fit_params = {}
    if STRATEGIES[strategy].class_weight and MODELS[model].class_weight == "sample_weight":
        fit_params["model__sample_weight"] = compute_sample_weight("balanced", y_train)
    threshold = 0.5
    t0 = time.perf_counter()
    if STRATEGIES[strategy].tune_threshold:
        threshold = _inner_threshold(pipe, fold, X)
    fitted = pipe.fit(X[fold.train], y_train, **fit_params)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = full_proba(fitted, X[fold.test], fold.n_classes)
    return Fitted(proba=proba, threshold=threshold, fit_s=fit_s, predict_s=time.perf_counter() - t0,
                  n_train=len(fold.train), model=fitted)  # fmt: skip


def _inner_threshold(pipe, fold: Fold, X: np.ndarray) -> float:
    """The decision threshold of ``pipe`` fitted on the inner training part and tuned on the inner validation part
    (:func:`cellbench.models.threshold.tune_threshold`, the tuner of the deep models too)."""
    if fold.positive is None:
        raise ConfigError("threshold tuning applies to binary tasks only")
    if not fold.inner or len(fold.inner) != 1:
        raise ConfigError("threshold tuning needs one inner (train, validation) split of the training fold")
    ((tr, va),) = fold.inner
    train, val = fold.train[np.asarray(tr)], fold.train[np.asarray(va)]
    y = np.asarray(fold.y)
    inner = clone(pipe).fit(X[train], y[train])
    proba = full_proba(inner, X[val], fold.n_classes)
    return tune_threshold(y[val] == fold.positive, proba[:, fold.positive])


def full_proba(fitted, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class index, even classes absent from training."""
    raw = fitted.predict_proba(X)
    classes = np.asarray(fitted.classes_, dtype=int)
    out = np.zeros((len(X), n_classes))
    out[:, classes] = raw
    return out
