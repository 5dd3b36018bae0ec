"""A local web page to predict from the final models (``python -m bench app``): Gradio, bound to 127.0.0.1.

Upload an image: each arm's final model (:mod:`cellbench.run.final`) gives its class and probability — computed by
:func:`cellbench.tools.predict.predict_finals`, exactly what ``predict`` prints — with the deep champion's Grad-CAM
of the predicted class (:class:`cellbench.models.cam.CamExplainer`) and the classical champion's top features by
model-native importance (:func:`cellbench.stats.importance.native_importances`; models without one, e.g.
logistic regression, show their standardised coefficients' magnitude where the pipeline has them). The upload is
a file, not an image widget, so the bytes predicted are the bytes uploaded (no re-encoding).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cellbench.datasets.io import read_image
from cellbench.models.cam import CamExplainer, normalise
from cellbench.run.artifacts import load_classical
from cellbench.stats.importance import native_importances
from cellbench.tools.predict import FinalModel, classical_inputs, deep_inputs, load_deep, predict_finals

HOST = "127.0.0.1"
TOP_FEATURES = 10


def _ids(final: FinalModel) -> str:
    return final.arm.replace(" ", "-")


def top_features(final: FinalModel, path: str | os.PathLike, *, n: int = TOP_FEATURES) -> pd.DataFrame:
    """The ``n`` features of largest model-native importance, with this image's values."""
    pipeline = load_classical(final.saved.path, final.saved.card)
    names = list(final.saved.card["feature_names"])
    x = classical_inputs(final.saved, [read_image(path)], [None], [str(path)])[0]
    imp = native_importances(pipeline, names=names)
    if imp is None:
        est = pipeline.named_steps["model"] if hasattr(pipeline, "named_steps") else pipeline
        coef = getattr(est, "coef_", None)
        if coef is None:
            return pd.DataFrame({"feature": [], "importance": [], "value": []})
        w = np.abs(np.asarray(coef, dtype=float)).sum(axis=0)
        imp = dict(zip(names, w / w.sum() if w.sum() > 0 else w))
    order = sorted(names, key=lambda k: -imp[k])[:n]
    pos = {k: i for i, k in enumerate(names)}
    return pd.DataFrame(
        {"feature": order, "importance": [round(imp[k], 4) for k in order], "value": [round(float(x[pos[k]]), 4)
                                                                                     for k in order]}
    )  # fmt: skip


def grad_cam(final: FinalModel, path: str | os.PathLike, label: int, *, cache: dict) -> np.ndarray:
    """The image as the model sees it with the Grad-CAM of class ``label`` laid over it (RGB uint8)."""
    import matplotlib

    if final.saved.path not in cache:
        cache[final.saved.path] = CamExplainer(load_deep(final.saved), methods=("gradcam",))
    batch = deep_inputs(final.saved, [read_image(path)])
    cam = normalise(cache[final.saved.path].explain(batch, [label])["gradcam"])[0]
    heat = matplotlib.colormaps["jet"](cam)[..., :3] * 255
    return (0.5 * batch[0] + 0.5 * heat).clip(0, 255).astype(np.uint8)


def build(finals: Sequence[FinalModel]):
    """The Gradio page for ``finals`` (one (data set, extraction)'s arms)."""
    import gradio as gr

    first = finals[0].entry
    cams: dict = {}
    with gr.Blocks(title="cellbench", analytics_enabled=False) as page:
        gr.Markdown(
            f"## cellbench — final models of {first['dataset']}/{first['extraction']}\n"
            "Upload an image: each arm's champion, refit on all development data, gives its class and probability."
        )
        upload = gr.File(label="image", file_types=["image"], type="filepath", elem_id="upload")
        outputs: list = []
        for f in finals:
            with gr.Column():
                gr.Markdown(f"### {f.arm}: {f.config}")
                outputs.append(gr.Textbox(label=f"{f.arm} class", elem_id=f"class-{_ids(f)}", interactive=False))
                outputs.append(
                    gr.Textbox(label=f"{f.arm} probability", elem_id=f"probability-{_ids(f)}", interactive=False)
                )
                if f.saved.kind == "deep":
                    outputs.append(gr.Image(label="Grad-CAM of the predicted class", elem_id=f"cam-{_ids(f)}"))
                else:
                    outputs.append(gr.Dataframe(label="top features (model-native importance)",
                                                elem_id=f"features-{_ids(f)}"))  # fmt: skip

        def predict(path):
            if not path:
                return [None] * len(outputs)
            table = predict_finals(finals, [path])
            values = []
            for f, row in zip(finals, table.itertuples(index=False)):
                classes = list(f.saved.card["classes"])
                values += [row[3], f"{row[4]:.3f}"]
                if f.saved.kind == "deep":
                    values.append(grad_cam(f, path, classes.index(row[3]), cache=cams))
                else:
                    values.append(top_features(f, path))
            return values

        upload.change(predict, inputs=upload, outputs=outputs)
    return page


def serve(finals: Sequence[FinalModel], *, port: int, block: bool = True):
    """Start the page on 127.0.0.1:``port`` (``block=False``: return the running page)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    page = build(finals)
    page.launch(server_name=HOST, server_port=port, prevent_thread_lock=not block, share=False, show_error=True)
    return page
