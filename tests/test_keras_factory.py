"""Keras models named by import path (``factory = "module:function"``): trained as the built-in CNN is, clear errors."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cellbench.core.errors import ConfigError
from cellbench.core.types import ImbalanceSpec, Job
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import model_spec, parse_suite
from tests.test_own_data import write_cells

README = Path(__file__).resolve().parents[1] / "README.md"
FACTORY = Path(__file__).with_name("keras_factory.py")


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch):
    """Factory models registered by a test leave with it (the catalog test lists every model)."""
    from cellbench.models import MODELS, deep, plugins

    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))
    monkeypatch.setattr(deep, "_ADDED", dict(deep._ADDED))
    monkeypatch.setattr(plugins, "_BUILT", dict(plugins._BUILT))


def _raw(**models):
    return {"name": "kf", "datasets": {"synthetic": {}}, "models": models}


def _readme_example() -> tuple[str, str]:
    """The README's worked example: its suite file and its factory module."""
    text = README.read_text()
    section = text[text.index("### Your own Keras model") :]
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return toml, code


def test_the_readme_example_is_the_factory_module_the_tests_run():
    _, code = _readme_example()
    module = FACTORY.read_text()
    assert code.strip() in module  # the README shows the module's build function as it is


@pytest.mark.slow
def test_the_readme_suite_trains_a_factory_model_like_the_builtin_cnn(tmp_path):
    toml, _ = _readme_example()
    data = write_cells(tmp_path / "mydata", patients=6, per_patient=4)
    suite_file = tmp_path / "mine.toml"
    suite_file.write_text(toml)
    from cellbench.run.suite import load_suite

    suite = load_suite(suite_file)
    assert suite.models["my_net"]["factory"] == "tests.keras_factory:build"
    summary = run_suite(suite, results_root=tmp_path / "r", data_root=data, workers=2, progress=False)
    with Store.open(summary.results_dir, write=False) as store:
        jobs = store.jobs()
        assert summary.failed == 0, jobs[jobs.status != "ok"].error.tolist()
        ok = jobs[jobs.fold >= 0]
        preds = store.predictions(ok.key.tolist()).merge(ok[["key", "model", "imbalance", "fold"]],
                                                         left_on="job_key", right_on="key")  # fmt: skip
    # the same folds, the same strategies as the built-in CNN
    assert set(ok.model) == {"cnn_tiny", "my_net"} and ok.folds_key.nunique() == 1
    grid = {m: set(zip(d.imbalance, d.fold)) for m, d in ok.groupby("model")}
    assert grid["my_net"] == grid["cnn_tiny"] and {s for s, _ in grid["my_net"]} == {"none", "class_weight"}
    tested = {m: {f: set(g.sample_id) for f, g in d.groupby("fold")} for m, d in preds.groupby("model")}
    assert tested["my_net"] == tested["cnn_tiny"] and len(tested["my_net"]) == 3
    # the same training loop: early-stopping history on the inner split, a refit for the epochs it chose
    for extra in ok[ok.model == "my_net"].extra:
        assert 1 <= extra.epochs <= 3 and len(extra.history["val_loss"]) == extra.epochs
        assert extra.refit_epochs and extra.inner and extra.converged is not None
    # a final refit on all development data for each strategy
    refits = jobs[(jobs.fold < 0) & (jobs.model == "my_net")]
    assert set(refits.imbalance) == {"none", "class_weight"} and set(refits.status) == {"ok"}
    # Grad-CAM on a saved fold model
    from cellbench.models.cam import CamExplainer
    from cellbench.run.artifacts import load_keras

    key = ok[ok.model == "my_net"].key.iloc[0]
    model = load_keras(Path(summary.results_dir) / "models" / f"{key}.keras", None)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    maps = CamExplainer(model, methods=("gradcam",)).explain(images, np.array([0, 1]))
    assert maps["gradcam"].shape == (2, 32, 32) and np.isfinite(maps["gradcam"]).all()


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"factory": "nosuchpkg.nets:build"}, "factory 'nosuchpkg.nets:build': cannot import module 'nosuchpkg.nets'"),
        ({"factory": "tests.keras_factory:missing"}, "has no attribute 'missing'"),
        ({"factory": "tests.keras_factory:NOT_CALLABLE"}, "is not callable: it is int 3"),
        ({"factory": "tests.keras_factory:no_shape"}, "must take input_shape, n_classes as keyword arguments"),
        ({"factory": "tests.keras_factory:build", "width": 3}, "unknown parameter(s) width; allowed: augment"),
        ({"factory": "tests.keras_factory:build", "filters": "8"}, "parameter filters must be an integer"),
        ({"factory": "tests.keras_factory"}, 'must look like "module:function"'),
        ({"factory": "tests.keras_factory:build", "estimator": "a:b"}, "factory (a Keras model), not both"),
    ],
)
def test_bad_factories_are_refused_at_load_naming_the_table_and_the_path(table, words):
    name = "bad_" + "".join(c for c in words if c.isalnum())[:24].lower()  # one name per case: none left over
    with pytest.raises(ConfigError) as err:
        parse_suite(_raw(**{name: table}), source="t.toml")
    assert words in str(err.value) and f"suite t.toml: [models.{name}]: " in str(err.value)


def test_loading_a_suite_with_a_factory_does_not_import_tensorflow():
    code = (
        "import sys; from cellbench.run.suite import parse_suite, model_spec;"
        "s = parse_suite({'name': 'kf', 'datasets': {'synthetic': {}}, 'models': {'my_net': "
        "{'factory': 'tests.keras_factory:build', 'filters': 4}}}, source='t');"
        "spec = model_spec(s, 'my_net'); assert spec.kind == 'deep' and spec.params['filters'] == 4, spec;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=README.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("not_a_model", "[models.{name}]: factory 'tests.keras_factory:not_a_model' returned a str, not a keras.Model"),
        ("wrong_output", "the model's output shape is (None, 3); for 2 classes it must be (None, 1)"),
    ],
)
def test_a_factory_returning_the_wrong_thing_fails_with_the_table_and_path(factory, words):
    from cellbench.models.deep import build_model

    name = f"kf_{factory}"
    suite = parse_suite(_raw(**{name: {"factory": f"tests.keras_factory:{factory}", "size": 16}}), source="t.toml")
    spec = model_spec(suite, name)
    with pytest.raises(ConfigError) as err:
        build_model(name, spec.params, n_classes=2, seed=0)
    assert words.format(name=name) in str(err.value)


def test_a_built_factory_model_has_the_input_and_output_the_harness_expects():
    from cellbench.models.deep import build_model

    suite = parse_suite(_raw(kf_ok={"factory": "tests.keras_factory:build", "size": 24, "filters": 5}), source="t")
    model, backbone = build_model("kf_ok", model_spec(suite, "kf_ok").params, n_classes=3, seed=0)
    assert backbone is None and tuple(model.input.shape) == (None, 24, 24, 3) and tuple(model.output.shape) == (None, 3)
    assert model.get_layer(index=2).filters == 5


def test_a_worker_that_cannot_import_the_factory_fails_its_jobs_with_that_error(tmp_path, monkeypatch):
    """The module imports in the driver but not in workers: every job is an error row naming it; nothing loops."""
    (tmp_path / "driver_only_nets.py").write_text(
        textwrap.dedent("""
        import multiprocessing

        if multiprocessing.parent_process() is not None:
            raise ImportError("driver_only_nets is not installed on this worker")


        def build(*, input_shape, n_classes):
            raise AssertionError("never reached in a worker")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from cellbench.run.executors import run_local

    suite = parse_suite(_raw(kf_driver={"factory": "driver_only_nets:build"}), source="t.toml")
    spec = model_spec(suite, "kf_driver")
    jobs = [(Job(suite="kf", dataset="d", extraction="given", model=spec, imbalance=ImbalanceSpec(name="none"),
                 fold=f, seed=0, cv="x"), "nowhere") for f in range(3)]  # fmt: skip
    results = list(run_local(jobs, workers=2))
    assert len(results) == 3 and {r.status for r in results} == {"error"}
    words = "[models.kf_driver]: factory 'driver_only_nets:build': cannot import module 'driver_only_nets'"
    assert all(words in r.error for r in results)  # the import error, not a missing task file or a dead pool
