"""Saved fold models and `python -m bench predict`: the same probabilities as the stored test predictions."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.hashing import file_sha256
from cellbench.run.artifacts import CARD_FORMAT
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite
from cellbench.tools.cli import main
from cellbench.tools.predict import find_saved, predict_images


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    suite = parse_suite(
        {
            "name": "p",
            "seed": 0,
            "save_models": True,
            "strategies": ["none", "threshold"],
            "cv": {"folds": 2},
            "datasets": {"synthetic": {"n_patients": 8, "fields_per_patient": 2}},
            "models": {"logistic_regression": {}, "cnn_tiny": {}},
            "deep": {"max_epochs": 1, "size": 32, "strategies": ["none"]},
        },
        source="test",
    )
    summary = run_suite(suite, results_root=results, workers=1, progress=False)
    assert summary.failed == 0
    folder = results / "p"
    with Store.open(folder, write=False) as store:
        jobs, preds = store.jobs(), store.predictions()
    from cellbench.datasets import load_dataset

    samples = {s.id: s for s in load_dataset("synthetic", n_patients=8, fields_per_patient=2).samples}
    return folder, jobs, preds, samples


def _job(jobs, model, strategy="none"):
    row = jobs[(jobs.model == model) & (jobs.imbalance == strategy) & (jobs.fold == 0)].iloc[0]
    return row.key


def _stored(preds, key, ids):
    """Stored predictions of job ``key`` for ``ids``: y_pred and the positive (blast, index 1) probability."""
    p = preds[preds.job_key == key].set_index("sample_id").loc[ids]
    return p.assign(proba_blast=[v[1] for v in p.proba])


def _ids(preds, key, n=6):
    return preds[preds.job_key == key].sample_id.tolist()[:n]


@pytest.mark.parametrize(("model", "strategy"), [("logistic_regression", "none"), ("logistic_regression", "threshold")])
def test_classical_fold_model_reproduces_its_test_predictions(saved_run, model, strategy):
    folder, jobs, preds, samples = saved_run
    key = _job(jobs, model, strategy)
    saved = find_saved(folder, job=key[:10])
    assert saved.path.suffix == ".skops" and saved.card["feature_names"] and len(saved.card["sha256"]) == 64
    ids = _ids(preds, key)
    out = predict_images(saved, [samples[i].image_path for i in ids], masks=[samples[i].mask_path for i in ids])
    stored = _stored(preds, key, ids)
    np.testing.assert_allclose(out["proba_blast"], stored["proba_blast"], atol=1e-9)
    assert list(out["class"]) == [saved.card["classes"][k] for k in stored["y_pred"]]


def test_deep_fold_model_reproduces_its_test_predictions(saved_run):
    folder, jobs, preds, samples = saved_run
    key = _job(jobs, "cnn_tiny")
    saved = find_saved(folder / "models" / f"{key}.keras")
    assert saved.card["size"] == 32
    ids = _ids(preds, key)
    out = predict_images(saved, [samples[i].image_path for i in ids])
    np.testing.assert_allclose(out["proba_blast"], _stored(preds, key, ids)["proba_blast"], atol=1e-5)


def test_predict_command_prints_classes_and_writes_csv(saved_run, tmp_path, capsys):
    folder, jobs, _preds, samples = saved_run
    key = _job(jobs, "logistic_regression")
    image = next(iter(samples.values())).image_path
    csv = tmp_path / "p.csv"
    assert main(["predict", "--model", str(folder), "--job", key[:12], "--csv", str(csv), str(image)]) == 0
    out = capsys.readouterr().out
    assert image.name in out and "proba_blast" in out and csv.is_file()


def test_ambiguous_or_missing_models_are_refused_with_the_list(saved_run, tmp_path):
    folder, *_ = saved_run
    with pytest.raises(ConfigError, match="choose one with --job") as err:
        find_saved(folder)
    assert "logistic_regression × threshold" in str(err.value)
    with pytest.raises(ConfigError, match="no saved model's job key starts with 'zzz'"):
        find_saved(folder, job="zzz")
    with pytest.raises(ConfigError, match="no saved models"):
        find_saved(tmp_path)
    with pytest.raises(ConfigError, match="not a saved model"):
        bad = tmp_path / "x.txt"
        bad.write_text("x")
        find_saved(bad)


def test_classical_and_deep_jobs_score_identical_test_folds(saved_run):
    _folder, jobs, preds, _samples = saved_run
    merged = preds.merge(jobs[["key", "model", "kind", "imbalance", "fold"]], left_on="job_key", right_on="key")
    per_job = merged.groupby(["kind", "model", "imbalance", "fold"]).sample_id.apply(lambda s: tuple(sorted(s)))
    assert set(per_job.index.get_level_values("kind")) == {"classical", "deep"}
    for fold, ids in per_job.groupby(level="fold"):
        assert ids.nunique() == 1, f"fold {fold}: classical and deep models were scored on different cells"


class _RunsAShellCommand:
    """A pickle payload: unpickling it runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _copy_saved(saved, folder):
    """A copy of a saved model and its card in ``folder`` (so the module's run stays as it was)."""
    shutil.copy(saved.path, folder / saved.path.name)
    shutil.copy(saved.path.with_suffix(".json"), folder / saved.path.with_suffix(".json").name)
    return folder / saved.path.name


def test_a_pickle_that_runs_a_command_is_never_loaded(saved_run, tmp_path, capsys):
    folder, jobs, _preds, samples = saved_run
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.joblib"
    evil.write_bytes(pickle.dumps(_RunsAShellCommand(marker)))
    card = json.loads(
        find_saved(folder, job=_job(jobs, "logistic_regression")[:12]).path.with_suffix(".json").read_text()
    )
    (tmp_path / "model.json").write_text(json.dumps({**card, "format": CARD_FORMAT, "file": evil.name}))
    image = str(next(iter(samples.values())).image_path)
    assert main(["predict", "--model", str(evil), image]) == 2
    assert "no longer read" in capsys.readouterr().err
    assert not marker.exists()


def test_a_skops_file_naming_an_untrusted_type_is_refused_with_the_type(saved_run, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    folder, jobs, _preds, samples = saved_run
    copy = _copy_saved(find_saved(folder, job=_job(jobs, "logistic_regression")[:12]), tmp_path)
    sio.dump(FunctionTransformer(func=os.system), copy)
    card_path = copy.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "sha256": file_sha256(copy)}))
    image = [next(iter(samples.values())).image_path]
    with pytest.raises(DataError, match=r"names types cellbench does not load: .*system.*only types from sklearn"):
        predict_images(find_saved(copy), image)


@pytest.mark.parametrize("model", ["logistic_regression", "cnn_tiny"])
def test_a_model_file_changed_after_the_run_is_refused(saved_run, tmp_path, model):
    folder, jobs, _preds, samples = saved_run
    copy = _copy_saved(find_saved(folder, job=_job(jobs, model)[:12]), tmp_path)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(DataError, match="was changed after it was saved"):
        predict_images(find_saved(copy), [next(iter(samples.values())).image_path])


def test_a_broken_keras_file_with_a_matching_card_is_one_clear_error(saved_run, tmp_path):
    folder, jobs, _preds, samples = saved_run
    copy = _copy_saved(find_saved(folder, job=_job(jobs, "cnn_tiny")[:12]), tmp_path)
    copy.write_bytes(b"PK\x03\x04 not a keras archive")
    card_path = copy.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "sha256": file_sha256(copy)}))
    with pytest.raises(DataError, match="cannot load saved Keras model"):
        predict_images(find_saved(copy), [next(iter(samples.values())).image_path])
