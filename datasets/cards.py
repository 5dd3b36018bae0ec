"""Dataset cards: a data set's info record rendered for ``python -m bench datasets show NAME``."""

from __future__ import annotations

import textwrap
from dataclasses import fields

from tabulate import tabulate

from cellbench.core.types import DATA_KINDS, DatasetInfo

WIDTH = 110
_SHOWN = {
    "name",
    "title",
    "description",
    "task",
    "classes",
    "positive_class",
    "kind",
    "families",
    "primary_metric",
    "default_cv",
    "group_kind",
    "image_size",
    "expected_counts",
    "expected_split_counts",
    "source",
    "licence",
    "citation",
    "layout",
    "download",
    "folder_names",
    "synthetic",
}


def _counts(counts) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) if counts else "—"


def render_card(info: DatasetInfo) -> str:
    """The card as markdown-ish text: title, description, a table of the facts, layout and download."""
    classes = ", ".join(info.classes) if info.classes else "from the data (folder names, labels or the file)"
    rows = [
        ("task", f"{info.task}; classes: {classes}"),
        ("positive class", info.positive_class or ("—" if info.task == "multiclass" else "the last class")),
        ("kind", f"{info.kind} ({DATA_KINDS.get(info.kind, 'unknown kind')})"),
        ("feature families", ", ".join(info.families) or "the defaults of its kind"),
        ("primary metric", info.primary_metric),
        ("default CV", info.default_cv),
        ("groups", info.group_kind or "none known"),
        ("image size", info.image_size or "—"),
        ("expected counts", _counts(info.expected_counts)),
        ("expected per split", _counts(info.expected_split_counts)),
        ("source", info.source),
        ("licence", info.licence),
        ("citation", info.citation),
    ]
    rows += [(f.name, str(getattr(info, f.name))) for f in fields(info) if f.name not in _SHOWN]
    wrapped = [(k, "\n".join(textwrap.wrap(str(v), 90)) or "—") for k, v in rows]
    out = [
        f"# {info.name}: {info.title}" + (" (SYNTHETIC)" if info.synthetic else ""),
        "",
        *textwrap.wrap(info.description, WIDTH),
        "",
        tabulate(wrapped, tablefmt="plain"),
        "",
        "## Layout read",
        "",
        *textwrap.wrap(info.layout or "generated, no files to lay out", WIDTH),
        "",
        "## Download",
        "",
        *textwrap.wrap(info.download or "nothing to download", WIDTH),
    ]
    if info.folder_names:
        out += [
            "",
            f"Looked for in --data-root itself or its sub-folders {', '.join(info.folder_names)} "
            f"(or pass the data set's own folder as --data-root).",
        ]
    return "\n".join(out)
