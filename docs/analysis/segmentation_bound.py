"""How far can rejecting found objects raise a segmentation's precision? A cross-validated bound.

Reads the folder written by ``python -m bench extract --method segmentation --out DIR`` (``index.csv``, the crops
and masks under ``cells/``, ``extraction.json``) and asks: could any rule that looks at a found object alone tell
the objects matched to an annotation from the unmatched ones? It fits a gradient-boosted classifier to exactly
that label — on every default handcrafted feature of the object's crop and mask plus its box (size, distance to
the field border) — cross-validated by field (no field is scored by a model that saw it), and reports, for
thresholds that keep a given share of the matched objects, the unmatched objects rejected and the precision and
recall that would follow. A classifier fitted to the answer is more than any rule could know, so its figures
bound from above what a rejection rule can reach on these annotations.

Usage::

    python docs/analysis/segmentation_bound.py DIR [--fields FOLDER]

``--fields`` is the folder holding the field images (searched recursively by field id, for the field sizes);
without it, only the distance to the top and left borders is known.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold, cross_val_predict

from cellbench.core.errors import DataError
from cellbench.datasets.io import image_size, read_image, read_mask
from cellbench.features import extract_features

KEEP = (1.0, 0.99, 0.98, 0.95)


def field_sizes(folder: Path | None, fields: set[str]) -> dict[str, tuple[int, int]]:
    """(height, width) of each field image found under ``folder`` (by file stem), from the file headers."""
    if folder is None:
        return {}
    out = {}
    for path in folder.rglob("*"):
        if path.stem in fields and path.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}:
            try:
                width, height = image_size(path)
            except DataError:
                continue
            out[path.stem] = (height, width)
    return out


def object_rows(
    folder: Path, rows: list[dict[str, str]], sizes: dict[str, tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (n, k), label (1 = unmatched) and field of every found object of an extraction folder."""
    features, labels, groups = [], [], []
    for r in rows:
        image = read_image(folder / r["image"])
        mask = read_mask(folder / r["mask"]) > 0
        x0, y0, x1, y1 = (int(float(r[k])) for k in ("x0", "y0", "x1", "y1"))
        h, w = sizes.get(r["field"], (np.inf, np.inf))
        border = min(x0, y0, w - x1, h - y1)
        values = list(extract_features(image, mask, sample=r["sample_id"]).values())
        features.append([*values, x1 - x0, y1 - y0, border if np.isfinite(border) else -1])
        labels.append(int(r["status"] == "unmatched"))
        groups.append(r["field"])
    return np.array(features, float), np.array(labels), np.array(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an `extract --method segmentation --out` folder")
    parser.add_argument("--fields", type=Path, help="folder of the field images (for the field sizes)")
    args = parser.parse_args()
    info = json.loads((args.folder / "extraction.json").read_text())
    targets = info["quality"]["targets"]
    with open(args.folder / "index.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] in ("sample", "unmatched")]
    x, y, groups = object_rows(args.folder, rows, field_sizes(args.fields, {r["field"] for r in rows}))
    matched, unmatched = int((y == 0).sum()), int(y.sum())
    print(f"{len(y)} found objects ({matched} matched, {unmatched} unmatched) of {targets} annotated cells, "
          f"{len(set(groups))} fields, {x.shape[1]} measures per object")  # fmt: skip
    print(f"as found: precision {matched / max(len(y), 1):.3f}, recall {matched / max(targets, 1):.3f}")
    if unmatched == 0 or matched == 0 or len(set(groups)) < 2:
        raise SystemExit("nothing to bound: the classifier needs matched and unmatched objects on two fields or more")
    _, field_index = np.unique(groups, return_inverse=True)
    model = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, random_state=0)
    cv = GroupKFold(min(5, len(set(groups))))
    score = cross_val_predict(model, x, y, groups=field_index, cv=cv, method="predict_proba")[:, 1]
    print("| matched kept | unmatched rejected | precision | recall |\n|---|---|---|---|")
    for keep in KEEP:
        cut = score[y == 0].max() if keep == 1.0 else np.quantile(score[y == 0], keep)
        kept = score <= cut
        tp = int((kept & (y == 0)).sum())
        print(f"| {tp} ({keep:.0%}) | {int((~kept & (y == 1)).sum())} of {unmatched} | {tp / kept.sum():.3f} | "
              f"{tp / targets:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
