"""Leaderboard edge cases: Friedman + Nemenyi across data sets, and rows left unfinished by a stopped run."""

from __future__ import annotations

from cellbench.report.leaderboard import write_leaderboard
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
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


def test_imagenet_and_random_weights_are_compared_pairwise_per_backbone():
    import pandas as pd

    from cellbench.report.leaderboard import _imagenet_vs_scratch

    scores = {  # per-fold balanced accuracy
        "mobilenet_v2": [0.80, 0.82, 0.78, 0.81, 0.79],
        "mobilenet_v2_ft": [0.84, 0.86, 0.83, 0.85, 0.84],
        "mobilenet_v2_scratch": [0.70, 0.73, 0.69, 0.72, 0.70],
        "cnn": [0.75, 0.74, 0.76, 0.75, 0.73],
    }
    ok = pd.DataFrame(
        [
            {"model": m, "imbalance": "none", "fold": f, "metrics": {"balanced_accuracy": v},
             "extra": {"n_train": 400, "n_test": 100}}
            for m, vs in scores.items()
            for f, v in enumerate(vs)
        ]
    )
    table = pd.DataFrame({"model": list(scores), "strategy": ["none"] * len(scores)})
    out = _imagenet_vs_scratch(table, ok, "balanced_accuracy").set_index("pretrained")
    assert list(out.index) == ["mobilenet_v2", "mobilenet_v2_ft"]  # cnn has no ImageNet twin
    assert (out.scratch == "mobilenet_v2_scratch").all()
    assert abs(out.loc["mobilenet_v2", "diff"] - 0.092) < 1e-9
    assert out.loc["mobilenet_v2_ft", "t_p"] < 0.05 and out.loc["mobilenet_v2_ft", "p_a_better"] > 0.9
    assert _imagenet_vs_scratch(table[table.model != "mobilenet_v2_scratch"], ok, "balanced_accuracy").empty
