"""Results out: the store's jobs × metrics, per-sample predictions (with patient ids) and folds, and the
leaderboard's tables, as CSV, Parquet, JSON, LaTeX or one self-contained HTML report.

:func:`store_tables` and :func:`leaderboard_tables` build the tables (full: nothing folded or trimmed);
:func:`export_results` writes them in one format, every file checked to lie inside the output folder
(:func:`cellbench.core.paths.inside`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellbench.core.errors import ConfigError
from cellbench.core.files import atomic_path, write_text
from cellbench.core.paths import inside
from cellbench.core.values import as_float
from cellbench.report.answer import answer_frame, answers
from cellbench.report.html import render_html
from cellbench.report.leaderboard import draw_figures
from cellbench.report.summary import Leaderboard
from cellbench.run.store import Store
from cellbench.stats.metrics import METRICS
from cellbench.stats.nested import arm_of

FORMATS = ("csv", "parquet", "json", "latex", "html")
# the leaderboard tables a paper takes, with the columns it shows (LaTeX); the other formats keep every column
LATEX_COLUMNS = {
    "answer": ["dataset", "extraction", "arm", "mean", "chosen", "diff_vs_handcrafted", "ci_low", "ci_high",
               "bootstrap_p", "best_strategy"],
    "ranking": ["rank", "model", "strategy", "arm"],
    "verdict": ["a", "b", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "boot_p", "t_p", "folds"],
    "strategy_vs_none": ["model", "strategy", "mean_a", "mean_b", "diff", "t_p", "p_a_better", "p_rope"],
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Export:
    """What :func:`export_results` wrote: the format, the folder and its files (relative to the folder)."""

    format: str
    folder: Path
    files: tuple[str, ...]


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`.

    Raises
    ------
    ConfigError
        Naming the format and the allowed ones.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def store_tables(store: Store) -> dict[str, pd.DataFrame]:
    """``jobs`` (one row per job, one column per metric and timing), ``predictions`` (one row per job × sample,
    with its data set, model, strategy, fold and patient) and ``folds`` (fold membership with patients)."""
    jobs = store.jobs()
    samples = pd.read_sql_query("SELECT dataset, extraction, sample_id, grp AS patient, label FROM samples", store.conn)
    coords = ["key", "run_id", "suite", "dataset", "extraction", "model", "kind", "imbalance", "ratio", "fold",
              "seed", "status", "error", "folds_key"]  # fmt: skip
    flat = jobs[coords].rename(columns={"imbalance": "strategy"}).copy()
    flat.insert(6, "arm", [arm_of(m, k) for m, k in zip(jobs.model, jobs.kind)])
    stored = sorted({k for x in jobs.metrics for k in x} - set(METRICS))
    for m in [*METRICS, *stored]:  # scalars as numbers; anything else (the confusion matrix) as JSON text
        values = [x.get(m) for x in jobs.metrics]
        if all(v is None or isinstance(v, int | float) for v in values):
            flat[m] = [as_float(v) for v in values]
        else:
            flat[m] = [None if v is None else json.dumps(v) for v in values]
    timing_names = sorted({k for t in jobs.timings for k in t})
    for k in timing_names:
        flat[f"time_{k}"] = [as_float(t.get(k)) for t in jobs.timings]
    preds = store.predictions()
    preds["set"] = np.where(preds.job_key.str.endswith("@external"), "external", "cv")
    preds["key"] = preds.job_key.str.removesuffix("@external")
    width = max((len(p) for p in preds.proba), default=0)
    proba = pd.DataFrame(preds.proba.tolist(), columns=[f"proba_{i}" for i in range(width)], index=preds.index)
    preds = pd.concat([preds.drop(columns="proba"), proba], axis=1)
    info = flat[["key", "dataset", "extraction", "model", "strategy", "ratio", "fold", "seed"]]
    preds = preds.merge(info, on="key", how="left").merge(
        samples, on=["dataset", "extraction", "sample_id"], how="left"
    )
    first = ["job_key", "set", "dataset", "extraction", "model", "strategy", "ratio", "fold", "seed", "sample_id",
             "patient", "label", "y_true", "y_pred"]  # fmt: skip
    preds = preds[first + [c for c in preds.columns if c.startswith("proba_")]]
    folds = pd.read_sql_query(
        "SELECT f.folds_key, s.dataset, s.extraction, s.scheme, f.fold, f.sample_id FROM folds f "
        "JOIN fold_sets s USING (folds_key) ORDER BY f.folds_key, f.fold, f.sample_id",
        store.conn,
    ).merge(samples, on=["dataset", "extraction", "sample_id"], how="left")
    return {"jobs": flat.reset_index(drop=True), "predictions": preds.reset_index(drop=True), "folds": folds}


def leaderboard_tables(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """The leaderboard's tables in full, named ``answer``, ``<slug>-ranking``, ``<slug>-verdict``,
    ``<slug>-champions``, ``<slug>-like_for_like``, ``<slug>-strategy_vs_none``, ``<slug>-imagenet_vs_scratch``,
    ``<slug>-sweep``, ``<slug>-tests`` and ``across-ranks``, where present."""
    out = {"answer": answer_frame(answers(board))}
    for s in board.sections:
        tables: dict[str, pd.DataFrame | None] = {"ranking": s.table}
        if s.verdict is not None:
            v = s.verdict
            tables["verdict"] = pd.DataFrame([asdict(c) | {"verdict": c.wording()} for c in v.comparisons])
            tables["champions"] = pd.concat(
                [c.folds.assign(arm=c.arm) for c in v.champions], ignore_index=True
            ) if v.champions else None  # fmt: skip
            tables["like_for_like"] = v.like_for_like
        if s.stats is not None:
            tables["tests"] = s.stats.rows
        if s.importance:
            tables["importance"] = pd.concat(
                [df.rename_axis("feature").reset_index().assign(model_strategy=k) for k, df in s.importance.items()],
                ignore_index=True,
            )
        tables |= {"strategy_vs_none": s.strategy_vs_none, "imagenet_vs_scratch": s.imagenet_vs_scratch,
                   "sweep": s.sweep_long}  # fmt: skip
        for name, df in tables.items():
            if df is not None and len(df):
                out[f"{s.slug}-{name}"] = df.reset_index(drop=True)
    f = board.friedman
    if f is not None and not f.refused:
        ranks = f.avg_ranks.sort_values(kind="stable")
        out["across-ranks"] = pd.DataFrame({"model_strategy": ranks.index, "average_rank": ranks.to_numpy()})
    return out


def export_results(store: Store, board: Leaderboard, *, fmt: str, out: Path) -> Export:
    """Write the store's and the leaderboard's tables into ``out`` in format ``fmt`` (see :data:`FORMATS`).

    ``csv``/``parquet``/``json``: one file per table (store tables and leaderboard tables); ``latex``: the
    leaderboard's tables as ``.tex`` (booktabs) plus the figures; ``html``: ``report.html``, figures embedded.

    Raises
    ------
    ConfigError
        For an unknown format, or a file name that would leave ``out``.
    """
    check_format(fmt)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt == "html":
        drawn = draw_figures(board, out)
        written.append(write_text(inside(out, "report.html", what="export file"), render_html(drawn, base=out)))
    elif fmt == "latex":
        drawn = draw_figures(board, out)
        for name, df in leaderboard_tables(drawn).items():
            written.append(write_text(inside(out, f"{name}.tex", what="export file"), to_latex(name, df)))
        written += sorted((out / "figures").glob("*.png"))
    else:
        tables = {**store_tables(store), **leaderboard_tables(board)}
        for name, df in tables.items():
            written.append(_write_table(df, inside(out, f"{name}.{fmt}", what="export file"), fmt=fmt))
    return Export(format=fmt, folder=out, files=tuple(sorted(p.relative_to(out).as_posix() for p in written)))


def _write_table(df: pd.DataFrame, path: Path, *, fmt: str) -> Path:
    df = _plain(df)
    if fmt == "csv":
        return write_text(path, df.to_csv(index=False))
    if fmt == "json":
        return write_text(path, df.to_json(orient="records", indent=1, double_precision=15) + "\n")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Cells every format can hold: objects that are not text, numbers or booleans (sets, tuples) as text."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: v if v is None or isinstance(v, str | bool | int | float) else str(v))
    return out


def to_latex(name: str, df: pd.DataFrame, *, columns: Mapping[str, list[str]] = LATEX_COLUMNS) -> str:
    """One table as LaTeX (booktabs rules, numbers to 3 decimals, text escaped), the paper's columns only."""
    kind = name.split("-")[-1]
    keep = columns.get(kind)
    if keep is not None:
        if kind == "ranking":
            keep = keep + [c for c in df.columns if c.endswith("_mean")]
        df = df[[c for c in keep if c in df.columns]]
    df = _plain(df)
    caption = name.replace("_", " ").replace("-", " — ")
    styler = df.style.hide(axis="index").format(precision=3, na_rep="--", escape="latex")
    styler = styler.format_index(escape="latex", axis="columns")
    return styler.to_latex(hrules=True, caption=caption, label=f"tab:{name}", position="htbp") + "\n"
