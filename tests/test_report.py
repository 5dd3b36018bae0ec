"""The leaderboard from a store written directly (no training): Friedman + Nemenyi across data sets, unfinished
rows, warnings, importance and training curves, byte-identical regeneration."""

from __future__ import annotations

from pathlib import Path

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


def test_the_answer_opens_the_leaderboard_for_every_data_set(tmp_path):
    skills = {("logistic_regression", "none"): 0.9, ("dummy", "none"): 0.5, ("cnn", "none"): 0.7}
    names = ["alpha", "beta", "gamma", "delta"]
    folder = write_store(tmp_path, [FakeData(name=n, skills=skills, n=40 + 10 * i) for i, n in enumerate(names)])
    with Store.open(folder, write=False) as store:
        lines = write_leaderboard(store, out_dir=folder).read_text().splitlines()
    first = "\n".join(lines[:40])
    assert lines[2] == "## The answer"
    for n in names:  # a table row and a sentence per data set, each with the deep arm's verdict
        row = next(line for line in lines[:40] if line.startswith(f"| **{n}**"))
        assert "deep: " in row and ("better by" in row or "no significant difference" in row)
        assert f"- **{n}**: " in first
    assert first.index("## The answer") < first.index("## Run manifest")


def test_the_cd_diagram_shows_only_the_best_ranked_rows(tmp_path):
    from PIL import Image

    from cellbench.report import figures
    from cellbench.report.markdown import TOP_RANKS

    models = ["logistic_regression", "svm", "knn", "naive_bayes", "random_forest", "xgboost", "dummy"]
    skills = {(m, s): 0.9 - 0.03 * i - 0.01 * j for i, m in enumerate(models) for j, s in enumerate(["none", "smote"])}
    assert len(skills) > TOP_RANKS
    folder = write_store(tmp_path, [FakeData(name="alpha", skills=skills), FakeData(name="beta", skills=skills)])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
        board = summarise(store)
    ranks = board.friedman.avg_ranks.sort_values(kind="stable")
    assert f"The {TOP_RANKS} best-ranked of {len(ranks)} rows" in text
    full = figures.cd_diagram(ranks, board.friedman.cd, tmp_path / "full.png")
    top = figures.cd_diagram(ranks.head(TOP_RANKS), board.friedman.cd, tmp_path / "top.png")
    drawn = Image.open(folder / "figures" / "cd_diagram.png").size
    assert drawn == Image.open(top).size and drawn[1] < Image.open(full).size[1]


def test_the_manifest_names_the_suite_file_relative_and_every_run_data_set(tmp_path):
    import cellbench
    from cellbench.report.markdown import shown_path

    repo_file = Path(cellbench.__file__).resolve().parent / "suites" / "quick.toml"
    folder = write_store(tmp_path, [FakeData(skills=SKILLS)])
    with Store.open(folder) as store:
        for ds, path in (("idc", repo_file), ("cnmc", Path("/somewhere/else/my.toml"))):
            run = store.start_run("fake", {"suite": "fake", "suite_file": str(path), "datasets": {ds: f"fp-{ds}"},
                                           "narrowing": {"datasets": [ds]}})  # fmt: skip
            store.finish_run(run)
        text = write_leaderboard(store, out_dir=folder).read_text()
    manifest = text[text.index("## Run manifest") : text.index("## alpha")]
    assert "`my.toml`" in manifest and "/somewhere" not in manifest  # the last run's file, outside the repository
    assert "idc: `fp-idc`" in manifest and "cnmc: `fp-cnmc`" in manifest
    assert "run 2: datasets=['idc']; run 3: datasets=['cnmc']" in manifest
    got = shown_path(str(repo_file))  # a built-in suite: relative to the checkout (or site-packages)
    assert not Path(got).is_absolute() and got.endswith("suites/quick.toml")
    assert str(Path(cellbench.__file__).resolve().parent.parent) not in text
