"""The leaderboard: summarised from the store alone (no retraining), rendered as markdown.

``summarise`` returns data; ``render_markdown`` turns it into text; ``write_leaderboard`` writes the file.
The output depends only on the store's content, so regenerating it is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS

SHOWN = ("balanced_accuracy", "f1_weighted", "roc_auc", "pr_auc", "mcc", "recall", "specificity", "brier")


@dataclass(kw_only=True)
class Section:
    """One (data set, extraction): its ranked table, sweep table and notes."""

    dataset: str
    extraction: str
    info: dict[str, Any]
    primary: str
    table: pd.DataFrame
    sweep: pd.DataFrame | None
    errors: pd.DataFrame
    folds: int
    importance: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(kw_only=True)
class Leaderboard:
    suite: str
    manifest: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    runs: pd.DataFrame | None = None


def summarise(store) -> Leaderboard:
    """Aggregate stored job results per (data set, extraction, model, strategy, ratio) over folds."""
    runs = store.runs()
    manifest = json.loads(runs["manifest"].iloc[-1]) if len(runs) else {}
    jobs = store.jobs()
    data_sets = store.data_sets()
    board = Leaderboard(suite=manifest.get("suite", ""), manifest=manifest, runs=runs)
    for (dataset, extraction), info in sorted(data_sets.items()):
        sub = jobs[(jobs.dataset == dataset) & (jobs.extraction == extraction)]
        primary = info.get("primary_metric", "balanced_accuracy")
        ok = sub[sub.status == "ok"]
        errors = sub[sub.status != "ok"][["model", "imbalance", "ratio", "fold", "error"]].sort_values(
            ["model", "imbalance", "ratio", "fold"]
        )
        natural = ok[ok.ratio == "natural"]
        table = _aggregate(natural, sub[sub.ratio == "natural"], primary)
        swept = ok[ok.ratio != "natural"]
        sweep = None
        if len(swept):
            both = pd.concat(
                [
                    natural[
                        natural.set_index(["model", "imbalance"]).index.isin(
                            swept.set_index(["model", "imbalance"]).index
                        )
                    ],
                    swept,
                ]
            )
            sweep = _sweep_table(both, primary)
        n_folds = int(sub.fold.max() + 1) if len(sub) else 0
        board.sections.append(
            Section(
                dataset=dataset,
                extraction=extraction,
                info=info,
                primary=primary,
                table=table,
                sweep=sweep,
                errors=errors,
                folds=n_folds,
            )
        )
    return board


def _aggregate(ok: pd.DataFrame, all_rows: pd.DataFrame, primary: str) -> pd.DataFrame:
    rows = []
    for (model, strategy), grp in all_rows.groupby(["model", "imbalance"], sort=True):
        good = ok[(ok.model == model) & (ok.imbalance == strategy)]
        row: dict[str, Any] = {
            "model": model,
            "strategy": strategy,
            "kind": grp.kind.iloc[0],
            "folds_ok": len(good),
            "folds": len(grp),
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


def _importances(ok: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per model (and strategy): permutation and native importance per feature, mean and std over folds."""
    from bench.importance import feature_family

    out = {}
    with_imp = ok[ok.extra.map(lambda e: "importance" in e)]
    for (model, strategy), grp in with_imp.groupby(["model", "imbalance"], sort=True):
        perm = pd.DataFrame([e["importance"]["permutation"] for e in grp.extra])
        native = [e["importance"]["native"] for e in grp.extra if e["importance"].get("native")]
        df = pd.DataFrame({"perm_mean": perm.mean(), "perm_std": perm.std(ddof=1), "folds": perm.notna().sum()})
        df["native_mean"] = pd.DataFrame(native).mean() if native else np.nan
        df["family"] = [feature_family(n) for n in df.index]
        out[f"{model} / {strategy}"] = df.sort_values(["perm_mean", "native_mean"], ascending=False)
    return out


def _sweep_table(ok: pd.DataFrame, primary: str) -> pd.DataFrame:
    def ratio_key(r: str) -> float:
        return 0.0 if r == "natural" else float(r.split(":")[1]) / float(r.split(":")[0])

    ratios = sorted(ok.ratio.unique(), key=ratio_key)
    rows = []
    for (model, strategy), grp in ok.groupby(["model", "imbalance"], sort=True):
        row = {"model": model, "strategy": strategy}
        for r in ratios:
            vals = np.array([_num(m.get(primary)) for m in grp[grp.ratio == r].metrics], dtype=float)
            row[r] = _pm(np.nanmean(vals), np.nanstd(vals, ddof=1) if len(vals) > 1 else np.nan) if len(vals) else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _num(x) -> float:
    return np.nan if x is None else float(x)


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def render_markdown(board: Leaderboard, *, timings: bool = True) -> str:
    """The leaderboard as markdown text; ``timings=False`` leaves out wall times (for reproduction checks)."""
    m = board.manifest
    out = [f"# Leaderboard — suite `{board.suite}`", ""]
    out += _render_manifest(m, board.runs if timings else None)
    for s in board.sections:
        out += _render_section(s, timings=timings)
    out += [
        "---",
        "Scores are means ± standard deviations over the test folds; every model of a data set and extraction ran "
        "on the same folds (paired). Resampling, scaling and threshold tuning happened inside training folds only. "
        "Fit time is the mean wall time of one fold's training. Regenerate with "
        f"`python -m bench leaderboard --suite {board.suite}`.",
        "",
    ]
    return "\n".join(out)


def _render_manifest(m: dict[str, Any], runs: pd.DataFrame | None) -> list[str]:
    git = m.get("git", {})
    pk = m.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(pk.items()))
    lines = ["## Run manifest", ""]
    rows = [
        ("suite file", f"`{m.get('suite_file', '')}` (sha256 {str(m.get('suite_sha256', ''))[:12]})"),
        ("seed", m.get("seed")),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
        ("python", f"{m.get('python', '')} on {m.get('platform', '')}"),
        ("data fingerprints", ", ".join(f"{k}: `{v}`" for k, v in sorted(m.get("datasets", {}).items()))),
        ("packages", versions),
    ]
    if runs is not None and len(runs):
        wall = (runs.finished.fillna(runs.started) - runs.started).sum()
        rows.append(("runs", f"{len(runs)} ({', '.join(runs.status.tolist())}); total driver wall time {wall:.0f} s"))
    lines.append(tabulate(rows, headers=["", ""], tablefmt="github"))
    lines.append("")
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
    for note in [*info.get("notes", []), *info.get("plan_notes", [])]:
        lines.append(f"- {note}")
    if info.get("notes") or info.get("plan_notes"):
        lines.append("")
    if s.table.empty:
        lines += ["No finished jobs yet.", ""]
    else:
        head = ["#", "model", "strategy", f"{label} (primary)"]
        head += [METRIC_LABELS[m] for m in SHOWN if m != s.primary] + (["fit s"] if timings else []) + ["folds"]
        rows = []
        for r in s.table.itertuples(index=False):
            r = r._asdict()
            row = [r["rank"], r["model"], r["strategy"], _pm(r[f"{s.primary}_mean"], r[f"{s.primary}_std"])]
            row += [_fmt(r[f"{m}_mean"]) for m in SHOWN if m != s.primary]
            row += ([_fmt(r["fit_s"], 2)] if timings else []) + [f"{r['folds_ok']}/{r['folds']}"]
            rows.append(row)
        lines += [tabulate(rows, headers=head, tablefmt="github", disable_numparse=True), ""]
    if s.sweep is not None and len(s.sweep):
        lines += [
            f"### Imbalance sweep — {label} by training class ratio (positive:rest)",
            "",
            "The training folds were subsampled to each ratio; test folds keep the natural ratio.",
            "",
            tabulate(s.sweep.values.tolist(), headers=list(s.sweep.columns), tablefmt="github", disable_numparse=True),
            "",
        ]
    if s.importance:
        lines += _render_importance(s.importance)
    if len(s.errors):
        lines += [f"### Failed jobs ({len(s.errors)}) — kept out of the scores", ""]
        rows = [
            [r.model, r.imbalance, r.ratio, r.fold, str(r.error).splitlines()[0][:160]] for r in s.errors.itertuples()
        ]
        lines += [tabulate(rows, headers=["model", "strategy", "ratio", "fold", "error"], tablefmt="github"), ""]
    return lines


def _render_importance(importance: dict[str, pd.DataFrame], top: int = 10) -> list[str]:
    lines = [
        "### Which cell features drive the classical models",
        "",
        "Permutation importance: mean drop of balanced accuracy on the test fold when a feature is shuffled "
        "(± std over folds); native: XGBoost gain or forest impurity decrease, normalised to sum 1. "
        "Family totals sum the positive permutation importances.",
        "",
    ]
    for name, df in importance.items():
        fam = df.perm_mean.clip(lower=0).groupby(df.family).sum().sort_values(ascending=False)
        lines.append(f"**{name}** — by family: " + ", ".join(f"{k} {v:.3f}" for k, v in fam.items()))
        lines.append("")
        rows = [
            [i + 1, feat, r.family, _pm(r.perm_mean, r.perm_std), _fmt(r.native_mean)]
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


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if x is not None and np.isfinite(x) else "—"


def write_leaderboard(store, *, out_dir: Path) -> Path:
    """Write ``LEADERBOARD.md`` into ``out_dir`` from the store; return its path."""
    text = render_markdown(summarise(store))
    path = Path(out_dir) / "LEADERBOARD.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
