"""The leaderboard: summarised from the store alone (no retraining), rendered as markdown with figures.

``summarise`` returns data (scores, tests, comparisons); ``render_markdown`` turns it into text;
``write_leaderboard`` draws the figures and writes the file. The output depends only on the store's
content, so regenerating it is deterministic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from cellbench.report.external import ExternalSection, current_jobs, render_external, summarise_external
from cellbench.stats.comparisons import ALPHA, ROPE, SectionStats, across_datasets, paired_test, section_stats
from cellbench.stats.metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS

SHOWN = ("balanced_accuracy", "f1_weighted", "roc_auc", "pr_auc", "mcc", "recall", "specificity", "brier")
TOP_CURVES = 5


@dataclass(kw_only=True)
class Section:
    """One (data set, extraction): its ranked table, tests, comparisons, sweep and notes."""

    dataset: str
    extraction: str
    info: dict[str, Any]
    primary: str
    table: pd.DataFrame
    sweep: pd.DataFrame | None
    sweep_long: pd.DataFrame | None
    errors: pd.DataFrame
    folds: int
    stats: SectionStats | None = None
    strategy_vs_none: pd.DataFrame | None = None
    classical_vs_deep: dict[str, Any] | None = None
    imagenet_vs_scratch: pd.DataFrame | None = None  # <backbone>[_ft] vs <backbone>_scratch, paired over folds
    histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    importance: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    external: ExternalSection | None = None  # the external test table, where the data set has a test set
    explanations: list[dict[str, Any]] = field(default_factory=list)  # CAM galleries (bench.explain)
    warnings: pd.DataFrame | None = None  # warning text, number of jobs, models (from the jobs' extra)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.dataset}-{self.extraction}")


@dataclass(kw_only=True)
class Leaderboard:
    suite: str
    manifest: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    runs: pd.DataFrame | None = None
    friedman: Any = None
    extraction_pairs: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    extraction: Any = None  # bench.extraction_report.ExtractionSummary: quality, same cells, end to end


def summarise(store, *, with_stats: bool = True) -> Leaderboard:
    """Aggregate stored job results per (data set, extraction, model, strategy, ratio) and run the tests."""
    runs = store.runs()
    manifest = json.loads(runs["manifest"].iloc[-1]) if len(runs) else {}
    jobs = store.jobs()
    refits = jobs[jobs.fold < 0]  # refits scored on an external test set (bench.external), not CV folds
    jobs = jobs[jobs.fold >= 0]
    board = Leaderboard(suite=manifest.get("suite", ""), manifest=manifest, runs=runs)
    for (dataset, extraction), info in sorted(store.data_sets().items()):
        sub = jobs[(jobs.dataset == dataset) & (jobs.extraction == extraction)]
        sub = current_jobs(sub, info)  # leaves out jobs run with another external test set
        primary = info.get("primary_metric", "balanced_accuracy")
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
        section = Section(
            dataset=dataset,
            extraction=extraction,
            info=info,
            primary=primary,
            table=table,
            sweep=sweep,
            sweep_long=sweep_long,
            errors=errors,
            folds=int(sub.fold.max() + 1) if len(sub) else 0,
            importance=_importances(natural),
            histories=_histories(natural),
            warnings=_warnings(ok),
        )
        if with_stats and len(table):
            classes = info.get("classes", [])
            positive = classes.index(info["positive_class"]) if info.get("positive_class") in classes else None
            preds = store.predictions(natural.key.tolist())
            section.stats = section_stats(
                table,
                natural,
                preds,
                store.samples(dataset, extraction),
                primary=primary,
                positive=positive if len(classes) == 2 else None,
                n_classes=max(len(classes), 2),
            )
            section.strategy_vs_none = _strategy_vs_none(table, natural, primary)
            section.classical_vs_deep = _classical_vs_deep(table, natural, primary)
            section.imagenet_vs_scratch = _imagenet_vs_scratch(table, natural, primary)
        if info.get("external"):
            section.external = summarise_external(
                store,
                info=info,
                cv_ok=natural,
                refits=refits[(refits.dataset == dataset) & (refits.extraction == extraction)],
                table=table,
                primary=primary,
                with_stats=with_stats,
            )
        board.sections.append(section)
    if with_stats:
        board.friedman = _friedman(board.sections)
        board.extraction_pairs = _extraction_pairs(board.sections, jobs)
    from cellbench.report.extraction import summarise_extraction

    board.extraction = summarise_extraction(board.sections)
    return board


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
            "folds_ok": len(good),
            "folds": max(n_folds, len(grp)),
        }
        for m in METRICS:
            vals = np.array([_num(x.get(m)) for x in good.metrics], dtype=float)
            row[f"{m}_mean"] = np.nanmean(vals) if np.isfinite(vals).any() else np.nan
            row[f"{m}_std"] = np.nanstd(vals, ddof=1) if np.isfinite(vals).sum() > 1 else np.nan
        row["fit_s"] = float(np.mean([t.get("fit_s", np.nan) for t in good.timings])) if len(good) else np.nan
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
    """Distinct warnings the jobs raised (stored by ``bench.jobs``), with how many jobs and which models."""
    rows: dict[str, dict[str, Any]] = {}
    for model, extra in zip(ok.model, ok.extra):
        for text in extra.get("warnings", []):
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
    from cellbench.stats.importance import feature_family

    out = {}
    if ok.empty:
        return out
    with_imp = ok[ok.extra.map(lambda e: "importance" in e)]
    for (model, strategy), grp in with_imp.groupby(["model", "imbalance"], sort=True):
        perm = pd.DataFrame([e["importance"]["permutation"] for e in grp.extra])
        native = [e["importance"]["native"] for e in grp.extra if e["importance"].get("native")]
        df = pd.DataFrame({"perm_mean": perm.mean(), "perm_std": perm.std(ddof=1), "folds": perm.notna().sum()})
        df["native_mean"] = pd.DataFrame(native).mean() if native else np.nan
        df["native_std"] = pd.DataFrame(native).std(ddof=1) if len(native) > 1 else np.nan
        df["family"] = [feature_family(n) for n in df.index]
        out[f"{model} / {strategy}"] = df.sort_values(["perm_mean", "native_mean"], ascending=False)
    return out


def _histories(ok: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Training curves of deep models: fold 0 of each model × strategy."""
    out = {}
    deep = ok[(ok.kind == "deep") & (ok.fold == 0)]
    for r in deep.sort_values(["model", "imbalance"]).itertuples():
        if r.extra.get("history"):
            out[f"{r.model} / {r.imbalance}"] = r.extra["history"]
    return out


def _sweep_tables(ok: pd.DataFrame, primary: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    def ratio_key(r: str) -> float:
        return 0.0 if r == "natural" else float(r.split(":")[1]) / float(r.split(":")[0])

    ratios = sorted(ok.ratio.unique(), key=ratio_key)
    rows, long = [], []
    for (model, strategy), grp in ok.groupby(["model", "imbalance"], sort=True):
        row = {"model": model, "strategy": strategy}
        for r in ratios:
            vals = np.array([_num(m.get(primary)) for m in grp[grp.ratio == r].metrics], dtype=float)
            mean = np.nanmean(vals) if len(vals) else np.nan
            std = np.nanstd(vals, ddof=1) if len(vals) > 1 else np.nan
            row[r] = _pm(mean, std) if len(vals) else "—"
            if len(vals):
                long.append({"model": model, "strategy": strategy, "ratio": r, "mean": mean, "std": std})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(long)


def _strategy_vs_none(table: pd.DataFrame, ok: pd.DataFrame, primary: str) -> pd.DataFrame:
    rows = []
    for model in sorted(table.model.unique()):
        if not ((table.model == model) & (table.strategy == "none")).any():
            continue
        for strategy in sorted(table[table.model == model].strategy):
            if strategy == "none":
                continue
            t = paired_test(ok, (model, strategy), (model, "none"), primary=primary)
            if t:
                rows.append({"model": model, "strategy": strategy, **t})
    return pd.DataFrame(rows)


def _imagenet_vs_scratch(table: pd.DataFrame, ok: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Each ImageNet-initialised backbone (frozen and ``_ft``) vs the same network trained from random weights."""
    rows = []
    present = set(zip(table.model, table.strategy))
    for scratch, strategy in sorted(present):
        if not scratch.endswith("_scratch"):
            continue
        base = scratch.removesuffix("_scratch")
        for pretrained in (base, f"{base}_ft"):
            if (pretrained, strategy) in present:
                t = paired_test(ok, (pretrained, strategy), (scratch, strategy), primary=primary)
                if t:
                    rows.append({"pretrained": pretrained, "scratch": scratch, "strategy": strategy, **t})
    return pd.DataFrame(rows)


def _classical_vs_deep(table: pd.DataFrame, ok: pd.DataFrame, primary: str) -> dict[str, Any] | None:
    complete = table[table.folds_ok == table.folds]
    cl, dp = complete[complete.kind == "classical"], complete[complete.kind == "deep"]
    if cl.empty or dp.empty:
        return None
    a, b = (cl.iloc[0].model, cl.iloc[0].strategy), (dp.iloc[0].model, dp.iloc[0].strategy)
    t = paired_test(ok, a, b, primary=primary)
    return {"classical": a, "deep": b, **(t or {})}


EXTRACTION_ORDER = ("given", "manual", "segmentation")


def _friedman(sections: list[Section]):
    """Friedman/Nemenyi over data sets: one block per data set.

    Two extractions of one data set come from the same images, so they are not independent blocks: a data
    set with several contributes the first of ``given``, ``manual``, ``segmentation`` (the others are
    compared with it in their own paired section).
    """
    def order(s: Section) -> int:
        return EXTRACTION_ORDER.index(s.extraction) if s.extraction in EXTRACTION_ORDER else len(EXTRACTION_ORDER)

    blocks = {}
    chosen: dict[str, Section] = {}
    for s in sorted((s for s in sections if not s.table.empty), key=order):
        chosen.setdefault(s.dataset, s)
    for s in chosen.values():
        done = s.table[s.table.folds_ok == s.table.folds]
        blocks[f"{s.dataset} / {s.extraction}"] = pd.Series(
            done[f"{s.primary}_mean"].to_numpy(), index=[f"{m} / {st}" for m, st in zip(done.model, done.strategy)]
        )
    if not blocks:
        return None
    primaries = {s.primary for s in sections}
    return across_datasets(blocks, primary=sorted(primaries)[0])


def _extraction_pairs(sections: list[Section], jobs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
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
    return out


def _num(x) -> float:
    return np.nan if x is None else float(x)


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None and np.isfinite(std) else f"{mean:.{digits}f}"


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if x is not None and np.isfinite(x) else "—"


def _p(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    mark = "*" if x < ALPHA else ""
    return f"<0.001{mark}" if x < 0.001 else f"{x:.3f}{mark}"


# -- rendering --------------------------------------------------------------------------------------------


def render_markdown(board: Leaderboard, *, timings: bool = True) -> str:
    """The leaderboard as markdown text; ``timings=False`` leaves out wall times (for reproduction checks)."""
    out = [f"# Leaderboard — suite `{board.suite}`", ""]
    out += _render_manifest(board.manifest, board.runs if timings else None)
    for s in board.sections:
        out += _render_section(s, timings=timings)
    out += _render_across(board)
    from cellbench.report.extraction import render_extraction

    out += render_extraction(board.extraction, timings=timings)
    out += [
        "---",
        "Scores are means ± standard deviations over the test folds; every model of a data set and extraction ran "
        "on the same folds (paired). Resampling, scaling, early stopping and threshold tuning happened inside "
        "training folds only. Regenerate with "
        f"`python -m bench leaderboard --suite {board.suite}`.",
        "",
        "**Tests.** *95% CI*: percentile bootstrap (1000 resamples) of the primary metric on the pooled "
        "out-of-fold predictions, resampling whole patients where patient ids are known (cells of one patient "
        "are correlated) and single samples otherwise. *t-test p*: corrected resampled t-test "
        "(Nadeau & Bengio 2003) of the row vs the best row on per-fold scores — the correction accounts for "
        "overlapping training sets, which the plain paired t-test ignores; `*` marks p < "
        f"{ALPHA}. *P(best better)*: Bayesian correlated t-test (Benavoli et al. 2017), probability that the best "
        f"row is better by more than the ROPE of {ROPE}. *McNemar p*: McNemar's test (exact below 25 discordant "
        "pairs) on the pooled out-of-fold hard predictions. *Wilcoxon p*: Wilcoxon signed-rank vs the best, Holm "
        "corrected, reported only with at least 6 folds. Friedman/Nemenyi is used only across independent data "
        "sets, never with CV folds as blocks (Demšar 2006).",
        "",
    ]
    return "\n".join(out)


def _render_manifest(m: dict[str, Any], runs: pd.DataFrame | None) -> list[str]:
    git = m.get("git", {})
    pk = m.get("packages", {})
    lines = ["## Run manifest", ""]
    rows = [
        ("suite file", f"`{m.get('suite_file', '')}` (sha256 {str(m.get('suite_sha256', ''))[:12]})"),
        ("seed", m.get("seed")),
        ("command-line choices", ", ".join(f"{k}={v}" for k, v in sorted((m.get("narrowing") or {}).items())) or "—"),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
        ("python", f"{m.get('python', '')} on {m.get('platform', '')}"),
        ("data fingerprints", ", ".join(f"{k}: `{v}`" for k, v in sorted(m.get("datasets", {}).items()))),
        ("packages", ", ".join(f"{k} {v}" for k, v in sorted(pk.items()))),
    ]
    if runs is not None and len(runs):
        wall = (runs.finished.fillna(runs.started) - runs.started).sum()
        rows.append(("runs", f"{len(runs)} ({', '.join(runs.status.tolist())}); total driver wall time {wall:.0f} s"))
    lines += [tabulate(rows, headers=["", ""], tablefmt="github"), ""]
    return lines


def _render_section(s: Section, *, timings: bool = True) -> list[str]:
    info = s.info
    label = METRIC_LABELS.get(s.primary, s.primary)
    counts = ", ".join(f"{k} {v}" for k, v in info.get("class_counts", {}).items())
    groups = (
        f"{info['n_groups']} {info.get('group_kind') or 'group'}s" if info.get("n_groups") else "no patient ids known"
    )
    lines = [
        f"## {s.dataset} — extraction `{s.extraction}`",
        "",
        f"{info.get('title', '')}{' (SYNTHETIC data)' if info.get('synthetic') else ''}. "
        f"{info.get('n_samples')} samples ({counts}; positive class: {info.get('positive_class')}), {groups}, "
        f"{info.get('n_features', 0)} handcrafted features.",
        "",
        f"**CV**: {info.get('cv', '')}.  **Primary metric**: {s.primary}.",
        "",
    ]
    notes = [*info.get("notes", []), *info.get("plan_notes", []), *(s.stats.notes if s.stats else [])]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    if s.table.empty:
        return [*lines, "No finished jobs yet.", ""]
    st = s.stats.rows.set_index(["model", "strategy"]) if s.stats is not None and len(s.stats.rows) else None
    head = ["#", "model", "strategy", f"{label} (primary)"]
    if st is not None:
        head += ["95% CI", "t-test p", "P(best better)", "McNemar p"]
    head += [METRIC_LABELS[m] for m in SHOWN if m != s.primary] + (["fit s"] if timings else []) + ["folds"]
    rows = []
    for r in s.table.to_dict("records"):
        row = [r["rank"], r["model"], r["strategy"], _pm(r[f"{s.primary}_mean"], r[f"{s.primary}_std"])]
        if st is not None:
            x = st.loc[(r["model"], r["strategy"])] if (r["model"], r["strategy"]) in st.index else {}
            best = s.stats.best == (r["model"], r["strategy"])
            ci = "—"
            if "ci_low" in x and np.isfinite(x.get("ci_low", np.nan)):
                ci = f"{_fmt(x.get('ci_low'))}–{_fmt(x.get('ci_high'))}"
            row += [
                ci,
                "best" if best else _p(x.get("t_p")),
                "" if best else _fmt(x.get("bayes_best"), 2),
                "" if best else _p(x.get("mcnemar_p")),
            ]
        row += [_fmt(r[f"{m}_mean"]) for m in SHOWN if m != s.primary]
        row += ([_fmt(r["fit_s"], 2)] if timings else []) + [f"{r['folds_ok']}/{r['folds']}"]
        rows.append(row)
    lines += [tabulate(rows, headers=head, tablefmt="github", disable_numparse=True), ""]
    if s.stats is not None and "wilcoxon_p" in s.stats.rows and s.stats.rows.wilcoxon_p.notna().any():
        w = s.stats.rows.dropna(subset=["wilcoxon_p"])
        lines += [
            "Wilcoxon signed-rank vs the best (Holm-corrected): "
            + ", ".join(f"{m} / {st_}: {_p(p)}" for m, st_, p in zip(w.model, w.strategy, w.wilcoxon_p)),
            "",
        ]
    if s.external is not None:
        lines += render_external(s.external, shown=SHOWN, n_dev=info.get("n_samples"))
    lines += _render_figures(s)
    lines += _render_comparisons(s)
    if s.sweep is not None and len(s.sweep):
        lines += [
            f"### Imbalance sweep — {label} by training class ratio (positive:rest)",
            "",
            "The training folds were subsampled to each ratio; test folds keep the natural ratio.",
            "",
            tabulate(s.sweep.values.tolist(), headers=list(s.sweep.columns), tablefmt="github", disable_numparse=True),
            "",
        ]
        if "sweep" in s.figures:
            lines += [f"![imbalance sweep]({s.figures['sweep']})", ""]
    if s.importance:
        lines += _render_importance(s.importance)
    if s.explanations:
        from cellbench.tools.explain import render_galleries

        lines += render_galleries(s.explanations, s.importance)
    if s.warnings is not None:
        lines += [
            f"### Warnings raised by finished jobs ({len(s.warnings)} distinct)",
            "",
            "Stored with each job (`extra.warnings` in the store); the jobs finished and are scored.",
            "",
            tabulate(
                [[r.warning[:200].replace("|", "\\|"), r.jobs, r.models] for r in s.warnings.itertuples()],
                headers=["warning", "jobs", "models"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    if len(s.errors):
        lines += [f"### Failed jobs ({len(s.errors)}) — kept out of the scores and tests", ""]
        rows = [
            [r.model, r.imbalance, r.ratio, r.fold, str(r.error).splitlines()[0][:160]] for r in s.errors.itertuples()
        ]
        lines += [tabulate(rows, headers=["model", "strategy", "ratio", "fold", "error"], tablefmt="github"), ""]
    return lines


def _render_figures(s: Section) -> list[str]:
    names = {
        "roc_pr": "ROC and precision-recall curves of the top models (pooled out-of-fold probabilities)",
        "confusion": "confusion matrices of the top models (pooled out-of-fold predictions)",
        "training": "training curves of the deep models (fold 0; loss and accuracy, training and inner validation)",
    }
    lines = []
    for key, text in names.items():
        if key in s.figures:
            lines += [f"**Figure**: {text}.", "", f"![{key}]({s.figures[key]})", ""]
    return lines


def _render_comparisons(s: Section) -> list[str]:
    lines = []
    label = METRIC_LABELS.get(s.primary, s.primary)
    c = s.classical_vs_deep
    if c:
        lines += [
            "### Best classical vs best deep model",
            "",
            f"{c['classical'][0]} / {c['classical'][1]} ({_fmt(c.get('mean_a'))}) vs {c['deep'][0]} / {c['deep'][1]} "
            f"({_fmt(c.get('mean_b'))}): difference {_fmt(c.get('diff'))} {label}; corrected resampled t-test "
            f"p = {_p(c.get('t_p'))}; Bayesian correlated t-test P(classical better) = {_fmt(c.get('p_a_better'), 2)}, "
            f"P(equivalent within ±{ROPE}) = {_fmt(c.get('p_rope'), 2)}, "
            f"P(deep better) = {_fmt(c.get('p_b_better'), 2)}.",
            "",
        ]
    v = s.imagenet_vs_scratch
    if v is not None and len(v):
        lines += [
            f"### What ImageNet brings — the same network from ImageNet weights vs from random weights, {label}",
            "",
            "`_scratch`: every layer trained from random initialisation; without suffix: frozen ImageNet backbone "
            "and a trained head; `_ft`: the head, then the top layers fine-tuned. Same folds, paired.",
            "",
            tabulate(
                [
                    [r.pretrained, r.scratch, r.strategy, _fmt(r.mean_a), _fmt(r.mean_b), f"{r.diff:+.3f}",
                     _p(r.t_p), _fmt(r.p_a_better, 2), _fmt(r.p_rope, 2), _fmt(r.p_b_better, 2)]
                    for r in v.itertuples()
                ],
                headers=["ImageNet", "random init", "strategy", "ImageNet", "random", "Δ", "t-test p",
                         "P(ImageNet better)", "P(equivalent)", "P(random better)"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    v = s.strategy_vs_none
    if v is not None and len(v):
        lines += [f"### Each imbalance strategy vs none — {label}, paired over folds", ""]
        rows = [
            [
                r.model,
                r.strategy,
                _fmt(r.mean_a),
                _fmt(r.mean_b),
                f"{r.diff:+.3f}",
                _p(r.t_p),
                _fmt(r.p_a_better, 2),
                _fmt(r.p_rope, 2),
            ]
            for r in v.itertuples()
        ]
        lines += [
            tabulate(
                rows,
                headers=[
                    "model",
                    "strategy",
                    "strategy",
                    "none",
                    "Δ",
                    "t-test p",
                    "P(strategy better)",
                    "P(equivalent)",
                ],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    return lines


def _render_importance(importance: dict[str, pd.DataFrame], top: int = 10) -> list[str]:
    lines = [
        "### Which cell features drive the classical models",
        "",
        "Permutation importance: mean drop of balanced accuracy on the test fold when a feature is shuffled "
        "(± std over folds); native: XGBoost gain (mean gain of the splits on the feature) or forest impurity "
        "decrease, normalised to sum 1 per fold (± std over folds). Family totals sum the positive permutation "
        "importances (native totals in brackets); *best per family* names each family's top feature.",
        "",
    ]
    for name, df in importance.items():
        fam = df.perm_mean.clip(lower=0).groupby(df.family).sum().sort_values(ascending=False)
        nat = df.native_mean.groupby(df.family).sum() if df.native_mean.notna().any() else None
        lines += [
            f"**{name}** — by family: "
            + ", ".join(f"{k} {v:.3f}" + (f" [{nat[k]:.3f}]" if nat is not None else "") for k, v in fam.items()),
            "",
            "Best per family: "
            + ", ".join(f"{fm} `{g.index[0]}` ({g.perm_mean.iloc[0]:.3f})" for fm, g in df.groupby("family")),
            "",
        ]
        rows = [
            [i + 1, feat, r.family, _pm(r.perm_mean, r.perm_std), _pm(r.native_mean, r.get("native_std"))]
            for i, (feat, r) in enumerate(df.head(top).iterrows())
        ]
        lines += [
            tabulate(
                rows,
                headers=["#", "feature", "family", "permutation", "native"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    return lines


def _render_across(board: Leaderboard) -> list[str]:
    lines = ["## Across data sets", ""]
    f = board.friedman
    if f is None:
        return []
    if f.refused:
        lines += [f"Friedman/Nemenyi not computed: {f.reason}", ""]
    else:
        lines += [
            f"Friedman test over {f.n_blocks} independent (data set × extraction) blocks and {f.n_models} "
            f"model × strategy rows: χ² = {f.statistic:.2f}, p = {_p(f.p_value)}; Nemenyi critical difference "
            f"CD = {f.cd:.2f} at α = {f.alpha}.",
            "",
        ]
        ranks = f.avg_ranks.sort_values()
        lines += [
            tabulate(
                [[i + 1, k, f"{v:.2f}"] for i, (k, v) in enumerate(ranks.items())],
                headers=["#", "model / strategy", "average rank"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
        if "cd" in board.figures:
            lines += [f"![critical difference diagram]({board.figures['cd']})", ""]
    for ds, df in board.extraction_pairs:
        lines += [f"### {ds}: manual vs segmentation extraction", ""]
        cols = [c for c in df.columns if c.endswith("_manual") or c.endswith("_segmentation")]
        rows = [
            [r["model"], r["strategy"], _fmt(r[cols[0]]), _fmt(r[cols[1]]), f"{r['diff']:+.3f}"]
            for r in df.to_dict("records")
        ]
        lines += [
            tabulate(
                rows,
                headers=["model", "strategy", "manual", "segmentation", "Δ"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    return lines


# -- figures and file --------------------------------------------------------------------------------------


def draw_figures(board: Leaderboard, out_dir: Path) -> None:
    """Draw every figure into ``out_dir/figures`` and record relative links on the board."""
    from cellbench.report import figures

    fig_dir = Path(out_dir) / "figures"
    for s in board.sections:
        from cellbench.tools.explain import find_galleries

        s.explanations = find_galleries(fig_dir, s.slug)
        if s.stats is None or s.table.empty:
            continue
        top = [(m, st) for m, st in zip(s.table.model, s.table.strategy) if (m, st) in s.stats.pooled][:TOP_CURVES]
        classes = s.info.get("classes", [])
        pos = classes.index(s.info["positive_class"]) if s.info.get("positive_class") in classes else None
        if pos is not None and len(classes) == 2 and top:
            curves = {
                f"{m} / {st}": (s.stats.pooled[(m, st)].y_true == pos, s.stats.pooled[(m, st)].proba[:, pos])
                for m, st in top
            }
            s.figures["roc_pr"] = _rel(figures.roc_pr_curves(curves, fig_dir / f"{s.slug}-roc_pr.png"), out_dir)
        if top:
            from sklearn.metrics import confusion_matrix

            mats = {
                f"{m} / {st}": (
                    confusion_matrix(
                        s.stats.pooled[(m, st)].y_true, s.stats.pooled[(m, st)].y_pred, labels=list(range(len(classes)))
                    ),
                    classes,
                )
                for m, st in top[:4]
            }
            s.figures["confusion"] = _rel(
                figures.confusion_matrices(mats, fig_dir / f"{s.slug}-confusion.png"), out_dir
            )
        if s.histories:
            s.figures["training"] = _rel(
                figures.training_curves(s.histories, fig_dir / f"{s.slug}-training.png"), out_dir
            )
        if s.sweep_long is not None and len(s.sweep_long):
            s.figures["sweep"] = _rel(
                figures.imbalance_sweep_plot(s.sweep_long, s.primary, fig_dir / f"{s.slug}-sweep.png"), out_dir
            )
    f = board.friedman
    if f is not None and not f.refused:
        board.figures["cd"] = _rel(
            figures.cd_diagram(f.avg_ranks, f.cd, fig_dir / "cd_diagram.png", nemenyi_p=f.nemenyi_p, alpha=f.alpha),
            out_dir,
        )
    from cellbench.report.extraction import draw_extraction_figures

    draw_extraction_figures(board.extraction, Path(out_dir))  # manual vs segmented outlines on a few fields


def _rel(path: Path, base: Path) -> str:
    return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()


def write_leaderboard(store, *, out_dir: Path) -> Path:
    """Write ``LEADERBOARD.md`` and its figures into ``out_dir`` from the store; return the markdown's path."""
    board = summarise(store)
    draw_figures(board, Path(out_dir))
    text = render_markdown(board)
    path = Path(out_dir) / "LEADERBOARD.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
