"""User-supplied embeddings (issue 14, point 2): Parquet or .npz vectors keyed by sample id or image path, one
clear error for each way the file and the samples can disagree. No TensorFlow."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cellbench.core.errors import ConfigError
from cellbench.datasets.embeddings import UserEmbeddings, load_user_embeddings

IDS = ["s0", "s1", "s2", "s3"]
PATHS = ["a/img0.png", "a/img1.png", "b/img2.png", "b/img3.png"]
X = np.arange(12, dtype=np.float64).reshape(4, 3) / 7


def wide(tmp_path, ids=IDS, X=X, key="sample_id", name="vectors.parquet"):
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    df.insert(0, key, ids)
    df.to_parquet(tmp_path / name)
    return tmp_path / name


def listed(tmp_path, ids=IDS, rows=None, key="sample_id"):
    rows = [list(r) for r in X] if rows is None else rows
    pq.write_table(pa.table({key: ids, "embedding": rows}), tmp_path / "list.parquet")
    return tmp_path / "list.parquet"


def npz(tmp_path, name="vectors.npz", **arrays):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def refused(match: str, path, **kw) -> str:
    kw.setdefault("ids", IDS)
    with pytest.raises(ConfigError, match=match) as err:
        load_user_embeddings(path, **kw)
    assert str(path) in str(err.value)
    return str(err.value)


# --------------------------------------------------------------------------------------------- formats


def test_wide_parquet_by_sample_id_in_the_samples_order(tmp_path):
    file = wide(tmp_path, ids=IDS[::-1], X=X[::-1])
    got = load_user_embeddings(file, ids=IDS)
    assert isinstance(got, UserEmbeddings)
    assert got.X.dtype == np.float32 and got.X.flags.c_contiguous
    np.testing.assert_allclose(got.X, X.astype(np.float32))
    assert got.names == ("f0", "f1", "f2") and got.key == "sample_id" and got.path == file
    assert got.digest == hashlib.sha256(file.read_bytes()).hexdigest()


def test_list_column_parquet_and_generic_names(tmp_path):
    got = load_user_embeddings(listed(tmp_path), ids=IDS[::-1])
    np.testing.assert_allclose(got.X, X[::-1].astype(np.float32))
    assert got.names == ("user_000", "user_001", "user_002")


def test_fixed_size_list_and_a_pandas_index_column(tmp_path):
    rows = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), 3)
    pq.write_table(pa.table({"sample_id": IDS, "embedding": rows}), tmp_path / "fixed.parquet")
    np.testing.assert_allclose(load_user_embeddings(tmp_path / "fixed.parquet", ids=IDS).X, X, rtol=1e-6)
    df = pd.DataFrame(X, columns=["a", "b", "c"], index=[10, 11, 12, 13]).assign(sample_id=IDS)
    df.to_parquet(tmp_path / "indexed.parquet")  # the unnamed index is stored as __index_level_0__
    assert load_user_embeddings(tmp_path / "indexed.parquet", ids=IDS).names == ("a", "b", "c")


def test_npz_by_sample_id_and_by_path(tmp_path):
    got = load_user_embeddings(npz(tmp_path, ids=np.array(IDS), X=X.astype(np.float16)), ids=IDS)
    np.testing.assert_allclose(got.X, X, rtol=1e-3)
    assert got.key == "sample_id" and got.names[0] == "user_000"
    file = npz(tmp_path, "p.npz", paths=np.array(PATHS[::-1]), embeddings=X[::-1])
    got = load_user_embeddings(file, ids=IDS, paths=PATHS)
    np.testing.assert_allclose(got.X, X.astype(np.float32))
    assert got.key == "path"


@pytest.mark.parametrize("column", ["path", "image", "image_path"])
def test_parquet_by_path_normalised_relative_to_root(tmp_path, column):
    root = tmp_path / "data"
    in_file = ["./a/img0.png", "a\\img1.png", f"{root}/b/img2.png", "b//img3.png"]
    samples = [str(root / "a" / "img0.png"), "a/img1.png", "./b/img2.png", "b/img3.png"]
    got = load_user_embeddings(wide(tmp_path, ids=in_file, key=column), ids=IDS, paths=samples, root=root)
    np.testing.assert_allclose(got.X, X.astype(np.float32))
    assert got.key == "path"


def test_extra_keys_can_be_ignored(tmp_path):
    file = wide(tmp_path, ids=[*IDS, "other"], X=np.vstack([X, np.full((1, 3), np.nan)]))
    got = load_user_embeddings(file, ids=IDS[:2], extra="ignore")  # the ignored row's NaN is not looked at
    np.testing.assert_allclose(got.X, X[:2].astype(np.float32))
    with pytest.raises(ConfigError, match="extra must be one of error, ignore, got 'drop'"):
        load_user_embeddings(file, ids=IDS, extra="drop")


# ---------------------------------------------------------------------------------------------- errors


def test_a_missing_id_is_named(tmp_path):
    message = refused(r"samples with no vector \(1 of 4, matched on sample id\)", wide(tmp_path, ids=IDS[:3], X=X[:3]))
    assert "'s3'" in message


def test_many_missing_ids_name_the_first_five_and_count(tmp_path):
    ids = [f"s{i}" for i in range(12)]
    message = refused(r"\(8 of 12", wide(tmp_path), ids=ids)
    assert all(f"'s{i}'" in message for i in range(4, 9)) and "'s9'" not in message and "and 3 more" in message


def test_a_missing_path_names_the_sample_and_its_path(tmp_path):
    file = npz(tmp_path, paths=np.array(PATHS[:3]), X=X[:3])
    message = refused("matched on image path", file, paths=PATHS)
    assert "s3 (b/img3.png)" in message
    message = refused("no vector", file, paths=[*PATHS[:3], None])
    assert "s3 (no image path)" in message
    refused("the samples have no image paths; key it by sample_id", file)


def test_a_duplicate_key_is_named(tmp_path):
    message = refused(r"duplicate sample ids \(1\)", wide(tmp_path, ids=["s0", "s1", "s2", "s1"]))
    assert "'s1'" in message
    file = npz(tmp_path, paths=np.array(["a/x.png", "./a/x.png"]), X=X[:2])  # the same path once normalised
    assert "'a/x.png'" in refused("duplicate image paths", file, ids=IDS[:2], paths=["a/x.png", "b/y.png"])


def test_samples_sharing_an_image_path_are_refused(tmp_path):
    file = npz(tmp_path, paths=np.array(PATHS), X=X)
    refused("shared by several samples", file, paths=[PATHS[0], PATHS[0], PATHS[2], PATHS[3]])


def test_an_extra_key_is_named(tmp_path):
    message = refused(r"extra sample ids that match no sample \(1\): 'zz'", wide(tmp_path, ids=[*IDS[:3], "zz"]),
                      ids=IDS[:3])  # fmt: skip
    assert "extra='ignore'" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_nan_and_infinite_values_name_column_and_row(tmp_path, bad):
    values = X.copy()
    values[2, 1] = bad
    refused(r"NaN, missing or infinite .*column 'f1', row 2 \(key 's2'\)", wide(tmp_path, X=values))
    refused(r"column 'user_001', row 2 \(key 's2'\)", npz(tmp_path, ids=np.array(IDS), X=values))


def test_a_null_value_is_refused(tmp_path):
    rows = [list(r) for r in X]
    rows[1] = [0.0, None, 1.0]
    refused(r"column 'user_001', row 1 \(key 's1'\)", listed(tmp_path, rows=rows))
    rows[1] = None
    refused(r"embedding is null in row 1 \(key 's1'\)", listed(tmp_path, rows=rows))


def test_non_numeric_values_are_refused(tmp_path):
    df = pd.DataFrame({"sample_id": IDS, "f0": X[:, 0], "label": ["a", "b", "a", "b"]})
    df.to_parquet(tmp_path / "labels.parquet")
    refused(r"column 'label' is not numeric", tmp_path / "labels.parquet")
    refused(r"column 'embedding' holds string", listed(tmp_path, rows=[["x"], ["y"], ["z"], ["w"]]))
    refused(r"X is not numeric", npz(tmp_path, ids=np.array(IDS), X=np.array([["a"]] * 4)))


def test_ragged_and_zero_width_vectors_are_refused(tmp_path):
    rows = [[1.0, 2.0], [1.0, 2.0], [1.0], [1.0, 2.0]]
    refused(r"ragged vectors .*row 2 \(key 's2'\) has 1", listed(tmp_path, rows=rows))
    refused("zero-width", listed(tmp_path, rows=[[], [], [], []]))
    pd.DataFrame({"sample_id": IDS}).to_parquet(tmp_path / "keys.parquet")
    refused("zero-width", tmp_path / "keys.parquet")
    refused("zero-width", npz(tmp_path, ids=np.array(IDS), X=np.zeros((4, 0))))
    refused("must be 2-D", npz(tmp_path, ids=np.array(IDS), X=np.zeros(4)))
    refused("4 ids but 3 rows", npz(tmp_path, ids=np.array(IDS), X=X[:3]))
    ragged = np.array([np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2)], dtype=object)
    refused("object array", npz(tmp_path, ids=np.array(IDS), X=ragged))


def test_layouts_that_are_neither_are_refused(tmp_path):
    pd.DataFrame({"id": IDS, "f0": X[:, 0]}).to_parquet(tmp_path / "nokey.parquet")
    refused("needs exactly one key column, sample_id .*; columns are id, f0", tmp_path / "nokey.parquet")
    pd.DataFrame({"sample_id": IDS, "path": PATHS, "f0": X[:, 0]}).to_parquet(tmp_path / "two.parquet")
    refused("sample_id, path are all there", tmp_path / "two.parquet")
    refused("arrays found: names, X", npz(tmp_path, names=np.array(IDS), X=X))
    df = pd.DataFrame({"sample_id": IDS, "f0": X[:, 0], "embedding": [list(r) for r in X]})
    df.to_parquet(tmp_path / "both.parquet")
    refused(r"a list column 'embedding' and other columns \(f0\)", tmp_path / "both.parquet")


def test_unknown_suffix_absent_and_unreadable_files(tmp_path):
    (tmp_path / "vectors.csv").write_text("sample_id,f0\ns0,1\n")
    refused(re.escape("unknown suffix '.csv'; expected one of .parquet, .pq, .npz"), tmp_path / "vectors.csv")
    refused("not found", tmp_path / "absent.parquet")
    refused("is not a file", tmp_path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    refused("cannot be read as Parquet", tmp_path / "junk.parquet")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    refused("cannot be read as .npz", tmp_path / "junk.npz")
    good = npz(tmp_path, ids=np.array(IDS), X=X).read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    refused("cannot be read as .npz", tmp_path / "cut.npz")
    file = wide(tmp_path)
    (tmp_path / "cut.parquet").write_bytes(file.read_bytes()[:-20])
    refused("cannot be read as Parquet", tmp_path / "cut.parquet")


def test_the_loader_does_not_import_tensorflow():
    code = "import sys, cellbench.datasets.embeddings as e; assert not {'tensorflow', 'keras'} & set(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
