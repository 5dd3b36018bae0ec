"""Final models (``--final``): chosen by inner-validation score among refits on all development data, saved with
a card, used by ``predict`` by default; a rerun trains nothing, a removed champion file is refit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellbench.core.values import as_float
from cellbench.datasets import load_dataset
from cellbench.run.final import INDEX, final_folder
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
from cellbench.tools.predict import find_finals, find_saved, predict_finals, predict_images

RAW = {
    "name": "fin",
    "seed": 0,
    "strategies": ["none", "threshold"],
    "cv": {"folds": 2},
    "datasets": {"synthetic": {"n_patients": 6, "fields_per_patient": 2}},
    "models": {"logistic_regression": {}, "random_forest": {"n_estimators": 10}, "naive_bayes": {}},
    "final": {"enabled": True},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    suite = parse_suite(RAW, source="test")
    summary = run_suite(suite, results_root=results, workers=1, progress=False)
    assert summary.failed == 0 and summary.finals == 1
    return suite, results, summary


def test_the_final_model_is_the_refit_with_the_best_inner_score(run):
    _, _results, summary = run
    with Store.open(summary.results_dir, write=False) as store:
        jobs = store.jobs(status="ok")
    refits = jobs[jobs.fold < 0]
    assert len(refits) == 6  # one per model × strategy
    primary = "balanced_accuracy"
    scores = {k: as_float(e.inner[primary]) for k, e in zip(refits.key, refits.extra)}
    (final,) = find_finals(summary.results_dir)
    assert scores[final.entry["job"]] == max(scores.values())
    card = final.saved.card
    assert card["classes"] == ["normal", "blast"] and card["positive"] == 1 and card["kind"] == "cell"
    block = card["final"]
    assert block["arm"] == "handcrafted" and block["training"]["n_samples"] == sum(
        block["training"]["class_counts"].values()
    )
    assert block["cv"]["nested_folds"] == 2 and np.isfinite(block["cv"]["nested_mean"])
    assert block["external"] is None
    # the other refits' files are gone; only the final model, its card and the index remain
    names = sorted(p.name for p in final_folder(summary.results_dir).iterdir())
    assert names == sorted([INDEX, final.saved.path.name, final.saved.path.with_suffix(".json").name])


def test_predict_by_default_equals_predict_with_the_file(run):
    _, _, summary = run
    (final,) = find_finals(summary.results_dir)
    images = [str(s.image_path) for s in load_dataset("synthetic", n_patients=6, fields_per_patient=2).samples[:4]]
    default = predict_finals([final], images)
    by_file = predict_images(find_saved(final.saved.path), images)
    np.testing.assert_array_equal(default["probability"], by_file["probability"])
    assert list(default["class"]) == list(by_file["class"]) and set(default.arm) == {"handcrafted"}


def test_a_rerun_trains_nothing_and_a_removed_champion_is_refit(run):
    suite, results, summary = run
    folder = final_folder(summary.results_dir)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = run_suite(suite, results_root=results, workers=1, progress=False)
    assert again.ran == 0 and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    (final,) = find_finals(summary.results_dir)
    final.saved.path.unlink()
    third = run_suite(suite, results_root=results, workers=1, progress=False)
    assert third.ran == 1 and final.saved.path.is_file()
    assert json.loads((folder / INDEX).read_text())["finals"][0]["job"] == final.entry["job"]


def test_a_suite_without_final_models_plans_no_refit(tmp_path):
    raw = {**RAW, "final": {"enabled": False}, "models": {"naive_bayes": {}}, "strategies": ["none"]}
    summary = run_suite(parse_suite(raw, source="test"), results_root=tmp_path, workers=1, progress=False)
    assert summary.planned == 2 and summary.final_index is None
    assert not final_folder(summary.results_dir).exists()
