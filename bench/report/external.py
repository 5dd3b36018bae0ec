"""The leaderboard's "External test" table: models refit on the development set, scored on an independent one.

Data comes from the store alone (see :mod:`cellbench.run.external` for the jobs that fill it): the refit jobs
(``fold = -1``), the fold models' external metrics (``extra["external"]`` of the CV jobs) and the CV table
of the same data set. Rows are ranked by their cross-validation estimate, never by the external score (that
would select on the test set); the top CV row with a finished refit is the *CV champion*, and every other refit
is tested against it. Statistics reuse :mod:`cellbench.stats.tests`: a bootstrap CI of the refit's external
score and a paired bootstrap of the difference in the primary metric against the champion on the same external
samples (whole patients resampled where ids are known), and DeLong's test of their AUCs (binary tasks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.values import as_float
from cellbench.report.format import mean_std, num, p_value, signed, table
from cellbench.run.records import DataSetRecord, ExternalInfo
from cellbench.run.store import Store
from cellbench.stats import tests as stats
from cellbench.stats.comparisons import ALPHA, N_BOOT, pooled_predictions
from cellbench.stats.metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS, metric_function


@dataclass(frozen=True, kw_only=True, eq=False)
class ExternalSection:
    """One (data set, extraction)'s external test: the table ranked by the CV estimate, refit failures and notes.

    ``table`` has columns rank (by ``cv_mean``), model, strategy, kind, cv_champion, ext_<metric>, folds_*, cv_*,
    optimism and, with statistics, ci_* (bootstrap CI of the external score), boot_diff, diff_low, diff_high,
    boot_p (paired bootstrap of champion − row in the external primary metric) and delong_p. ``best`` is the CV
    champion: the top CV row with a finished refit (rows whose CV finished every fold first, as in the CV table's
    tests), chosen without looking at any external score.
    """

    info: ExternalInfo
    primary: str
    table: pd.DataFrame
    errors: pd.DataFrame
    best: tuple[str, str] | None = None
    notes: tuple[str, ...] = ()
    clustered: bool | None = None  # the bootstraps resampled whole patients (None: no statistics)


def external_key_of(jobs: pd.DataFrame) -> pd.Series:
    """The external test set key each stored job was run with ("" for none), from its spec."""
    return jobs.spec.map(lambda s: json.loads(s).get("external", "")) if len(jobs) else pd.Series(dtype=str)


def current_jobs(jobs: pd.DataFrame, record: DataSetRecord) -> pd.DataFrame:
    """Keep natural-ratio jobs run with the data set's current external test set (or with none, if it has none).

    Jobs of another (earlier) external test set stay in the store, so switching back resumes them, but they
    are not mixed into the tables. Sweep jobs never score an external set and are all kept.
    """
    if jobs.empty:
        return jobs
    key = record.external.key if record.external is not None else ""
    return jobs[(jobs.ratio != "natural") | (external_key_of(jobs) == key)]


def summarise_external(
    store: Store,
    *,
    record: DataSetRecord,
    cv_ok: pd.DataFrame,
    refits: pd.DataFrame,
    table: pd.DataFrame,
    with_stats: bool = True,
) -> ExternalSection:
    """The external table of one (data set, extraction).

    Parameters
    ----------
    cv_ok : the successful natural-ratio CV jobs of the current external set (their ``extra["external"]``).
    refits : every stored refit job (``fold = -1``) of this data set and extraction.
    table : the CV table (:mod:`cellbench.report.summary`), for the CV estimate beside each external score.
    """
    ext_info, primary = record.external, record.primary_metric
    refits = refits[external_key_of(refits) == ext_info.key] if len(refits) else refits
    ok = refits[refits.status == "ok"]
    errors = refits[refits.status != "ok"][["model", "imbalance", "error"]].sort_values(["model", "imbalance"])
    lower = primary in LOWER_IS_BETTER
    fold_scores: dict[tuple[str, str], list[float]] = {}
    for (model, strategy), grp in cv_ok.groupby(["model", "imbalance"], sort=True):
        fold_scores[(model, strategy)] = [
            as_float(e.external.metrics.get(primary)) for e in grp.extra if e.external is not None
        ]
    cv = table.set_index(["model", "strategy"]) if len(table) else pd.DataFrame()
    kinds = {**dict(zip(zip(refits.model, refits.imbalance), refits.kind)), **_kinds(table)}
    rows = []
    for model, strategy in sorted(set(zip(refits.model, refits.imbalance)) | set(fold_scores)):
        mine = ok[(ok.model == model) & (ok.imbalance == strategy)]
        metrics = mine.metrics.iloc[0] if len(mine) else {}
        failed = ((errors.model == model) & (errors.imbalance == strategy)).any()
        row: dict[str, Any] = {
            "model": model,
            "strategy": strategy,
            "kind": kinds.get((model, strategy), ""),
            "refit_ok": bool(len(mine)),
            "refit": "ok" if len(mine) else "failed" if failed else "not run yet",
        }
        for m in METRICS:
            row[f"ext_{m}"] = as_float(metrics.get(m))
        folds = np.array(fold_scores.get((model, strategy), []), dtype=float)
        finite = folds[np.isfinite(folds)]
        row["folds_mean"] = float(finite.mean()) if len(finite) else np.nan
        row["folds_std"] = float(finite.std(ddof=1)) if len(finite) > 1 else np.nan
        row["folds_n"] = len(finite)
        in_cv = (model, strategy) in cv.index
        row["cv_mean"] = float(cv.loc[(model, strategy), f"{primary}_mean"]) if in_cv else np.nan
        row["cv_std"] = float(cv.loc[(model, strategy), f"{primary}_std"]) if in_cv else np.nan
        diff = row["cv_mean"] - row[f"ext_{primary}"]
        row["optimism"] = -diff if lower else diff  # positive: CV looked better than the independent test
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return ExternalSection(info=ext_info, primary=primary, table=df, errors=errors)
    # Ranked by the CV estimate (ties by name): the external score plays no part in the order or the champion.
    score = df["cv_mean"].fillna(np.inf if lower else -np.inf)
    df = df.assign(_key=score).sort_values(["_key", "model", "strategy"], ascending=[lower, True, True])
    df = df.drop(columns="_key").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    best, notes = _champion(df, table)
    df.insert(4, "cv_champion", [(m, s) == best for m, s in zip(df.model, df.strategy)])
    clustered = None
    if with_stats and best is not None:
        df, more, clustered = _tests(store, df, ok, record, best)
        notes += more
    return ExternalSection(
        info=ext_info, primary=primary, table=df, errors=errors, best=best, notes=notes, clustered=clustered
    )


def _champion(df: pd.DataFrame, table: pd.DataFrame) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """The top CV row with a finished refit, rows that finished every CV fold first; and a note if it is not rank 1."""
    complete = set()
    if len(table):
        done = table[table.folds_ok == table.folds]
        complete = set(zip(done.model, done.strategy))
    ranked = df[df.refit_ok & df.cv_mean.notna()]
    pick = ranked[[k in complete for k in zip(ranked.model, ranked.strategy)]]
    pick = pick if len(pick) else ranked
    if not len(pick):
        return None, ()
    best = (pick.model.iloc[0], pick.strategy.iloc[0])
    top = (df.model.iloc[0], df.strategy.iloc[0])
    if best == top:
        return best, ()
    why = "has no finished refit" if not df.refit_ok.iloc[0] else "did not finish every CV fold"
    return best, (f"the top CV row {top[0]} / {top[1]} {why}: the CV champion is {best[0]} / {best[1]}",)


def _tests(store: Store, df: pd.DataFrame, ok: pd.DataFrame, record: DataSetRecord, best: tuple[str, str]):
    """Bootstrap CI of each refit's external score; paired bootstrap and DeLong's test against the CV champion."""
    positive = record.positive
    fn = metric_function(record.primary_metric, positive=positive, n_classes=record.n_classes)
    pooled = pooled_predictions(ok, store.predictions(ok.key.tolist()))
    samples = store.samples(ok.dataset.iloc[0], ok.extraction.iloc[0])
    groups = dict(zip(samples.sample_id, samples.grp))
    notes = []
    df = df.copy()
    df["ci_low"] = df["ci_high"] = df["boot_diff"] = df["diff_low"] = df["diff_high"] = np.nan
    df["boot_p"] = df["delong_p"] = np.nan
    binary = positive is not None
    ref = pooled.get(best)
    resampled_groups = False

    def patients(ids):
        g = np.array([groups.get(s) for s in ids], dtype=object)
        return g if all(x is not None for x in g) else None

    for i, r in df.iterrows():
        pool = pooled.get((r.model, r.strategy))
        if pool is None:
            continue
        use = patients(pool.ids)
        resampled_groups |= use is not None
        low, high, _ = stats.bootstrap_ci(
            pool.y_true, np.c_[pool.y_pred, pool.proba], fn, groups=use, n_resamples=N_BOOT, seed=0
        )
        df.loc[i, ["ci_low", "ci_high"]] = low, high
        if ref is not None and (r.model, r.strategy) != best:
            common, ia, ib = np.intersect1d(ref.ids, pool.ids, return_indices=True)
            if len(common):
                boot = stats.paired_bootstrap(
                    ref.y_true[ia],
                    np.c_[ref.y_pred[ia], ref.proba[ia]],
                    np.c_[pool.y_pred[ib], pool.proba[ib]],
                    fn,
                    groups=patients(common),
                    n_resamples=N_BOOT,
                    seed=0,
                )
                df.loc[i, ["boot_diff", "diff_low", "diff_high", "boot_p"]] = (
                    boot.diff,
                    boot.ci_low,
                    boot.ci_high,
                    boot.p_value,
                )
                if binary:
                    y = ref.y_true[ia] == positive
                    d = stats.delong_test(y, ref.proba[ia, positive], pool.proba[ib, positive])
                    df.loc[i, "delong_p"] = d.p_value
    if not resampled_groups:
        notes.append("no patient ids known for the external samples: the bootstrap resamples single samples")
    return df, tuple(notes), resampled_groups


def _kinds(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    if table.empty:
        return {}
    return dict(zip(zip(table.model, table.strategy), table.kind))


# -- rendering ---------------------------------------------------------------------------------------------


def render_external(ext: ExternalSection, *, shown: tuple[str, ...], n_dev: int | None = None) -> list[str]:
    """Markdown lines of the external test table (``shown``: further metrics of the refit, as in the CV table)."""
    info, primary = ext.info, ext.primary
    label = METRIC_LABELS.get(primary, primary)
    counts = ", ".join(f"{k} {v}" for k, v in info.class_counts.items())
    kind = info.group_kind or "group"
    groups = f"{info.n_groups} {kind}s" if info.n_groups else "no patient ids known"
    dev = f" on all {n_dev} development samples" if n_dev else " on the whole development set"
    lines = [
        f"### External test — {label} on an independent test set",
        "",
        f"**Test set**: {info.description}; {info.n_samples} samples ({counts}), {groups}. "
        f"**Leakage check**: {info.overlap_check}.",
        "",
        f"Each model × strategy was refit{dev} with the settings CV used (inner validation split for early "
        "stopping and threshold tuning, seed derived from the job as in CV) and scored once on this set. Rows "
        "are ranked by their CV estimate, not by the external score (ranking on the test set would select on "
        "it); ★ marks the *CV champion*, the top CV row with a finished refit, which every other row is tested "
        "against. *Fold models*: every CV fold's model scored on this set, mean ± std over "
        "folds. *CV estimate*: the cross-validated score of the table above. *Optimism*: CV estimate minus "
        f"external score{' (sign flipped for Brier)' if primary in LOWER_IS_BETTER else ''}; positive means "
        "cross-validation promised more than the independent test delivered. The other metrics are the refit's.",
        "",
    ]
    notes = [*info.notes, *ext.notes]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    if ext.table.empty:
        return [*lines, "No finished external jobs yet.", ""]
    tested = "ci_low" in ext.table
    head = ["#", "model", "strategy", f"{label} external (refit)"]
    delong = tested and ext.table.delong_p.notna().any()
    unit = f"{kind}s resampled" if ext.clustered else f"samples resampled ({kind}s unknown)"
    head += ["95% CI", f"boot p (Δ {label}, {unit})"] if tested else []
    head += ["DeLong p (AUC)"] if delong else []
    head += ["fold models", "CV estimate", "optimism"]
    others = [m for m in shown if m != primary]
    head += [METRIC_LABELS[m] for m in others]
    rows = []
    for r in ext.table.to_dict("records"):
        best = ext.best == (r["model"], r["strategy"])
        model = f"{r['model']} ★ CV champion" if best else r["model"]
        row = [r["rank"], model, r["strategy"], num(r[f"ext_{primary}"]) if r["refit_ok"] else r["refit"]]
        if tested:
            ci = f"{num(r['ci_low'])}–{num(r['ci_high'])}" if np.isfinite(r["ci_low"]) else "—"
            row += [ci, "champion" if best else p_value(r["boot_p"])]
            row += ["champion" if best else p_value(r["delong_p"])] if delong else []
        folds = mean_std(r["folds_mean"], r["folds_std"])
        row += [f"{folds} ({r['folds_n']})" if r["folds_n"] else "—", mean_std(r["cv_mean"], r["cv_std"])]
        row += [signed(r["optimism"])]
        row += [num(r[f"ext_{m}"]) for m in others]
        rows.append(row)
    lines += table(rows, head)
    if tested:
        lines += [
            "*95% CI*: percentile bootstrap "
            f"({N_BOOT} resamples) of the refit's external {label}, resampling whole {kind}s where ids are known. "
            f"*boot p*: paired bootstrap ({N_BOOT} resamples) of the difference in external {label} between the "
            f"CV champion's refit and the row's on the same external samples, two-sided, whole {kind}s resampled "
            "where ids are known (else single samples); *DeLong p*: DeLong's test of the row's AUC against the "
            "champion's on the same samples (binary tasks; samples taken as independent); `*` marks "
            f"p < {ALPHA}. The number in brackets after the fold "
            "models is how many fold models were scored.",
            "",
        ]
    if len(ext.errors):
        lines += [f"Failed refits ({len(ext.errors)}), kept out of the ranking:", ""]
        rows = [[r.model, r.imbalance, str(r.error).splitlines()[0][:160]] for r in ext.errors.itertuples()]
        lines += table(rows, ["model", "strategy", "error"], numparse=True)
    return lines
