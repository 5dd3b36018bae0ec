"""CAM galleries in the leaderboard: the gallery figure, finding the galleries of a section, rendering them.

``python -m bench explain`` (:mod:`cellbench.tools.explain`) writes ``figures/explain-<section>-*.png`` and a JSON
document beside each (format :data:`FORMAT`); the leaderboard lists every gallery of a section it finds there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from PIL import Image

from cellbench.core.files import write_atomic
from cellbench.models.cam import LABELS, normalise
from cellbench.report.figures import STYLE, new_figure
from cellbench.report.format import stat, table
from cellbench.report.summary import slug

PREFIX = "explain-"
FORMAT = 1


def draw_gallery(
    path: Path,
    *,
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    cells: Sequence[Mapping[str, Any]],
    outlines: tuple[np.ndarray, np.ndarray] | None,
    title: str,
) -> Path:
    """One row per cell: the image (nucleus outlined in cyan, cell in white where known), then each map
    (scaled to its own maximum; guided maps to their 99th percentile) over the image."""
    shown = {m: normalise(v, percentile=99.0 if m.startswith("guided") else 100.0) for m, v in maps.items()}
    rows, cols = len(cells), 1 + len(maps)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = new_figure(1.3 * cols + 0.6, 1.3 * max(rows, 1) + 0.5)
        axes = np.atleast_2d(fig.subplots(max(rows, 1), cols, squeeze=False))
        for i, cell in enumerate(cells):
            ax = axes[i, 0]
            ax.imshow(images[i], interpolation="nearest")  # blocky pixels keep the PNG small
            if outlines is not None:
                ax.contour(outlines[1][i], levels=[0.5], colors="white", linewidths=0.6)
                ax.contour(outlines[0][i], levels=[0.5], colors="cyan", linewidths=0.6)
            mark = "correct" if cell["correct"] else "WRONG"
            p = cell.get("p_predicted", max(cell["proba"]))
            ax.set_ylabel(
                f"{cell['sample_id'][-18:]}\ntrue {cell['true']}\npred {cell['predicted']} ({p:.2f})\n{mark}",
                fontsize=6,
            )
            for j, m in enumerate(maps, start=1):
                ax = axes[i, j]
                ax.imshow(images[i], interpolation="nearest")
                ax.imshow(shown[m][i], cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="nearest")
                if "nucleus_energy" in cell and cell["nucleus_energy"].get(m) is not None:
                    ax.text(
                        1,
                        1,
                        f"nuc {cell['nucleus_energy'][m]:.2f}",
                        color="white",
                        fontsize=6,
                        va="top",
                        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
                    )
        for j, m in enumerate(["image", *maps]):
            axes[0, j].set_title(LABELS.get(m, m))
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        if not cells:
            axes[0, 0].text(0.5, 0.5, "no test cells", ha="center", va="center")
        fig.suptitle(title, fontsize=8)
        return _save_palette(fig, path)


def _save_palette(fig, path: Path) -> Path:
    """Save ``fig`` as a 256-colour PNG (a third of the RGB file's size for these overlays), atomically."""
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=0)
    return write_atomic(path, lambda fh: image.save(fh, format="PNG", optimize=True))


def find_galleries(fig_dir: Path, section: str) -> tuple[dict[str, Any], ...]:
    """The gallery JSONs of one leaderboard section (data set × extraction), sorted by file name."""
    out = []
    for p in sorted(Path(fig_dir).glob(f"{PREFIX}{section}-*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if doc.get("format") == FORMAT and slug(doc.get("dataset", ""), doc.get("extraction", "")) == section:
            if (p.parent / doc.get("png", "")).is_file():
                out.append({**doc, "link": f"{p.parent.name}/{doc['png']}"})
    return tuple(out)


def render_galleries(
    galleries: Sequence[Mapping[str, Any]], importance: Mapping[str, pd.DataFrame] | None = None
) -> list[str]:
    """Markdown for a section's galleries: what each map is, the image, energy shares and the sanity check."""
    if not galleries:
        return []
    methods = list(dict.fromkeys(m for g in galleries for m in g["methods"]))
    maps = {m: d for g in galleries for m, d in g["method_maps"].items()}
    lines = [
        "### Where the deep models look — class activation maps",
        "",
        "Galleries written by `python -m bench explain`. Rows: up to the given number of correctly and wrongly "
        "classified test cells per true class (the most confident of each) of one fold; first column the image "
        "(nucleus outlined in cyan, cell in white where masks exist), then each map over it, scaled to its own "
        "maximum (guided maps to their 99th percentile). Every map is computed on the class **logit** "
        "(before the sigmoid/softmax) of the class named in the gallery's title. The maps:",
        "",
        *[f"- *{LABELS.get(m, m)}*: {maps[m]}." for m in methods],
        "",
        "*Energy*: share of a map's total (non-negative) mass inside the nucleus, the cytoplasm and outside the "
        "cell, mean ± std over every test cell of the fold; *area* is the share of the image each region covers "
        "(what a map spread evenly would give). *Sanity check* (Adebayo et al. 2018): Spearman rank correlation "
        "between the trained model's maps and those of the same model with randomised top layers (cascading "
        "from the logits; *top-only*: the logit layer re-initialised, *cascade*: every weighted layer down to "
        "the target layer's convolution). Near 1 means the map does not depend on what those layers learnt.",
        "",
    ]
    for g in galleries:
        src = g["model_source"]
        how = "saved fold model" if src.get("how") == "saved" else f"fold model retrained (seed {src.get('seed')})"
        if "same_labels_as_stored" in src:
            how += (
                f"; same predicted labels as the stored run for {src['same_labels_as_stored']:.1%} of the test "
                f"cells, max |Δp| {src['max_abs_proba_diff']:.1e}"
            )
        stages = g["sanity"]["stages"]
        first, last = stages[0], stages[-1]
        shape = g.get("target_shape")
        grid = f" ({shape[0]}×{shape[1]} × {shape[2]} channels)" if shape else ""
        shown = "; ".join(
            f"{c}: {sum(1 for x in g['cells'] if x['true'] == c and x['correct'])} of {a['correct']} correct, "
            f"{sum(1 for x in g['cells'] if x['true'] == c and not x['correct'])} of {a['wrong']} wrong"
            for c, a in g["available"].items()
        )
        lines += [
            f"**{g['model']} / {g['strategy']}**, fold {g['fold']} — target layer `{g['target_layer']}`{grid}, "
            f"maps of the {g['explained_class']} class's logit (`{g['logit_layer']}`); {how}.",
            "",
            f"![CAM gallery {g['model']} / {g['strategy']}]({g['link']})",
            "",
            f"Cells shown (true class: shown of available test cells): {shown}.",
            "",
        ]
        energy = g.get("energy")
        head = ["map"]
        if energy:
            head += ["energy: nucleus", "cytoplasm", "outside cell"]
        head += [f"sanity top-only ({len(first['layers'])} layer)", f"sanity cascade ({len(last['layers'])} layers)"]
        rows = []
        for m in g["methods"]:
            row = [LABELS.get(m, m)]
            if energy:
                e = energy["methods"][m]
                row += [stat(e["nucleus"]), stat(e["cytoplasm"]), stat(e["outside"])]
            row += [stat(first["methods"][m]), stat(last["methods"][m])]
            rows.append(row)
        if energy:
            a = energy["area_share"]
            rows.append(["*area*", stat(a["nucleus"]), stat(a["cytoplasm"]), stat(a["outside"]), "", ""])
        lines += table(rows, head)
        n_sanity = max(first["methods"][m]["n"] + first["methods"][m]["n_constant"] for m in g["methods"])
        layers = last["layers"]
        cascade = (
            ", ".join(f"`{p}`" for p in layers)
            if len(layers) <= 4
            else f"{len(layers)} weighted layers from `{layers[0]}` down to `{layers[-1]}`"
        )
        note = f"Sanity check on {n_sanity} test cells; cascade re-initialised {cascade}."
        if energy:
            note += f" Energy over {energy['n_cells']} test cells; regions from {'; '.join(energy['source'])}."
        lines += [note, ""]
    if importance:
        lines += _side_by_side(importance, galleries)
    return lines


def _side_by_side(importance: Mapping[str, pd.DataFrame], galleries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The classical models' importance by feature family next to the CNNs' nucleus energy."""
    lines = [
        "**Side by side**: where the classical models' evidence lies (share of the positive permutation "
        "importance per feature family) and where the CNNs look (Grad-CAM energy in the nucleus).",
        "",
    ]
    for name, df in importance.items():
        fam = df.perm_mean.clip(lower=0).groupby(df.family).sum()
        total = fam.sum()
        if total > 0:
            lines.append(
                f"- {name}: " + ", ".join(f"{k} {v / total:.0%}" for k, v in fam.sort_values(ascending=False).items())
            )
    for g in galleries:
        e = (g.get("energy") or {}).get("methods", {}).get("gradcam")
        if e and e["nucleus"]["mean"] is not None:
            a = g["energy"]["area_share"]["nucleus"]["mean"]
            lines.append(
                f"- {g['model']} / {g['strategy']} (`{g['target_layer'].rsplit('/', 1)[-1]}`): Grad-CAM energy in the "
                f"nucleus {e['nucleus']['mean']:.0%} "
                f"(nucleus area {a:.0%} of the image), in the cytoplasm {e['cytoplasm']['mean']:.0%}"
            )
        elif not g.get("energy"):
            lines.append(f"- {g['model']} / {g['strategy']}: no nucleus masks for these images, so no energy shares")
    return [*lines, ""]
