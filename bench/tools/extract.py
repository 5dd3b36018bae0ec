"""``python -m bench extract``: a field data set's cells cut into a folder, with their quality and an overlay."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellbench.datasets import DATASETS, load_dataset
from cellbench.datasets.extraction import check_export_folder, export_extraction, run_extraction, summary_rows
from cellbench.report.extraction import overlay_figure


@dataclass(frozen=True, kw_only=True)
class Export:
    """What :func:`extract_to_folder` wrote: the folder, the number of cells, the summary rows and the figure."""

    folder: Path
    cells: int
    rows: list[tuple[str, str]]
    notes: tuple[str, ...]
    figure: Path | None


def extract_to_folder(
    dataset: str,
    *,
    method: str,
    out: Path,
    params: Mapping[str, Any],
    options: Mapping[str, Any],
    on_bad_annotation: str = "raise",
    on_bad_image: str = "raise",
    jobs: int | None = None,
    data_root: Path | None = None,
    cache: Path | None = None,
    progress: bool = True,
) -> Export:
    """Extract ``dataset``'s cells by ``method`` (``params`` over its defaults) and export them into ``out``:
    crops, masks, ``index.csv``, ``extraction.json`` and ``overlay.png``."""
    check_export_folder(Path(out))  # before any work: a folder it may not write is refused at once
    options = dict(options)
    if DATASETS[dataset].needs_data:
        options.setdefault("on_bad_annotation", on_bad_annotation)
    data = load_dataset(dataset, data_root=data_root, cache_dir=cache, **options)
    extracted = run_extraction(method, data, options=params, progress=progress, n_jobs=jobs, on_bad_image=on_bad_image,
                               cache_dir=cache)  # fmt: skip
    folder = export_extraction(extracted, Path(out))
    overlay = extracted.info.get("overlay", [])
    figure = overlay_figure({method: overlay}, folder / "overlay.png") if overlay else None
    return Export(folder=folder, cells=len(extracted.samples), rows=summary_rows(extracted.info),
                  notes=tuple(data.notes), figure=figure)  # fmt: skip
