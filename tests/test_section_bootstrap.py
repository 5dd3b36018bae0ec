"""The section's pairwise test on pooled predictions is patient-clustered (issue 14, point 5).

McNemar's test on pooled cells treats the cells of one patient as independent. Here two rows differ by a few
patients' worth of cells: McNemar calls that highly significant, the patient-clustered paired bootstrap of the
primary metric does not.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from cellbench.report.leaderboard import write_leaderboard
from cellbench.run.store import Store
from cellbench.stats import tests as S
from cellbench.stats.comparisons import section_stats
from cellbench.stats.metrics import compute_metrics
from tests.stores import FakeData, write_store

PATIENTS, CELLS, FOLDS = 20, 50, 5


def _section(*, patients_known: bool = True):
    rng = np.random.default_rng(11)
    n = PATIENTS * CELLS
    ids = np.array([f"s{i:04d}" for i in range(n)])
    patient = np.repeat(np.arange(PATIENTS), CELLS)
    fold = patient % FOLDS
    y = rng.integers(0, 2, n)
    base = np.where(rng.random(n) < 0.8, y, 1 - y)
    right = base == y
    pred_a, pred_b = base.copy(), base.copy()
    # b is wrong on 20 cells (that a gets right) of each of patients 0-2, a on 10 cells of each of patients 3-4:
    # 60 vs 20 discordant cells, but from 5 of 20 patients only.
    for p, model, k in [(0, "b", 20), (1, "b", 20), (2, "b", 20), (3, "a", 10), (4, "a", 10)]:
        cells = np.flatnonzero((patient == p) & right)[:k]
        (pred_b if model == "b" else pred_a)[cells] = 1 - y[cells]
    rows, preds = [], []
    for model, pred in (("a", pred_a), ("b", pred_b)):
        proba = np.eye(2)[pred] * 0.8 + 0.1
        for f in range(FOLDS):
            test = fold == f
            key = f"{model}-{f}"
            m = compute_metrics(y[test], proba[test], pred[test], positive=1)
            extra = SimpleNamespace(n_train=float((~test).sum()), n_test=float(test.sum()))
            rows.append({"key": key, "model": model, "imbalance": "none", "fold": f, "metrics": m, "extra": extra})
            preds += [
                {"job_key": key, "sample_id": i, "y_true": t, "y_pred": p_, "proba": pr}
                for i, t, p_, pr in zip(ids[test], y[test], pred[test], proba[test])
            ]
    ok, preds = pd.DataFrame(rows), pd.DataFrame(preds)
    acc = {m: float(np.mean(p == y)) for m, p in (("a", pred_a), ("b", pred_b))}
    table = pd.DataFrame(
        [{"model": m, "strategy": "none", "folds_ok": FOLDS, "folds": FOLDS, "accuracy_mean": acc[m]} for m in "ab"]
    )
    grp = [f"p{p:02d}" for p in patient] if patients_known else [None] * n
    samples = pd.DataFrame({"sample_id": ids, "grp": grp, "label": y})
    res = section_stats(table, ok, preds, samples, primary="accuracy", positive=1, n_classes=2)
    return res, y, pred_a, pred_b


def test_pooled_cells_of_few_patients_are_not_significant_once_patients_are_resampled():
    res, y, pred_a, pred_b = _section()
    assert res.best == ("a", "none") and res.clustered is True
    # McNemar over the pooled cells (what the column used to show): 60 vs 20 discordant cells, p far below 0.05.
    assert S.mcnemar_test(y, pred_a, pred_b).p_value < 0.001
    row = res.rows.set_index("model").loc["b"]
    assert "mcnemar_p" not in res.rows
    assert row.boot_diff == np.mean(pred_a == y) - np.mean(pred_b == y) > 0
    assert row.boot_p > 0.05
    assert row.diff_low < 0 < row.diff_high
    assert np.isnan(res.rows.set_index("model").loc["a"].get("boot_p", np.nan))  # the best row is not tested


def test_without_patient_ids_samples_are_resampled_and_say_so():
    res, *_ = _section(patients_known=False)
    assert res.clustered is False
    row = res.rows.set_index("model").loc["b"]
    assert row.boot_p < 0.05  # cells taken as independent, as McNemar does: the same difference is "significant"
    assert row.diff_low > 0


def test_the_leaderboard_names_the_clustered_bootstrap(tmp_path):
    folder = write_store(tmp_path, [FakeData(), FakeData(name="beta", patients=None)])
    with Store.open(folder, write=False) as store:
        text = write_leaderboard(store, out_dir=folder).read_text()
    assert "boot p (Δ BalAcc, patients resampled)" in text
    assert "boot p (Δ BalAcc, samples resampled (patients unknown))" in text
    assert "*boot p*: cluster bootstrap" in text
    assert "McNemar" not in text.split("## alpha")[1].split("###")[0]
