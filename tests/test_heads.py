"""The embedding heads' defaults: the MLP stops early from ``auto_min_rows`` training rows, not below."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss

from cellbench.core.errors import ConfigError
from cellbench.models.catalog import resolve_params
from cellbench.models.heads import HeadMLP


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, y


def test_auto_early_stopping_follows_the_number_of_rows():
    small, large = HeadMLP(auto_min_rows=300, random_state=0), HeadMLP(auto_min_rows=300, random_state=0)
    assert not small.fit(*_data(200)).early_stopped_
    assert large.fit(*_data(400)).early_stopped_
    assert HeadMLP(early_stopping=True, random_state=0).fit(*_data(200)).early_stopped_


def test_head_learns_accepts_sample_weights_and_clones():
    X, y = _data(400)
    m = clone(HeadMLP(random_state=0)).fit(X[:300], y[:300], sample_weight=np.where(y[:300] == 1, 2.0, 1.0))
    assert (m.predict(X[300:]) == y[300:]).mean() > 0.7
    assert m.predict_proba(X[300:]).shape == (100, 2) and list(m.classes_) == [0, 1]


def test_bad_early_stopping_value_is_named():
    with pytest.raises(ConfigError, match="early_stopping must be true, false or 'auto', got 'yes'"):
        HeadMLP(early_stopping="yes").fit(*_data(50))


def test_head_defaults():
    lr, mlp = resolve_params("mobilenet_v2_lr", {}), resolve_params("mobilenet_v2_mlp", {})
    assert lr["C"] == 0.01 and lr["size"] == 224
    assert mlp["early_stopping"] == "auto" and mlp["hidden"] == 64


def test_eval_set_stopping_keeps_the_best_epoch_and_asks_for_a_refit_of_that_length():
    X, y = _data(1200)
    Xv, yv = _data(300, seed=1)
    m = HeadMLP(random_state=0, patience=3, max_iter=200).fit(X, y, eval_set=(Xv, yv))
    assert m.early_stopped_ and 1 <= m.best_epoch_ < m.n_iter_ < 200
    assert m.n_iter_ - m.best_epoch_ == 3  # stopped after `patience` epochs without a lower validation loss
    assert m.refit_params_ == {"max_iter": m.best_epoch_, "early_stopping": False}
    # the kept weights are those of the best epoch
    losses = m.validation_losses_
    best = losses[m.best_epoch_ - 1]
    assert len(losses) == m.n_iter_ and min(losses) > best - m.tol  # later epochs improved by less than tol
    assert log_loss(yv, m.predict_proba(Xv)) == pytest.approx(best)
    assert best < losses[-1]


def test_without_eval_set_or_with_validation_tenth_no_refit_is_asked():
    X, y = _data(1200)
    Xv, yv = _data(300, seed=1)
    assert HeadMLP(random_state=0).fit(X, y).refit_params_ == {}
    assert HeadMLP(random_state=0, validation="tenth").fit(X, y, eval_set=(Xv, yv)).refit_params_ == {}
    assert HeadMLP(random_state=0, auto_min_rows=5000).fit(X, y, eval_set=(Xv, yv)).refit_params_ == {}
    with pytest.raises(ConfigError, match="validation must be one of inner, tenth, got 'test'"):
        HeadMLP(validation="test").fit(X, y)


@pytest.mark.parametrize("strategy", ["none", "oversample", "smote"])
def test_fit_predict_stops_the_mlp_on_the_unresampled_inner_split_then_refits_for_that_many_epochs(
    monkeypatch, strategy
):
    from sklearn.preprocessing import StandardScaler

    from cellbench.models.fold import Fold
    from cellbench.models.pipeline import fit_predict

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1800, 16))
    y = (X[:, 0] + 0.8 * rng.normal(size=1800) > 1.0).astype(int)  # ~ 16 % positive
    train, test = np.arange(1500), np.arange(1500, 1800)
    inner_tr, inner_va = np.arange(1200), np.arange(1200, 1500)
    seen = []
    original = HeadMLP.fit

    def spy(self, X_, y_, sample_weight=None, eval_set=None):
        fitted = original(self, X_, y_, sample_weight=sample_weight, eval_set=eval_set)
        seen.append((len(X_), eval_set, self.max_iter, self.early_stopping, fitted.best_epoch_))
        return fitted

    monkeypatch.setattr(HeadMLP, "fit", spy)
    fold = Fold(inputs=X, y=y, train=train, test=test, n_classes=2, positive=1, inner=[(inner_tr, inner_va)])
    out = fit_predict("mobilenet_v2_mlp", strategy, fold, seed=0, model_params={"early_stopping": True})
    (n_inner, eval_set, _, _, inner_best), (n_outer, outer_eval, max_iter, stopping, _) = seen
    X_val, y_val = eval_set
    # the validation rows are the inner split's, scaled as at predict time, never resampled
    expected = StandardScaler().fit(X[inner_tr]).transform(X[1200:1500])
    assert X_val.shape == (300, 16) and np.allclose(X_val, expected) and (y_val == y[1200:1500]).all()
    assert (n_inner > 1200, n_outer > 1500) == ((strategy != "none"),) * 2  # the sampler adds rows to what is fitted
    # the refit on the whole training fold: the inner split's epoch count, no early stopping, no eval set
    assert outer_eval is None and stopping is False and max_iter == inner_best >= 1
    assert out.model[-1].n_iter_ <= max_iter and out.model[-1].refit_params_ == {}


def test_a_validation_loss_that_is_never_finite_is_one_clear_error(monkeypatch):
    monkeypatch.setattr("cellbench.models.heads.log_loss", lambda *a, **k: float("nan"))
    X, y = _data(200)
    with pytest.raises(ValueError, match=r"validation loss was not finite in any of its 3 epochs.*learning_rate_init"):
        HeadMLP(early_stopping=True, patience=3, random_state=0).fit(X, y, eval_set=_data(50, seed=1))
