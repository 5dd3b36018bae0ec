"""End to end on the real ALL-IDB1 sample: both extractions through the grid on field-disjoint folds, the
leaderboard's extraction section, and the detection scores (slow: minutes; run with ``pytest -m slow``)."""

from __future__ import annotations

import pytest

from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
from tests.conftest import SHARED_DATA, leaderboard, shared

pytestmark = pytest.mark.slow


def test_allidb1_manual_vs_segmentation_end_to_end(tmp_path):
    shared("allidb1_subset")
    suite = parse_suite(
        {
            "name": "allidb1-e2e",
            "seed": 0,
            "strategies": ["none", "class_weight"],
            "cv": {"scheme": "group_kfold", "folds": 3},
            "datasets": {"allidb1": {"extractions": ["manual", "segmentation"]}},
            "models": {"logistic_regression": {}, "random_forest": {"n_estimators": 50}},
        },
        source="test",
    )
    summary = run_suite(suite, results_root=tmp_path, data_root=SHARED_DATA, workers=2, progress=False)
    assert summary.failed == 0
    text = leaderboard(summary)
    assert "## allidb1 — extraction `manual`" in text and "## allidb1 — extraction `segmentation`" in text
    assert "field-disjoint StratifiedGroupKFold" in text and "45 fields" in text
    assert "Extraction quality" in text and "allidb1: the same cells, and segmentation end to end" in text
    with Store.open(tmp_path / "allidb1-e2e", write=False) as store:
        infos = store.data_sets()
        q = infos[("allidb1", "segmentation")].extracted.quality
        for extraction in ("manual", "segmentation"):
            samples = store.samples("allidb1", extraction)
            assert set(samples.grp) == {i.split("/")[0] for i in samples.sample_id}  # groups are fields
        folds = store.fold_sets()
    # the targets are recall >= 0.9 and precision >= 0.8; this guards against regressions
    assert q.targets > 380 and q.recall >= 0.87 and q.precision >= 0.8, q
    assert len(folds) == 2
