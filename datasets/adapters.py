"""Adapters for real data layouts; importing this module registers them."""

from datasets import allidb, cnmc, folder, idc  # noqa: F401
