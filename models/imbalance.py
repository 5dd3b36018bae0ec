"""Class-imbalance strategies and the imbalance sweep.

Samplers are imbalanced-learn objects placed in a Pipeline, so they act only in ``fit`` (training
folds) and never on test data. :data:`BUILTIN` lists the strategies (:mod:`cellbench.models.catalog` makes the
``STRATEGIES`` registry of them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from cellbench.core.errors import ConfigError, DataError, UnknownNameError


@dataclass(frozen=True)
class Strategy:
    """An imbalance strategy.

    ``sampler(params, seed, y)`` builds an imblearn sampler for a training fold with labels ``y``
    (``None`` for strategies without resampling). ``class_weight`` asks for cost-sensitive learning;
    ``tune_threshold`` for a decision threshold chosen on an inner validation split. ``deep`` tells
    whether the strategy exists for pixel models (SMOTE interpolates feature vectors, not images).
    """

    name: str
    description: str
    sampler: Callable[[Mapping[str, Any], int, np.ndarray], Any] | None = None
    class_weight: bool = False
    tune_threshold: bool = False
    deep: bool = True
    classical: bool = True
    defaults: Mapping[str, Any] = None  # type: ignore[assignment]

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        defaults = dict(self.defaults or {})
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)} for strategy {self.name!r}; "
                f"allowed: {', '.join(sorted(defaults)) or '(none)'}"
            )
        return {**defaults, **params}


def _oversample(params, seed, y):

    return RandomOverSampler(random_state=seed)


def _undersample(params, seed, y):

    return RandomUnderSampler(random_state=seed)


def _smote(params, seed, y):

    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    if smallest < 2:
        raise DataError(f"SMOTE needs at least 2 samples of every class in the training fold; one class has {smallest}")
    return SMOTE(k_neighbors=min(int(params["k_neighbors"]), smallest - 1), random_state=seed)


BUILTIN: tuple[Strategy, ...] = (
    Strategy("none", "train on the natural class ratio"),
    Strategy("class_weight", "cost-sensitive learning with balanced class weights", class_weight=True),
    Strategy("oversample", "random over-sampling of minority classes (training folds only)", _oversample),
    Strategy("undersample", "random under-sampling of majority classes (training folds only)", _undersample),
    Strategy(
        "smote",
        "SMOTE synthetic minority samples in feature space (training folds only)",
        _smote,
        deep=False,
        defaults={"k_neighbors": 5},
    ),
    Strategy(
        "focal",
        "focal loss (gamma 2, class-balanced alpha) for neural networks",
        classical=False,
    ),
    Strategy(
        "threshold",
        "decision threshold tuned for balanced accuracy on an inner validation split of the training fold",
        tune_threshold=True,
    ),
)


def builtin_strategy(name: str) -> Strategy:
    """The built-in strategy ``name``, or an :class:`UnknownNameError` listing them."""
    for s in BUILTIN:
        if s.name == name:
            return s
    raise UnknownNameError("imbalance strategy", name, (s.name for s in BUILTIN))


def parse_ratio(text: str) -> float:
    """Parse a sweep ratio ``"1:R"`` (minority:majority) into R ≥ 1."""
    try:
        left, right = (float(p) for p in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"bad imbalance ratio {text!r}; expected 'minority:majority' such as '1:3'") from None
    if left <= 0 or right <= 0 or right < left:
        raise ConfigError(f"bad imbalance ratio {text!r}; both parts must be positive and majority ≥ minority")
    return right / left


def sweep_subsample(y: np.ndarray, *, ratio: str, positive: int, seed: int) -> np.ndarray:
    """Indices of a training fold subsampled so that positives : others = 1 : R.

    Whichever side is too large is randomly reduced, so the most samples are kept. The test fold is
    never touched; this only shapes the training data.
    """
    r = parse_ratio(ratio)
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(y == positive)
    neg = np.flatnonzero(y != positive)
    if len(pos) == 0 or len(neg) == 0:
        raise DataError("imbalance sweep needs both positive and negative samples in the training fold")
    n_pos = min(len(pos), int(np.floor(len(neg) / r)))
    n_neg = min(len(neg), int(np.floor(n_pos * r)))
    if n_pos < 2:
        raise DataError(
            f"imbalance sweep ratio {ratio} leaves {n_pos} positive training sample(s); use a smaller ratio"
        )
    keep = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return np.sort(keep)
