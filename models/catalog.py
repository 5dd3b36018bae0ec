"""The model catalog: every built-in model and imbalance strategy, listed once.

:data:`MODELS` holds the classical estimators (:mod:`cellbench.models.estimators`), the heads on frozen-backbone and
user embeddings (:mod:`cellbench.models.embeddings`) then the deep models (:mod:`cellbench.models.deep`), in this
order (the leaderboard lists models in it); :data:`STRATEGIES` the
imbalance strategies of :mod:`cellbench.models.imbalance`. :func:`register_model` and :func:`register_strategy`
add a plug-in's model or strategy at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cellbench.core.registry import Registry
from cellbench.models import deep, embeddings, estimators, imbalance
from cellbench.models.entry import ModelEntry, model_entry
from cellbench.models.imbalance import Strategy

MODELS: Registry[ModelEntry] = Registry.of("model", (*estimators.CLASSICAL, *embeddings.HEAD_MODELS, *deep.DEEP_MODELS))
STRATEGIES: Registry[Strategy] = Registry.of("imbalance strategy", imbalance.BUILTIN)


def register_model(name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding ``build(params: dict, seed: int) -> estimator`` to :data:`MODELS` (plug-ins, at run time).

    ``options`` are those of :func:`cellbench.models.entry.model_entry`: ``defaults``, ``class_weight`` and
    ``description`` (required), ``kind``, ``input`` and ``constant``.
    """
    make = model_entry(name, **options)

    def decorate(build: Callable[..., Any]) -> Callable[..., Any]:
        entry = make(build)
        if entry.kind == "deep":  # trained by cellbench.models.deep, which builds it through entry.build
            deep.add_deep_model(entry)
        MODELS.add(name, entry)
        return build

    return decorate


def register_strategy(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to :data:`STRATEGIES` (plug-ins, at run time); return it."""
    return STRATEGIES.add(strategy.name, strategy)


def resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge user ``params`` over model ``name``'s defaults, refusing unknown parameter names."""
    return MODELS[name].resolve(params)
