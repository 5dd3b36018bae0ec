"""cellbench.stats.tests against textbook values and hand arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from cellbench.stats import tests as S

# Demšar (2006), JMLR 7, Table 6: AUC of four C4.5 variants on 14 UCI data sets.
DEMSAR_MODELS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = pd.DataFrame(
    [
        [0.763, 0.768, 0.771, 0.798],
        [0.599, 0.591, 0.590, 0.569],
        [0.954, 0.971, 0.968, 0.967],
        [0.628, 0.661, 0.654, 0.657],
        [0.882, 0.888, 0.886, 0.898],
        [0.936, 0.931, 0.916, 0.931],
        [0.661, 0.668, 0.609, 0.685],
        [0.583, 0.583, 0.563, 0.625],
        [0.775, 0.838, 0.866, 0.875],
        [1.000, 1.000, 1.000, 1.000],
        [0.940, 0.962, 0.965, 0.962],
        [0.619, 0.666, 0.614, 0.669],
        [0.972, 0.981, 0.975, 0.975],
        [0.957, 0.978, 0.946, 0.970],
    ],
    columns=DEMSAR_MODELS,
    index=pd.Index(
        [
            "adult (sample)",
            "breast cancer",
            "breast cancer wisconsin",
            "cmc",
            "ionosphere",
            "iris",
            "liver disorders",
            "lung cancer",
            "lymphography",
            "mushroom",
            "primary tumor",
            "rheum",
            "voting",
            "wine",
        ],
        name="dataset",
    ),
)


def _friedman_by_hand(avg_ranks, n: int) -> float:
    """Friedman's χ² without tie correction: 12N / (k(k+1)) [Σ R_j² − k(k+1)²/4]."""
    r = np.asarray(avg_ranks, dtype=float)
    k = len(r)
    return 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4)


# --- Friedman / Nemenyi ---------------------------------------------------------------------------------


def test_friedman_nemenyi_on_demsar_table_6():
    res = S.friedman_nemenyi(DEMSAR_AUC)
    assert not res.refused
    assert (res.n_blocks, res.n_models) == (14, 4)
    # The paper prints 3.143, 2.000, 2.893, 1.964. Ranking its printed AUCs gives 2.929 / 1.929 for the last
    # two (rank sums 41 / 27 instead of 40.5 / 27.5: one tie is counted differently in the paper), so compare
    # to within half a rank over 14 blocks and exactly against our own ranking.
    assert res.avg_ranks.to_numpy() == pytest.approx([3.143, 2.000, 2.893, 1.964], abs=0.5 / 14 + 1e-3)
    own = ss.rankdata(-DEMSAR_AUC.to_numpy(), axis=1).mean(axis=0)
    assert res.avg_ranks.to_numpy() == pytest.approx(own)
    assert list(res.avg_ranks.index) == DEMSAR_MODELS
    # χ² = 9.28 from the paper's ranks by the textbook formula.
    assert _friedman_by_hand([3.143, 2.000, 2.893, 1.964], 14) == pytest.approx(9.28, abs=0.01)
    # Our statistic is scipy's (tie-corrected, hence larger than the uncorrected formula on the same ranks).
    chi2, p = ss.friedmanchisquare(*DEMSAR_AUC.to_numpy().T)
    assert (res.statistic, res.p_value) == pytest.approx((chi2, p))
    assert res.statistic > _friedman_by_hand(own, 14)
    assert res.p_value < 0.05
    # CD = q_0.05 sqrt(k(k+1)/(6N)) = 2.569 sqrt(20/84) = 1.25; no pair differs by more (paper, section 3.2.2).
    assert res.q_alpha == pytest.approx(2.569, abs=1e-3)
    assert res.cd == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert res.cd == pytest.approx(1.25, abs=5e-3)
    assert (res.nemenyi_p.to_numpy() >= 0.05).all()


def test_friedman_nemenyi_at_alpha_010_matches_figure_1a():
    res = S.friedman_nemenyi(DEMSAR_AUC, alpha=0.10)
    assert res.q_alpha == pytest.approx(2.291, abs=1e-3)
    assert res.cd == pytest.approx(1.12, abs=5e-3)
    p = res.nemenyi_p
    # C4.5 is worse than C4.5+m and C4.5+m+cf at 10 %; C4.5+cf is undecided.
    assert p.loc["C4.5", "C4.5+m"] < 0.10 and p.loc["C4.5", "C4.5+m+cf"] < 0.10
    assert p.loc["C4.5+cf", "C4.5"] >= 0.10 and p.loc["C4.5+cf", "C4.5+m"] >= 0.10
    assert np.allclose(p.to_numpy(), p.to_numpy().T)
    assert np.allclose(np.diag(p), 1.0)


def test_friedman_statistic_equals_hand_formula_without_ties():
    scores = pd.DataFrame(
        [[0.9, 0.8, 0.7], [0.85, 0.86, 0.6], [0.7, 0.65, 0.66], [0.91, 0.9, 0.92], [0.8, 0.7, 0.75]],
        columns=["a", "b", "c"],
        index=[f"d{i}" for i in range(5)],
    )
    res = S.friedman_nemenyi(scores)
    assert res.avg_ranks.to_dict() == pytest.approx({"a": 1.4, "b": 2.4, "c": 2.2})
    assert res.statistic == pytest.approx(_friedman_by_hand([1.4, 2.4, 2.2], 5))
    assert res.p_value == pytest.approx(ss.chi2.sf(res.statistic, 2))


def test_friedman_lower_is_better_reverses_ranks():
    hi = S.friedman_nemenyi(DEMSAR_AUC)
    lo = S.friedman_nemenyi(DEMSAR_AUC, higher_is_better=False)
    assert lo.avg_ranks.to_numpy() == pytest.approx(5 - hi.avg_ranks.to_numpy())
    assert lo.statistic == pytest.approx(hi.statistic)


def test_friedman_refuses_one_block():
    res = S.friedman_nemenyi(DEMSAR_AUC.iloc[:1])
    assert res.refused
    assert "CV folds of one data set are not independent (Demšar 2006)" in res.reason
    assert np.isnan(res.p_value) and not res.significant


def test_friedman_refuses_two_models_and_drops_incomplete_blocks():
    assert "at least 3 models" in S.friedman_nemenyi(DEMSAR_AUC.iloc[:, :2]).reason
    holed = DEMSAR_AUC.copy()
    holed.iloc[0, 1] = np.nan
    res = S.friedman_nemenyi(holed)
    assert res.n_blocks == 13 and res.dropped == ("adult (sample)",)
    only_one = DEMSAR_AUC.iloc[:2].copy()
    only_one.iloc[0, 0] = np.nan
    assert S.friedman_nemenyi(only_one).refused


def test_friedman_never_takes_folds_as_blocks():
    folds = pd.DataFrame(np.random.default_rng(0).random((5, 3)), columns=list("abc"))
    with pytest.raises(ValueError, match="not independent"):
        S.friedman_nemenyi(folds)  # unlabelled rows
    with pytest.raises(ValueError, match="not independent"):
        S.friedman_nemenyi(folds.rename_axis("fold"))
    with pytest.raises(ValueError, match="unique"):
        S.friedman_nemenyi(folds.set_axis(["d1", "d1", "d2", "d3", "d4"]))


# --- corrected resampled t-test -------------------------------------------------------------------------


def test_corrected_resampled_ttest_by_hand():
    a = [0.80, 0.82, 0.78, 0.85, 0.81]
    b = [0.78, 0.80, 0.79, 0.80, 0.78]
    # d = a - b = [0.02, 0.02, -0.01, 0.05, 0.03]; mean = 0.11 / 5 = 0.022
    # squared deviations: 4e-6, 4e-6, 1.024e-3, 7.84e-4, 6.4e-5 -> sum 1.88e-3; var (ddof=1) = 4.7e-4
    # 5-fold CV, n_test / n_train = 200 / 800: correction = 1/5 + 1/4 = 0.45; corrected var = 2.115e-4
    # t = 0.022 / sqrt(2.115e-4) = 1.51275; p = 2 P(T_4 > t) = 0.2049
    t = 0.022 / np.sqrt(0.45 * 4.7e-4)
    res = S.corrected_resampled_ttest(a, b, n_train=800, n_test=200)
    assert res.statistic == pytest.approx(t) == pytest.approx(1.51275, abs=1e-5)
    assert res.p_value == pytest.approx(2 * ss.t.sf(t, df=4)) == pytest.approx(0.2049, abs=1e-4)
    assert res.detail["mean_diff"] == pytest.approx(0.022)
    assert res.detail["std_diff"] ** 2 == pytest.approx(4.7e-4)
    assert res.detail["correction"] == pytest.approx(0.45)
    assert res.detail["df"] == 4
    assert res.label == "corrected resampled t-test (Nadeau & Bengio 2003), α = 0.05"
    # swapping the models flips the sign only
    swapped = S.corrected_resampled_ttest(b, a, n_train=800, n_test=200)
    assert swapped.statistic == pytest.approx(-t) and swapped.p_value == pytest.approx(res.p_value)


def test_corrected_ttest_repeated_cv_uses_all_runs():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.02, 30), rng.normal(0.79, 0.02, 30)  # 10 folds x 3 repeats
    res = S.corrected_resampled_ttest(a, b, n_train=900, n_test=100)
    assert res.detail["df"] == 29
    assert res.detail["correction"] == pytest.approx(1 / 30 + 1 / 9)


def test_corrected_ttest_zero_variance():
    same = S.corrected_resampled_ttest([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], n_train=80, n_test=20)
    assert same.p_value == 1.0 and "identical" in same.note
    shifted = S.corrected_resampled_ttest([0.85, 0.95, 0.75], [0.8, 0.9, 0.7], n_train=80, n_test=20)
    assert shifted.p_value == 0.0 and np.isposinf(shifted.statistic) and "zero variance" in shifted.note


def test_corrected_ttest_drops_missing_folds():
    res = S.corrected_resampled_ttest([0.8, np.nan, 0.7, 0.9], [0.7, 0.8, 0.7, 0.8], n_train=3, n_test=1)
    assert res.detail["folds"] == 3 and "1 fold" in res.note
    with pytest.raises(ValueError):
        S.corrected_resampled_ttest([0.8], [0.7], n_train=3, n_test=1)


# --- Bayesian correlated t-test --------------------------------------------------------------------------


def test_bayesian_correlated_ttest_matches_baycomp():
    import baycomp

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.80, 0.02, 10), rng.normal(0.79, 0.02, 10)
    res = S.bayesian_correlated_ttest(a, b, rho=1 / 10, rope=0.01)
    expected = baycomp.two_on_single(a, b, rope=0.01, runs=1)
    assert (res["p_left"], res["p_rope"], res["p_right"]) == pytest.approx(expected)
    assert res["rope"] == 0.01 and res["rho"] == pytest.approx(0.1)
    assert res["p_left"] + res["p_rope"] + res["p_right"] == pytest.approx(1.0)


def test_bayesian_correlated_ttest_closed_form_and_orientation():
    a = np.array([0.90, 0.92, 0.91, 0.93, 0.90])
    b = a - np.array([0.05, 0.04, 0.06, 0.05, 0.07])
    rho = 200 / 1000
    res = S.bayesian_correlated_ttest(a, b, rho=rho)
    d = b - a
    scale = np.sqrt(d.var(ddof=1) * (1 / 5 + rho / (1 - rho)))
    assert res["p_left"] == pytest.approx(ss.t.cdf(-0.01, 4, loc=d.mean(), scale=scale))
    assert res["p_left"] > 0.95  # a is clearly better
    assert res["rope"] == S.ROPE == 0.01
    tied = S.bayesian_correlated_ttest(a, a, rho=rho)
    assert tied["p_rope"] == 1.0


# --- Wilcoxon + Holm ------------------------------------------------------------------------------------


def test_holm_matches_statsmodels_and_keeps_nan():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005])
    assert S.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, cumulative max
    assert S.holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2, 0.025])
    with_nan = S.holm([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])


def test_wilcoxon_holm_against_scipy_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    best = rng.normal(0.85, 0.01, 10)
    scores = {"best": best, "close": best - rng.normal(0.002, 0.01, 10), "far": best - rng.normal(0.05, 0.01, 10)}
    df = S.wilcoxon_holm(scores, "best")
    assert list(df.model) == ["close", "far"]
    raw = [ss.wilcoxon(best, scores[m]).pvalue for m in ("close", "far")]
    assert df.p_value.to_numpy() == pytest.approx(raw)
    assert df.p_holm.to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    assert df.set_index("model").loc["far", "significant"]
    assert df.set_index("model").loc["far", "p_value"] == pytest.approx(2 / 2**10)  # exact, all 10 favour best


def test_wilcoxon_too_few_folds():
    scores = {"best": [0.9, 0.8, 0.85, 0.9, 0.88], "other": [0.8, 0.7, 0.75, 0.8, 0.78]}
    df = S.wilcoxon_holm(scores, "best")
    row = df.iloc[0]
    assert row.note == "too few folds (5) for Wilcoxon"
    assert np.isnan(row.p_value) and np.isnan(row.p_holm) and not row.significant
    with pytest.raises(KeyError):
        S.wilcoxon_holm(scores, "missing")


# --- McNemar --------------------------------------------------------------------------------------------


def _predictions(both: int, a_only: int, b_only: int, neither: int):
    y = np.zeros(both + a_only + b_only + neither, dtype=int)
    a = np.r_[np.zeros(both + a_only), np.ones(b_only + neither)].astype(int)
    b = np.r_[np.zeros(both), np.ones(a_only), np.zeros(b_only), np.ones(neither)].astype(int)
    return y, a, b


def test_mcnemar_exact():
    res = S.mcnemar_test(*_predictions(20, 10, 2, 5))
    assert res.detail["table"] == [[20, 10], [2, 5]]
    assert res.detail["exact"]
    # two-sided binomial: 2 P(X <= 2 | n = 12, p = 1/2) = 2 (1 + 12 + 66) / 4096
    assert res.p_value == pytest.approx(2 * 79 / 4096) == pytest.approx(0.0386, abs=1e-4)
    assert res.significant


def test_mcnemar_chi_square_with_continuity_correction():
    res = S.mcnemar_test(*_predictions(100, 30, 12, 8))
    assert not res.detail["exact"]  # 42 discordant pairs
    # (|30 - 12| - 1)² / (30 + 12) = 289 / 42 = 6.881; p = P(χ²_1 > 6.881) = 0.00871
    assert res.statistic == pytest.approx(289 / 42)
    assert res.p_value == pytest.approx(ss.chi2.sf(289 / 42, 1)) == pytest.approx(0.00871, abs=1e-5)
    assert "continuity" in res.name


def test_mcnemar_without_discordant_pairs():
    res = S.mcnemar_test(*_predictions(10, 0, 0, 3))
    assert res.p_value == 1.0 and res.note == "no discordant predictions"


# --- bootstrap ------------------------------------------------------------------------------------------


def _accuracy(y_true, pred):
    return np.count_nonzero(y_true == pred) / len(y_true)  # cheaper than np.mean in the 10⁵-call loop below


def _clustered(rng, *, patients: int = 30, cells: int = 20):
    """Per-cell correctness with patient effects: patient accuracy ~ Beta(4, 1), mean 0.8."""
    p_patient = rng.beta(4.0, 1.0, size=patients)
    correct = rng.random((patients, cells)) < p_patient[:, None]
    y = np.ones(patients * cells, dtype=int)
    pred = np.where(correct.ravel(), 1, 0)
    return y, pred, np.repeat(np.arange(patients), cells)


def test_bootstrap_coverage_cluster_vs_plain():
    rng = np.random.default_rng(2024)
    hits_cluster = hits_plain = 0
    reps = 120
    for i in range(reps):
        y, pred, groups = _clustered(rng)
        lo, hi, _ = S.bootstrap_ci(y, pred, _accuracy, groups=groups, n_resamples=400, seed=i)
        hits_cluster += lo <= 0.8 <= hi
        lo, hi, _ = S.bootstrap_ci(y, pred, _accuracy, n_resamples=400, seed=i)
        hits_plain += lo <= 0.8 <= hi
    # Patients resampled: close to the nominal 95 %. Cells resampled: the interval ignores the patient
    # effect and is about half as wide as it should be, so it misses the truth far too often.
    assert 0.88 <= hits_cluster / reps <= 0.99
    assert hits_plain / reps < 0.8


def test_bootstrap_plain_agrees_with_scipy_and_is_deterministic():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.75, y, 1 - y)
    lo, hi, point = S.bootstrap_ci(y, pred, _accuracy, n_resamples=2000, seed=7)
    assert (lo, hi, point) == S.bootstrap_ci(y, pred, _accuracy, n_resamples=2000, seed=7)
    assert point == _accuracy(y, pred)
    ref = ss.bootstrap(
        (y, pred), _accuracy, paired=True, vectorized=False, n_resamples=2000, method="percentile", rng=0
    ).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    assert lo < point < hi


def test_bootstrap_cluster_draws_whole_patients_and_skips_undefined():
    from sklearn.metrics import roc_auc_score

    # Each patient is all-benign or all-malignant, so some patient resamples hold one class: AUC undefined.
    groups = np.repeat(np.arange(6), 5)
    y = np.repeat([0, 0, 0, 1, 1, 1], 5)
    score = np.linspace(0, 1, 30) + np.random.default_rng(0).normal(0, 0.2, 30)

    def auc(t, s):
        return roc_auc_score(t, s) if len(np.unique(t)) == 2 else np.nan

    lo, hi, point = S.bootstrap_ci(y, score, auc, groups=groups, n_resamples=100, seed=1)
    assert np.isfinite([lo, hi]).all() and lo <= point <= hi
    draws = list(S._cluster_draws(groups, 50, np.random.default_rng(0)))
    for idx in draws:
        assert len(idx) == 30
        assert all(np.sum(groups[idx] == g) % 5 == 0 for g in range(6))  # whole patients only
