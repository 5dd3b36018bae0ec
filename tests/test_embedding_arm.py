"""The embedding arms end to end: a user's vectors file read by user_* and combined_* heads, on the suite's folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellbench.core.errors import ConfigError
from cellbench.datasets import load_dataset
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import load_suite

SUITE = """
name = "useremb"
seed = 0
strategies = ["none", "smote"]
[cv]
folds = 3
[datasets.synthetic]
n_patients = 12
fields_per_patient = 2
embeddings = "{file}"
[models]
logistic_regression = {{}}
user_lr = {{}}
combined_mlp = {{ embedder = "user", max_iter = 50 }}
"""


def _vectors(tmp_path, *, drop: int = 0):
    ds = load_dataset("synthetic", data_root=None, cache_dir=tmp_path / "cache", n_patients=12, fields_per_patient=2)
    rng = np.random.default_rng(0)
    ids = [s.id for s in ds.samples]
    signal = np.array([s.label == ds.positive_class for s in ds.samples], dtype=float)
    X = rng.normal(size=(len(ids), 8)) + 2.0 * signal[:, None]  # vectors that carry the class
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(sample_id=ids).iloc[drop:]
    path = tmp_path / "vectors.parquet"
    df.to_parquet(path)
    return path, ids


def test_user_embeddings_run_as_their_own_arm_on_the_same_folds(tmp_path):
    path, _ = _vectors(tmp_path)
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(SUITE.format(file=path))
    summary = run_suite(load_suite(suite_file), results_root=tmp_path / "r", cache=tmp_path / "cache", progress=False)
    assert summary.failed == 0
    with Store.open(summary.results_dir, write=False) as store:
        jobs = store.jobs()
    assert set(jobs.model) == {"logistic_regression", "user_lr", "combined_mlp"}
    assert jobs.groupby("model").folds_key.nunique().eq(1).all() and jobs.folds_key.nunique() == 1  # same folds
    user = jobs[jobs.model == "user_lr"]
    assert (user.metrics.map(lambda m: m["balanced_accuracy"]) > 0.8).all()  # the vectors carry the class
    assert user.extra.map(lambda e: "balanced_accuracy" in e.inner).all()  # inner scores for nested selection


def test_a_user_file_missing_a_sample_is_refused_naming_it(tmp_path):
    path, ids = _vectors(tmp_path, drop=1)
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(SUITE.format(file=path))
    with pytest.raises(ConfigError, match=ids[0]):
        run_suite(load_suite(suite_file), results_root=tmp_path / "r", cache=tmp_path / "cache", progress=False)
