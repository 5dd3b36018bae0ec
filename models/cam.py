"""Class activation maps for any Keras model of the grid, computed on the class logit, batched.

Methods (``METHODS``; :data:`DESCRIPTIONS` says exactly what each map is):

- ``gradcam`` (Selvaraju et al. 2017): ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂z/∂A_k, where A is
  the target layer's activation and z the class logit; bilinearly upsampled to the input size.
- ``hirescam`` (Draelos & Carin 2020): ReLU(Σ_k ∂z/∂A_k ⊙ A_k), the element-wise product summed over
  channels (no spatial averaging of the gradient), upsampled the same way.
- ``guided-backprop`` (Springenberg et al. 2015): the gradient of z with respect to the input pixels through
  a copy of the network in which every rectifier passes gradient only where its forward output and the
  incoming gradient are both positive; shown as the largest absolute value over the colour channels.
- ``guided-gradcam`` / ``guided-hirescam``: the guided-backprop map times the upsampled Grad-CAM / HiResCAM.

The class logit is the pre-activation output: the layer named ``logits`` of cellbench's models (or the
input of a final sigmoid/softmax ``Activation`` layer, or a final sigmoid/softmax ``Dense`` layer evaluated
without its activation). For one sigmoid unit the logit of the positive class is z and that of the
negative class -z (= log p0/p1). Maps therefore do not vanish where the probability saturates.

The target layer defaults to the output of the last convolutional block: the last convolution layer
followed by the batch-norm, activation and merge layers after it that keep its spatial size (``relu4`` of
``cnn``, ``out_relu`` of MobileNetV2, ``conv5_block3_out`` of ResNet50); any layer can be named, also
inside a nested ``keras.applications`` backbone (``name`` or ``backbone/name``). Nested models are flattened
by replaying their graphs on the outer input, so the target activation and the logit come from one graph.

TensorFlow is imported only inside functions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from cellbench.core.errors import ConfigError

METHODS = ("gradcam", "hirescam", "guided-backprop", "guided-gradcam", "guided-hirescam")
CAM_METHODS = ("gradcam", "hirescam", "guided-gradcam", "guided-hirescam")  # those that need a target layer
LABELS = {
    "gradcam": "Grad-CAM",
    "hirescam": "HiResCAM",
    "guided-backprop": "guided backprop",
    "guided-gradcam": "guided Grad-CAM",
    "guided-hirescam": "guided HiResCAM",
}
DESCRIPTIONS = {
    "gradcam": "ReLU(Σ_k mean_xy(∂z/∂A_k)·A_k) on the target layer A, z = class logit, upsampled bilinearly",
    "hirescam": "ReLU(Σ_k ∂z/∂A_k ⊙ A_k) on the target layer (gradient not averaged), upsampled bilinearly",
    "guided-backprop": "max over RGB of |∂z/∂pixel| with every rectifier passing gradient only where its forward "
    "output > 0 and the incoming gradient > 0",
    "guided-gradcam": "guided-backprop map × upsampled Grad-CAM",
    "guided-hirescam": "guided-backprop map × upsampled HiResCAM",
}
# activations that get the guided rule (rectifier-like); any other activation back-propagates as usual
GUIDED_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "silu", "swish")


def parse_methods(value: str | Sequence[str]) -> tuple[str, ...]:
    """Method names from ``"all"``, one name or a list (comma-separated text accepted)."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if names == ["all"]:
        return METHODS
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"unknown CAM method(s) {', '.join(map(repr, unknown)) or '(none)'}; known: {', '.join(METHODS)} or all"
        )
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------------- layers


def flat_layers(model, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every layer of ``model`` in topological order, nested models expanded, as (path, layer)."""
    import keras

    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from flat_layers(layer, prefix=f"{path}/")
        else:
            yield path, layer


def _conv_types():
    import keras

    return (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def _block_types():
    import keras

    L = keras.layers
    return (L.BatchNormalization, L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU, L.Add, L.Concatenate, L.Multiply)


def _spatial(layer) -> tuple[int, int] | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(shape[1:3]) if len(shape) == 4 else None


def default_target_layer(model) -> str:
    """The path of the last convolutional block's output (see the module docstring)."""
    layers = list(flat_layers(model))
    convs = [i for i, (_, layer) in enumerate(layers) if isinstance(layer, _conv_types())]
    if not convs:
        raise ConfigError(f"model {model.name!r} has no convolution layer; name a target layer")
    i = convs[-1]
    size = _spatial(layers[i][1])
    while i + 1 < len(layers) and isinstance(layers[i + 1][1], _block_types()) and _spatial(layers[i + 1][1]) == size:
        i += 1
    return layers[i][0]


def resolve_layer(model, name: str) -> str:
    """The full path of layer ``name`` (a path, or a layer name unique in the flattened model)."""
    layers = dict(flat_layers(model))
    if name in layers:
        return name
    hits = [p for p in layers if p.rsplit("/", 1)[-1] == name]
    if len(hits) == 1:
        return hits[0]
    spatial = [p for p, layer in layers.items() if _spatial(layer) is not None]
    if len(hits) > 1:
        raise ConfigError(f"layer name {name!r} is ambiguous in {model.name!r}: {', '.join(hits)}; give the path")
    shown = ", ".join(spatial[-12:])
    raise ConfigError(f"no layer {name!r} in model {model.name!r}; layers with a spatial output (last 12): {shown}")


def logit_layer(model) -> tuple[str, bool]:
    """The layer whose output is the class logit, and whether its activation must be dropped.

    Returns (path, strip): ``strip`` is True for a final Dense layer with a sigmoid/softmax activation
    (it is evaluated without it); for a final ``Activation`` the path is that of the layer feeding it.
    """
    import keras

    layers = list(flat_layers(model))
    paths = [p for p, _ in layers]
    for p in paths:
        if p.rsplit("/", 1)[-1] == "logits":
            return p, False
    last_path, last = layers[-1]
    act = _activation_name(getattr(last, "activation", None))
    if isinstance(last, keras.layers.Activation) and act in ("sigmoid", "softmax"):
        return layers[-2][0], False
    if isinstance(last, keras.layers.Dense) and act in ("sigmoid", "softmax"):
        return last_path, True
    raise ConfigError(
        f"cannot find the class logit of model {model.name!r}: expected a layer named 'logits', or a final "
        "sigmoid/softmax Activation or Dense layer"
    )


def _activation_name(fn) -> str | None:
    if fn is None:
        return None
    import keras

    try:
        name = keras.activations.serialize(fn)
    except (ValueError, TypeError):
        return getattr(fn, "__name__", None)
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") or name.get("class_name")
    return str(name)


# ---------------------------------------------------------------------------------------------------- guided


def guided_activation(
    x, *, kind: str, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0
):
    """The activation ``kind`` forward, with the guided-backpropagation rule backward.

    Backward the local derivative is applied, then the gradient is kept only where the forward output
    is > 0 and the incoming gradient is > 0 (Springenberg et al. 2015).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def op(v):
        if kind in ("silu", "swish"):
            s = tf.sigmoid(v)
            y = v * s
            local = s + v * s * (1.0 - s)
        else:
            y = tf.where(v >= threshold, v, negative_slope * (v - threshold))
            local = tf.where(v >= threshold, tf.ones_like(v), negative_slope * tf.ones_like(v))
            if max_value is not None:
                y = tf.minimum(y, tf.cast(max_value, v.dtype))
                local = local * tf.cast(v < max_value, v.dtype)

        def grad(g):
            return g * local * tf.cast(y > 0, g.dtype) * tf.cast(g > 0, g.dtype)

        return y, grad

    return op(x)


@functools.cache
def _guided_layer_class():
    import keras

    class GuidedActivation(keras.layers.Layer):
        """A rectifier with the guided-backpropagation gradient (explanations only; never saved)."""

        def __init__(self, kind: str, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
            super().__init__(**kwargs)
            self.kind, self.max_value = kind, max_value
            self.negative_slope, self.threshold = float(negative_slope), float(threshold)

        def call(self, x):
            return guided_activation(
                x,
                kind=self.kind,
                max_value=self.max_value,
                negative_slope=self.negative_slope,
                threshold=self.threshold,
            )

        def compute_output_shape(self, input_shape):
            return input_shape

    return GuidedActivation


def _guided_spec(layer) -> dict[str, Any] | None:
    """Guided-activation parameters replacing ``layer``'s (own or fused) activation, or None."""
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return {
            "kind": "relu",
            "max_value": None if layer.max_value is None else float(layer.max_value),
            "negative_slope": float(layer.negative_slope),
            "threshold": float(layer.threshold),
        }
    if isinstance(layer, keras.layers.LeakyReLU):
        return {"kind": "relu", "negative_slope": float(layer.negative_slope)}
    name = _activation_name(getattr(layer, "activation", None))
    if name not in GUIDED_ACTIVATIONS:
        return None
    if name == "relu6":
        return {"kind": "relu", "max_value": 6.0}
    if name == "leaky_relu":
        return {"kind": "relu", "negative_slope": 0.2}  # keras.activations.leaky_relu's default
    return {"kind": "silu" if name in ("silu", "swish") else "relu"}


# ---------------------------------------------------------------------------------------------------- graph


@dataclass
class _Rewire:
    """How one layer is replaced when the graph is replayed."""

    layer: Any  # the layer called in the new graph
    after: Any = None  # a guided activation applied to its output (fused activations)
    source: Any = None  # the original layer whose weights ``layer`` copies


def _rewiring(model, *, guided: bool) -> dict[int, _Rewire]:
    """Replacement layers by ``id`` of the original: guided rectifiers, linear copies (fused activations, and
    the logit layer's sigmoid/softmax when it is fused into a Dense layer)."""
    import keras

    logit_path, strip = logit_layer(model)
    rewired: dict[int, _Rewire] = {}
    own = keras.layers.ReLU | keras.layers.LeakyReLU | keras.layers.Activation
    for path, layer in flat_layers(model):
        spec = _guided_spec(layer) if guided else None
        if spec is not None and isinstance(layer, own):
            rewired[id(layer)] = _Rewire(layer=_guided_layer_class()(**spec, name=f"{layer.name}_guided"))
        elif spec is not None or (path == logit_path and strip):
            config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_linear"}
            after = _guided_layer_class()(**spec, name=f"{layer.name}_guided") if spec is not None else None
            rewired[id(layer)] = _Rewire(layer=layer.__class__.from_config(config), after=after, source=layer)
    return rewired


def _replay(
    model, inp, *, rewired: dict[int, _Rewire], reuse: dict[str, Any] | None = None, reuse_upto: int = -1
) -> dict[str, Any]:
    """Replay ``model``'s graph (nested models inlined) on the symbolic ``inp``; return every layer's output
    by path. With ``reuse``, layers at flat positions <= ``reuse_upto`` are not called again: their outputs
    are taken from ``reuse`` (the same values from an earlier replay)."""
    import keras

    flat = list(flat_layers(model))
    path_of = {id(layer): p for p, layer in flat}
    position = {p: i for i, (p, _) in enumerate(flat)}
    by_new = {id(r.layer): r for r in rewired.values()}
    for old, r in rewired.items():
        path_of[id(r.layer)] = path_of[old]
    tensors: dict[str, Any] = {}

    def op_fn(op):
        r = rewired.get(id(op))
        return op if r is None else r.layer

    def call_fn(op, *args, **kwargs):
        path = path_of.get(id(op))
        if reuse is not None and path is not None and position[path] <= reuse_upto:
            tensors[path] = reuse[path]
            return reuse[path]
        if isinstance(op, keras.Sequential):
            (x,) = args
            for layer in op.layers:
                x = call_fn(op_fn(layer), x)
            out = x
        elif isinstance(op, keras.Model):
            kwargs.pop("training", None)
            arg = args[0] if len(args) == 1 else list(args)
            out = op._run_through_graph(arg, operation_fn=op_fn, call_fn=call_fn)
        else:
            out = op(*args, **kwargs)
            r = by_new.get(id(op))
            if r is not None and r.after is not None:
                out = r.after(out)
        if path is not None:
            tensors[path] = out
        return out

    try:
        model._run_through_graph([inp], operation_fn=op_fn, call_fn=call_fn)
    except AttributeError as exc:  # a subclassed model has no graph to replay
        raise ConfigError(f"model {model.name!r} is not a functional Keras model; CAMs need its graph") from exc
    return tensors


def build_graph(model, *, outputs: Sequence[str] = (), guided: bool = False, normal_head_from: str | None = None):
    """A flat Keras model: the original input -> the outputs of the layers at ``outputs`` (paths) + the logits.

    Layers are shared with ``model`` (same weights) except where ``guided`` replaces rectifiers by
    :func:`guided_activation` (layers with a fused activation are called as linear copies of themselves,
    then the guided activation) and where the logit layer's fused sigmoid/softmax is dropped. With
    ``normal_head_from`` (a path, with ``guided``) the layers after that one are replayed a second time
    with their original activations on the same (forward-identical) tensors, and the model returns
    ``[*outputs, logits through the original head, logits through the guided head]``: one forward pass
    then gives both the plain gradient at the target layer and the guided gradient at the input.

    Returns (keras.Model, n_guided): the model and how many activations got the guided rule.
    """
    import keras

    if len(model.inputs) != 1:
        raise ConfigError(f"model {model.name!r} has {len(model.inputs)} inputs; CAMs need one image input")
    logit_path, _ = logit_layer(model)
    paths = [p for p, _ in flat_layers(model)]
    missing = set(outputs) - set(paths) - ({normal_head_from} - {None})
    if missing:
        raise ConfigError(f"no layer(s) {', '.join(sorted(missing))} in model {model.name!r}")
    rewired = _rewiring(model, guided=guided)
    inp = keras.Input(batch_shape=model.inputs[0].shape, name="cam_input")
    tensors = _replay(model, inp, rewired=rewired)
    logits = [tensors[logit_path]]
    if normal_head_from is not None:
        strip = {k: r for k, r in rewired.items() if r.after is None and r.source is not None}  # the logit layer
        head = _replay(model, inp, rewired=strip, reuse=tensors, reuse_upto=paths.index(normal_head_from))
        logits = [head[logit_path], *logits]
    for r in rewired.values():
        if r.source is not None:
            r.layer.set_weights(r.source.get_weights())
    flat = keras.Model(inp, [tensors[p] for p in outputs] + logits, name=f"{model.name}_cam")
    n_guided = sum(1 for r in rewired.values() if r.after is not None or r.source is None)
    return flat, n_guided


# ---------------------------------------------------------------------------------------------------- maps


def class_scores(logits, target):
    """Per image, the logit of class ``target`` (one sigmoid unit: z for class 1, -z for class 0)."""
    import tensorflow as tf

    target = tf.cast(target, tf.int32)
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        return tf.where(target == 1, z, -z)
    return tf.gather(logits, target, axis=1, batch_dims=1)


class CamExplainer:
    """Maps of one model: ``explain(images, targets)``; see the module docstring.

    Parameters
    ----------
    model
        A functional Keras model taking raw images (its preprocessing is inside it).
    target_layer
        A layer name or path; default :func:`default_target_layer`.
    methods
        The methods to compute (default all); the guided pass is skipped when no guided method is asked for.
    """

    def __init__(self, model, *, target_layer: str | None = None, methods: Sequence[str] = METHODS):
        import tensorflow as tf

        self.model = model
        self.methods = parse_methods(list(methods))
        self.logit_layer = logit_layer(model)[0]
        self.target_layer = resolve_layer(model, target_layer) if target_layer else default_target_layer(model)
        self.size = tuple(model.inputs[0].shape[1:3])
        if None in self.size:
            raise ConfigError(f"model {model.name!r} has no fixed input size ({self.size}); CAMs need one")
        self.needs_guided = any(m.startswith("guided") for m in self.methods)
        self.graph, self.n_guided = build_graph(
            model,
            outputs=[self.target_layer],
            guided=self.needs_guided,
            normal_head_from=self.target_layer if self.needs_guided else None,
        )
        act = self.graph.outputs[0]
        if len(act.shape) != 4:
            raise ConfigError(
                f"target layer {self.target_layer!r} has output shape {tuple(act.shape)}; a spatial (B, H, W, C) "
                "layer is needed"
            )
        self.n_classes = max(2, int(self.graph.outputs[1].shape[-1]))
        spec = (tf.TensorSpec((None, *self.size, 3), tf.float32), tf.TensorSpec((None,), tf.int32))
        self._maps = tf.function(self._maps_graph, input_signature=spec)

    def _maps_graph(self, x, target):
        import tensorflow as tf

        with tf.GradientTape(persistent=self.needs_guided) as tape:
            tape.watch(x)
            act, logits, *guided = self.graph(x, training=False)
            score = class_scores(logits, target)
            gscore = class_scores(guided[0], target) if guided else None
        # images are independent at inference (batch norm uses its moving statistics), so the gradient of
        # the batch sum is each image's own gradient
        grads = tape.gradient(score, act)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cams = {
            "gradcam": tf.nn.relu(tf.reduce_sum(weights * act, axis=-1)),
            "hirescam": tf.nn.relu(tf.reduce_sum(grads * act, axis=-1)),
        }
        out = {k: tf.image.resize(v[..., None], self.size, method="bilinear")[..., 0] for k, v in cams.items()}
        out["logits"] = logits
        if gscore is not None:
            gb = tf.reduce_max(tf.abs(tape.gradient(gscore, x)), axis=-1)
            out["guided-backprop"] = gb
            out["guided-gradcam"] = gb * out["gradcam"]
            out["guided-hirescam"] = gb * out["hirescam"]
        return out

    def explain(
        self, images: np.ndarray, targets: Sequence[int] | np.ndarray, *, batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """Maps (N × H × W, float32, not normalised) of ``targets`` (class indices) for 0-255 ``images``.

        Returns a dict with one array per method and ``logits`` (N × units).
        """
        images = np.asarray(images)
        targets = np.asarray(targets, dtype=np.int32).reshape(-1)
        if images.ndim != 4 or tuple(images.shape[1:3]) != self.size or images.shape[3] != 3:
            raise ConfigError(f"images must be N × {self.size[0]} × {self.size[1]} × 3, got {images.shape}")
        if len(targets) != len(images):
            raise ConfigError(f"{len(targets)} target classes for {len(images)} images")
        if len(targets) and (targets.min() < 0 or targets.max() >= self.n_classes):
            raise ConfigError(f"target classes must be in 0..{self.n_classes - 1}, got {sorted(set(targets))}")
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].astype(np.float32)
            res = self._maps(x, targets[start : start + batch_size])
            for k, v in res.items():
                parts.setdefault(k, []).append(v.numpy())
        out = {k: np.concatenate(v) for k, v in parts.items()}
        return {k: v for k, v in out.items() if k in self.methods or k == "logits"}

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The class logits the maps are computed from (N × units)."""
        return np.asarray(self.graph(np.asarray(images, np.float32), training=False)[1])


def normalise(maps: np.ndarray, *, percentile: float = 100.0) -> np.ndarray:
    """Each map scaled to [0, 1] by its own ``percentile`` (99 suits the spiky guided maps); zero maps stay 0."""
    maps = np.asarray(maps, dtype=np.float32)
    flat = maps.reshape(len(maps), -1)
    top = np.percentile(flat, percentile, axis=1) if percentile < 100 else flat.max(axis=1)
    top = np.where(top > 0, top, 1.0).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.clip(maps / top, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- sanity


def weighted_layers(model) -> list[str]:
    """Paths of the layers with a kernel, from the logits down to the input (top first)."""
    return [
        p
        for p, layer in reversed(list(flat_layers(model)))
        if any("kernel" in w.path.rsplit("/", 1)[-1] for w in layer.weights)
    ]


def cascade_stages(model, target_layer: str) -> list[list[str]]:
    """Cascading randomisation stages: the top weighted layer, then one more each, down to (and including)
    the last weighted layer at or below the target layer (the convolution the target activation comes from)."""
    flat = [p for p, _ in flat_layers(model)]
    target_at = flat.index(target_layer)
    layers = weighted_layers(model)
    stages, chosen = [], []
    for p in layers:
        chosen.append(p)
        stages.append(list(chosen))
        if flat.index(p) <= target_at:
            break
    return stages


def copy_model(model):
    """An independent copy of ``model`` with the same weights (nested models copied too)."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def randomise_layers(model, paths: Sequence[str], *, seed: int) -> None:
    """Re-initialise the kernels (and biases) of the layers at ``paths`` in place with each layer's own
    initialisers (Keras defaults: Glorot-uniform kernels, zero biases), seeded."""
    import keras

    layers = dict(flat_layers(model))
    for i, p in enumerate(paths):
        layer = layers[p]
        for w in layer.weights:
            leaf = w.path.rsplit("/", 1)[-1]
            candidates = [f"{leaf}_initializer"]
            if "kernel" in leaf:  # SeparableConv2D: depthwise_kernel <- depthwise_initializer
                candidates += [f"{leaf.removesuffix('_kernel')}_initializer", "kernel_initializer"]
            attr = next((a for a in candidates if hasattr(layer, a)), None)
            if attr is None:
                continue
            init = keras.initializers.get(keras.initializers.serialize(getattr(layer, attr)))
            if hasattr(init, "seed"):
                init.seed = int(seed) + 7919 * i + len(leaf)
            w.assign(init(tuple(w.shape), dtype=w.dtype))


def rank_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (NaN where either map is constant)."""
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.ravel(x), np.ravel(y)
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


def sanity_check(
    model,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    maps: dict[str, np.ndarray],
    target_layer: str,
    methods: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """Model-randomisation test (Adebayo et al. 2018), cascading from the logits down to the target layer.

    At each stage one more weighted layer (from the top) of a copy of ``model`` is re-initialised; the
    maps of the same images and target classes are recomputed and compared with ``maps`` (the trained
    model's) by Spearman rank correlation per image. A map that still correlates highly after the layers
    it should depend on are random does not explain the model.

    Returns
    -------
    dict
        ``stages`` (list of {``layers``, ``methods``: {method: {``mean``, ``std``, ``n``, ``n_constant``}}})
        and ``rule`` (what was randomised).
    """
    stages = cascade_stages(model, target_layer)
    copy = copy_model(model)
    out = []
    done: list[str] = []
    for stage in stages:
        randomise_layers(copy, [p for p in stage if p not in done], seed=seed)
        done = list(stage)
        rand = CamExplainer(copy, target_layer=target_layer, methods=methods).explain(images, targets)
        per = {}
        for m in methods:
            r = rank_correlations(maps[m], rand[m])
            ok = r[np.isfinite(r)]
            per[m] = {
                "mean": float(ok.mean()) if len(ok) else None,
                "std": float(ok.std(ddof=1)) if len(ok) > 1 else None,
                "n": len(ok),
                "n_constant": int(len(r) - len(ok)),
            }
        out.append({"layers": list(stage), "methods": per})
    return {
        "rule": "cascading randomisation from the logits down to the target layer's convolution: at each stage "
        "one more weighted layer is re-initialised with its own initialisers (seeded); Spearman rank "
        "correlation per image between the trained and the randomised model's maps (same target class)",
        "stages": out,
    }


# ---------------------------------------------------------------------------------------------------- regions


def energy_fractions(maps: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per map, the share of its total (non-negative) energy inside each boolean region (N × H × W each).

    Maps without energy give NaN.
    """
    maps = np.clip(np.asarray(maps, np.float64), 0, None)
    total = maps.reshape(len(maps), -1).sum(axis=1)
    safe = np.where(total > 0, total, np.nan)
    return {k: (maps * np.asarray(r, bool)).reshape(len(maps), -1).sum(axis=1) / safe for k, r in regions.items()}
