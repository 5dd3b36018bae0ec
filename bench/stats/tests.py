"""Statistical comparisons of models: pure functions returning data, rendered elsewhere.

Within one data set and extraction (paired scores on the same folds, or pooled out-of-fold predictions):
:func:`corrected_resampled_ttest`, :func:`bayesian_correlated_ttest`, :func:`wilcoxon_holm`,
:func:`mcnemar_test`, :func:`bootstrap_ci` and :func:`paired_bootstrap` (patients resampled when known).
Across independent data sets: :func:`friedman_nemenyi`, whose blocks are data sets (× extraction), never
the CV folds of one data set (Demšar 2006).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from baycomp.single import Posterior
from scipy import stats
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05
ROPE = 0.01
FOLDS_AS_BLOCKS = (
    "Friedman/Nemenyi needs independent data sets as blocks; CV folds of one data set are not independent (Demšar 2006)"
)


@dataclass(frozen=True, kw_only=True)
class TestResult:
    """Outcome of one hypothesis test.

    ``name`` names the test and its reference so a renderer can print ``f"{r.name}, α = {r.alpha}"``;
    ``detail`` holds test-specific numbers (mean difference, degrees of freedom, the 2x2 table, ...);
    ``note`` explains degenerate cases (zero variance, no discordant pairs).
    """

    __test__ = False  # not a pytest test class

    name: str
    statistic: float
    p_value: float
    alpha: float = ALPHA
    detail: dict[str, Any] = field(default_factory=dict, hash=False)
    note: str = ""

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p_value) and self.p_value < self.alpha)

    @property
    def label(self) -> str:
        return f"{self.name}, α = {self.alpha:g}"


@dataclass(frozen=True, kw_only=True, eq=False)
class FriedmanResult:
    """Friedman test with Nemenyi post-hoc over independent blocks (Demšar 2006).

    ``avg_ranks`` are ranks within each block averaged over blocks (1 = best, ties averaged);
    ``nemenyi_p`` the pairwise Nemenyi p-values; ``cd`` the critical difference of average ranks at
    ``alpha``. When ``refused`` is true the test was not run and ``reason`` says why; numbers are NaN/empty.
    """

    name: str = "Friedman test with Nemenyi post-hoc (Demšar 2006)"
    statistic: float = float("nan")
    p_value: float = float("nan")
    alpha: float = ALPHA
    n_blocks: int = 0
    n_models: int = 0
    avg_ranks: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    nemenyi_p: pd.DataFrame = field(default_factory=pd.DataFrame)
    cd: float = float("nan")
    q_alpha: float = float("nan")
    blocks: tuple = ()
    dropped: tuple = ()
    refused: bool = False
    reason: str = ""

    @property
    def significant(self) -> bool:
        return bool(not self.refused and self.p_value < self.alpha)

    @property
    def label(self) -> str:
        return f"{self.name}, α = {self.alpha:g}"


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (Holm 1979) via ``statsmodels``; NaN entries stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def _paired(a, b) -> tuple[np.ndarray, np.ndarray, int]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired per-fold scores must be 1-d and of equal length, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok], int((~ok).sum())


def corrected_resampled_ttest(a, b, *, n_train: float, n_test: float, alpha: float = ALPHA) -> TestResult:
    """Corrected resampled t-test of paired per-fold scores (Nadeau & Bengio 2003).

    The variance of the ``J`` fold differences is inflated by ``1/J + n_test/n_train`` because training
    sets overlap; with repeated k-fold (r repeats) ``J = k*r`` and df = ``J - 1``. Folds where either score
    is NaN are dropped. Two-sided p-value.

    Parameters
    ----------
    a, b : per-fold scores of the two models on the same folds (same order).
    n_train, n_test : (mean) training and test set sizes of one fold.

    Returns
    -------
    TestResult with ``statistic`` = t and ``detail`` holding ``mean_diff`` (a - b), ``std_diff``, ``df``,
    ``folds`` and ``correction``. Identical scores give p = 1; a constant nonzero difference gives p = 0
    (infinite t) with a note.
    """
    a, b, dropped = _paired(a, b)
    j = len(a)
    if j < 2:
        raise ValueError(f"the corrected resampled t-test needs at least 2 paired folds, got {j}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError("n_train and n_test must be positive")

    d = a - b
    mean, var = float(d.mean()), float(d.var(ddof=1))
    correction = 1.0 / j + n_test / n_train
    detail = {
        "mean_diff": mean,
        "std_diff": float(np.sqrt(var)),
        "df": j - 1,
        "folds": j,
        "correction": correction,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
    }
    note = f"{dropped} fold(s) with a missing score dropped" if dropped else ""
    name = "corrected resampled t-test (Nadeau & Bengio 2003)"
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # constant up to rounding: zero variance
        if abs(mean) <= 1e-12:
            note = _join(note, "identical scores on every fold")
            return TestResult(name=name, statistic=0.0, p_value=1.0, alpha=alpha, detail=detail, note=note)
        note = _join(note, "the difference is the same nonzero value on every fold (zero variance), so t is infinite")
        return TestResult(
            name=name, statistic=float(np.sign(mean) * np.inf), p_value=0.0, alpha=alpha, detail=detail, note=note
        )
    t = mean / np.sqrt(correction * var)
    p = 2.0 * stats.t.sf(abs(t), df=j - 1)
    return TestResult(name=name, statistic=float(t), p_value=float(p), alpha=alpha, detail=detail, note=note)


def bayesian_correlated_ttest(a, b, *, rho: float, rope: float = ROPE) -> dict[str, Any]:
    """Bayesian correlated t-test of paired per-fold scores (Corani & Benavoli 2015; Benavoli et al. 2017).

    The posterior of the mean difference is a Student t with ``J - 1`` df, location the mean difference and
    scale² ``(1/J + rho/(1 - rho)) σ²``, where ``rho = n_test / (n_test + n_train)`` is the correlation
    between folds. The probabilities come from ``baycomp``'s ``Posterior`` (the class behind
    ``baycomp.two_on_single``); the variance is computed here because ``baycomp.CorrelatedTTest`` only
    accepts a number of runs and fixes ``rho = 1/k``, whereas patient-disjoint folds have uneven sizes.
    With ``rho = 1/k`` the result equals ``baycomp.two_on_single(a, b, rope=rope, runs=1)``.

    Returns
    -------
    dict with ``p_left`` = P(a better than b by more than ``rope``), ``p_rope`` = P(|a - b| <= rope),
    ``p_right`` = P(b better than a by more than ``rope``) (baycomp's convention: "left" is the first
    model), plus ``rope``, ``rho``, ``mean_diff`` (a - b), ``folds`` and ``name``.
    """
    a, b, _ = _paired(a, b)
    j = len(a)
    if j < 2:
        raise ValueError(f"the Bayesian correlated t-test needs at least 2 paired folds, got {j}")
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    if rope < 0:
        raise ValueError("rope must be non-negative")
    d = b - a  # baycomp's orientation: negative means the first model (a) is better
    var = float(d.var(ddof=1)) * (1.0 / j + rho / (1.0 - rho))
    probs = Posterior(float(d.mean()), var, j - 1, rope).probs()
    if rope == 0:
        p_left, p_right = probs
        p_rope = 0.0
    else:
        p_left, p_rope, p_right = probs
    return {
        "name": "Bayesian correlated t-test (Benavoli et al. 2017)",
        "p_left": float(p_left),
        "p_rope": float(p_rope),
        "p_right": float(p_right),
        "rope": float(rope),
        "rho": float(rho),
        "mean_diff": float(-d.mean()),
        "folds": j,
    }


def wilcoxon_holm(
    scores: Mapping[str, Sequence[float] | np.ndarray], best: str, *, min_pairs: int = 6, alpha: float = ALPHA
) -> pd.DataFrame:
    """Wilcoxon signed-rank test of each model against ``best`` over paired folds, Holm-corrected.

    Wilcoxon (1945) via ``scipy.stats.wilcoxon``, Holm (1979) over the models that were tested (Demšar 2006
    recommends this for comparisons with a control). With fewer than ``min_pairs`` paired folds the row
    carries a note instead of a p-value: below 6 pairs the exact two-sided p can never fall under 0.05.

    Returns
    -------
    DataFrame, one row per other model (input order): ``model``, ``pairs``, ``mean_diff`` (best − model),
    ``statistic``, ``p_value``, ``p_holm``, ``significant``, ``note``.
    """
    if best not in scores:
        raise KeyError(f"best model {best!r} is not among the scores")
    rows = []
    for model, values in scores.items():
        if model == best:
            continue
        ref, other, _ = _paired(scores[best], values)
        d = ref - other
        row: dict[str, Any] = {
            "model": model,
            "pairs": len(d),
            "mean_diff": float(d.mean()) if len(d) else np.nan,
            "statistic": np.nan,
            "p_value": np.nan,
            "note": "",
        }
        if len(d) < min_pairs:
            row["note"] = f"too few folds ({len(d)}) for Wilcoxon"
        elif not d.any():
            row.update(p_value=1.0, note="identical scores on every fold")
        else:
            res = stats.wilcoxon(ref, other)
            row.update(statistic=float(res.statistic), p_value=float(res.pvalue))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["model", "pairs", "mean_diff", "statistic", "p_value", "note"])
    df["p_holm"] = holm(df["p_value"].to_numpy()) if len(df) else []
    df["significant"] = (df["p_holm"] < alpha).to_numpy(dtype=bool)
    return df[["model", "pairs", "mean_diff", "statistic", "p_value", "p_holm", "significant", "note"]]


def mcnemar_test(y_true, pred_a, pred_b, *, alpha: float = ALPHA) -> TestResult:
    """McNemar's test on pooled out-of-fold predictions of two models (McNemar 1947).

    Exact binomial test when fewer than 25 samples are discordant, else chi-square with continuity
    correction (Edwards 1948), both via ``statsmodels.stats.contingency_tables.mcnemar``.

    Returns
    -------
    TestResult with ``detail["table"]`` = ``[[both right, only a right], [only b right, both wrong]]``,
    ``a_only`` / ``b_only`` (the discordant counts), ``n`` and ``exact``.
    """
    y_true, pred_a, pred_b = (np.asarray(x).ravel() for x in (y_true, pred_a, pred_b))
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError("y_true, pred_a and pred_b must have the same length")
    ra, rb = pred_a == y_true, pred_b == y_true
    table = np.array([[np.sum(ra & rb), np.sum(ra & ~rb)], [np.sum(~ra & rb), np.sum(~ra & ~rb)]], dtype=int)
    a_only, b_only = int(table[0, 1]), int(table[1, 0])
    exact = a_only + b_only < 25
    res = mcnemar(table, exact=exact, correction=True)
    name = "McNemar test, exact binomial (McNemar 1947)" if exact else "McNemar χ² test with continuity correction"
    note = "no discordant predictions" if a_only + b_only == 0 else ""
    detail = {"table": table.tolist(), "a_only": a_only, "b_only": b_only, "n": len(y_true), "exact": exact}
    return TestResult(
        name=name,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        alpha=alpha,
        detail=detail,
        note=note,
    )


def delong_test(y_true, score_a, score_b, *, alpha: float = ALPHA) -> TestResult:
    """DeLong's test of two correlated ROC AUCs on the same samples (DeLong et al. 1988).

    The AUCs' covariance comes from the placement values (structural components), computed with midranks as
    in the fast algorithm of Sun & Xu (2014); two-sided p from the normal approximation. No dependency of the
    project offers it (scikit-learn, scipy and statsmodels have none), hence this implementation.

    Parameters
    ----------
    y_true : 1 (or True) for the positive class, 0 otherwise.
    score_a, score_b : the two models' scores for the positive class (probabilities), same samples.

    Returns
    -------
    TestResult with ``statistic`` = z and ``detail`` holding ``auc_a``, ``auc_b``, ``diff`` (a − b), ``se``,
    ``n_pos`` and ``n_neg``. With one class only the p-value is NaN; identical scores give p = 1.
    """
    y = np.asarray(y_true).ravel().astype(bool)
    scores = np.vstack([np.asarray(score_a, dtype=float).ravel(), np.asarray(score_b, dtype=float).ravel()])
    if scores.shape[1] != len(y):
        raise ValueError("y_true, score_a and score_b must have the same length")
    m, n = int(y.sum()), int((~y).sum())
    name = "DeLong test of two correlated AUCs (DeLong et al. 1988)"
    if m == 0 or n == 0:
        detail = {"n_pos": m, "n_neg": n}
        return TestResult(
            name=name,
            statistic=float("nan"),
            p_value=float("nan"),
            alpha=alpha,
            detail=detail,
            note="one class only: AUC is undefined",
        )
    pos, neg = scores[:, y], scores[:, ~y]
    tz = st.rankdata(scores, axis=1)  # midranks among all samples
    tx, ty = st.rankdata(pos, axis=1), st.rankdata(neg, axis=1)  # midranks within each class
    aucs = (tz[:, y].sum(axis=1) / m - (m + 1) / 2.0) / n
    v01 = (tz[:, y] - tx) / n  # placement of each positive among the negatives
    v10 = 1.0 - (tz[:, ~y] - ty) / m  # placement of each negative among the positives
    cov = np.cov(v01) / m + np.cov(v10) / n
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    detail = {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "diff": diff, "n_pos": m, "n_neg": n}
    if var <= 1e-15:
        detail["se"] = 0.0
        note = "identical AUCs with no variance of the difference" if abs(diff) <= 1e-12 else "zero variance"
        p = 1.0 if abs(diff) <= 1e-12 else 0.0
        return TestResult(
            name=name,
            statistic=0.0 if p == 1.0 else float(np.sign(diff) * np.inf),
            p_value=p,
            alpha=alpha,
            detail=detail,
            note=note,
        )
    detail["se"] = float(np.sqrt(var))
    z = diff / np.sqrt(var)
    return TestResult(name=name, statistic=float(z), p_value=float(2 * st.norm.sf(abs(z))), alpha=alpha, detail=detail)


def bootstrap_ci(
    y_true,
    proba_or_pred,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    *,
    groups=None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(y_true, proba_or_pred)`` (Efron & Tibshirani 1993).

    With ``groups`` (patient ids) whole patients are drawn with replacement and all their samples taken
    (cluster bootstrap; Field & Welsh 2007): cells of one patient are correlated, so resampling cells
    understates the variance. Without groups each sample is its own cluster, which is the ordinary
    bootstrap. Replicates where the metric is undefined (NaN, e.g. AUC of a one-class resample) are
    dropped. One hand-written resampler serves both cases rather than ``scipy.stats.bootstrap``, which
    can neither draw clusters nor drop undefined replicates. Deterministic for a ``seed``.

    Parameters
    ----------
    y_true : labels, indexed along axis 0 like ``proba_or_pred``.
    proba_or_pred : probabilities (n, classes) or hard predictions (n,).
    metric_fn : ``metric_fn(y_true_subset, proba_or_pred_subset) -> float``.

    Returns
    -------
    (low, high, point): interval bounds and the metric on all data; bounds are NaN if every replicate is.
    """
    y = np.asarray(y_true)
    p = np.asarray(proba_or_pred)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError("y_true and proba_or_pred must be non-empty and of equal length")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    point = float(metric_fn(y, p))
    rng = np.random.default_rng(seed)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError("groups must have one entry per sample")
    draws = _cluster_draws(groups, n_resamples, rng)
    reps = np.array([metric_fn(y[idx], p[idx]) for idx in draws], dtype=float)
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return float("nan"), float("nan"), point
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(reps, [tail, 100 - tail])
    return float(low), float(high), point


@dataclass(frozen=True, kw_only=True)
class PairedBootstrap:
    """Cluster bootstrap of a paired metric difference ``metric(a) - metric(b)`` on the same samples.

    ``diff`` is the difference on all samples; ``ci_low``/``ci_high`` the percentile interval of the
    resampled differences at level ``1 - alpha``; ``p_value`` the two-sided bootstrap p-value;
    ``n_resamples`` the replicates where both metrics were defined; ``n_groups`` the clusters resampled
    (patients when ``clustered``, else samples).
    """

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int
    n_groups: int
    clustered: bool


def paired_bootstrap(
    y_true,
    packed_a,
    packed_b,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    groups=None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> PairedBootstrap:
    """Paired cluster bootstrap of ``metric(y, a) - metric(y, b)`` (Efron & Tibshirani 1993; Field & Welsh 2007).

    Both models are scored on the same resample, so the interval and p-value account for their pairing.
    With ``groups`` (patient ids) whole patients are drawn with replacement, as in :func:`bootstrap_ci`:
    cells of one patient are correlated, and a test that treats them as independent (McNemar on pooled
    cells) overstates the evidence. Without groups samples are resampled. Replicates where either metric
    is undefined (NaN) are dropped. The p-value is ``2 min(P(d* <= 0), P(d* >= 0))`` over the replicates
    ``d*``, clipped to ``[1/(B+1), 1]``: identical predictions give p = 1. Deterministic for a ``seed``.

    Parameters
    ----------
    y_true : labels, indexed along axis 0 like ``packed_a`` and ``packed_b``.
    packed_a, packed_b : what ``metric`` takes (e.g. :func:`cellbench.stats.metrics.metric_function`'s
        packed predictions and probabilities) for the two models, same samples in the same order.
    metric : ``metric(y_true_subset, packed_subset) -> float``, higher or lower better: the sign of
        ``diff`` is the caller's to read.
    """
    y, a, b = np.asarray(y_true), np.asarray(packed_a), np.asarray(packed_b)
    if not len(y) == len(a) == len(b) or len(y) == 0:
        raise ValueError("y_true, packed_a and packed_b must be non-empty and of equal length")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    clustered = groups is not None
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError("groups must have one entry per sample")
    diff = float(metric(y, a)) - float(metric(y, b))
    rng = np.random.default_rng(seed)
    reps = np.array(
        [float(metric(y[i], a[i])) - float(metric(y[i], b[i])) for i in _cluster_draws(groups, n_resamples, rng)],
        dtype=float,
    )
    reps = reps[np.isfinite(reps)]
    n_groups = len(np.unique(groups))
    if not len(reps):
        nan = float("nan")
        return PairedBootstrap(
            diff=diff, ci_low=nan, ci_high=nan, p_value=nan, n_resamples=0, n_groups=n_groups, clustered=clustered
        )
    low, high = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p = 2.0 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0)))
    p = float(np.clip(p, 1.0 / (len(reps) + 1), 1.0))
    return PairedBootstrap(
        diff=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p,
        n_resamples=len(reps),
        n_groups=n_groups,
        clustered=clustered,
    )


def _cluster_draws(groups: np.ndarray, n_resamples: int, rng: np.random.Generator, *, chunk: int = 2_000_000):
    """Sample indices of ``n_resamples`` cluster resamples: draw as many groups as there are, with replacement.

    ``groups`` holds one sortable label per sample (``np.arange(n)`` for the ordinary bootstrap). Resamples
    are drawn in batches of about ``chunk`` indices: vectorised, without holding all of them at once.
    """
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    n_groups = len(counts)
    batch = max(1, chunk // max(len(groups), 1))
    for first in range(0, n_resamples, batch):
        pick = rng.integers(0, n_groups, size=(min(batch, n_resamples - first), n_groups)).ravel()
        lengths = counts[pick]
        ends = np.cumsum(lengths)
        # Positions starts[g] .. starts[g] + counts[g] - 1 of each picked group g, all concatenated.
        positions = np.repeat(starts[pick] - (ends - lengths), lengths) + np.arange(ends[-1])
        row_ends = ends[n_groups - 1 :: n_groups]
        yield from np.split(order[positions], row_ends[:-1])


def friedman_nemenyi(scores: pd.DataFrame, *, alpha: float = ALPHA, higher_is_better: bool = True) -> FriedmanResult:
    """Friedman test over independent blocks with Nemenyi post-hoc and critical difference (Demšar 2006).

    Parameters
    ----------
    scores : one row per block, one column per model. Blocks are independent data sets (× extraction),
        labelled by the index, e.g. a MultiIndex ``(dataset, extraction)``. CV folds of one data set are
        not independent and must never be blocks: an unlabelled RangeIndex or an index level named like
        ``fold`` raises ``ValueError``. Blocks with a missing score are dropped (listed in ``dropped``).
    higher_is_better : rank 1 goes to the highest score (set False for losses such as Brier).

    Returns
    -------
    FriedmanResult with the Friedman χ² and p (``scipy.stats.friedmanchisquare``, tie-corrected), average
    ranks, Nemenyi p-values (``scikit_posthocs.posthoc_nemenyi_friedman``) and
    ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the studentized range quantile / √2.
    Refused (``refused=True`` with a ``reason``) with fewer than 2 complete blocks or fewer than 3 models.
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError("scores must be a DataFrame with labelled blocks as rows and models as columns")
    names = [str(n).lower() for n in scores.index.names if n is not None]
    if any("fold" in n for n in names):
        raise ValueError(f"{FOLDS_AS_BLOCKS}; got an index level named {scores.index.names}")
    if isinstance(scores.index, pd.RangeIndex):
        raise ValueError(f"label the blocks (e.g. index by dataset and extraction): {FOLDS_AS_BLOCKS}")
    if scores.index.has_duplicates:
        raise ValueError("block labels must be unique: a repeated block is not an independent data set")
    values = scores.apply(pd.to_numeric, errors="coerce")
    complete = values.notna().all(axis=1)
    dropped = tuple(values.index[~complete])
    values = values[complete]
    n, k = values.shape
    base = {"alpha": alpha, "n_blocks": n, "n_models": k, "blocks": tuple(values.index), "dropped": dropped}
    if n < 2:
        return FriedmanResult(**base, refused=True, reason=f"{n} block(s): {FOLDS_AS_BLOCKS}")
    if k < 3:
        return FriedmanResult(
            **base,
            refused=True,
            reason=f"Friedman needs at least 3 models, got {k}; compare two models with a Wilcoxon signed-rank "
            "test over data sets",
        )

    x = values.to_numpy(dtype=float)
    ranks = stats.rankdata(-x if higher_is_better else x, axis=1, method="average")
    avg_ranks = pd.Series(ranks.mean(axis=0), index=values.columns, name="avg_rank")
    if np.all(x == x[:, :1]):
        chi2, p = 0.0, 1.0  # every block ties all models; scipy would divide by zero
    else:
        chi2, p = stats.friedmanchisquare(*x.T)
    nemenyi = sp.posthoc_nemenyi_friedman(x)
    nemenyi.index = nemenyi.columns = values.columns
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))
    cd = q_alpha * np.sqrt(k * (k + 1) / (6.0 * n))
    return FriedmanResult(
        **base,
        statistic=float(chi2),
        p_value=float(p),
        avg_ranks=avg_ranks,
        nemenyi_p=nemenyi,
        cd=float(cd),
        q_alpha=q_alpha,
    )


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
