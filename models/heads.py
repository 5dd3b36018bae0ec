"""The MLP head fitted on embeddings: a one-hidden-layer scikit-learn MLP whose early stopping adapts to the data.

On a few hundred training rows a held-out part is too small to stop on (20-odd images: the stop is noise, and
balanced accuracy on ALL-IDB2 fell 0.94 → 0.92 with it), while on thousands of rows training every epoch to
``max_iter`` costs seconds per fold and overfits (idc_dev: 4.6 s per fit and 0.73 balanced accuracy without
early stopping, 0.6 s and 0.77 with it). ``early_stopping="auto"`` therefore turns it on from ``auto_min_rows``
training rows, as scikit-learn's ``HistGradientBoostingClassifier`` does.

Where it stops on (``validation``): ``"inner"`` — the job's inner validation split, the same patient-disjoint rows
the deep models stop on, passed to :meth:`HeadMLP.fit` as ``eval_set``. The harness then refits on the whole
training fold for the epoch count chosen there (:attr:`HeadMLP.refit_params_`, read by
:func:`cellbench.models.pipeline.fit_predict`): the two-stage protocol of :mod:`cellbench.models.deep`. The
validation rows are never resampled, so oversampled copies of a training row cannot sit on both sides of the stop,
as they do in a tenth drawn after the sampler (with random oversampling that tenth held copies of training rows,
and the head trained 29 epochs on idc_dev instead of 19). ``"tenth"``, or no ``eval_set``: scikit-learn's own, a
stratified tenth of the (resampled) training rows, never the test fold.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from cellbench.core.errors import ConfigError

AUTO = "auto"
VALIDATION = ("inner", "tenth")


class HeadMLP(ClassifierMixin, BaseEstimator):
    """One hidden ReLU layer, Adam, L2 (``l2``); early stopping on the inner split or a tenth (see the module).

    Parameters
    ----------
    hidden : int
        Units of the hidden layer.
    l2 : float
        L2 penalty (scikit-learn's ``alpha``).
    max_iter : int
        Epochs at most.
    learning_rate_init : float
        Adam's learning rate.
    early_stopping : bool or "auto"
        Stop when the validation loss has not fallen by ``tol`` for ``patience`` epochs, and keep the best weights;
        ``"auto"``: from ``auto_min_rows`` training rows on.
    patience : int
        Epochs without improvement before stopping (scikit-learn's ``n_iter_no_change``).
    validation : {"inner", "tenth"}
        What early stopping watches: the ``eval_set`` given to :meth:`fit` (the job's inner validation split;
        a tenth of the training rows when none is given), or always a tenth of the training rows.
    auto_min_rows : int
        Training rows from which ``early_stopping="auto"`` stops early.
    tol : float
        Smallest fall of the validation loss that counts as an improvement.
    random_state : int or None
        Seed of the initial weights, the batches and the validation tenth.

    Attributes
    ----------
    best_epoch_ : int
        Epochs of the kept weights (the last epoch when nothing stopped early).
    validation_losses_ : list of float
        Log loss on the ``eval_set`` after each epoch (only when it was stopped on).
    refit_params_ : dict
        Parameters that refit the head on all its rows for ``best_epoch_`` epochs without early stopping — set
        only after stopping on an ``eval_set`` (empty otherwise).
    """

    def __init__(
        self,
        *,
        hidden: int = 64,
        l2: float = 1e-2,
        max_iter: int = 200,
        learning_rate_init: float = 1e-3,
        early_stopping: bool | Literal["auto"] = AUTO,
        patience: int = 10,
        validation: Literal["inner", "tenth"] = "inner",
        auto_min_rows: int = 1000,
        tol: float = 1e-4,
        random_state: int | None = None,
    ):
        self.hidden = hidden
        self.l2 = l2
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation = validation
        self.auto_min_rows = auto_min_rows
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Fit on ``X``, ``y`` (``sample_weight``: per-row weights; ``eval_set``: ``(X_val, y_val)`` to stop on)."""
        if self.early_stopping != AUTO and not isinstance(self.early_stopping, bool):
            raise ConfigError(f"early_stopping must be true, false or 'auto', got {self.early_stopping!r}")
        if self.validation not in VALIDATION:
            raise ConfigError(f"validation must be one of {', '.join(VALIDATION)}, got {self.validation!r}")
        stop = len(X) >= self.auto_min_rows if self.early_stopping == AUTO else self.early_stopping
        self.refit_params_: dict = {}
        if stop and eval_set is not None and self.validation == "inner":
            self._fit_on_eval_set(X, y, sample_weight, eval_set)
        else:
            with warnings.catch_warnings():
                # without early stopping, reaching max_iter is the plan (a refit for best_epoch_ epochs), not a fault
                warnings.filterwarnings("ignore", category=ConvergenceWarning)
                self.mlp_ = self._mlp(early_stopping=stop).fit(X, y, sample_weight=sample_weight)
            scores = self.mlp_.validation_scores_ if stop else None
            self.best_epoch_ = int(np.argmax(scores)) + 1 if scores else int(self.mlp_.n_iter_)
            self.n_iter_ = int(self.mlp_.n_iter_)
        self.classes_ = self.mlp_.classes_
        self.early_stopped_ = stop
        return self

    def _mlp(self, *, early_stopping: bool) -> MLPClassifier:
        return MLPClassifier(
            hidden_layer_sizes=(int(self.hidden),),
            alpha=float(self.l2),
            max_iter=int(self.max_iter),
            learning_rate_init=float(self.learning_rate_init),
            early_stopping=early_stopping,
            n_iter_no_change=int(self.patience),
            tol=float(self.tol),
            random_state=self.random_state,
        )

    def _fit_on_eval_set(self, X, y, sample_weight, eval_set) -> None:
        X_val, y_val = eval_set
        classes = np.unique(y)
        mlp = self._mlp(early_stopping=False)
        best_loss, best_epoch, best_weights, waited = np.inf, 0, None, 0
        self.validation_losses_: list[float] = []
        for epoch in range(1, int(self.max_iter) + 1):
            mlp.partial_fit(X, y, sample_weight=sample_weight, classes=classes)
            loss = float(log_loss(y_val, mlp.predict_proba(X_val), labels=classes))
            self.validation_losses_.append(loss)
            if loss < best_loss - self.tol:
                best_loss, best_epoch, waited = loss, epoch, 0
                best_weights = ([w.copy() for w in mlp.coefs_], [b.copy() for b in mlp.intercepts_])
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_weights is None:
            # every epoch's validation loss was NaN or infinite: there is no epoch to keep or to refit for
            raise ValueError(
                f"the MLP head's validation loss was not finite in any of its {epoch} epochs "
                f"(last: {self.validation_losses_[-1]!r}); lower learning_rate_init "
                f"({self.learning_rate_init}) or check the embeddings for NaN or huge values"
            )
        mlp.coefs_, mlp.intercepts_ = best_weights
        self.mlp_, self.best_epoch_, self.n_iter_ = mlp, best_epoch, epoch
        self.refit_params_ = {"max_iter": best_epoch, "early_stopping": False}

    def predict_proba(self, X) -> np.ndarray:
        return self.mlp_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.mlp_.predict(X)
