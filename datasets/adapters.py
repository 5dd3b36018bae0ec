"""Adapters for real data sets: importing this module registers them.

Each reads a release's own folders and file names (never the CSV files written beside samples):

- ``cnmc`` (:mod:`cellbench.datasets.cnmc`): C-NMC 2019 single cells, patient ids and predefined folds from the layout;
- ``allidb2`` (:mod:`cellbench.datasets.allidb`): ALL-IDB2 single-cell crops, no patient ids;
- ``idc`` (:mod:`cellbench.datasets.idc`): breast-histopathology IDC patches grouped by patient;
- ``folder`` (:mod:`cellbench.datasets.folder`): any ``<root>/<class>/<image>`` layout (or ``labels.csv``), given with
  ``--data-root``;
- ``pcam`` (:mod:`cellbench.datasets.pcam`): PatchCamelyon HDF5 split files, read lazily, slides from the meta CSVs;
- ``kaggle_hcd`` (:mod:`cellbench.datasets.kaggle_hcd`): Kaggle Histopathologic Cancer Detection, ``train/<id>.tif``;
- ``medmnist``, ``pathmnist``, ``bloodmnist``, ``breastmnist``, ``dermamnist`` (:mod:`cellbench.datasets.medmnist`):
  MedMNIST ``.npz`` files.

Field data sets (whole images with per-cell annotations, extractions ``manual`` and ``segmentation``):

- ``allidb1`` (:mod:`cellbench.datasets.allidb1`): ALL-IDB1 fields, ``.xyc`` centroids of blasts and other white cells;
- ``bccd`` (:mod:`cellbench.datasets.bccd`): BCCD fields with Pascal VOC boxes (RBC, WBC, platelets);
- ``zheng2018`` (:mod:`cellbench.datasets.zheng2018`): white-cell images with expert nucleus/cytoplasm masks.
"""

from cellbench.datasets import allidb, cnmc, folder, idc, kaggle_hcd, medmnist, pcam

from cellbench.datasets import allidb1, bccd, zheng2018  # field data sets  # isort: skip

__all__ = ["allidb", "allidb1", "bccd", "cnmc", "folder", "idc", "kaggle_hcd", "medmnist", "pcam", "zheng2018"]
