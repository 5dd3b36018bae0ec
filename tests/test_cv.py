import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.run.cv import check_folds, inner_split, make_folds


def _data(n_groups=10, per=6, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"p{i}" for i in range(n_groups)], per)
    y = np.concatenate([rng.permutation([1] * 2 + [0] * (per - 2)) for _ in range(n_groups)])
    ids = [f"s{i}" for i in range(len(y))]
    return ids, y, groups


def test_group_kfold_is_patient_disjoint_and_covers_every_sample():
    ids, y, groups = _data()
    folds = make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="auto", n_splits=5, seed=1)
    assert folds.scheme == "group_kfold"
    assert "patient-disjoint" in folds.description
    all_test = np.concatenate(folds.test)
    assert sorted(all_test) == list(range(len(ids)))
    for f in range(5):
        train, test = folds.train_test(f)
        assert not set(groups[train]) & set(groups[test])


def test_folds_are_deterministic_for_a_seed_and_change_with_it():
    ids, y, groups = _data()
    a = make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="auto", seed=3)
    b = make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="auto", seed=3)
    c = make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="auto", seed=4)
    assert a.key == b.key and all((x == z).all() for x, z in zip(a.test, b.test))
    assert a.key != c.key


def test_without_groups_auto_falls_back_to_stratified_and_says_so():
    ids, y, _ = _data()
    folds = make_folds(ids=ids, y=y, groups=None, predefined=None, scheme="auto", n_splits=4)
    assert folds.scheme == "stratified_kfold"
    assert "no patient ids" in folds.description


def test_predefined_folds_are_honoured():
    ids, y, groups = _data(n_groups=6)
    predefined = [f"fold_{i % 3}" for i in range(6) for _ in range(6)]
    folds = make_folds(ids=ids, y=y, groups=list(groups), predefined=predefined, scheme="auto")
    assert folds.scheme == "predefined" and len(folds) == 3
    for f in range(3):
        assert {predefined[i] for i in folds.test[f]} == {f"fold_{f}"}


def test_repeated_cv_gives_k_times_r_folds():
    ids, y, groups = _data()
    folds = make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="group_kfold", n_splits=5, repeats=2)
    assert len(folds) == 10


def test_leakage_guard_names_the_shared_group():
    ids, y, groups = _data()
    folds = make_folds(ids=ids, y=y, groups=None, predefined=None, scheme="stratified_kfold", n_splits=5)
    with pytest.raises(DataError, match=r"leakage.*group 'p\d+'"):
        check_folds(folds, y=y, groups=groups)


def test_single_class_training_fold_is_refused():
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = ["a", "a", "a", "b", "b", "b"]
    with pytest.raises(DataError, match="single class"):
        make_folds(ids=list("abcdef"), y=y, groups=groups, predefined=None, scheme="group_kfold", n_splits=2)


def test_too_few_groups_and_bad_scheme():
    ids, y, groups = _data(n_groups=3)
    with pytest.raises(DataError, match="at least 5 groups"):
        make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="auto", n_splits=5)
    with pytest.raises(ConfigError, match="known schemes"):
        make_folds(ids=ids, y=y, groups=list(groups), predefined=None, scheme="random", n_splits=2)
    with pytest.raises(ConfigError, match="needs patient/group ids"):
        make_folds(ids=ids, y=y, groups=None, predefined=None, scheme="group_kfold", n_splits=2)


def test_inner_split_is_group_aware_and_inside_the_training_fold():
    _ids, y, groups = _data(n_groups=12)
    [(tr, va)] = inner_split(y, groups, seed=0)
    assert not set(groups[tr]) & set(groups[va])
    assert len(np.unique(y[va])) == 2
    assert len(set(tr) | set(va)) == len(y)


def test_inner_split_stays_group_disjoint_when_every_patient_has_one_class():
    # as in C-NMC: leukaemic patients hold only blasts, healthy subjects only normal cells
    groups = np.repeat([f"p{i}" for i in range(10)], 5)
    y = np.repeat([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 5)
    for seed in range(20):
        [(tr, va)] = inner_split(y, groups, seed=seed)
        assert not set(groups[tr]) & set(groups[va]), seed
        assert len(np.unique(y[va])) == 2 and len(np.unique(y[tr])) == 2, seed
