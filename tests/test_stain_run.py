"""Stain normalisation as a suite option: checked by the schema, a reference per training fold only, both arms
reading per-fold inputs, job and cache keys unchanged for ``method = "none"``, the leaderboard saying it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cellbench.core.errors import ConfigError
from cellbench.core.types import ImbalanceSpec, Job, ModelSpec, Sample
from cellbench.run.cv import make_folds
from cellbench.run.manifest import stain_handling
from cellbench.run.runner import run_suite
from cellbench.run.stain import fold_reference
from cellbench.run.store import Store
from cellbench.run.suite import model_spec, parse_suite
from cellbench.run.task import load_task
from tests.conftest import leaderboard
from tests.test_stain import he_image

SMALL = {"n_patients": 8, "fields_per_patient": 2}


def _raw(**over) -> dict:
    raw = {
        "name": "stain",
        "seed": 0,
        "cv": {"folds": 2},
        "datasets": {"synthetic": dict(SMALL)},
        "models": {"logistic_regression": {}, "cnn_tiny": {}},
        "deep": {"max_epochs": 1, "size": 32},
    }
    raw.update(over)
    return raw


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"method": "vahadane"}, "unknown stain method 'vahadane'; allowed: none, reinhard, macenko"),
        ({"method": 1}, "stain.method must be text"),
        ({"methd": "macenko"}, "unknown key 'stain.methd'; allowed keys in [stain]: method, max_images"),
        ({"method": "macenko", "max_images": 0}, "stain.max_images must be at least 1, got 0"),
    ],
)
def test_the_suite_refuses_a_bad_stain_table_naming_the_allowed_values(table, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_suite(_raw(stain=table), source="test")


def test_the_default_is_no_normalisation():
    assert parse_suite(_raw(), source="test").stain == "none"
    assert parse_suite(_raw(stain={"method": "reinhard"}), source="test").stain == "reinhard"


def _dev(n: int = 12) -> list[Sample]:
    return [Sample(id=f"s{i}", label="ab"[i % 2], image=he_image(i, size=24)) for i in range(n)]


def test_a_folds_reference_depends_only_on_its_training_images():
    dev = _dev()
    y = np.array([i % 2 for i in range(len(dev))])
    folds = make_folds(ids=[s.id for s in dev], y=y, groups=None, predefined=None, scheme="stratified_kfold",
                       n_splits=3, seed=0)  # fmt: skip
    train, test = folds.train_test(0)

    def ref(samples):
        return fold_reference(samples, folds, 0, method="macenko", max_images=50, seed=0, fingerprint="fp")

    before = ref(dev)
    changed_test = list(dev)
    changed_test[test[0]] = Sample(id=dev[test[0]].id, label="a", image=he_image(99, size=24, e_gain=2.0))
    assert ref(changed_test).reference == before.reference  # a test image never enters the reference
    changed_train = list(dev)
    changed_train[train[0]] = Sample(id=dev[train[0]].id, label="a", image=he_image(99, size=24, e_gain=2.0))
    assert ref(changed_train).reference != before.reference
    assert ref(changed_train).fingerprint != before.fingerprint
    other = fold_reference(dev, folds, 1, method="macenko", max_images=50, seed=0, fingerprint="fp")
    assert other.reference != before.reference  # one reference per fold, never pooled across folds


# the key of this job before the stain option existed (``Job`` of bench/core/types.py at d1f9b1f): a suite without
# normalisation keeps the job keys, so its stored results are reused
KEY_BEFORE_STAIN = "58d7205c2762b8aac416e7b4"


def test_job_keys_without_normalisation_are_those_before_the_option():
    kw = dict(suite="s", dataset="d", extraction="given", fold=1, seed=0, cv="group_kfold", data_fingerprint="f",
              folds_key="k", model=ModelSpec(name="svm", kind="classical", input="features", params={"C": 1.0}),
              imbalance=ImbalanceSpec(name="none", params={}))  # fmt: skip
    assert Job(**kw).key == KEY_BEFORE_STAIN
    assert Job(**kw, stain="macenko:abc").key != KEY_BEFORE_STAIN


@pytest.fixture(scope="module")
def stained(tmp_path_factory):
    root = tmp_path_factory.mktemp("stain")
    plain_suite = parse_suite(_raw(models={"logistic_regression": {}}), source="test")
    plain = run_suite(plain_suite, results_root=root / "plain", workers=1, progress=False)
    deep = {"max_epochs": 1, "size": 32, "hed_augment": 0.05}  # the deep arm trains with HED augmentation too
    suite = parse_suite(_raw(name="stained", stain={"method": "reinhard", "max_images": 20}, deep=deep),
                        source="test")  # fmt: skip
    summary = run_suite(suite, results_root=root / "stained", workers=1, progress=False)
    return plain, summary


def _jobs(summary):
    with Store.open(summary.results_dir, write=False) as store:
        return store.jobs()


def test_both_arms_read_per_fold_normalised_inputs_and_the_leaderboard_says_so(stained):
    plain, summary = stained
    assert summary.failed == 0 and summary.ran == summary.planned
    jobs = _jobs(summary)
    assert set(jobs.model) == {"logistic_regression", "cnn_tiny"} and (jobs.status == "ok").all()
    # other inputs than the unnormalised run's: no stored job key in common
    assert not set(jobs.key) & set(_jobs(plain).key)
    with Store.open(summary.results_dir, write=False) as store:
        record = next(iter(store.data_sets().values()))
    assert record.stain.startswith("reinhard normalisation")
    text = leaderboard(summary)
    assert "**Stain**: reinhard normalisation" in text
    assert "HED colour augmentation of deep training batches: cnn_tiny ±0.05" in text
    assert "stain handling" not in leaderboard(plain)


def test_a_normalised_task_holds_one_reference_and_one_input_set_per_fold(stained):
    cache = Path(os.environ["CELLBENCH_CACHE"]) / "tasks"  # the run's cache (tests/conftest.py sets it)
    tasks = [load_task(str(p)) for p in cache.glob("task-*.npz")]
    task = next(t for t in tasks if t.stain == "reinhard")
    assert task.X is None and task.pixels is None and sorted(task.by_fold) == [0, 1]
    refs = {task.fold_inputs(f).reference for f in task.by_fold}
    assert len(refs) == 2  # a reference per training fold
    X0, X1 = task.features(0), task.features(1)
    assert X0.shape == X1.shape and not np.array_equal(X0, X1)
    assert not np.array_equal(task.images(32, 0), task.images(32, 1))
    with pytest.raises(Exception, match="name the fold"):
        task.images(32)


def test_hed_augmentation_is_a_deep_option_that_leaves_other_specs_as_they_were():
    plain = parse_suite(_raw(), source="test")
    assert "hed_augment" not in model_spec(plain, "cnn_tiny").params  # the job keys of suites without it
    assert stain_handling(plain) == {}
    hed = parse_suite(_raw(deep={"max_epochs": 1, "size": 32, "hed_augment": 0.05}), source="test")
    assert model_spec(hed, "cnn_tiny").params["hed_augment"] == 0.05
    assert model_spec(hed, "cnn_tiny").canonical() != model_spec(plain, "cnn_tiny").canonical()
    assert stain_handling(hed) == {"method": "none", "max_images": 200, "hed_augment": {"cnn_tiny": 0.05}}
    with pytest.raises(ConfigError, match="hed_augment of cnn_tiny must be a number from 0 to 1, got 2.0"):
        parse_suite(_raw(deep={"hed_augment": 2.0}), source="test")
