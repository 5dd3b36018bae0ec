"""cellbench.stats.tests.paired_bootstrap: the patient-clustered paired bootstrap of a metric difference."""

from __future__ import annotations

import numpy as np
import pytest

from cellbench.stats import tests as S
from cellbench.stats.metrics import metric_function


def _accuracy(y, pred):
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def test_identical_predictions_give_zero_difference_and_p_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, y, 1 - y)
    res = S.paired_bootstrap(y, pred, pred.copy(), _accuracy, n_resamples=300)
    assert res.diff == 0.0 and res.ci_low == 0.0 and res.ci_high == 0.0
    assert res.p_value == 1.0
    assert res.n_resamples == 300 and res.n_groups == 200 and not res.clustered


def test_clearly_better_model_is_significant_and_ci_excludes_zero():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, y, 1 - y)
    bad = np.where(rng.random(400) < 0.6, y, 1 - y)
    groups = np.repeat(np.arange(40), 10)
    res = S.paired_bootstrap(y, good, bad, _accuracy, groups=groups, n_resamples=500)
    assert res.diff == pytest.approx(_accuracy(y, good) - _accuracy(y, bad))
    assert res.diff > 0.2
    assert 0 < res.ci_low <= res.diff <= res.ci_high
    assert res.p_value == pytest.approx(1 / 501)  # no replicate on the other side: the floor 1/(B+1)
    assert res.clustered and res.n_groups == 40
    # The sign follows the argument order.
    rev = S.paired_bootstrap(y, bad, good, _accuracy, groups=groups, n_resamples=500)
    assert rev.diff == pytest.approx(-res.diff) and rev.ci_high < 0


def _correlated(rng, *, patients: int = 30, cells: int = 40):
    """Model a beats b on some patients and loses on others: whole patients at a time (correlated errors)."""
    y = np.ones(patients * cells, dtype=int)
    a_right = np.repeat(rng.random(patients) < 0.55, cells)  # a right on all cells of ~55 % of patients
    b_right = np.repeat(rng.random(patients) < 0.5, cells)
    return y, a_right.astype(int), b_right.astype(int), np.repeat(np.arange(patients), cells)


def test_clustering_widens_the_interval_when_errors_are_correlated_within_patients():
    y, a, b, groups = _correlated(np.random.default_rng(3))
    plain = S.paired_bootstrap(y, a, b, _accuracy, n_resamples=1000)
    clustered = S.paired_bootstrap(y, a, b, _accuracy, groups=groups, n_resamples=1000)
    assert plain.diff == clustered.diff
    width_plain = plain.ci_high - plain.ci_low
    width_clustered = clustered.ci_high - clustered.ci_low
    # 40 cells per patient, all alike: the patient-level interval is several times the cell-level one.
    assert width_clustered > 3 * width_plain
    assert clustered.p_value > plain.p_value
    assert clustered.n_groups == 30 and plain.n_groups == len(y)


def test_deterministic_for_a_seed_and_works_with_packed_predictions():
    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 3, n)
    proba_a, proba_b = rng.dirichlet(np.ones(3), n), rng.dirichlet(np.ones(3), n)
    packed_a = np.c_[np.where(rng.random(n) < 0.8, y, proba_a.argmax(1)), proba_a]
    packed_b = np.c_[np.where(rng.random(n) < 0.7, y, proba_b.argmax(1)), proba_b]
    fn = metric_function("balanced_accuracy", positive=None, n_classes=3)
    groups = np.repeat(np.arange(30), 10)
    one = S.paired_bootstrap(y, packed_a, packed_b, fn, groups=groups, n_resamples=200, seed=7)
    assert one == S.paired_bootstrap(y, packed_a, packed_b, fn, groups=groups, n_resamples=200, seed=7)
    assert one != S.paired_bootstrap(y, packed_a, packed_b, fn, groups=groups, n_resamples=200, seed=8)
    assert one.diff == pytest.approx(fn(y, packed_a) - fn(y, packed_b))


def test_undefined_replicates_are_dropped_and_bad_input_refused():
    y = np.repeat([0, 1], 5)
    groups = np.repeat([0, 1], 5)  # each patient holds one class

    def needs_both(t, p):
        return _accuracy(t, p) if len(np.unique(t)) == 2 else np.nan

    res = S.paired_bootstrap(y, y, 1 - y, needs_both, groups=groups, n_resamples=200)
    assert 0 < res.n_resamples < 200  # resamples of one patient twice are undefined
    with pytest.raises(ValueError):
        S.paired_bootstrap(y, y, y[:-1], _accuracy)
    with pytest.raises(ValueError):
        S.paired_bootstrap(y, y, y, _accuracy, groups=groups[:-1])
