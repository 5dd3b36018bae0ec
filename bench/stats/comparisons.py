"""Statistical comparisons of stored results: which test for which design, returned as data.

Within one data set and extraction the models ran on the same folds, so comparisons are paired:
corrected resampled t-test and Bayesian correlated t-test on per-fold scores, Wilcoxon signed-rank with
Holm correction when there are enough folds, and on the pooled out-of-fold predictions a cluster bootstrap
of the paired difference in the primary metric and bootstrap CIs (whole patients resampled when known: cells
of one patient are not independent, so no test here treats them as such). Across independent data sets:
Friedman + Nemenyi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.values import as_float
from cellbench.stats import tests as stats
from cellbench.stats.metrics import LOWER_IS_BETTER, metric_function

ALPHA = stats.ALPHA
ROPE = stats.ROPE
N_BOOT = 1000


@dataclass(frozen=True, kw_only=True, eq=False)
class Pooled:
    """Out-of-fold predictions of one model × strategy (first repeat), aligned by sample id."""

    ids: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray


@dataclass(frozen=True, kw_only=True, eq=False)
class SectionStats:
    """Tests of every row of a section's table against its best row, and the pooled predictions they used.

    ``rows`` has columns model, strategy, ci_low, ci_high (bootstrap CI of the row's primary metric), t_p
    (corrected resampled t-test), bayes_best, bayes_rope (Bayesian correlated t-test), boot_diff, diff_low,
    diff_high, boot_p (paired bootstrap of best − row in the primary metric on the samples both pooled, see
    :func:`cellbench.stats.tests.paired_bootstrap`) and wilcoxon_p. ``clustered`` says whether the bootstraps
    resampled whole patients (True) or samples because patient ids are unknown (False); None without pooled
    predictions.
    """

    best: tuple[str, str] | None
    rows: pd.DataFrame
    pooled: Mapping[tuple[str, str], Pooled] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    clustered: bool | None = None


@dataclass(frozen=True, kw_only=True)
class PairedTest:
    """Row ``a`` vs row ``b`` over the folds both finished: means, difference, corrected and Bayesian t-tests."""

    mean_a: float
    mean_b: float
    diff: float
    t_p: float
    p_a_better: float
    p_rope: float
    p_b_better: float
    folds: int


def pooled_predictions(ok: pd.DataFrame, preds: pd.DataFrame) -> dict[tuple[str, str], Pooled]:
    """Pool each model × strategy's test-fold predictions; a sample seen in several repeats counts once."""
    if preds.empty:
        return {}
    merged = preds.merge(ok[["key", "model", "imbalance", "fold"]], left_on="job_key", right_on="key")
    merged = merged.sort_values(["model", "imbalance", "fold", "sample_id"])
    merged = merged.drop_duplicates(["model", "imbalance", "sample_id"], keep="first")
    out = {}
    for (model, strategy), grp in merged.groupby(["model", "imbalance"], sort=True):
        grp = grp.sort_values("sample_id")
        out[(model, strategy)] = Pooled(
            ids=grp.sample_id.to_numpy(),
            y_true=grp.y_true.to_numpy(int),
            y_pred=grp.y_pred.to_numpy(int),
            proba=np.vstack(grp.proba.to_numpy()),
        )
    return out


def section_stats(
    table: pd.DataFrame,
    ok: pd.DataFrame,
    preds: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    primary: str,
    positive: int | None,
    n_classes: int,
) -> SectionStats:
    """Tests of every ranked row against the best one, and bootstrap CIs of the primary metric.

    Per row: bootstrap CI of the primary metric on its pooled out-of-fold predictions; against the best row,
    the corrected resampled and Bayesian correlated t-tests on per-fold scores and the paired cluster
    bootstrap of the difference in the primary metric on the samples both rows pooled (patients from
    ``samples`` resampled whole when every sample has one, else samples).
    """
    pooled = pooled_predictions(ok, preds)
    if table.empty:
        return SectionStats(best=None, rows=pd.DataFrame(), pooled=pooled)
    complete = table[table.folds_ok == table.folds]
    best_row = (complete if len(complete) else table).iloc[0]
    best = (best_row.model, best_row.strategy)
    per_fold = {
        (m, s): g.sort_values("fold").set_index("fold").metrics.map(lambda x: as_float(x.get(primary)))
        for (m, s), g in ok.groupby(["model", "imbalance"])
    }
    sizes = {
        (m, s): (
            g.extra.map(lambda e: as_float(e.n_train)).mean(),
            g.extra.map(lambda e: as_float(e.n_test)).mean(),
        )
        for (m, s), g in ok.groupby(["model", "imbalance"])
    }
    groups = dict(zip(samples.sample_id, samples.grp)) if len(samples) else {}
    fn = metric_function(primary, positive=positive, n_classes=n_classes)
    sign = -1.0 if primary in LOWER_IS_BETTER else 1.0
    rows = []
    clustered = None
    for r in table.itertuples(index=False):
        key = (r.model, r.strategy)
        row: dict[str, Any] = {"model": r.model, "strategy": r.strategy}
        pool = pooled.get(key)
        if pool is not None:
            use_groups = _patients(pool.ids, groups)
            clustered = (clustered is not False) and use_groups is not None
            packed = np.c_[pool.y_pred, pool.proba]
            row["ci_low"], row["ci_high"], _ = stats.bootstrap_ci(
                pool.y_true, packed, fn, groups=use_groups, n_resamples=N_BOOT, seed=0
            )
        if key != best and key in per_fold and best in per_fold:
            a, b = per_fold[best].align(per_fold[key], join="inner")
            n_train, n_test = sizes[best]
            t = stats.corrected_resampled_ttest(
                sign * a.to_numpy(), sign * b.to_numpy(), n_train=n_train, n_test=n_test
            )
            row["t_p"] = t.p_value
            bay = stats.bayesian_correlated_ttest(
                sign * a.to_numpy(), sign * b.to_numpy(), rho=n_test / (n_train + n_test), rope=ROPE
            )
            row["bayes_best"], row["bayes_rope"] = bay["p_left"], bay["p_rope"]
            other = pooled.get(key)
            mine = pooled.get(best)
            if other is not None and mine is not None:
                common, ia, ib = np.intersect1d(mine.ids, other.ids, return_indices=True)
                if len(common):
                    boot = stats.paired_bootstrap(
                        mine.y_true[ia],
                        np.c_[mine.y_pred[ia], mine.proba[ia]],
                        np.c_[other.y_pred[ib], other.proba[ib]],
                        fn,
                        groups=_patients(common, groups),
                        n_resamples=N_BOOT,
                        seed=0,
                    )
                    row.update(boot_diff=boot.diff, diff_low=boot.ci_low, diff_high=boot.ci_high, boot_p=boot.p_value)
        rows.append(row)
    df = pd.DataFrame(rows)
    shown = set(zip(df.model, df.strategy))
    # Wilcoxon pairs folds by position: rows missing a fold of the best row's (an unfinished run) are left out
    folds = per_fold[best].index if best in per_fold else None
    scores = {
        f"{m} / {s}": v.reindex(folds).to_numpy()
        for (m, s), v in per_fold.items()
        if (m, s) in shown and folds is not None and set(v.index) >= set(folds)
    }
    if len(scores) > 1:
        w = stats.wilcoxon_holm({k: sign * v for k, v in scores.items()}, best=f"{best[0]} / {best[1]}")
        wmap = dict(zip(w.model, w.p_holm))
        df["wilcoxon_p"] = [wmap.get(f"{m} / {s}", np.nan) for m, s in zip(df.model, df.strategy)]
        note = next((n for n in w.note if isinstance(n, str) and n), "")
        notes = (f"Wilcoxon signed-rank: {note}",) if note and df.wilcoxon_p.isna().all() else ()
    else:
        notes = ()
    return SectionStats(best=best, rows=df, pooled=pooled, notes=notes, clustered=clustered)


def _patients(ids: np.ndarray, groups: Mapping[Any, Any]) -> np.ndarray | None:
    """The patient of each sample id, or None unless every sample has one (then samples are resampled)."""
    g = np.array([groups.get(i) for i in ids], dtype=object)
    return g if all(x is not None for x in g) else None


def paired_test(ok: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], *, primary: str) -> PairedTest | None:
    """Corrected resampled t-test and Bayesian correlated t-test of row ``a`` vs row ``b`` (same folds)."""
    sign = -1.0 if primary in LOWER_IS_BETTER else 1.0

    def scores(key):
        g = ok[(ok.model == key[0]) & (ok.imbalance == key[1])].sort_values("fold").set_index("fold")
        return g.metrics.map(lambda x: as_float(x.get(primary))), g

    sa, ga = scores(a)
    sb, _ = scores(b)
    sa, sb = sa.align(sb, join="inner")
    if len(sa) < 2:
        return None
    n_train = ga.extra.map(lambda e: as_float(e.n_train)).mean()
    n_test = ga.extra.map(lambda e: as_float(e.n_test)).mean()
    t = stats.corrected_resampled_ttest(sign * sa.to_numpy(), sign * sb.to_numpy(), n_train=n_train, n_test=n_test)
    bay = stats.bayesian_correlated_ttest(
        sign * sa.to_numpy(), sign * sb.to_numpy(), rho=n_test / (n_train + n_test), rope=ROPE
    )
    return PairedTest(
        mean_a=float(sa.mean()),
        mean_b=float(sb.mean()),
        diff=float(sa.mean() - sb.mean()),
        t_p=t.p_value,
        p_a_better=bay["p_left"],
        p_rope=bay["p_rope"],
        p_b_better=bay["p_right"],
        folds=len(sa),
    )


def across_datasets(blocks: dict[str, pd.Series], *, primary: str) -> stats.FriedmanResult:
    """Friedman + Nemenyi over independent (data set × extraction) blocks; refused with one block."""
    df = pd.DataFrame(blocks).T
    df.index.name = "block"
    return stats.friedman_nemenyi(df, higher_is_better=primary not in LOWER_IS_BETTER)
