"""Classical and deep models behind one registry, and class-imbalance strategies."""

from models.classical import MODELS, ModelEntry, register_model

from models import deep  # noqa: F401  (registers the deep models; TensorFlow is imported lazily)  isort: skip
from models.imbalance import STRATEGIES, Strategy
from models.pipeline import applicable, build_pipeline, fit_predict

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
