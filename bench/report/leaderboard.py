"""``LEADERBOARD.md`` and its figures, from the store alone: summarise, draw, render, write.

:func:`write_leaderboard` is the one step that touches files: it draws every figure into ``<out>/figures``, links
them from the records (:func:`draw_figures`) and writes the markdown atomically.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sklearn.metrics import confusion_matrix

from cellbench.core.files import write_text
from cellbench.report import figures
from cellbench.report.extraction import draw_extraction_figures
from cellbench.report.galleries import find_galleries
from cellbench.report.markdown import TOP_RANKS, render_markdown
from cellbench.report.summary import Leaderboard, Section, summarise
from cellbench.run.store import Store

TOP_CURVES = 5  # rows of a section whose ROC/PR curves are drawn (confusion matrices: the first four)


def write_leaderboard(store: Store, *, out_dir: Path) -> Path:
    """Write ``LEADERBOARD.md`` and its figures into ``out_dir`` from the store; return the markdown's path."""
    board = draw_figures(summarise(store), Path(out_dir))
    return write_text(Path(out_dir) / "LEADERBOARD.md", render_markdown(board))


def draw_figures(board: Leaderboard, out_dir: Path) -> Leaderboard:
    """Draw every figure into ``out_dir/figures``; the board with their links (relative to ``out_dir``) and the
    CAM galleries found there."""
    fig_dir = Path(out_dir) / "figures"
    sections = tuple(_section_figures(s, fig_dir, Path(out_dir)) for s in board.sections)
    links = {}
    f = board.friedman
    if f is not None and not f.refused:
        # the best-ranked rows only, so the diagram stays legible; bars and CD from the test of every row
        top = f.avg_ranks.sort_values(kind="stable").head(TOP_RANKS)
        nemenyi = f.nemenyi_p.loc[top.index, top.index] if f.nemenyi_p is not None and len(f.nemenyi_p) else None
        title = None
        if len(top) < len(f.avg_ranks):
            title = f"Average ranks, the {len(top)} best of {len(f.avg_ranks)} rows (CD = {f.cd:.2f}, α = {f.alpha:g})"
        path = figures.cd_diagram(top, f.cd, fig_dir / "cd_diagram.png", nemenyi_p=nemenyi, alpha=f.alpha, title=title)
        links["cd"] = _rel(path, out_dir)
    # manual vs segmented outlines on a few fields
    extraction = draw_extraction_figures(board.extraction, Path(out_dir))
    return replace(board, sections=sections, figures=links, extraction=extraction)


def _section_figures(s: Section, fig_dir: Path, out_dir: Path) -> Section:
    explanations = find_galleries(fig_dir, s.slug)
    if s.stats is None or s.table.empty:
        return replace(s, explanations=explanations)
    links = {}
    pooled = s.stats.pooled
    top = [(m, st) for m, st in zip(s.table.model, s.table.strategy) if (m, st) in pooled][:TOP_CURVES]
    classes = list(s.record.classes)
    pos = s.record.positive
    if pos is not None and top:
        curves = {f"{m} / {st}": (pooled[(m, st)].y_true == pos, pooled[(m, st)].proba[:, pos]) for m, st in top}
        links["roc_pr"] = _rel(figures.roc_pr_curves(curves, fig_dir / f"{s.slug}-roc_pr.png"), out_dir)
    if top:
        labels = list(range(len(classes)))
        mats = {
            f"{m} / {st}": (confusion_matrix(pooled[(m, st)].y_true, pooled[(m, st)].y_pred, labels=labels), classes)
            for m, st in top[:4]
        }
        links["confusion"] = _rel(figures.confusion_matrices(mats, fig_dir / f"{s.slug}-confusion.png"), out_dir)
    if s.histories:
        links["training"] = _rel(figures.training_curves(s.histories, fig_dir / f"{s.slug}-training.png"), out_dir)
    if s.sweep_long is not None and len(s.sweep_long):
        path = figures.imbalance_sweep_plot(s.sweep_long, s.primary, fig_dir / f"{s.slug}-sweep.png")
        links["sweep"] = _rel(path, out_dir)
    return replace(s, figures=links, explanations=explanations)


def _rel(path: Path, base: Path) -> str:
    return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
