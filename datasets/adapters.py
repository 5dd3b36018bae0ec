"""Adapters for real data sets: importing this module registers them.

Each reads a release's own folders and file names (never the CSV files written beside samples):

- ``cnmc`` (:mod:`datasets.cnmc`): C-NMC 2019 single cells, patient ids and predefined folds from the layout;
- ``allidb2`` (:mod:`datasets.allidb`): ALL-IDB2 single-cell crops, no patient ids;
- ``idc`` (:mod:`datasets.idc`): breast-histopathology IDC patches grouped by patient;
- ``folder`` (:mod:`datasets.folder`): any ``<root>/<class>/<image>`` layout, given with ``--data-root``.
"""

from datasets import allidb, cnmc, folder, idc

__all__ = ["allidb", "cnmc", "folder", "idc"]
