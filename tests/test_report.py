"""The leaderboard from a store written directly (no training): Friedman + Nemenyi across data sets, unfinished
rows, warnings, importance and training curves, byte-identical regeneration."""

from __future__ import annotations

import pandas as pd

from cellbench.core.types import JobExtra
from cellbench.report.leaderboard import write_leaderboard
from cellbench.report.summary import _imagenet_vs_scratch, summarise
from cellbench.run.store import Store
from tests.stores import FakeData, write_store

SKILLS = {("logistic_regression", "none"): 0.95, ("naive_bayes", "none"): 0.8, ("knn", "none"): 0.65,
          ("dummy", "none"): 0.5}  # fmt: skip


def test_two_data_sets_give_friedman_nemenyi_and_a_cd_diagram(tmp_path):
    folder = write_store(tmp_path, [FakeData(name="alpha", skills=SKILLS), FakeData(name="beta", skills=SKILLS)])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
        board = summarise(store)
    assert "Friedman test over 2 independent (data set × extraction) blocks and 4 model × strategy rows" in text
    assert "Nemenyi critical difference" in text and "average rank" in text
    assert "![critical difference diagram](figures/" in text
    assert any((folder / "figures").glob("*cd*.png"))
    ranks = board.friedman.avg_ranks.sort_values()
    assert ranks.index[0] == "logistic_regression / none" and ranks.index[-1] == "dummy / none"
    # regenerated from the store alone: byte-identical
    with Store.open(folder, write=False) as store:
        assert write_leaderboard(store, out_dir=folder).read_text() == text


def test_one_data_set_refuses_friedman_with_folds_as_blocks(tmp_path):
    folder = write_store(tmp_path, [FakeData(skills=SKILLS)])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
    assert "Friedman/Nemenyi not computed" in text
    assert not (folder / "figures" / "cd_diagram.png").exists()


def test_a_row_missing_folds_is_shown_and_kept_out_of_the_paired_tests(tmp_path):
    folder = write_store(tmp_path, [FakeData(folds=6, skills=SKILLS)])
    with Store.open(folder) as store:  # as if the run had stopped before naive_bayes' last fold
        store.conn.execute("DELETE FROM jobs WHERE model = 'naive_bayes' AND fold = 5")
        text = write_leaderboard(store, out_dir=folder).read_text()
    row = next(line for line in text.splitlines() if "| naive_bayes " in line)
    assert "5/6" in row
    assert "Wilcoxon" in text
    best = next(line for line in text.splitlines() if "| logistic_regression " in line and "/6 " in line)
    assert "| best " in best and "6/6" in best


def test_the_verdict_names_each_arm_champion_and_training_curves(tmp_path):
    skills = {("logistic_regression", "none"): 0.9, ("dummy", "none"): 0.5, ("cnn", "none"): 0.7}
    folder = write_store(tmp_path, [FakeData(skills=skills)])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
    assert "### Verdict — each arm's nested champion" in text
    assert "logistic_regression / none (5 folds)" in text and "cnn / none (5 folds)" in text
    assert "| deep vs handcrafted |" in text
    assert "training curves of the deep models" in text
    assert (folder / "figures" / "alpha-given-training.png").is_file()


def test_warnings_and_importance_are_listed(tmp_path):
    data = FakeData(skills=SKILLS, importance=True, warnings={"knn": ["UserWarning: few neighbours (×2)"]})
    folder = write_store(tmp_path, [data])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
    assert "### Warnings raised by finished jobs (1 distinct)" in text
    assert "| UserWarning: few neighbours | 5      | knn      |" in text
    assert "### Which cell features drive the classical models" in text
    assert "**logistic_regression / none** — by family:" in text


def test_imagenet_and_random_weights_are_compared_pairwise_per_backbone():
    scores = {  # per-fold balanced accuracy
        "mobilenet_v2": [0.80, 0.82, 0.78, 0.81, 0.79],
        "mobilenet_v2_ft": [0.84, 0.86, 0.83, 0.85, 0.84],
        "mobilenet_v2_scratch": [0.70, 0.73, 0.69, 0.72, 0.70],
        "cnn": [0.75, 0.74, 0.76, 0.75, 0.73],
    }
    ok = pd.DataFrame(
        [
            {"model": m, "imbalance": "none", "fold": f, "metrics": {"balanced_accuracy": v},
             "extra": JobExtra(n_train=400, n_test=100)}
            for m, vs in scores.items()
            for f, v in enumerate(vs)
        ]
    )  # fmt: skip
    table = pd.DataFrame({"model": list(scores), "strategy": ["none"] * len(scores)})
    out = _imagenet_vs_scratch(table, ok, "balanced_accuracy").set_index("pretrained")
    assert list(out.index) == ["mobilenet_v2", "mobilenet_v2_ft"]  # cnn has no ImageNet twin
    assert (out.scratch == "mobilenet_v2_scratch").all()
    assert abs(out.loc["mobilenet_v2", "diff"] - 0.092) < 1e-9
    assert out.loc["mobilenet_v2_ft", "t_p"] < 0.05 and out.loc["mobilenet_v2_ft", "p_a_better"] > 0.9
    assert _imagenet_vs_scratch(table[table.model != "mobilenet_v2_scratch"], ok, "balanced_accuracy").empty
