"""The embedding heads' defaults: the MLP stops early from ``auto_min_rows`` training rows, not below."""

import numpy as np
import pytest
from sklearn.base import clone

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
