"""Leaderboard edge cases: Friedman + Nemenyi across data sets, and rows left unfinished by a stopped run."""

from __future__ import annotations

from bench.report import write_leaderboard
from bench.runner import run_suite
from bench.store import Store
from bench.suite import parse_suite
from tests.conftest import SHARED_DATA, shared


def test_two_data_sets_give_friedman_nemenyi_and_a_cd_diagram(tmp_path):
    shared("allidb2")
    suite = parse_suite(
        {
            "name": "two",
            "seed": 0,
            "strategies": ["none"],
            "cv": {"folds": 3},
            "datasets": {"synthetic": {"n_patients": 10, "fields_per_patient": 2}, "allidb2": {}},
            "models": {"logistic_regression": {}, "naive_bayes": {}, "knn": {}, "dummy": {}},
        },
        source="test",
    )
    summary = run_suite(suite, results_root=tmp_path, data_root=SHARED_DATA, workers=2, progress=False)
    assert summary.failed == 0
    text = summary.leaderboard.read_text()
    assert "Friedman test over 2 independent (data set × extraction) blocks and 4 model × strategy rows" in text
    assert "Nemenyi critical difference" in text and "average rank" in text
    assert "![critical difference diagram](figures/" in text
    assert any((summary.results_dir / "figures").glob("*cd*.png"))
    # regenerated from the store alone: byte-identical
    with Store.open(summary.results_dir, write=False) as store:
        again = write_leaderboard(store, out_dir=summary.results_dir).read_text()
    assert again == text


def test_a_row_missing_folds_is_shown_and_kept_out_of_the_paired_tests(tmp_path):
    suite = parse_suite(
        {
            "name": "gap",
            "seed": 0,
            "strategies": ["none"],
            "cv": {"folds": 6},
            "datasets": {"synthetic": {"n_patients": 12, "fields_per_patient": 2}},
            "models": {"logistic_regression": {}, "naive_bayes": {}, "dummy": {}},
        },
        source="test",
    )
    summary = run_suite(suite, results_root=tmp_path, workers=2, progress=False)
    with Store.open(summary.results_dir) as store:  # as if the run had stopped before naive_bayes' last fold
        store.conn.execute("DELETE FROM jobs WHERE model = 'naive_bayes' AND fold = 5")
        store.conn.commit()
        text = write_leaderboard(store, out_dir=summary.results_dir).read_text()
    row = next(line for line in text.splitlines() if "| naive_bayes " in line)
    assert "5/6" in row
    assert "Wilcoxon" in text
