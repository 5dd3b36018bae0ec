"""Corruption is caught: cache files are checked against their checksums (and recomputed), task files against
their names."""

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cellbench.core.errors import DataError
from cellbench.core.files import checksum_file, seal, seal_problem, sealed_cache_ok
from cellbench.datasets import load_dataset
from cellbench.features import FeatureConfig
from cellbench.features.batch import extract_feature_set, feature_cache_path
from cellbench.models.pixels import pixel_cache
from cellbench.run.task import TaskData, load_task, save_task


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    ds = load_dataset("synthetic", cache_dir=tmp_path_factory.mktemp("c"), n_patients=4, fields_per_patient=1)
    return ds.samples[:12]


def _features(samples, cache):
    return extract_feature_set(
        samples, config=FeatureConfig(), dataset_fingerprint="fp", extraction="given", kind="cell",
        cache_dir=cache, n_jobs=1, progress=False,
    )  # fmt: skip


def test_a_feature_cache_rewritten_with_other_values_is_recomputed_not_read(samples, tmp_path, caplog):
    fresh = _features(samples, tmp_path)
    path = feature_cache_path(
        cache_dir=tmp_path, dataset_fingerprint="fp", extraction="given", config=FeatureConfig(), kind="cell",
        family="haralick",
    )  # fmt: skip
    # a valid Parquet file with the same schema and metadata but changed values: only a checksum can tell
    table = pq.read_table(path)
    col = table.schema.names[1]
    changed = table.set_column(1, col, pa.array(table.column(col).to_numpy() + 1.0))
    pq.write_table(changed, path)
    with caplog.at_level(logging.WARNING):
        again = _features(samples, tmp_path)
    np.testing.assert_array_equal(again.X, fresh.X)
    assert "feature cache" in caplog.text and "failed its integrity check" in caplog.text
    assert seal_problem(path) is None  # rewritten and sealed again


def test_a_byte_flipped_in_the_pixel_cache_is_caught_and_the_cache_rebuilt(samples, tmp_path, caplog):
    kw = dict(size=32, dataset_fingerprint="fp", extraction="given", cache_dir=tmp_path, progress=False)
    first = pixel_cache(samples, **kw)
    fresh = np.load(first.path).copy()
    data = bytearray(first.path.read_bytes())
    data[-100] ^= 0xFF  # inside the pixel data, past the .npy header
    first.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = pixel_cache(samples, **kw)
    np.testing.assert_array_equal(np.load(again.path), fresh)
    assert "pixel cache" in caplog.text and "SHA-256" in caplog.text


def test_sealed_cache_ok_names_a_missing_checksum_and_removes_the_file(tmp_path, caplog):
    f = tmp_path / "x.npy"
    np.save(f, np.arange(3))
    assert not sealed_cache_ok(f, what="embedding cache") and not f.exists()
    assert "has no checksum" in caplog.text
    np.save(f, np.arange(3))
    seal(f)
    assert sealed_cache_ok(f, what="embedding cache") and checksum_file(f).is_file()


def _task():
    return TaskData(
        ids=np.array(["a", "b", "c", "d"]), y=np.array([0, 1, 0, 1]), groups=None, X=np.arange(8.0).reshape(4, 2),
        feature_names=("f0", "f1"), tests=(np.array([0, 1]), np.array([2, 3])), classes=("hem", "all"), positive=1,
    )  # fmt: skip


def test_a_task_file_whose_content_no_longer_matches_its_name_is_refused_then_rewritten(tmp_path, caplog):
    path = save_task(_task(), tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["X"] = arrays["X"] + 1.0  # a valid .npz with other features under the same name
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    load_task.cache_clear()
    with pytest.raises(DataError, match=r"task file .* is damaged .*rerun the suite"):
        load_task(str(path))
    with caplog.at_level(logging.WARNING):
        assert save_task(_task(), tmp_path) == path
    assert "failed its integrity check" in caplog.text
    load_task.cache_clear()
    np.testing.assert_array_equal(load_task(str(path)).X, _task().X)
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == json.dumps([path.name])


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from cellbench.run.runner import run_suite
    from cellbench.run.suite import parse_suite

    results = tmp_path_factory.mktemp("results")
    suite = parse_suite(
        {
            "name": "tiny",
            "cv": {"folds": 2},
            "datasets": {"synthetic": {"n_patients": 6, "fields_per_patient": 1}},
            "models": {"logistic_regression": {}, "naive_bayes": {}},
        },
        source="test",
    )
    assert run_suite(suite, results_root=results, workers=1, progress=False).failed == 0
    return results / "tiny"


def _edited_copy(folder, dst, sql):
    import shutil
    import sqlite3

    shutil.copytree(folder, dst)
    with sqlite3.connect(dst / "store.sqlite") as conn:
        key = conn.execute("SELECT key FROM jobs WHERE model = 'naive_bayes' ORDER BY key LIMIT 1").fetchone()[0]
        conn.execute(sql, (key,))
    return dst, key


def test_the_leaderboard_refuses_a_store_whose_metrics_disagree_with_its_predictions(small_store, tmp_path, capsys):
    from cellbench.tools.cli import main

    assert main(["leaderboard", "--suite", "tiny", "--results", str(small_store.parent)]) == 0
    folder, key = _edited_copy(
        small_store,
        tmp_path / "r" / "tiny",
        "UPDATE jobs SET metrics = json_set(metrics, '$.balanced_accuracy', 0.173) WHERE key = ?",
    )
    capsys.readouterr()
    assert main(["leaderboard", "--suite", "tiny", "--results", str(folder.parent)]) == 2
    err = capsys.readouterr().err
    assert "inconsistent" in err and key[:12] in err and "balanced_accuracy stored 0.173" in err


def test_compare_refuses_a_store_whose_predictions_were_edited(small_store, tmp_path):
    from cellbench.tools.repro import compare_stores

    assert compare_stores(small_store, small_store) == []
    folder, key = _edited_copy(
        small_store, tmp_path / "tiny", "UPDATE predictions SET y_pred = 1 - y_pred WHERE job_key = ?"
    )
    with pytest.raises(DataError, match=rf"inconsistent.*\n  {key[:12]} synthetic/given naive_bayes/none"):
        compare_stores(small_store, folder)
