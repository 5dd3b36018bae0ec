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

    With ``fold.inner`` a clone is first fitted on the inner training part and predicts the inner validation part:
    those probabilities are returned (``Fitted.inner_proba``, the job's inner-validation score that nested model
    selection reads) and, for ``threshold``, tune the decision threshold. The pipeline is then fitted on the whole
    training fold, as deep models are refitted on it (:func:`cellbench.models.deep.train_predict`). A model
    that stops early on the inner split (``ModelEntry.stops_on_inner``) gets its validation rows as ``eval_set``
    and is refitted with the ``refit_params_`` it chose there (its epoch count).
    """
    X, y_all = np.asarray(fold.inputs), np.asarray(fold.y)

    def fresh(rows: np.ndarray):
        pipe = build_pipeline(
            model, strategy, y=y_all[rows], seed=seed, model_params=model_params, strategy_params=strategy_params
        )
        return pipe, _fit_params(model, strategy, y_all[rows])

    if STRATEGIES[strategy].tune_threshold and fold.positive is None:
        raise ConfigError("threshold tuning applies to binary tasks only")
    if STRATEGIES[strategy].tune_threshold and not fold.inner:
        raise ConfigError("threshold tuning needs one inner (train, validation) split of the training fold")
    threshold = 0.5
    t0 = time.perf_counter()
    inner_rows = inner_proba = None
    refit: dict[str, Any] = {}
    if fold.inner:
        if len(fold.inner) != 1:
            raise ConfigError(
                f"one inner (train, validation) split of the training fold is needed, got {len(fold.inner)}"
            )
        ((tr, va),) = fold.inner
        train, inner_rows = fold.train[np.asarray(tr)], fold.train[np.asarray(va)]
        pipe, params = fresh(train)
        stops = MODELS[model].stops_on_inner
        if stops:
            X_val = _transform_like_predict(pipe, X[train], y_all[train], X[inner_rows])
            params["model__eval_set"] = (X_val, y_all[inner_rows])
        inner_proba = full_proba(pipe.fit(X[train], y_all[train], **params), X[inner_rows], fold.n_classes)
        if stops:
            refit = dict(pipe[-1].refit_params_)
        if STRATEGIES[strategy].tune_threshold:
            threshold = tune_threshold(y_all[inner_rows] == fold.positive, inner_proba[:, fold.positive])
    pipe, params = fresh(fold.train)
    if refit:  # e.g. the epoch count early stopping chose on the inner split (cellbench.models.heads)
        pipe.set_params(**{f"model__{k}": v for k, v in refit.items()})
    fitted = pipe.fit(X[fold.train], y_all[fold.train], **params)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = full_proba(fitted, X[fold.test], fold.n_classes)
    return Fitted(proba=proba, threshold=threshold, fit_s=fit_s, predict_s=time.perf_counter() - t0,
                  n_train=len(fold.train), model=fitted, inner_rows=inner_rows, inner_proba=inner_proba)  # fmt: skip


def _transform_like_predict(pipe, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """``X_val`` as the pipeline's model will see it at predict time: its transformers fitted on ``X_train``.

    Samplers change only what is fitted on, never what is predicted, so they are left out — the validation rows
    an early-stopping model watches are never resampled. ``build_pipeline`` puts every transformer before the
    sampler, so fitting them on ``X_train`` is exactly what ``pipe.fit`` will do.
    """
    X_fit, Xt, sampled = X_train, X_val, False
    for name, step in pipe.steps[:-1]:
        if step == "passthrough" or step is None:
            continue
        if hasattr(step, "fit_resample"):
            sampled = True
            continue
        if sampled:
            raise ConfigError(f"pipeline step {name!r} follows a sampler; transformers must come before it")
        fitted = clone(step).fit(X_fit, y_train)
        X_fit, Xt = fitted.transform(X_fit), fitted.transform(Xt)
    return Xt


def _fit_params(model: str, strategy: str, y: np.ndarray) -> dict[str, Any]:
    """``fit`` arguments of the pipeline: balanced sample weights for models weighted that way."""
    if STRATEGIES[strategy].class_weight and MODELS[model].class_weight == "sample_weight":
        return {"model__sample_weight": compute_sample_weight("balanced", y)}
    return {}


def full_proba(fitted, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class index, even classes absent from training."""
    if not len(X):  # a final model's refit has no rows to predict (scikit-learn refuses an empty array)
        return np.zeros((0, n_classes))
    raw = fitted.predict_proba(X)
    classes = np.asarray(fitted.classes_, dtype=int)
    out = np.zeros((len(X), n_classes))
    out[:, classes] = raw
    return out
