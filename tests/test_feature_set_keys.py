"""A suite whose feature set is not its data kind's default never resumes jobs fitted on other features; with the
default feature set the job keys are those from before the feature set entered them."""

from __future__ import annotations

from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.features.config import FeatureConfig
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
from tests.test_stain_run import KEY_BEFORE_STAIN


def test_a_job_without_a_feature_set_key_keeps_its_key():
    kw = dict(suite="s", dataset="d", extraction="given", fold=1, seed=0, cv="group_kfold", data_fingerprint="f",
              folds_key="k", model=ModelSpec(name="svm", kind="classical", input="features", params={"C": 1.0}),
              imbalance=ImbalanceSpec(name="none", params={}))  # fmt: skip
    assert Job(**kw).key == KEY_BEFORE_STAIN
    assert Job(**kw, features=FeatureConfig(families=("morphology",)).key()).key != KEY_BEFORE_STAIN


def _suite(features: dict | None = None):
    raw = {
        "name": "fs",
        "seed": 0,
        "strategies": ["none"],
        "cv": {"folds": 2},
        "datasets": {"synthetic": {"n_patients": 8, "fields_per_patient": 2}},
        "models": {"logistic_regression": {}},
    }
    if features is not None:
        raw["features"] = features
    return parse_suite(raw, source="test")


def _keys(summary) -> set[str]:
    with Store.open(summary.results_dir, write=False) as store:
        return set(store.jobs(status="ok").key)


def test_changing_the_families_runs_new_jobs_and_naming_the_defaults_resumes(tmp_path):
    root = tmp_path / "results"
    first = run_suite(_suite(), results_root=root, workers=1, progress=False)
    assert first.ran == first.planned == 2
    before = _keys(first)

    other = run_suite(_suite({"families": ["morphology", "intensity"]}), results_root=root, workers=1, progress=False)
    assert other.ran == other.planned == 2  # nothing resumed from the default feature set's jobs
    assert len(_keys(other)) == 4 and before <= _keys(other)

    defaults = list(FeatureConfig.for_kind("cell").families)  # the synthetic set's kind: the same features
    again = run_suite(_suite({"families": defaults}), results_root=root, workers=1, progress=False)
    assert again.ran == 0 and again.planned == 2


def test_a_kind_whose_default_changed_gets_a_feature_key_and_its_former_default_keeps_none():
    """The crop default changed after job keys took feature sets: jobs fitted on the former default (cell families +
    whole_image + hed_texture) keep their keys; the new default gets its own, so it never resumes them."""
    from dataclasses import replace

    from cellbench.datasets import load_dataset
    from cellbench.features.config import CELL_FAMILIES, KEYLESS_FAMILIES
    from cellbench.run.prepare import feature_set_key

    cells = load_dataset("synthetic", n_patients=2, fields_per_patient=1)
    crops = replace(cells, info=replace(cells.info, kind="crop"))
    assert feature_set_key(FeatureConfig.for_kind("cell"), cells) == ""
    patches = replace(cells, info=replace(cells.info, kind="patch"))
    assert feature_set_key(FeatureConfig.for_kind("patch"), patches) == ""
    former = FeatureConfig.for_kind("crop", families=KEYLESS_FAMILIES["crop"])
    assert former.families == (*CELL_FAMILIES, "whole_image", "hed_texture")
    assert feature_set_key(former, crops) == ""
    new = FeatureConfig.for_kind("crop")
    assert new.families != former.families and feature_set_key(new, crops) == new.key()
