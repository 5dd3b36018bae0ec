import pytest

from cellbench.core.errors import ConfigError, UnknownNameError
from cellbench.run.suite import load_suite, parse_suite


def test_builtin_suites_load():
    for name in ("smoke", "quick", "full"):
        s = load_suite(name)
        assert s.models and s.datasets


def test_quick_suite_has_three_arms_under_the_same_strategies():
    s = load_suite("quick")
    classical = {"random_forest", "knn", "svm", "naive_bayes", "xgboost", "logistic_regression", "dummy"}
    assert set(s.models) == classical | {"cnn", "mobilenet_v2_lr", "mobilenet_v2_mlp"}
    assert {"none", "class_weight", "smote"} <= set(s.strategies)
    assert s.deep_strategies is None  # deep models run under the suite's strategies (SMOTE: features only)


def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[models\n')
    with pytest.raises(ConfigError, match=r"malformed suite file .*bad\.toml"):
        load_suite(bad)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "[datasets.synthetic]\n[models]\nrandom_forrest = {}\n",
            "unknown model 'random_forrest'; known models: .*random_forest",
        ),
        ("[datasets.nope]\n[models]\nknn = {}\n", "unknown dataset 'nope'"),
        ('strategies = ["smoot"]\n[datasets.synthetic]\n[models]\nknn = {}\n', "unknown imbalance strategy 'smoot'"),
        ("colour = 1\n[datasets.synthetic]\n[models]\nknn = {}\n", "unknown key.*colour.*allowed keys"),
        ("[cv]\nfolds = 1\n[datasets.synthetic]\n[models]\nknn = {}\n", "at least 2"),
        ('[datasets.synthetic]\n[models]\nknn = {}\n[imbalance_sweep]\nratios = ["3"]\n', "bad imbalance ratio"),
        ('primary_metric = "auc"\n[datasets.synthetic]\n[models]\nknn = {}\n', "unknown metric 'auc'"),
    ],
)
def test_bad_suites_get_one_clear_error(tmp_path, text, match):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, UnknownNameError), match=match):
        load_suite(path)


def test_unknown_builtin_suite_lists_known():
    with pytest.raises(ConfigError, match="built-in suites: (.*, )?full, (.*, )?quick, (.*, )?smoke"):
        load_suite("quik")


def test_narrowing_replaces_and_checks_names():
    s = load_suite("quick").narrow(models=["knn", "svm"], strategies=["none"], folds=3, seed=7)
    assert list(s.models) == ["knn", "svm"] and s.strategies == ("none",) and s.folds == 3 and s.seed == 7
    assert s.sweep_models == ("svm",)
    with pytest.raises(UnknownNameError, match="known models"):
        load_suite("quick").narrow(models=["resnet9000"])


def test_narrowing_to_models_outside_the_sweep_plans_no_sweep_jobs():
    from pathlib import Path

    import numpy as np

    from cellbench.run.cv import Folds
    from cellbench.run.plan import plan
    from cellbench.run.prepare import Prepared
    from cellbench.run.records import DataSetRecord

    s = load_suite("quick").narrow(models=["knn", "cnn"], strategies=["none"])
    assert s.sweep_models == ()
    folds = Folds(key="k", scheme="kfold", ids=("a", "b"), test=(np.array([0]), np.array([1])), description="",
                  n_splits=2, repeats=1)
    record = DataSetRecord(dataset="synthetic", extraction="given", fingerprint="f", positive_class="blast",
                           classes=("normal", "blast"))
    prepared = [Prepared(task_path=Path("t"), folds=folds, record=record)]
    items, _ = plan(s, prepared)
    assert {j.ratio for j, _ in items} == {None} and {j.model.name for j, _ in items} == {"knn", "cnn"}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"familes": ["haralick"]}, r"unknown key\(s\) familes; allowed keys: families, haralick_distances"),
        ({"families": ["haralick", "colour"]}, "unknown feature family 'colour'; known feature families: haralick"),
        ({"lbp_radii": [9]}, r"lbp_radii must be an integer in 1\.\.8, got 9"),
    ],
)
def test_a_bad_features_table_is_refused_when_the_suite_is_read(features, message):
    raw = {"name": "x", "datasets": {"synthetic": {}}, "models": {"knn": {}}, "features": features}
    with pytest.raises(ConfigError, match=message):
        parse_suite(raw, source="t")
