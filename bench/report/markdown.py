"""The leaderboard as markdown: renderers take the records of :mod:`cellbench.report.summary` and return text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cellbench
from cellbench.report.answer import ZERO, render_answer
from cellbench.report.external import render_external
from cellbench.report.extraction import render_extraction
from cellbench.report.format import mean_std, num, p_value, signed, table
from cellbench.report.galleries import render_galleries
from cellbench.report.summary import Leaderboard, Section
from cellbench.report.verdict import render_verdict
from cellbench.stats.comparisons import ALPHA, ROPE
from cellbench.stats.metrics import METRIC_LABELS

TOP_RANKS = 12  # rows of the across-data-sets ranking (and of its CD diagram) shown; the export keeps every row
SHOWN = ("balanced_accuracy", "f1_weighted", "roc_auc", "pr_auc", "mcc", "recall", "specificity", "brier")


def render_markdown(board: Leaderboard, *, timings: bool = True) -> str:
    """The leaderboard as markdown text; ``timings=False`` leaves out wall times (for reproduction checks)."""
    out = [f"# Leaderboard — suite `{board.suite}`", ""]
    out += render_answer(board)
    out += _render_manifest(board.manifest, board.runs, timings=timings, sections=board.sections)
    for s in board.sections:
        out += _render_section(s, timings=timings)
    out += _render_across(board)
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
        f"row is better by more than the ROPE of {ROPE}. *boot p*: cluster bootstrap (1000 resamples) of the "
        "paired difference in the primary metric between the best row and the row, on the out-of-fold predictions "
        "both pooled, two-sided; whole patients are resampled where patient ids are known (*patients resampled*: "
        "cells of one patient are not independent), single samples otherwise (*samples resampled (patients "
        "unknown)*). *Wilcoxon p*: Wilcoxon signed-rank vs the best, Holm corrected, reported only with at least "
        "6 folds. Friedman/Nemenyi is used only across independent data sets, never with CV folds as blocks "
        "(Demšar 2006).",
        "",
    ]
    return "\n".join(out)


def shown_path(path: str) -> str:
    """``path`` relative to the repository (the folder holding the ``cellbench`` package) where it lies inside,
    else its file name alone: no machine's absolute path in a report."""
    if not path:
        return ""
    p = Path(path)
    root = Path(cellbench.__file__).resolve().parent.parent
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root).as_posix()
        except ValueError:
            return p.name
    return p.as_posix()


def run_manifests(runs: pd.DataFrame | None, last: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every run's manifest, oldest first (``[last]`` where the runs table is absent)."""
    if runs is None or not len(runs) or "manifest" not in runs:
        return [last]
    return [json.loads(m) for m in runs.manifest]


def _render_manifest(
    m: Mapping[str, Any], runs: pd.DataFrame | None, *, timings: bool = True, sections: tuple[Section, ...] = ()
) -> list[str]:
    git = m.get("git", {})
    pk = m.get("packages", {})
    manifests = run_manifests(runs, m)
    fingerprints: dict[str, str] = {}
    for each in manifests:  # a leaderboard merging several runs: every data set any of them ran
        fingerprints.update(each.get("datasets") or {})
    texts = [", ".join(f"{k}={v}" for k, v in sorted((e.get("narrowing") or {}).items())) or "—" for e in manifests]
    choices = texts[0] if len(set(texts)) == 1 else "; ".join(f"run {i}: {x}" for i, x in enumerate(texts, 1))
    lines = ["## Run manifest", ""]
    rows = [
        ("suite file", f"`{shown_path(m.get('suite_file', ''))}` (sha256 {str(m.get('suite_sha256', ''))[:12]})"),
        ("seed", m.get("seed")),
        ("command-line choices", choices),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
        ("python", f"{m.get('python', '')} on {m.get('platform', '')}"),
        ("data fingerprints", ", ".join(f"{k}: `{v}`" for k, v in sorted(fingerprints.items()))),
        ("packages", ", ".join(f"{k} {v}" for k, v in sorted(pk.items()))),
    ]
    kinds = [f"{s.dataset}/{s.extraction}: {s.record.kind}; {', '.join(s.record.families)}"
             for s in sections if s.record.families]  # fmt: skip
    if kinds:
        rows.append(("data kind; feature families", " — ".join(kinds)))
    if stain := _stain_handling(m, sections):
        rows.append(("stain handling", stain))
    if timings and runs is not None and len(runs):
        wall = (runs.finished.fillna(runs.started) - runs.started).sum()
        rows.append(("runs", f"{len(runs)} ({', '.join(runs.status.tolist())}); total driver wall time {wall:.0f} s"))
    lines += table(rows, ["", ""], numparse=True)
    return lines


def _stain_handling(m: Mapping[str, Any], sections: tuple[Section, ...]) -> str:
    """Each data set's stain normalisation and the deep models' HED augmentation; empty where there was none."""
    stains = [f"{s.dataset}/{s.extraction}: {s.record.stain}" for s in sections if s.record.stain]
    hed = sorted(f"{k} ±{v}" for k, v in (m.get("stain") or {}).get("hed_augment", {}).items())
    if not stains and not hed:
        return ""
    augment = f"; HED colour augmentation of deep training batches: {', '.join(hed)}" if hed else ""
    return (" — ".join(stains) or "no normalisation") + augment


def _render_section(s: Section, *, timings: bool = True) -> list[str]:
    info = s.record
    label = METRIC_LABELS.get(s.primary, s.primary)
    counts = ", ".join(f"{k} {v}" for k, v in info.class_counts.items())
    groups = f"{info.n_groups} {info.group_kind or 'group'}s" if info.n_groups else "no patient ids known"
    lines = [
        f"## {s.dataset} — extraction `{s.extraction}`",
        "",
        f"{info.title}{' (SYNTHETIC data)' if info.synthetic else ''}. "
        f"{info.n_samples} samples ({counts}; positive class: {info.positive_class}), {groups}, "
        f"{info.n_features} handcrafted features.",
        "",
        f"**CV**: {info.cv}.  **Primary metric**: {s.primary}.",
        "",
    ]
    if info.stain:
        lines += [f"**Stain**: {info.stain}.", ""]
    notes = [*info.notes, *info.plan_notes, *s.notes, *(s.stats.notes if s.stats else ())]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    if s.table.empty:
        return [*lines, "No finished jobs yet.", ""]
    if s.verdict is not None:
        lines += render_verdict(s.verdict)
    st = s.stats.rows.set_index(["model", "strategy"]) if s.stats is not None and len(s.stats.rows) else None
    head = ["#", "model", "strategy", f"{label} (primary)"]
    if st is not None:
        unit = "patients resampled" if s.stats.clustered else "samples resampled (patients unknown)"
        head += ["95% CI", "t-test p", "P(best better)", f"boot p (Δ {label}, {unit})"]
    head += [METRIC_LABELS[m] for m in SHOWN if m != s.primary] + (["fit s"] if timings else []) + ["folds"]
    rows = []
    for r in s.table.to_dict("records"):
        flag = f" ⚠ not converged {r['not_converged']}/{r['folds_ok']}" if r.get("not_converged") else ""
        model = r["model"] + flag
        row = [r["rank"], model, r["strategy"], mean_std(r[f"{s.primary}_mean"], r[f"{s.primary}_std"])]
        if st is not None:
            x = st.loc[(r["model"], r["strategy"])] if (r["model"], r["strategy"]) in st.index else {}
            best = s.stats.best == (r["model"], r["strategy"])
            ci = "—"
            if "ci_low" in x and np.isfinite(x.get("ci_low", np.nan)):
                ci = f"{num(x.get('ci_low'))}–{num(x.get('ci_high'))}"
            row += [
                ci,
                "best" if best else p_value(x.get("t_p")),
                "" if best else num(x.get("bayes_best"), 2),
                "" if best else p_value(x.get("boot_p")),
            ]
        row += [num(r[f"{m}_mean"]) for m in SHOWN if m != s.primary]
        row += ([num(r["fit_s"], 2)] if timings else []) + [f"{r['folds_ok']}/{r['folds']}"]
        rows.append(row)
    rows, merged = collapse_identical(rows, skip=(len(head) - 2,) if timings else ())
    lines += table(rows, head)
    if merged:
        lines += [
            f"{merged} row(s) folded into the row above them: the same model under strategies that gave identical "
            "scores in every column shown (strategies joined by `=`; the export keeps every row).",
            "",
        ]
    if s.stats is not None and "wilcoxon_p" in s.stats.rows and s.stats.rows.wilcoxon_p.notna().any():
        w = s.stats.rows.dropna(subset=["wilcoxon_p"])
        lines += [
            "Wilcoxon signed-rank vs the best (Holm-corrected): "
            + ", ".join(f"{m} / {st_}: {p_value(p)}" for m, st_, p in zip(w.model, w.strategy, w.wilcoxon_p)),
            "",
        ]
    if s.external is not None:
        lines += render_external(s.external, shown=SHOWN, n_dev=info.n_samples)
    lines += _render_figures(s)
    lines += _render_comparisons(s)
    if s.sweep is not None and len(s.sweep):
        lines += [
            f"### Imbalance sweep — {label} by training class ratio (positive:rest)",
            "",
            "The training folds were subsampled to each ratio; test folds keep the natural ratio.",
            "",
            *table(s.sweep.values.tolist(), list(s.sweep.columns)),
        ]
        if "sweep" in s.figures:
            lines += [f"![imbalance sweep]({s.figures['sweep']})", ""]
    if s.importance:
        lines += _render_importance(s.importance)
    if s.explanations:
        lines += render_galleries(s.explanations, s.importance)
    if s.warnings is not None:
        lines += [
            f"### Warnings raised by finished jobs ({len(s.warnings)} distinct)",
            "",
            "Stored with each job (`extra.warnings` in the store); the jobs finished and are scored.",
            "",
            *table(
                [[r.warning[:200].replace("|", "\\|"), r.jobs, r.models] for r in s.warnings.itertuples()],
                ["warning", "jobs", "models"],
            ),
        ]
    if len(s.errors):
        lines += [f"### Failed jobs ({len(s.errors)}) — kept out of the scores and tests", ""]
        rows = [
            [r.model, r.imbalance, r.ratio, r.fold, str(r.error).splitlines()[0][:160]] for r in s.errors.itertuples()
        ]
        lines += table(rows, ["model", "strategy", "ratio", "fold", "error"], numparse=True)
    return lines


def collapse_identical(rows: list[list[Any]], *, skip: tuple[int, ...] = ()) -> tuple[list[list[Any]], int]:
    """Adjacent ranked rows ``[rank, model, strategy, ...]`` of one model whose other cells (but those at ``skip``)
    are equal become one row: ranks ``4–6``, strategies ``none = class_weight``. Returns the rows and how many were
    folded."""
    out: list[list[Any]] = []
    ranks: list[list[Any]] = []
    folded = 0

    def same(a: list[Any], b: list[Any]) -> bool:
        return a[1] == b[1] and all(x == y for i, (x, y) in enumerate(zip(a, b)) if i > 2 and i not in skip)

    for row in rows:
        if out and same(out[-1], row):
            out[-1][2] = f"{out[-1][2]} = {row[2]}"
            ranks[-1].append(row[0])
            folded += 1
        else:
            out.append(list(row))
            ranks.append([row[0]])
    for row, rk in zip(out, ranks):
        row[0] = rk[0] if len(rk) == 1 else f"{rk[0]}–{rk[-1]}"
    return out, folded


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
    v = s.imagenet_vs_scratch
    if v is not None and len(v):
        lines += [
            f"### What ImageNet brings — the same network from ImageNet weights vs from random weights, {label}",
            "",
            "`_scratch`: every layer trained from random initialisation; without suffix: frozen ImageNet backbone "
            "and a trained head; `_ft`: the head, then the top layers fine-tuned. Same folds, paired.",
            "",
            *table(
                [
                    [r.pretrained, r.scratch, r.strategy, num(r.mean_a), num(r.mean_b), signed(r.diff),
                     p_value(r.t_p), num(r.p_a_better, 2), num(r.p_rope, 2), num(r.p_b_better, 2)]
                    for r in v.itertuples()
                ],
                ["ImageNet", "random init", "strategy", "ImageNet", "random", "Δ", "t-test p", "P(ImageNet better)",
                 "P(equivalent)", "P(random better)"],
            ),
        ]  # fmt: skip
    v = s.strategy_vs_none
    if v is not None and len(v):
        lines += [f"### Each imbalance strategy vs none — {label}, paired over folds", ""]
        zero = v["diff"].abs() < ZERO
        rows = [
            [r.model, r.strategy, num(r.mean_a), num(r.mean_b), signed(r.diff), p_value(r.t_p), num(r.p_a_better, 2),
             num(r.p_rope, 2)]
            for r in v[~zero].itertuples()
        ]  # fmt: skip
        if rows:
            lines += table(
                rows,
                ["model", "strategy", f"{label} with strategy", f"{label} with none", "Δ", "t-test p",
                 "P(strategy better)", "P(equivalent)"],
            )  # fmt: skip
        if zero.any():
            same = v[zero].groupby("model", sort=True).strategy.agg(lambda x: ", ".join(sorted(x)))
            lines += [
                f"Δ = 0 (|Δ| < {ZERO}, folded; the export keeps these rows): "
                + "; ".join(f"{m} — {st}" for m, st in same.items()),
                "",
            ]
    return lines


def _render_importance(importance: Mapping[str, pd.DataFrame], top: int = 10) -> list[str]:
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
            [i + 1, feat, r.family, mean_std(r.perm_mean, r.perm_std), mean_std(r.native_mean, r.get("native_std"))]
            for i, (feat, r) in enumerate(df.head(top).iterrows())
        ]
        lines += table(rows, ["#", "feature", "family", "permutation", "native"])
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
            f"model × strategy rows: χ² = {f.statistic:.2f}, p = {p_value(f.p_value)}; Nemenyi critical difference "
            f"CD = {f.cd:.2f} at α = {f.alpha}.",
            "",
        ]
        ranks = f.avg_ranks.sort_values(kind="stable")
        lines += table([[i + 1, k, f"{v:.2f}"] for i, (k, v) in enumerate(ranks.head(TOP_RANKS).items())],
                       ["#", "model / strategy", "average rank"])  # fmt: skip
        if len(ranks) > TOP_RANKS:
            lines += [
                f"The {TOP_RANKS} best-ranked of {len(ranks)} rows (here and in the diagram below; its CD and bars "
                "come from the test of every row); the export keeps the full ranking.",
                "",
            ]
        if "cd" in board.figures:
            lines += [f"![critical difference diagram]({board.figures['cd']})", ""]
    for ds, df in board.extraction_pairs:
        lines += [f"### {ds}: manual vs segmentation extraction", ""]
        cols = [c for c in df.columns if c.endswith("_manual") or c.endswith("_segmentation")]
        rows = [
            [r["model"], r["strategy"], num(r[cols[0]]), num(r[cols[1]]), signed(r["diff"])]
            for r in df.to_dict("records")
        ]
        lines += table(rows, ["model", "strategy", "manual", "segmentation", "Δ"])
    return lines
