"""Models named by import path in a suite: the same folds as the built-in models, clear errors, no endless pool."""

import subprocess
import sys
import textwrap

import pytest

from cellbench.core.errors import ConfigError
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import load_suite, parse_suite
from tests.test_own_data import write_cells

EXTRA_TREES = """
name = "mine"
strategies = ["none"]
[cv]
folds = 3
[datasets.folder]
[models.logistic_regression]
[models.extra_trees]
estimator = "sklearn.ensemble:ExtraTreesClassifier"
n_estimators = 40
min_samples_leaf = 2
"""


def _raw(**models):
    return {"name": "p", "datasets": {"synthetic": {}}, "models": models}


def test_a_suite_names_a_scikit_learn_class_and_runs_it_in_the_same_folds(tmp_path):
    data = write_cells(tmp_path / "mydata")
    (tmp_path / "mine.toml").write_text(EXTRA_TREES)
    suite = load_suite(tmp_path / "mine.toml")
    summary = run_suite(suite, results_root=tmp_path / "r", data_root=data, workers=2, progress=False)
    assert summary.failed == 0 and summary.ran == 6
    with Store.open(summary.results_dir, write=False) as store:
        jobs = store.jobs(status="ok")
        assert set(jobs.model) == {"logistic_regression", "extra_trees"} and jobs.folds_key.nunique() == 1
        preds = store.predictions(jobs.key.tolist()).merge(jobs[["key", "model", "fold"]], left_on="job_key",
                                                           right_on="key")  # fmt: skip
    tested = {m: {f: set(g.sample_id) for f, g in d.groupby("fold")} for m, d in preds.groupby("model")}
    assert tested["extra_trees"] == tested["logistic_regression"] and len(tested["extra_trees"]) == 3
    spec = jobs[jobs.model == "extra_trees"].spec.iloc[0]
    assert "sklearn.ensemble:ExtraTreesClassifier" in spec and '"n_estimators":40' in spec


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"estimator": "nosuchpkg.models:Net"}, "cannot import module 'nosuchpkg.models'"),
        ({"estimator": "sklearn.ensemble:NoSuchForest"}, "has no attribute 'NoSuchForest'"),
        ({"estimator": "sklearn.preprocessing:StandardScaler"}, "is not a classifier with predict_proba"),
        ({"estimator": "sklearn.ensemble"}, 'must look like "module:Class"'),
        (
            {"estimator": "sklearn.ensemble:ExtraTreesClassifier", "n_trees": 5},
            "unknown parameter(s) n_trees; allowed:",
        ),
        ({"estimator": "sklearn.ensemble:RandomForestClassifier"}, "'random_forest' is a built-in model"),
    ],
)
def test_bad_import_path_models_are_refused_at_load_with_the_reason(table, words):
    name = "random_forest" if "RandomForest" in table["estimator"] else "mine"
    with pytest.raises(ConfigError) as err:
        parse_suite(_raw(**{name: table}), source="t.toml")
    assert words in str(err.value) and f"[models.{name}]" in str(err.value)


@pytest.mark.slow
def test_a_script_without_a_main_guard_fails_its_jobs_instead_of_restarting_workers_forever(tmp_path):
    script = tmp_path / "noguard.py"
    script.write_text(
        textwrap.dedent("""
        from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
        from cellbench.run.executors import run_local

        jobs = [(Job(suite="s", dataset="d", extraction="given", model=ModelSpec(name="dummy"),
                     imbalance=ImbalanceSpec(name="none"), fold=f, seed=0, cv="x"), "nowhere") for f in range(3)]
        for r in run_local(jobs, workers=2):
            print("RESULT", r.status, r.error)
    """)
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    results = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == 3 and all("died twice before running any job" in r for r in results)
    assert 'if __name__ == "__main__":' in results[0]


def test_an_installed_packages_entry_point_adds_a_model_by_name(tmp_path, monkeypatch):
    (tmp_path / "cbplug_demo.py").write_text(
        textwrap.dedent("""
        from sklearn.tree import DecisionTreeClassifier
        from cellbench.models.entry import model_entry

        @model_entry("demo_tree", defaults={"max_depth": 3}, class_weight="param", description="demo tree")
        def demo_tree(params, seed):
            return DecisionTreeClassifier(**params, random_state=seed)
    """)
    )
    info = tmp_path / "cbplug_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cbplug-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cellbench.models]\ndemo_tree = cbplug_demo:demo_tree\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = parse_suite(_raw(demo_tree={"max_depth": 2}), source="t.toml")
    assert suite.models == {"demo_tree": {"max_depth": 2}}
    from cellbench.models import MODELS

    assert MODELS["demo_tree"].description == "demo tree"
    with pytest.raises(ConfigError, match="unknown model 'no_such_plugin'"):
        parse_suite(_raw(no_such_plugin={}), source="t.toml")
