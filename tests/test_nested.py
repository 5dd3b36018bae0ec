"""The verdict by nested selection: each arm's champion is chosen per outer fold by inner-validation scores only."""

from __future__ import annotations

import numpy as np
import pytest

from cellbench.report.markdown import render_markdown
from cellbench.report.summary import summarise
from cellbench.run.store import Store
from tests.stores import FakeData, write_store


def verdict_of(tmp_path, data: FakeData):
    write_store(tmp_path / "store", [data])
    with Store.open(tmp_path / "store", write=False) as store:
        board = summarise(store)
    return board, board.sections[0].verdict


def test_the_champion_is_chosen_by_the_inner_score_never_by_the_test_folds(tmp_path):
    # logistic regression is better on the test folds, naive Bayes on the inner validation parts: nested selection
    # must pick naive Bayes (choosing by the test folds would pick logistic regression, the selection bias)
    data = FakeData(
        n=120,
        skills={("logistic_regression", "none"): 0.9, ("naive_bayes", "none"): 0.7, ("cnn", "none"): 0.8},
        inner={("logistic_regression", "none"): 0.6, ("naive_bayes", "none"): 0.8},
    )
    board, v = verdict_of(tmp_path, data)
    hand, deep = v.champion("handcrafted"), v.champion("deep")
    assert set(hand.folds.model) == {"naive_bayes"} and len(hand.folds) == 5
    table = board.sections[0].table.set_index("model")
    assert hand.mean == pytest.approx(table.loc["naive_bayes", "balanced_accuracy_mean"])
    assert hand.mean < table.loc["logistic_regression", "balanced_accuracy_mean"]  # the test-best row lost
    assert set(deep.folds.model) == {"cnn"}
    (cmp,) = v.comparisons
    assert (cmp.a, cmp.b) == ("deep", "handcrafted")
    assert cmp.diff == pytest.approx(deep.mean - hand.mean)
    assert cmp.ci_low <= cmp.diff <= cmp.ci_high and cmp.clustered and cmp.folds == 5


def test_the_verdict_says_no_significant_difference_where_the_ci_spans_zero(tmp_path):
    data = FakeData(n=60, skills={("logistic_regression", "none"): 0.8, ("cnn", "none"): 0.8})
    board, v = verdict_of(tmp_path, data)
    (cmp,) = v.comparisons
    assert cmp.ci_low < 0 < cmp.ci_high
    assert cmp.wording() == "no significant difference"
    text = render_markdown(board, timings=False)
    assert "### Verdict — each arm's nested champion" in text and "**no significant difference**" in text
    # the verdict comes before the full table
    assert text.index("### Verdict") < text.index("| #   | model")


def test_a_clear_winner_is_named_with_its_margin(tmp_path):
    data = FakeData(n=200, patients=40, skills={("logistic_regression", "none"): 0.65, ("cnn", "none"): 0.95})
    _, v = verdict_of(tmp_path, data)
    (cmp,) = v.comparisons
    assert cmp.ci_low > 0 and cmp.wording() == f"deep better by {cmp.diff:.3f}"


def test_not_converged_deep_jobs_are_flagged_in_the_table_and_the_verdict(tmp_path):
    data = FakeData(
        skills={("logistic_regression", "none"): 0.8, ("cnn", "none"): 0.8}, not_converged=frozenset({"cnn"})
    )
    board, v = verdict_of(tmp_path, data)
    assert v.champion("deep").not_converged == 5
    text = render_markdown(board, timings=False)
    assert "cnn ⚠ not converged 5/5" in text
    assert "⚠ 5 fold(s) not converged" in text


def test_an_inner_split_that_could_not_keep_patients_apart_is_said(tmp_path):
    data = FakeData(inner_grouped=False)
    board, _ = verdict_of(tmp_path, data)
    text = render_markdown(board, timings=False)
    assert "no patient-disjoint inner split held both classes" in text


def test_the_like_for_like_table_has_one_row_per_strategy(tmp_path):
    skills = {(m, s): 0.7 + 0.05 * i for i, (m, s) in enumerate(
        [("logistic_regression", "none"), ("logistic_regression", "class_weight"), ("cnn", "none"),
         ("cnn", "class_weight")])}  # fmt: skip
    _, v = verdict_of(tmp_path, FakeData(skills=skills))
    lf = v.like_for_like.set_index("strategy")
    assert list(lf.index) == ["class_weight", "none"]
    assert np.isfinite(lf.loc["none", "deep"]) and np.isfinite(lf.loc["class_weight", "handcrafted"])
