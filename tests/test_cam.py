"""CAM methods (models.cam): guided gradients, logits, localisation on a task with known evidence, sanity check.

A tiny CNN trained for a few epochs on 32 px images whose class evidence sits in a known quadrant keeps the
file fast on two CPU cores; transfer backbones are built with random weights at 32 px.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from cellbench.core.errors import ConfigError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 32
Q = SIZE // 2  # the evidence lives in the top-left Q × Q quadrant


def quadrant_task(n: int, *, seed: int):
    """Noisy 32 px images; a 6 px square in the top-left quadrant is green (class 1) or red (class 0), a blue
    distractor square of the same size sits in one of the other quadrants (class-independent)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    images = rng.integers(20, 70, (n, SIZE, SIZE, 3)).astype(np.uint8)
    for i in range(n):
        r, c = rng.integers(1, Q - 7, 2)
        images[i, r : r + 6, c : c + 6] = (40, 220, 40) if y[i] == 1 else (220, 40, 40)
        qr, qc = [(0, 1), (1, 0), (1, 1)][rng.integers(3)]
        r, c = qr * Q + rng.integers(1, Q - 7), qc * Q + rng.integers(1, Q - 7)
        images[i, r : r + 6, c : c + 6] = (40, 40, 220)
    return images, y


def region_mask(n: int) -> np.ndarray:
    mask = np.zeros((n, SIZE, SIZE), bool)
    mask[:, :Q, :Q] = True
    return mask


@pytest.fixture(scope="module")
def trained():
    """cnn_tiny trained on the quadrant task (a few epochs), with held-out images."""
    import keras

    from cellbench.models import resolve_params
    from cellbench.models.deep import build_model, compile_model, setup_tensorflow, targets

    setup_tensorflow(0)
    x, y = quadrant_task(384, seed=0)
    xt, yt = quadrant_task(64, seed=1)
    model, _ = build_model("cnn_tiny", resolve_params("cnn_tiny", {"size": SIZE, "dropout": 0.0}), n_classes=2, seed=0)
    compile_model(model, loss=keras.losses.BinaryCrossentropy(), learning_rate=3e-3, n_classes=2)
    model.fit(x.astype("float32"), targets(y, 2), epochs=12, batch_size=32, verbose=0)
    accuracy = float(np.mean((model.predict(xt.astype("float32"), verbose=0)[:, 0] > 0.5) == yt))
    assert accuracy > 0.9, f"the tiny CNN did not learn the quadrant task (accuracy {accuracy:.2f})"
    return model, xt, yt


# ---------------------------------------------------------------------------------------------------- guided rule


@pytest.mark.parametrize(
    ("spec", "expected_local"),
    [
        ({"kind": "relu"}, lambda x: (x >= 0).astype(float)),
        ({"kind": "relu", "max_value": 6.0}, lambda x: ((x >= 0) & (x < 6)).astype(float)),
        ({"kind": "relu", "negative_slope": 0.1}, lambda x: np.where(x >= 0, 1.0, 0.1)),
    ],
    ids=["relu", "relu6", "leaky"],
)
def test_guided_activation_passes_gradient_only_where_output_and_gradient_are_positive(spec, expected_local):
    import tensorflow as tf

    from cellbench.models.cam import guided_activation

    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, (512,)).astype(np.float32)
    g = rng.normal(0, 1, (512,)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = guided_activation(xt, **spec)
    grad = tape.gradient(y, xt, output_gradients=tf.constant(g)).numpy()
    y = y.numpy()
    expected = g * expected_local(x) * (y > 0) * (g > 0)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    assert (grad[(y <= 0) | (g <= 0)] == 0).all() and (grad[(y > 0) & (g > 0) & (x < 6)] > 0).all()
    # the forward pass is the activation itself
    ref = tf.keras.activations.relu(xt, negative_slope=spec.get("negative_slope", 0.0), max_value=spec.get("max_value"))
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-6)


def test_guided_graph_gives_the_guided_gradient_through_fused_and_layer_activations():
    """Input -> Dense(relu, fused) -> Dense -> ReLU(6) layer -> Dense -> Activation(relu) -> logits; the guided
    graph's input gradient equals the rule applied by hand at each rectifier."""
    import keras
    import tensorflow as tf

    from cellbench.models.cam import build_graph

    keras.utils.set_random_seed(3)
    inp = keras.Input((5,))
    h1 = keras.layers.Dense(7, activation="relu", name="d1")(inp)
    h2 = keras.layers.ReLU(max_value=6.0, name="r2")(keras.layers.Dense(6, name="d2")(h1))
    h3 = keras.layers.Activation("relu", name="r3")(keras.layers.Dense(4, name="d3")(h2))
    logits = keras.layers.Dense(1, name="logits")(h3)
    model = keras.Model(inp, keras.layers.Activation("sigmoid", name="probs")(logits))
    graph, n_guided = build_graph(model, guided=True)
    assert n_guided == 3
    x = np.random.default_rng(1).normal(0, 2, (64, 5)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        z = graph(xt)[:, 0]
    got = tape.gradient(z, xt).numpy()

    w = {n: model.get_layer(n).get_weights() for n in ("d1", "d2", "d3", "logits")}
    a1 = x @ w["d1"][0] + w["d1"][1]
    a2 = np.maximum(a1, 0) @ w["d2"][0] + w["d2"][1]
    a3 = np.clip(a2, 0, 6) @ w["d3"][0] + w["d3"][1]
    np.testing.assert_allclose(graph(xt).numpy()[:, 0], (np.maximum(a3, 0) @ w["logits"][0] + w["logits"][1])[:, 0],
                               rtol=1e-5)  # fmt: skip
    g = np.broadcast_to(w["logits"][0][:, 0], a3.shape)
    g = g * (a3 > 0) * (g > 0)
    g = g @ w["d3"][0].T
    g = g * (a2 > 0) * (a2 < 6) * (g > 0)
    g = g @ w["d2"][0].T
    g = g * (a1 > 0) * (g > 0)
    expected = g @ w["d1"][0].T
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # and it differs from the plain gradient
    with tf.GradientTape() as tape:
        tape.watch(xt)
        plain = model.get_layer("logits").output
        zp = keras.Model(inp, plain)(xt)[:, 0]
    assert not np.allclose(tape.gradient(zp, xt).numpy(), got)


# ---------------------------------------------------------------------------------------------------- logits


def test_maps_are_computed_from_the_logit_not_the_probability(trained):
    """Scaling the logit layer by 50 saturates the sigmoid; maps on the logit scale by exactly 50 (Grad-CAM and
    HiResCAM are linear in z), maps of the probability would not."""
    from cellbench.models.cam import CamExplainer, copy_model

    model, x, y = trained
    ex = CamExplainer(model, methods=("gradcam", "hirescam"))
    logits = ex.logits(x)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), model.predict(x.astype("float32"), verbose=0), atol=1e-5)
    big = copy_model(model)
    kernel, bias = big.get_layer("logits").get_weights()
    big.get_layer("logits").set_weights([50 * kernel, 50 * bias])
    p = big.predict(x.astype("float32"), verbose=0)[:, 0]
    assert np.mean((p < 1e-4) | (p > 1 - 1e-4)) > 0.8  # the probabilities are saturated
    a, b = ex.explain(x, y), CamExplainer(big, methods=("gradcam", "hirescam")).explain(x, y)
    for m in ("gradcam", "hirescam"):
        assert a[m].max() > 0
        np.testing.assert_allclose(b[m], 50 * a[m], rtol=1e-3, atol=1e-5 * a[m].max())


def test_multiclass_maps_use_the_class_logit_and_differ_from_softmax_maps():
    import keras
    import tensorflow as tf

    from cellbench.models import resolve_params
    from cellbench.models.cam import CamExplainer
    from cellbench.models.deep import build_model

    keras.utils.set_random_seed(0)
    model, _ = build_model("cnn_tiny", resolve_params("cnn_tiny", {"size": SIZE}), n_classes=3, seed=0)
    x, _ = quadrant_task(8, seed=2)
    cls = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    got = CamExplainer(model, methods=("gradcam",)).explain(x, cls)["gradcam"]
    probe = keras.Model(model.inputs, [model.get_layer("relu2").output, model.get_layer("logits").output, model.output])

    def manual(use_probability: bool) -> np.ndarray:
        xt = tf.constant(x.astype("float32"))
        with tf.GradientTape() as tape:
            act, z, p = probe(xt, training=False)
            score = tf.gather(p if use_probability else z, cls, axis=1, batch_dims=1)
        grads = tape.gradient(score, act)
        cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * act, axis=-1))
        return tf.image.resize(cam[..., None], (SIZE, SIZE))[..., 0].numpy()

    np.testing.assert_allclose(got, manual(False), rtol=1e-4, atol=1e-7)
    with np.errstate(invalid="ignore"):
        norm = lambda m: m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12)  # noqa: E731
    assert np.abs(norm(got) - norm(manual(True))).max() > 0.05


def test_a_final_softmax_dense_layer_is_evaluated_without_its_activation():
    import keras

    from cellbench.models.cam import CamExplainer, logit_layer

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c")(keras.layers.Rescaling(1 / 255)(inp))
    feat = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(feat))
    assert logit_layer(model) == ("head", True)
    x, _ = quadrant_task(4, seed=0)
    ex = CamExplainer(model)
    kernel, bias = model.get_layer("head").get_weights()
    pre = keras.Model(inp, feat).predict(x.astype("float32"), verbose=0) @ kernel + bias
    np.testing.assert_allclose(ex.logits(x), pre, rtol=1e-5, atol=1e-6)
    assert ex.target_layer == "c"


# ---------------------------------------------------------------------------------------------------- localisation


def test_gradcam_and_hirescam_put_most_energy_where_the_evidence_is(trained):
    from cellbench.models.cam import CamExplainer, energy_fractions

    model, x, y = trained
    maps = CamExplainer(model).explain(x, y)
    inside = {m: energy_fractions(maps[m], {"q": region_mask(len(x))})["q"] for m in maps if m != "logits"}
    for m in ("gradcam", "hirescam"):
        assert np.nanmean(inside[m]) > 0.6, (m, np.nanmean(inside[m]))  # the quadrant is 25 % of the image
        for c in (0, 1):
            assert np.nanmean(inside[m][y == c]) > 0.5, (m, c)
    for m in ("guided-gradcam", "guided-hirescam"):
        assert np.nanmean(inside[m]) > 0.5, (m, np.nanmean(inside[m]))


def test_energy_fractions():
    from cellbench.models.cam import energy_fractions

    maps = np.zeros((3, 4, 4))
    maps[0, :2, :2] = 1.0
    maps[1] = 1.0
    region = np.zeros((3, 4, 4), bool)
    region[:, :2, :2] = True
    out = energy_fractions(maps, {"r": region, "rest": ~region})["r"]
    assert out[0] == 1.0 and out[1] == 0.25 and np.isnan(out[2])


# ---------------------------------------------------------------------------------------------------- layers


def test_default_and_named_target_layers():
    import keras

    from cellbench.models import resolve_params
    from cellbench.models.cam import default_target_layer, resolve_layer
    from cellbench.models.deep import build_model

    keras.utils.set_random_seed(0)
    cnn, _ = build_model("cnn", resolve_params("cnn", {"size": 32}), n_classes=2, seed=0)
    assert default_target_layer(cnn) == "relu4"
    tiny, _ = build_model("cnn_tiny", resolve_params("cnn_tiny", {"size": 32}), n_classes=2, seed=0)
    assert default_target_layer(tiny) == "relu2"
    assert resolve_layer(tiny, "conv1") == "conv1"
    with pytest.raises(ConfigError, match="no layer 'nope'.*relu2"):
        resolve_layer(tiny, "nope")


def test_nested_mobilenet_v2_maps_with_every_relu6_guided():
    import keras

    from cellbench.models import resolve_params
    from cellbench.models.cam import CamExplainer, build_graph, flat_layers
    from cellbench.models.deep import build_model

    params = resolve_params("mobilenet_v2", {"size": SIZE, "weights": "random"})
    model, backbone = build_model("mobilenet_v2", params, n_classes=2, seed=0)
    relus = [la for _, la in flat_layers(backbone) if isinstance(la, keras.layers.ReLU)]
    assert relus and all(float(la.max_value) == 6.0 for la in relus)
    ex = CamExplainer(model)
    assert ex.target_layer == f"{backbone.name}/out_relu"
    assert ex.n_guided == len(relus)
    x, _ = quadrant_task(6, seed=0)
    maps = ex.explain(x, np.array([0, 1] * 3))
    for m in ("gradcam", "hirescam", "guided-backprop", "guided-gradcam", "guided-hirescam"):
        assert maps[m].shape == (6, SIZE, SIZE) and np.isfinite(maps[m]).all() and (maps[m] >= 0).all()
    guided, _ = build_graph(model, guided=True)
    z = model.get_layer("logits").output
    np.testing.assert_allclose(guided.predict(x.astype("float32"), verbose=0), ex.logits(x), rtol=1e-4, atol=1e-5)
    assert z is not None
    named = CamExplainer(model, target_layer="block_13_expand_relu", methods=("gradcam",))
    assert named.target_layer == f"{backbone.name}/block_13_expand_relu"
    assert named.explain(x[:2], [1, 1])["gradcam"].shape == (2, SIZE, SIZE)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("mobilenet", "conv_pw_13_relu"),
        ("resnet50", "conv5_block3_out"),
        ("efficientnet_b0", "top_activation"),
        ("densenet121", "relu"),
    ],
)
def test_every_transfer_backbone_has_a_default_target_and_maps(name, target):
    from cellbench.models import resolve_params
    from cellbench.models.cam import CamExplainer
    from cellbench.models.deep import build_model

    model, backbone = build_model(name, resolve_params(name, {"size": SIZE, "weights": "random"}), n_classes=2, seed=0)
    ex = CamExplainer(model)
    assert ex.target_layer == f"{backbone.name}/{target}"
    x, _ = quadrant_task(4, seed=0)
    maps = ex.explain(x, [0, 1, 0, 1])
    assert all(np.isfinite(v).all() for v in maps.values())
    assert ex.n_guided > 0


def test_bad_inputs_are_refused(trained):
    from cellbench.models.cam import CamExplainer, parse_methods

    model, x, _ = trained
    with pytest.raises(ConfigError, match="unknown CAM method.*gradcam"):
        parse_methods("gradcam,smoothgrad")
    assert parse_methods("all")[0] == "gradcam"
    ex = CamExplainer(model, methods=("gradcam",))
    with pytest.raises(ConfigError, match="target classes must be in 0..1"):
        ex.explain(x[:2], [0, 2])
    with pytest.raises(ConfigError, match="images must be N × 32 × 32 × 3"):
        ex.explain(x[:2, :16], [0, 1])
    with pytest.raises(ConfigError, match="spatial"):
        CamExplainer(model, target_layer="dense")


# ---------------------------------------------------------------------------------------------------- sanity check


def test_sanity_check_cascades_from_the_logits_and_gradcam_depends_on_the_model(trained):
    from cellbench.models.cam import (
        CamExplainer,
        cascade_stages,
        copy_model,
        randomise_layers,
        rank_correlations,
        sanity_check,
    )

    model, x, y = trained
    assert cascade_stages(model, "relu2") == [["logits"], ["logits", "dense"], ["logits", "dense", "conv2"]]
    copy = copy_model(model)
    randomise_layers(copy, ["logits", "conv2"], seed=0)
    for layer in ("conv1", "dense", "bn2"):
        for a, b in zip(model.get_layer(layer).get_weights(), copy.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(a, b)
    for layer in ("logits", "conv2"):
        assert not np.allclose(model.get_layer(layer).get_weights()[0], copy.get_layer(layer).get_weights()[0])
    ex = CamExplainer(model)
    maps = ex.explain(x[:24], y[:24])
    out = sanity_check(model, x[:24], y[:24], maps=maps, target_layer="relu2", methods=ex.methods, seed=0)
    assert [s["layers"] for s in out["stages"]] == cascade_stages(model, "relu2")
    last = out["stages"][-1]["methods"]
    assert last["gradcam"]["n"] + last["gradcam"]["n_constant"] == 24
    assert last["gradcam"]["mean"] < 0.5, last["gradcam"]  # the trained model's maps are not reproduced
    same = rank_correlations(maps["gradcam"], maps["gradcam"])
    assert np.allclose(same[np.isfinite(same)], 1.0)
    assert np.isnan(rank_correlations(np.zeros((1, 4, 4)), np.ones((1, 4, 4)))).all()


# ---------------------------------------------------------------------------------------------------- throughput


@pytest.mark.benchmark
@pytest.mark.parametrize("name", ["cnn", "mobilenet_v2"])
@pytest.mark.parametrize("methods", ["gradcam,hirescam", "all"])
def test_maps_per_second_batch_32_at_96px(benchmark, name, methods):
    """Maps per second for one batch of 32 images at 96 px (all requested methods from one batched call)."""
    from cellbench.models import resolve_params
    from cellbench.models.cam import CamExplainer, parse_methods
    from cellbench.models.deep import build_model

    model, _ = build_model(name, resolve_params(name, {"size": 96, "weights": "random"} if name != "cnn" else
                                                {"size": 96}), n_classes=2, seed=0)  # fmt: skip
    ex = CamExplainer(model, methods=parse_methods(methods))
    x = np.random.default_rng(0).integers(0, 255, (32, 96, 96, 3)).astype(np.uint8)
    cls = np.arange(32) % 2
    ex.explain(x, cls)  # trace once
    benchmark.pedantic(ex.explain, args=(x, cls), rounds=5, iterations=1)
    if benchmark.stats is not None:
        per_s = 32 / benchmark.stats.stats.mean
        benchmark.extra_info["maps_per_s"] = round(per_s, 1)
        benchmark.extra_info["ms_per_image"] = round(1000 / per_s, 2)
