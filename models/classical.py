"""The model registry under the import path callers have long used (``from cellbench.models.classical import ...``).

The classical estimators themselves are in :mod:`cellbench.models.estimators`, the registry in
:mod:`cellbench.models.catalog`; new code imports from :mod:`cellbench.models`.
"""

from cellbench.models.catalog import MODELS, register_model, resolve_params
from cellbench.models.entry import ClassWeightSupport, ModelEntry

__all__ = ["MODELS", "ClassWeightSupport", "ModelEntry", "register_model", "resolve_params"]
