"""What a model is given for one fold and what it gives back: the two records between the run layer and models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True, eq=False)
class Fold:
    """One training fold and the rows to predict.

    ``inputs`` holds every row (feature vectors, or N × S × S × 3 uint8 images, possibly memory-mapped) and ``y``
    their class indices; ``train`` and ``test`` index them. ``inner`` is the one (train, validation) split of the
    training fold, as positions within ``train``, that early stopping and threshold tuning see (never the test
    rows); ``positive`` the positive class's index in a binary task, else ``None``.
    """

    inputs: np.ndarray
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    n_classes: int
    positive: int | None
    inner: Sequence[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def y_train(self) -> np.ndarray:
        return np.asarray(self.y)[self.train]


@dataclass(frozen=True, kw_only=True, eq=False)
class Fitted:
    """A model fitted on a fold's training rows and its class probabilities of the test rows.

    ``threshold`` is the decision threshold on the positive class's probability (0.5 unless tuned); ``model`` the
    fitted classical pipeline (deep models are saved to a file instead); ``history``, ``epochs`` and ``phases``
    the deep training curves (per-epoch ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``, ``lr``), epochs
    run and epochs per phase; ``n_train`` the training fold's size, ``n_fit`` the rows fitted on after
    resampling and ``n_val`` the inner validation rows. ``inner_rows``/``inner_proba`` are the inner validation rows
    and the probabilities a model fitted on the inner training part gave them (the inner-validation score of nested
    selection); ``converged`` is ``False`` for a deep model stopped by ``max_epochs`` while its validation loss still
    improved, and ``refit_epochs`` the epochs per phase it was refitted for on the whole training fold.
    """

    proba: np.ndarray
    threshold: float
    fit_s: float
    predict_s: float
    n_train: int
    model: Any = None
    history: Mapping[str, Sequence[float]] | None = None
    epochs: int | None = None
    phases: Mapping[str, int] | None = None
    n_fit: int | None = None
    n_val: int | None = None
    inner_rows: np.ndarray | None = None
    inner_proba: np.ndarray | None = None
    converged: bool | None = None
    refit_epochs: Mapping[str, int] | None = None
