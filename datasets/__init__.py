"""Dataset adapters, the synthetic default and cell extraction; :mod:`cellbench.datasets.catalog` lists them."""

from cellbench.datasets.catalog import DATASETS, load_dataset, locate, register_dataset
from cellbench.datasets.entry import DatasetEntry, FieldDefaults

__all__ = ["DATASETS", "DatasetEntry", "FieldDefaults", "load_dataset", "locate", "register_dataset"]
