"""Classical and deep models behind one registry, and class-imbalance strategies."""

from cellbench.models.classical import MODELS, ModelEntry, register_model

from cellbench.models import deep  # noqa: F401  (registers the deep models; TensorFlow is imported lazily)  isort: skip
from cellbench.models.imbalance import STRATEGIES, Strategy
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
]
