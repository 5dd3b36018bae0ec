"""The leaderboard as one self-contained HTML page, rendered by jinja2 from the records the markdown reads.

The template (``templates/report.html.j2``, package data) gets the :class:`cellbench.report.summary.Leaderboard`,
its :class:`cellbench.report.answer.Answer` records and the number formats of :mod:`cellbench.report.format` as
filters; figures are embedded as base64 PNGs, tables sort on a click (a few lines of inline JavaScript).
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from cellbench.report.answer import answers, arm_cell, shown_arms, strategy_cell, verdict_cell
from cellbench.report.format import mean_std, num, p_value, signed
from cellbench.report.markdown import SHOWN, run_manifests, shown_path
from cellbench.report.summary import Leaderboard
from cellbench.stats.comparisons import ALPHA
from cellbench.stats.metrics import METRIC_LABELS
from cellbench.stats.nested import ARM_TITLES

TEMPLATE = "report.html.j2"


def environment() -> jinja2.Environment:
    """The jinja2 environment: templates from the package, HTML autoescaped, the report's number formats."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cellbench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"num": num, "signed": signed, "p_value": p_value, "label": lambda m: METRIC_LABELS.get(m, m)}
    env.globals |= {"mean_std": mean_std, "arm_cell": arm_cell, "verdict_cell": verdict_cell,
                    "strategy_cell": strategy_cell, "ARM_TITLES": ARM_TITLES}  # fmt: skip
    return env


def render_html(board: Leaderboard, *, base: Path) -> str:
    """The report page of ``board``; its figure links (relative to ``base``) are read and embedded."""
    items = answers(board)
    manifest = board.manifest
    fingerprints: dict[str, str] = {}
    for each in run_manifests(board.runs, manifest):
        fingerprints.update(each.get("datasets") or {})
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            board=board,
            answers=items,
            arms=shown_arms(items),
            shown=list(SHOWN),
            metric_labels=METRIC_LABELS,
            suite_file=shown_path(manifest.get("suite_file", "")),
            fingerprints=fingerprints,
            alpha=ALPHA,
            image=lambda link: _data_uri(Path(base) / link),
        )
    )


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
