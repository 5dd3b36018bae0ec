import numpy as np
import pytest
from sklearn.datasets import make_classification

from cellbench.core.errors import ConfigError, UnknownNameError
from cellbench.models import MODELS, STRATEGIES, applicable, build_pipeline, fit_predict
from cellbench.models.imbalance import sweep_subsample

CLASSICAL = ["random_forest", "knn", "svm", "naive_bayes", "xgboost", "logistic_regression", "dummy"]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=240, n_features=12, weights=[0.75], random_state=0)
    return X[:180], y[:180], X[180:], y[180:]


def test_registry_has_the_classical_models():
    assert set(CLASSICAL) <= set(MODELS.names())
    with pytest.raises(UnknownNameError, match="known models: .*knn"):
        MODELS["resnet"]


@pytest.mark.parametrize("model", CLASSICAL)
@pytest.mark.parametrize("strategy", ["none", "class_weight", "oversample", "undersample", "smote", "threshold"])
def test_every_model_and_strategy_fits_and_returns_probabilities(data, model, strategy):
    X, y, Xt, _yt = data
    if not applicable(model, strategy)[0]:
        with pytest.raises(ConfigError, match="does not apply"):
            build_pipeline(model, strategy, y=y, seed=0)
        return
    inner = [(np.arange(0, 140), np.arange(140, 180))] if strategy == "threshold" else None
    out = fit_predict(
        model,
        strategy,
        fold(X, y, Xt, inner=inner),
        seed=0,
        model_params={"n_estimators": 20} if model in ("random_forest", "xgboost") else None,
    )
    assert out.proba.shape == (len(Xt), 2)
    assert np.allclose(out.proba.sum(1), 1)
    assert 0 <= out.threshold <= 1 and out.n_train == len(X)


def test_knn_has_no_cost_sensitive_form_and_says_so():
    ok, why = applicable("knn", "class_weight")
    assert not ok and "no cost-sensitive form" in why


def test_samplers_act_only_in_fit(data):
    X, y, Xt, _ = data
    pipe = build_pipeline("logistic_regression", "oversample", y=y, seed=0).fit(X, y)
    assert len(pipe.predict_proba(Xt)) == len(Xt)  # no resampling at predict time
    sampler = pipe.named_steps["sample"]
    _, y_res = sampler.fit_resample(X, y)
    assert np.bincount(y_res)[0] == np.bincount(y_res)[1]


def test_class_weight_changes_the_model(data):
    X, y, Xt, _ = data
    a = fit_predict("logistic_regression", "none", fold(X, y, Xt), seed=0)
    b = fit_predict("logistic_regression", "class_weight", fold(X, y, Xt), seed=0)
    assert b.proba[:, 1].mean() > a.proba[:, 1].mean()


def test_unknown_model_parameter_is_refused(data):
    _X, y, *_ = data
    with pytest.raises(ConfigError, match="unknown parameter.*n_trees.*allowed"):
        build_pipeline("random_forest", "none", y=y, seed=0, model_params={"n_trees": 3})


def test_sweep_subsample_reaches_the_ratio():
    y = np.array([1] * 30 + [0] * 70)
    for ratio, want in (("1:1", 1.0), ("1:3", 3.0), ("1:10", 10.0)):
        idx = sweep_subsample(y, ratio=ratio, positive=1, seed=0)
        pos, neg = (y[idx] == 1).sum(), (y[idx] == 0).sum()
        assert abs(neg / pos - want) < 0.5
    assert (
        sweep_subsample(y, ratio="1:3", positive=1, seed=1) == sweep_subsample(y, ratio="1:3", positive=1, seed=1)
    ).all()


def test_strategies_registry_names():
    assert {"none", "class_weight", "oversample", "undersample", "smote", "threshold"} <= set(STRATEGIES.names())


def test_the_catalog_lists_every_model_once_in_order():
    from cellbench.models.deep import DEEP_MODELS
    from cellbench.models.embeddings import HEAD_MODELS
    from cellbench.models.estimators import CLASSICAL as ENTRIES

    assert MODELS.names()[: len(CLASSICAL)] == CLASSICAL  # the leaderboard lists models in this order
    assert MODELS.names() == [e.name for e in (*ENTRIES, *HEAD_MODELS, *DEEP_MODELS)]
    assert {"mobilenet_v2_lr", "mobilenet_v2_mlp", "user_lr", "combined_mlp"} <= set(MODELS.names())
    assert STRATEGIES.names() == ["none", "class_weight", "oversample", "undersample", "smote", "focal", "threshold"]


def test_plugins_register_models_and_strategies_at_run_time(data, monkeypatch):
    from cellbench.models import Strategy, register_model, register_strategy

    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))  # left as it was after the test
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))

    @register_model("nearest_centroid", defaults={}, class_weight=None, description="nearest centroid")
    def build(params, seed):
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="stratified", random_state=seed)

    assert MODELS["nearest_centroid"].build is build and MODELS["nearest_centroid"].kind == "classical"
    register_strategy(Strategy("plain", "nothing at all"))
    X, y, Xt, _ = data
    out = fit_predict("nearest_centroid", "plain", fold(X, y, Xt), seed=0)
    assert out.proba.shape == (len(Xt), 2)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("knn", defaults={}, class_weight=None, description="again")(build)


def fold(X, y, Xt, *, inner=None, positive=1):
    """The training rows ``X`` (labels ``y``) and the rows ``Xt`` to predict as one :class:`Fold`."""
    from cellbench.models.fold import Fold

    inputs = np.vstack([X, Xt])
    labels = np.r_[y, np.zeros(len(Xt), dtype=int)]  # the test rows' labels are never read
    return Fold(inputs=inputs, y=labels, train=np.arange(len(X)), test=np.arange(len(X), len(inputs)), n_classes=2,
                positive=positive, inner=inner)  # fmt: skip


def test_the_threshold_is_tuned_on_the_positive_class_whatever_its_index(data):
    """Swapping the class indices (the positive class first) must mirror the thresholded predictions: the tuned
    threshold applies to the positive class's probability, as the tuner chose it on that probability."""
    from cellbench.stats.metrics import predict_labels

    X, y, Xt, _ = data
    inner = [(np.arange(0, 140), np.arange(140, 180))]
    a = fit_predict("logistic_regression", "threshold", fold(X, y, Xt, inner=inner, positive=1), seed=0)
    b = fit_predict("logistic_regression", "threshold", fold(X, 1 - y, Xt, inner=inner, positive=0), seed=0)
    np.testing.assert_allclose(a.proba[:, 1], b.proba[:, 0], atol=1e-6)
    assert a.threshold == pytest.approx(b.threshold, abs=1e-6) and a.threshold != 0.5
    pred_a = predict_labels(a.proba, positive=1, threshold=a.threshold)
    pred_b = predict_labels(b.proba, positive=0, threshold=b.threshold)
    np.testing.assert_array_equal(pred_a, 1 - pred_b)


def test_one_tuner_for_both_arms():
    from cellbench.models.threshold import DEFAULT, tune_threshold

    score = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.6])
    truth = np.array([0, 0, 0, 1, 1, 1])
    t = tune_threshold(truth, score)
    assert 0.2 < t <= 0.3 and ((score >= t) == truth.astype(bool)).all()
    assert tune_threshold(np.ones(6), score) == DEFAULT  # one class: nothing to tune
    assert tune_threshold(truth, np.full(6, 0.4)) == DEFAULT  # constant scores: nothing to tune
