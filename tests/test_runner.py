"""End-to-end: suite -> features -> folds -> jobs -> store -> leaderboard, resume and bad input."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellbench.core.errors import DataError
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
from tests.conftest import leaderboard

REPO = Path(__file__).resolve().parents[1]
SMALL = {"n_patients": 10, "fields_per_patient": 2}


def _suite(**over):
    raw = {
        "name": "t",
        "seed": 0,
        "strategies": ["none", "class_weight", "oversample", "undersample", "smote", "threshold"],
        "cv": {"folds": 3},
        "datasets": {"synthetic": dict(SMALL)},
        "models": {"logistic_regression": {}, "knn": {}, "dummy": {}, "random_forest": {"n_estimators": 20}},
        "imbalance_sweep": {"ratios": ["1:1", "1:4"], "strategies": ["none"], "models": ["logistic_regression"]},
        "explain": {"models": ["random_forest"]},
    }
    raw.update(over)
    return parse_suite(raw, source="test")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    summary = run_suite(_suite(), results_root=results, workers=2, progress=False)
    return summary, results


def test_run_stores_every_job_and_writes_a_leaderboard(finished):
    summary, results = finished
    assert summary.failed == 0 and summary.ran == summary.planned > 0
    text = leaderboard(summary)
    for model in ("logistic_regression", "knn", "dummy", "random_forest"):
        assert f"| {model} " in text
    assert "patient-disjoint" in text
    assert "knn × class_weight: not run" in text
    assert "Imbalance sweep" in text
    assert "Which cell features drive the classical models" in text and "random_forest / none" in text
    assert "95% CI" in text and "corrected resampled t-test" in text
    with Store.open(results / "t", write=False) as store:
        jobs = store.jobs()
        assert len(jobs) == summary.planned and set(jobs.status) == {"ok"}
        preds = store.predictions()
        # every ok job has one prediction per test sample of its fold
        n_test = jobs.set_index("key").extra.map(lambda e: e.n_test)
        assert preds.groupby("job_key").size().sort_index().tolist() == n_test.sort_index().tolist()


def test_all_models_share_identical_test_folds(finished):
    _, results = finished
    with Store.open(results / "t", write=False) as store:
        jobs = store.jobs()
        preds = store.predictions()
    natural = jobs[jobs.ratio == "natural"]
    merged = preds.merge(natural[["key", "model", "imbalance", "fold"]], left_on="job_key", right_on="key")
    per_model = merged.groupby(["model", "imbalance", "fold"]).sample_id.apply(lambda s: tuple(sorted(s)))
    for fold, ids in per_model.groupby(level="fold"):
        assert ids.nunique() == 1, f"fold {fold} differs between models"


def test_rerun_retrains_nothing_and_extracts_nothing(finished, monkeypatch):
    summary, results = finished
    from cellbench.features import batch

    def boom(*a, **k):
        raise AssertionError("features were extracted again")

    # one worker: any extraction would run in this process, where the patch applies (batch's own name for it)
    monkeypatch.setattr(batch, "feature_vector", boom)
    again = run_suite(_suite(), results_root=results, workers=1, progress=False)
    assert again.ran == 0 and again.skipped_done == summary.planned


def test_leaderboard_regenerates_byte_identically(finished):
    from cellbench.report.leaderboard import write_leaderboard

    _, results = finished
    with Store.open(results / "t", write=False) as store:
        a = write_leaderboard(store, out_dir=results / "t").read_bytes()
        b = write_leaderboard(store, out_dir=results / "t").read_bytes()
    assert a == b


def test_corrupt_image_stops_with_its_name_and_stores_nothing(tmp_path):
    root = tmp_path / "data"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(8):
        for cls in ("a", "b"):
            cv2.imwrite(str(root / cls / f"{cls}{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (root / "a" / "broken.png").write_bytes(b"not a png at all")
    suite = _suite(datasets={"folder": {}}, models={"logistic_regression": {}}, strategies=["none"], imbalance_sweep={})
    with pytest.raises(DataError, match=r"broken\.png"):
        run_suite(suite, results_root=tmp_path / "r", data_root=root, workers=1, progress=False)
    with Store.open(tmp_path / "r" / "t", write=False) as store:
        assert len(store.jobs()) == 0
    skipped = run_suite(
        suite, results_root=tmp_path / "r", data_root=root, workers=1, progress=False, on_bad_image="skip"
    )
    assert skipped.failed == 0 and skipped.ran == 3
    assert "1 unreadable image(s) skipped" in leaderboard(skipped)


def test_killed_run_resumes_without_duplicates(tmp_path):
    suite_file = tmp_path / "kill.toml"
    suite_file.write_text(
        'name = "kill"\nstrategies = ["none", "class_weight"]\n'
        "[cv]\nfolds = 3\n[datasets.synthetic]\nn_patients = 10\nfields_per_patient = 2\n"
        "[models]\nrandom_forest = { n_estimators = 150 }\nlogistic_regression = {}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--suite",
        str(suite_file),
        "--results",
        str(tmp_path / "r"),
        "--jobs",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "r" / "kill" / "store.sqlite"
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    stored = con.execute("SELECT count(*) FROM jobs").fetchone()[0]
            except sqlite3.Error:
                stored = 0
            if stored >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True).returncode == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT key, status FROM jobs").fetchall()
        n_pred = con.execute("SELECT job_key, count(*) FROM predictions GROUP BY job_key").fetchall()
    assert len(rows) == 2 * 2 * 3 and len({k for k, _ in rows}) == len(rows)
    assert {s for _, s in rows} == {"ok"}
    assert len(n_pred) == len(rows)
    # the resumed store equals an uninterrupted run's: same metrics, predictions and leaderboard
    from cellbench.tools.repro import compare_stores

    fresh = [*cmd[:cmd.index("--results") + 1], str(tmp_path / "fresh"), "--jobs", "2", "--quiet"]
    assert subprocess.run(fresh, cwd=REPO, env=env, capture_output=True).returncode == 0
    assert compare_stores(tmp_path / "r" / "kill", tmp_path / "fresh" / "kill") == []


def test_warnings_of_a_job_are_stored_with_it_and_listed_in_the_leaderboard(tmp_path, monkeypatch, recwarn):
    import warnings

    from cellbench.run import jobs as job_module

    original = job_module._run_classical

    def noisy(job, task, options):
        if job.model.name == "knn":
            warnings.warn("knn: the least populated class has only 2 members | test", UserWarning, stacklevel=1)
            warnings.warn("a library's internal deprecation", DeprecationWarning, stacklevel=1)
        return original(job, task, options)

    monkeypatch.setattr(job_module, "_run_classical", noisy)
    suite = _suite(models={"knn": {}, "dummy": {}}, strategies=["none"], imbalance_sweep={}, explain={})
    summary = run_suite(suite, results_root=tmp_path, workers=1, progress=False)
    assert summary.failed == 0 and summary.warned == 3  # three knn folds
    assert not [w for w in recwarn if "least populated" in str(w.message)]  # not printed between progress bars
    with Store.open(tmp_path / "t", write=False) as store:
        jobs = store.jobs()
    stored = {m: [e.warnings for e in jobs.extra[jobs.model == m]] for m in ("knn", "dummy")}
    assert stored["knn"] == [("UserWarning: knn: the least populated class has only 2 members | test",)] * 3
    assert stored["dummy"] == [()] * 3
    text = leaderboard(summary)
    assert "### Warnings raised by finished jobs (1 distinct)" in text
    row = r"\| UserWarning: knn: the least populated class has only 2 members \\\| test +\| 3 +\| knn +\|"
    assert re.search(row, text)
    assert "deprecation" not in text
