"""Classical and deep models behind one registry, and class-imbalance strategies (listed in
:mod:`cellbench.models.catalog`)."""

from cellbench.models.catalog import MODELS, STRATEGIES, register_model, register_strategy, resolve_params
from cellbench.models.entry import ModelEntry
from cellbench.models.imbalance import Strategy
from cellbench.models.pipeline import applicable, build_pipeline, fit_predict

__all__ = [
    "MODELS",
    "STRATEGIES",
    "ModelEntry",
    "Strategy",
    "applicable",
    "build_pipeline",
    "fit_predict",
    "register_model",
    "register_strategy",
    "resolve_params",
]
