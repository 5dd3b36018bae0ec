"""Dataset adapters, the synthetic default and cell extraction."""

from cellbench.datasets.registry import DATASETS, DatasetEntry, load_dataset, locate, register_dataset

# importing the adapters registers them
from cellbench.datasets import synthetic  # noqa: F401  isort: skip
from cellbench.datasets import adapters  # noqa: F401  isort: skip

__all__ = ["DATASETS", "DatasetEntry", "load_dataset", "locate", "register_dataset"]
