"""Report figures as PNG files: deterministic bytes for identical input.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot state, no global
backend switch), under a fixed style and DPI, and saved without the "Software" metadata entry (the only
version- or time-dependent field a PNG gets), atomically: written to a temporary file, then renamed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from cellbench.core.files import write_atomic

DPI = 120
STYLE = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib, so the same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=matplotlib.colormaps["tab10"].colors),
}


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on its own Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and return the path."""
    # bbox_inches="tight" keeps labels that scikit-posthocs places outside the axes
    return write_atomic(
        path,
        lambda fh: fig.savefig(
            fh, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1
        ),
    )


def roc_pr_curves(curves: Mapping[str, tuple[Sequence, Sequence]], path: str | os.PathLike) -> Path:
    """ROC (left) and precision-recall (right) curves of binary scores, with ROC AUC and average precision.

    Parameters
    ----------
    curves : label -> (y_true, score), ``y_true`` binary (1 / True = positive), ``score`` the positive-class
        probability, e.g. pooled out-of-fold predictions of one model.
    """
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10, 4.5)
        roc, pr = fig.subplots(1, 2)
        prevalences = set()
        for label, (y_true, score) in curves.items():
            y, s = np.asarray(y_true).astype(bool), np.asarray(score, dtype=float)
            fpr, tpr, _ = roc_curve(y, s)
            precision, recall, _ = precision_recall_curve(y, s)
            roc.plot(fpr, tpr, label=f"{label} (AUC = {roc_auc_score(y, s):.3f})")
            pr.step(recall, precision, where="post", label=f"{label} (AP = {average_precision_score(y, s):.3f})")
            prevalences.add(round(float(y.mean()), 6))
        roc.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
        if len(prevalences) == 1:
            pr.axhline(prevalences.pop(), color="0.6", linestyle=":", linewidth=1, label="prevalence")
        roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
        pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01))
        roc.legend(loc="lower right")
        pr.legend(loc="lower left")
        return save_png(fig, path)


def confusion_matrices(mats: Mapping[str, tuple[Sequence, Sequence[str]]], path: str | os.PathLike) -> Path:
    """One confusion-matrix panel per label: cells coloured by row share (recall) and annotated with counts.

    Parameters
    ----------
    mats : label -> (matrix, class_names), ``matrix[i][j]`` = samples of true class i predicted as j.
    """
    n = len(mats)
    if not n:
        raise ValueError("no confusion matrices to draw")
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = new_figure(3.6 * ncols, 3.3 * nrows)
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for ax, (label, (matrix, names)) in zip(axes, mats.items()):
            m = np.asarray(matrix, dtype=float)
            totals = m.sum(axis=1, keepdims=True)
            share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for i, j in np.ndindex(m.shape):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(m[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", color=color)
            ticks = np.arange(len(names))
            ax.set_xticks(ticks, labels=list(names), rotation=30, ha="right")
            ax.set_yticks(ticks, labels=list(names))
            ax.set(xlabel="predicted", ylabel="true", title=label)
        for ax in axes[n:]:
            ax.set_visible(False)
        return save_png(fig, path)


def cd_diagram(
    avg_ranks: Mapping[str, float] | pd.Series,
    cd: float,
    path: str | os.PathLike,
    *,
    nemenyi_p: pd.DataFrame | None = None,
    alpha: float = 0.05,
    title: str | None = None,
) -> Path:
    """Critical-difference diagram of average ranks (Demšar 2006) via ``scikit_posthocs``.

    Models joined by a bar are not significantly different. Without ``nemenyi_p`` the bars join models
    whose average ranks differ by at most ``cd`` (the Nemenyi test at the level ``cd`` was computed for);
    with it, pairs with ``p >= alpha`` are joined.
    """
    ranks = pd.Series(dict(avg_ranks), dtype=float)
    if nemenyi_p is None:
        gap = np.abs(ranks.to_numpy()[:, None] - ranks.to_numpy()[None, :])
        nemenyi_p = pd.DataFrame(np.where(gap > cd, 0.0, 1.0), index=ranks.index, columns=ranks.index)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = new_figure(7, 1.5 + 0.45 * len(ranks))
        ax = fig.subplots()
        # integer labels: scikit-posthocs keeps the models under one crossbar in a set, and a set of strings
        # iterates in a per-process hash order, which changed the PNG from one run to the next
        names = list(ranks.index)
        drawn = sp.critical_difference_diagram(
            pd.Series(ranks.to_numpy(), index=range(len(names))),
            pd.DataFrame(nemenyi_p.loc[names, names].to_numpy(), index=range(len(names)), columns=range(len(names))),
            cd=cd,
            alpha=alpha,
            ax=ax,
            label_fmt_left="L{label}",
            label_fmt_right="R{label}",
        )
        for text in drawn["labels"]:
            side, i = text.get_text()[0], int(text.get_text()[1:])
            rank = float(ranks.iloc[i])
            text.set_text(f"{names[i]} ({rank:.2f})" if side == "L" else f"({rank:.2f}) {names[i]}")
        ax.set_title(title or f"Average ranks (CD = {cd:.2f}, α = {alpha:g})", pad=24)
        return save_png(fig, path)


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: str | os.PathLike) -> Path:
    """Loss (left) and accuracy (right) per epoch: training solid, validation dashed, one colour per label.

    Parameters
    ----------
    histories : label -> Keras-style history with any of ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``.
    """
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10, 4)
        loss_ax, acc_ax = fig.subplots(1, 2)
        colors = matplotlib.colormaps["tab10"].colors
        for i, (label, hist) in enumerate(histories.items()):
            color = colors[i % len(colors)]
            for ax, key in ((loss_ax, "loss"), (acc_ax, "accuracy")):
                for prefix, style in (("", "-"), ("val_", "--")):
                    values = hist.get(prefix + key)
                    if values is not None and len(values):
                        epochs = np.arange(1, len(values) + 1)
                        name = f"{label} ({'validation' if prefix else 'training'})"
                        ax.plot(epochs, values, linestyle=style, color=color, label=name)
        loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
        acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
        for ax in (loss_ax, acc_ax):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.has_data():
                ax.legend()
        return save_png(fig, path)


def imbalance_sweep_plot(table: pd.DataFrame, metric: str, path: str | os.PathLike) -> Path:
    """Mean ± std of ``metric`` against the imbalance ratio 1:R, one line per model, log-spaced R.

    Parameters
    ----------
    table : columns ``model``, ``ratio``, ``mean``, ``std`` (optionally ``strategy``, appended to the label).
        ``ratio`` is R or a string ``"a:b"`` (R = b / a); rows with ``ratio == "natural"`` are drawn as a
        dotted horizontal reference line in the model's colour.
    metric : metric name for the y axis label.
    """
    df = table.copy()
    if "strategy" in df.columns:
        df["label"] = df["model"].astype(str) + " / " + df["strategy"].astype(str)
    else:
        df["label"] = df["model"].astype(str)
    df["r"] = df["ratio"].map(_ratio_value)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(7, 4.5)
        ax = fig.subplots()
        colors = matplotlib.colormaps["tab10"].colors
        for i, (label, grp) in enumerate(df.groupby("label", sort=True)):
            color = colors[i % len(colors)]
            swept = grp[grp.r.notna()].sort_values("r")
            r, mean = swept.r.to_numpy(float), swept["mean"].to_numpy(float)
            std = swept["std"].fillna(0).to_numpy(float)
            ax.plot(r, mean, marker="o", color=color, label=label)
            ax.fill_between(r, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
            for value in grp[grp.r.isna()]["mean"]:
                ax.axhline(value, color=color, linestyle=":", linewidth=1)
        ticks = np.sort(df.r.dropna().unique())
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels=[f"1:{t:g}" for t in ticks])
        ax.minorticks_off()
        note = " (dotted: natural ratio)" if df.r.isna().any() else ""
        ax.set(xlabel="imbalance ratio (minority : majority)", ylabel=metric, title=f"{metric} vs imbalance{note}")
        if ax.has_data():
            ax.legend()
        return save_png(fig, path)


def _ratio_value(ratio) -> float:
    """R of a ratio given as a number R or a string ``"a:b"`` (R = b / a); NaN for ``"natural"``."""
    if isinstance(ratio, int | float | np.number):
        return float(ratio)
    text = str(ratio).strip()
    if text == "natural":
        return float("nan")
    m = re.fullmatch(r"([\d.]+)\s*:\s*([\d.]+)", text)
    if not m:
        raise ValueError(f"cannot read imbalance ratio {ratio!r}; expected R, 'a:b' or 'natural'")
    return float(m.group(2)) / float(m.group(1))
