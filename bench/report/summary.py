"""The leaderboard as data: summarised from the store alone (no retraining), as frozen records.

:func:`summarise` returns a :class:`Leaderboard` (scores, tests, comparisons per (data set, extraction) and
across data sets); :mod:`cellbench.report.markdown` renders it; :mod:`cellbench.report.leaderboard` draws its
figures and writes the file. The records depend only on the store's content, so they are deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cellbench.core.values import as_float
from cellbench.models.imbalance import parse_ratio
from cellbench.report.external import ExternalSection, current_jobs, summarise_external
from cellbench.report.extraction import ExtractionSummary, summarise_extraction
from cellbench.report.format import mean_std
from cellbench.run.consistency import check_store
from cellbench.run.records import DataSetRecord, OfRecord
from cellbench.run.store import Store
from cellbench.stats.comparisons import SectionStats, across_datasets, paired_test, section_stats
from cellbench.stats.importance import feature_family
from cellbench.stats.metrics import LOWER_IS_BETTER, METRICS
from cellbench.stats.nested import Verdict, arm_of, nested_verdict
from cellbench.stats.tests import FriedmanResult

# which extraction of a data set stands for it across data sets (the first present), see _friedman
EXTRACTION_ORDER = ("given", "manual", "segmentation")


@dataclass(frozen=True, kw_only=True, eq=False)
class Section(OfRecord):
    """One (data set, extraction): its ranked table, tests, comparisons, sweep, notes and figure links.

    ``table`` has one row per model × strategy (rank, model, strategy, kind, arm, folds_ok, folds,
    ``<metric>_mean``, ``<metric>_std`` for every metric, fit_s, not_converged: folds a deep model stopped at
    ``max_epochs`` while still improving); ``notes`` what the section's jobs say about themselves (e.g. inner
    splits that could not keep patients apart); ``errors`` the failed jobs; ``figures`` maps a figure name to its
    path relative to the leaderboard; ``explanations`` the CAM galleries found beside it (their JSON documents).
    """

    record: DataSetRecord
    primary: str
    table: pd.DataFrame
    sweep: pd.DataFrame | None
    sweep_long: pd.DataFrame | None
    errors: pd.DataFrame
    folds: int
    stats: SectionStats | None = None
    strategy_vs_none: pd.DataFrame | None = None
    verdict: Verdict | None = None  # the arms' nested champions compared on the outer folds
    imagenet_vs_scratch: pd.DataFrame | None = None  # <backbone>[_ft] vs <backbone>_scratch, paired over folds
    histories: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)
    importance: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    external: ExternalSection | None = None  # the external test table, where the data set has a test set
    warnings: pd.DataFrame | None = None  # warning text, number of jobs, models (from the jobs' extra)
    figures: Mapping[str, str] = field(default_factory=dict)
    explanations: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """``<dataset>-<extraction>``, file-name-safe: the start of the section's figure and gallery names."""
        return slug(self.dataset, self.extraction)


def slug(*parts: str) -> str:
    """``parts`` joined by ``-`` with every run of characters unsafe in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


@dataclass(frozen=True, kw_only=True, eq=False)
class Leaderboard:
    """A suite's results: its sections, the test across data sets, the extraction comparison, the manifest."""

    suite: str
    manifest: Mapping[str, Any]
    sections: tuple[Section, ...] = ()
    runs: pd.DataFrame | None = None
    friedman: FriedmanResult | None = None
    extraction_pairs: tuple[tuple[str, pd.DataFrame], ...] = ()
    extraction: ExtractionSummary | None = None
    figures: Mapping[str, str] = field(default_factory=dict)


def summarise(store: Store, *, with_stats: bool = True) -> Leaderboard:
    """Aggregate stored job results per (data set, extraction, model, strategy, ratio) and run the tests.

    Raises
    ------
    DataError
        When stored metrics disagree with the stored predictions (:func:`cellbench.run.consistency.check_store`).
    """
    check_store(store)
    runs = store.runs()
    manifest = json.loads(runs["manifest"].iloc[-1]) if len(runs) else {}
    jobs = store.jobs()
    refits = jobs[jobs.fold < 0]  # refits scored on an external test set (cellbench.run.external), not CV folds
    jobs = jobs[jobs.fold >= 0]
    sections = tuple(
        _section(store, record, jobs, refits, with_stats=with_stats) for _, record in sorted(store.data_sets().items())
    )
    return Leaderboard(
        suite=manifest.get("suite", ""),
        manifest=manifest,
        runs=runs,
        sections=sections,
        friedman=_friedman(sections) if with_stats else None,
        extraction_pairs=_extraction_pairs(sections) if with_stats else (),
        extraction=summarise_extraction(sections),
    )


def _section(store: Store, record: DataSetRecord, jobs: pd.DataFrame, refits: pd.DataFrame, *,
             with_stats: bool) -> Section:  # fmt: skip
    dataset, extraction, primary = record.dataset, record.extraction, record.primary_metric
    sub = jobs[(jobs.dataset == dataset) & (jobs.extraction == extraction)]
    sub = current_jobs(sub, record)  # leaves out jobs run with another external test set
    # a coordinate run again under a new key (changed parameters or code): the newest result stands for it
    coords = ["model", "imbalance", "ratio", "fold", "seed"]
    newest = sub.sort_values(["written", "key"]).drop_duplicates(coords, keep="last")
    superseded = len(sub) - len(newest)
    sub = newest.sort_values("key")
    ok = sub[sub.status == "ok"]
    errors = sub[sub.status != "ok"][["model", "imbalance", "ratio", "fold", "error"]].sort_values(
        ["model", "imbalance", "ratio", "fold"]
    )
    natural = ok[ok.ratio == "natural"]
    table = _aggregate(natural, sub[sub.ratio == "natural"], primary)
    sweep = sweep_long = None
    swept = ok[ok.ratio != "natural"]
    if len(swept):
        pairs = set(zip(swept.model, swept.imbalance))
        both = pd.concat([natural[[p in pairs for p in zip(natural.model, natural.imbalance)]], swept])
        sweep, sweep_long = _sweep_tables(both, primary)
    tested: dict[str, Any] = {}
    if with_stats and len(table):
        # the section's stored predictions and patients, read once for the row tests and the verdict
        preds, samples = store.predictions(natural.key.tolist()), store.samples(dataset, extraction)
        labels = {"primary": primary, "positive": record.positive, "n_classes": record.n_classes}
        tested = {
            "stats": section_stats(table, natural, preds, samples, **labels),
            "strategy_vs_none": _strategy_vs_none(table, natural, primary),
            "verdict": nested_verdict(natural, preds, samples, **labels),
            "imagenet_vs_scratch": _imagenet_vs_scratch(table, natural, primary),
        }
    external = None
    if record.external is not None:
        external = summarise_external(
            store,
            record=record,
            cv_ok=natural,
            refits=refits[(refits.dataset == dataset) & (refits.extraction == extraction)],
            table=table,
            with_stats=with_stats,
        )
    return Section(
        record=record,
        primary=primary,
        table=table,
        sweep=sweep,
        sweep_long=sweep_long,
        errors=errors,
        folds=int(sub.fold.max() + 1) if len(sub) else 0,
        importance=_importances(natural),
        histories=_histories(natural),
        warnings=_warnings(ok),
        external=external,
        notes=(
            *_job_notes(ok, sub),
            *(
                (f"{superseded} older job(s) of the same coordinates (earlier parameters or code) left out",)
                if superseded
                else ()
            ),
        ),
        **tested,
    )


def _job_notes(ok: pd.DataFrame, all_rows: pd.DataFrame) -> tuple[str, ...]:
    """What the jobs recorded about how they ran that a reader must know: ungrouped inner splits, deep strategies."""
    notes = []
    fallback = ok[ok.extra.map(lambda e: e.inner_grouped is False)]
    if len(fallback):
        notes.append(
            f"inner split: in {len(fallback)} of {len(ok)} jobs no patient-disjoint inner split held both classes "
            "on each side, so early stopping, threshold tuning and the inner-validation score (nested selection) used "
            "a stratified split of samples there — patients were not kept apart inside those training folds"
        )
    classical = set(all_rows[all_rows.kind != "deep"].imbalance)
    deep = set(all_rows[all_rows.kind == "deep"].imbalance)
    missing = sorted(classical - deep - {"smote"})
    if deep and missing:
        notes.append(
            f"deep models ran under fewer imbalance strategies than the classical ones (not: {', '.join(missing)}), "
            "so their arm chose among fewer configurations"
        )
    return tuple(notes)


def _aggregate(ok: pd.DataFrame, all_rows: pd.DataFrame, primary: str) -> pd.DataFrame:
    rows = []
    # every row ran (or should have run) on all folds of the section: a stopped run shows as k/K, not k/k
    n_folds = int(all_rows.fold.max()) + 1 if len(all_rows) else 0
    for (model, strategy), grp in all_rows.groupby(["model", "imbalance"], sort=True):
        good = ok[(ok.model == model) & (ok.imbalance == strategy)]
        row: dict[str, Any] = {
            "model": model,
            "strategy": strategy,
            "kind": grp.kind.iloc[0],
            "arm": arm_of(model, grp.kind.iloc[0]),
            "folds_ok": len(good),
            "folds": max(n_folds, len(grp)),
        }
        for m in METRICS:
            vals = np.array([as_float(x.get(m)) for x in good.metrics], dtype=float)
            row[f"{m}_mean"] = np.nanmean(vals) if np.isfinite(vals).any() else np.nan
            row[f"{m}_std"] = np.nanstd(vals, ddof=1) if np.isfinite(vals).sum() > 1 else np.nan
        row["fit_s"] = float(np.mean([t.get("fit_s", np.nan) for t in good.timings])) if len(good) else np.nan
        row["not_converged"] = int(sum(e.converged is False for e in good.extra))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ascending = primary in LOWER_IS_BETTER
    key = df[f"{primary}_mean"].fillna(np.inf if ascending else -np.inf)
    df = df.assign(_key=key).sort_values(["_key", "model", "strategy"], ascending=[ascending, True, True])
    df = df.drop(columns="_key").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def _warnings(ok: pd.DataFrame) -> pd.DataFrame | None:
    """Distinct warnings the jobs raised (stored by :mod:`cellbench.run.jobs`), with how many jobs and which models."""
    rows: dict[str, dict[str, Any]] = {}
    for model, extra in zip(ok.model, ok.extra):
        for text in extra.warnings:
            text = re.sub(r" \(×\d+\)$", "", text)
            row = rows.setdefault(text, {"warning": text, "jobs": 0, "models": set()})
            row["jobs"] += 1
            row["models"].add(model)
    if not rows:
        return None
    df = pd.DataFrame(rows.values())
    df["models"] = df.models.map(lambda m: ", ".join(sorted(m)))
    return df.sort_values(["jobs", "warning"], ascending=[False, True]).reset_index(drop=True)


def _importances(ok: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per model (and strategy): permutation and native importance per feature, mean and std over folds."""
    out = {}
    if ok.empty:
        return out
    with_imp = ok[ok.extra.map(lambda e: e.importance is not None)]
    for (model, strategy), grp in with_imp.groupby(["model", "imbalance"], sort=True):
        perm = pd.DataFrame([dict(e.importance.permutation) for e in grp.extra])
        native = [dict(e.importance.native) for e in grp.extra if e.importance.native]
        df = pd.DataFrame({"perm_mean": perm.mean(), "perm_std": perm.std(ddof=1), "folds": perm.notna().sum()})
        df["native_mean"] = pd.DataFrame(native).mean() if native else np.nan
        df["native_std"] = pd.DataFrame(native).std(ddof=1) if len(native) > 1 else np.nan
        df["family"] = [feature_family(n) for n in df.index]
        out[f"{model} / {strategy}"] = df.sort_values(["perm_mean", "native_mean"], ascending=False)
    return out


def _histories(ok: pd.DataFrame) -> dict[str, Mapping[str, Sequence[float]]]:
    """Training curves of deep models: fold 0 of each model × strategy."""
    out = {}
    deep = ok[(ok.kind == "deep") & (ok.fold == 0)]
    for r in deep.sort_values(["model", "imbalance"]).itertuples():
        if r.extra.history:
            out[f"{r.model} / {r.imbalance}"] = r.extra.history
    return out


def _ratio_key(ratio: str) -> float:
    """Sort key of a sweep ratio: ``natural`` first, then ``1:1``, ``1:3``, ... by majority share."""
    return 0.0 if ratio == "natural" else parse_ratio(ratio)


def _sweep_tables(ok: pd.DataFrame, primary: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep as a wide table (model × strategy, one column of mean ± std per ratio) and as long rows."""
    ratios = sorted(ok.ratio.unique(), key=_ratio_key)
    rows, long = [], []
    for (model, strategy), grp in ok.groupby(["model", "imbalance"], sort=True):
        row = {"model": model, "strategy": strategy}
        for r in ratios:
            vals = np.array([as_float(m.get(primary)) for m in grp[grp.ratio == r].metrics], dtype=float)
            mean = np.nanmean(vals) if len(vals) else np.nan
            std = np.nanstd(vals, ddof=1) if len(vals) > 1 else np.nan
            row[r] = mean_std(mean, std) if len(vals) else "—"
            if len(vals):
                long.append({"model": model, "strategy": strategy, "ratio": r, "mean": mean, "std": std})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(long)


def _paired_rows(pairs: Sequence[tuple[dict[str, Any], tuple[str, str], tuple[str, str]]], ok: pd.DataFrame,
                 primary: str) -> pd.DataFrame:  # fmt: skip
    """One row per (labels, a, b) whose paired test could be computed: the labels and the test's fields."""
    rows = []
    for labels, a, b in pairs:
        t = paired_test(ok, a, b, primary=primary)
        if t is not None:
            rows.append({**labels, **asdict(t)})
    return pd.DataFrame(rows)


def _strategy_vs_none(table: pd.DataFrame, ok: pd.DataFrame, primary: str) -> pd.DataFrame:
    pairs = []
    for model in sorted(table.model.unique()):
        if not ((table.model == model) & (table.strategy == "none")).any():
            continue
        for strategy in sorted(table[table.model == model].strategy):
            if strategy != "none":
                pairs.append(({"model": model, "strategy": strategy}, (model, strategy), (model, "none")))
    return _paired_rows(pairs, ok, primary)


def _imagenet_vs_scratch(table: pd.DataFrame, ok: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Each ImageNet-initialised backbone (frozen and ``_ft``) vs the same network trained from random weights."""
    present = set(zip(table.model, table.strategy))
    pairs = []
    for scratch, strategy in sorted(present):
        if not scratch.endswith("_scratch"):
            continue
        base = scratch.removesuffix("_scratch")
        for pretrained in (base, f"{base}_ft"):
            if (pretrained, strategy) in present:
                labels = {"pretrained": pretrained, "scratch": scratch, "strategy": strategy}
                pairs.append((labels, (pretrained, strategy), (scratch, strategy)))
    return _paired_rows(pairs, ok, primary)


def _friedman(sections: Sequence[Section]) -> FriedmanResult | None:
    """Friedman/Nemenyi over data sets: one block per data set.

    Two extractions of one data set come from the same images, so they are not independent blocks: a data
    set with several contributes the first of ``given``, ``manual``, ``segmentation`` (the others are
    compared with it in their own paired section).
    """

    def order(s: Section) -> int:
        return EXTRACTION_ORDER.index(s.extraction) if s.extraction in EXTRACTION_ORDER else len(EXTRACTION_ORDER)

    chosen: dict[str, Section] = {}
    for s in sorted((s for s in sections if not s.table.empty), key=order):
        chosen.setdefault(s.dataset, s)
    blocks = {}
    for s in chosen.values():
        done = s.table[s.table.folds_ok == s.table.folds]
        blocks[f"{s.dataset} / {s.extraction}"] = pd.Series(
            done[f"{s.primary}_mean"].to_numpy(), index=[f"{m} / {st}" for m, st in zip(done.model, done.strategy)]
        )
    if not blocks:
        return None
    return across_datasets(blocks, primary=sorted({s.primary for s in sections})[0])


def _extraction_pairs(sections: Sequence[Section]) -> tuple[tuple[str, pd.DataFrame], ...]:
    """Manual vs segmentation per model and strategy, where a data set has both extractions."""
    out = []
    by_ds: dict[str, dict[str, Section]] = {}
    for s in sections:
        by_ds.setdefault(s.dataset, {})[s.extraction] = s
    for ds, ex in sorted(by_ds.items()):
        if "manual" not in ex or "segmentation" not in ex:
            continue
        man, seg = ex["manual"].table, ex["segmentation"].table
        p = ex["manual"].primary
        merged = man[["model", "strategy", f"{p}_mean"]].merge(
            seg[["model", "strategy", f"{p}_mean"]], on=["model", "strategy"], suffixes=("_manual", "_segmentation")
        )
        merged["diff"] = merged[f"{p}_mean_manual"] - merged[f"{p}_mean_segmentation"]
        out.append((ds, merged))
    return tuple(out)
