"""Dataset catalog: PCam HDF5, Kaggle tif + CSV, MedMNIST npz and labels.csv adapters on files written here;
cards, verification, duplicates in CV, group-wise subsampling and bounded-memory reading of PCam."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.types import Sample
from cellbench.datasets import DATASETS, load_dataset, locate
from cellbench.datasets.content import find_duplicates, iter_images, pixel_digest
from cellbench.datasets.io import H5Row, as_rgb8, close_h5_files, read_image
from cellbench.datasets.subsample import subsample, subsample_dataset
from cellbench.datasets.verify import parse_options, verify
from cellbench.models.pixels import fit_to_square, pixel_cache
from cellbench.run.cv import Folds, check_folds, make_folds
from cellbench.tools.cli import build_parser, main
from tests.catalog_files import PCAM, pcam_patch, write_kaggle, write_medmnist, write_pcam_split, write_tif
from tests.conftest import leaderboard, shared

REPO = Path(__file__).resolve().parents[1]
TRAIN_SLIDES = ["A", "A", "B", "B", "C", "C", "D", "D"]


def pcam_release(root: Path, **train) -> Path:
    """Three splits: train 8 patches (slides A-D), valid 4 (E, F), test 4 (G, H); labels alternate 0, 1."""
    write_pcam_split(root, "train", [0, 1] * 4, slides=TRAIN_SLIDES, seed=1, **train)
    write_pcam_split(root, "valid", [0, 1] * 2, slides=["E", "E", "F", "F"], seed=2)
    write_pcam_split(root, "test", [1, 0] * 2, slides=["G", "G", "H", "H"], seed=3)
    return root


# -- PCam ---------------------------------------------------------------------------------------------------


def test_pcam_counts_labels_groups_and_official_splits(tmp_path):
    root = pcam_release(tmp_path / "pcam")
    assert locate("pcam", tmp_path) == root
    ds = load_dataset("pcam", data_root=tmp_path)
    assert len(ds.samples) == 16 and ds.class_counts() == {"no_tumor": 8, "tumor": 8}
    assert Counter(s.meta["split"] for s in ds.samples) == {"train": 8, "valid": 4, "test": 4}
    assert ds.has_predefined_folds and all(s.meta["fold"] == s.meta["split"] for s in ds.samples)
    assert ds.has_groups and {s.group for s in ds.samples} == set("ABCDEFGH")
    by_id = {s.id: s for s in ds.samples}
    s = by_id["train/000003"]
    assert (s.label, s.group, s.meta["index"], s.meta["coord_x"]) == ("tumor", "B", 3, 203)
    assert by_id["test/000000"].label == "tumor" and by_id["test/000000"].group == "G"
    assert s.image_path is None and isinstance(s.image_source, H5Row)
    np.testing.assert_array_equal(read_image(s.image_source), pcam_patch(root / f"{PCAM}train_x.h5", 3))
    assert ds.info.default_cv == "predefined" and ds.info.expected_split_counts["train"] == 262144
    folds = make_folds(
        ids=[s.id for s in ds.samples],
        y=np.asarray([ds.classes.index(s.label) for s in ds.samples]),
        groups=[s.group for s in ds.samples],
        predefined=[s.meta["fold"] for s in ds.samples],
        scheme="auto",
    )
    assert folds.scheme == "predefined" and sorted(len(t) for t in folds.test) == [4, 4, 8]


def test_pcam_center_crop_single_split_and_missing_meta(tmp_path):
    pcam_release(tmp_path)
    ds = load_dataset("pcam", data_root=tmp_path, center_crop=32, splits=["train"])
    assert len(ds.samples) == 8 and not ds.has_predefined_folds and ds.info.default_cv == "group_kfold"
    patch = pcam_patch(tmp_path / f"{PCAM}train_x.h5", 5)
    np.testing.assert_array_equal(read_image(ds.samples[5].image_source), patch[32:64, 32:64])
    assert any("only split train" in n for n in ds.notes) and any("centre 32x32" in n for n in ds.notes)
    (tmp_path / f"{PCAM}valid_meta.csv").unlink()
    ds = load_dataset("pcam", data_root=tmp_path, splits=["valid"])
    assert not ds.has_groups and ds.info.default_cv == "stratified_kfold"
    assert any("no slide ids" in n for n in ds.notes)
    with pytest.raises(ConfigError, match="center_crop must be an integer from 1 to 96"):
        load_dataset("pcam", data_root=tmp_path, center_crop=200)
    with pytest.raises(ConfigError, match="splits must be chosen from train, valid, test"):
        load_dataset("pcam", data_root=tmp_path, splits=["training"])


def test_pcam_fingerprint_follows_labels_and_options_not_timestamps(tmp_path):
    pcam_release(tmp_path)
    first = load_dataset("pcam", data_root=tmp_path).fingerprint
    os.utime(tmp_path / f"{PCAM}train_x.h5", (1, 1))
    assert load_dataset("pcam", data_root=tmp_path).fingerprint == first
    assert load_dataset("pcam", data_root=tmp_path, center_crop=32).fingerprint != first
    write_pcam_split(tmp_path, "test", [1, 1, 1, 0], slides=["G", "G", "H", "H"], seed=3)
    assert load_dataset("pcam", data_root=tmp_path).fingerprint != first


def test_pcam_mismatched_x_and_y_lengths_name_both_files(tmp_path):
    write_pcam_split(tmp_path, "train", [0, 1, 0, 1, 1, 0], n_x=5)
    with pytest.raises(DataError) as err:
        load_dataset("pcam", data_root=tmp_path)
    msg = str(err.value)
    assert f"{PCAM}train_x.h5 holds 5 patches" in msg and f"{PCAM}train_y.h5 holds 6 labels" in msg


@pytest.mark.parametrize("damage", ["no_y", "gz", "meta_rows", "not_hdf5", "no_x_key", "bad_label"])
def test_pcam_bad_files_get_one_clear_message(tmp_path, damage):
    x, y = write_pcam_split(tmp_path, "train", [0, 1, 0, 1], slides=["A", "A", "B", "B"])
    expect = {
        "no_y": f"{PCAM}train_y.h5 is missing",
        "gz": "decompress it first",
        "meta_rows": f"{PCAM}train_meta.csv has 3 rows but the split's y file has 4",
        "not_hdf5": "not a readable HDF5 file",
        "no_x_key": "no dataset 'x' in the HDF5 file (datasets found: images)",
        "bad_label": "row 2: label 7 is not 0 or 1",
    }[damage]
    if damage == "no_y":
        y.unlink()
    elif damage == "gz":
        x.rename(x.with_name(x.name + ".gz"))
    elif damage == "meta_rows":
        meta = tmp_path / f"{PCAM}train_meta.csv"
        meta.write_text("\n".join(meta.read_text().splitlines()[:-1]) + "\n")
    elif damage == "not_hdf5":
        x.write_bytes(b"not an hdf5 file")
    elif damage == "no_x_key":
        with h5py.File(x, "w") as f:
            f.create_dataset("images", data=np.zeros((4, 96, 96, 3), np.uint8))
    else:
        with h5py.File(y, "w") as f:
            f.create_dataset("y", data=np.array([0, 1, 7, 1], np.uint8).reshape(-1, 1, 1, 1))
    with pytest.raises(DataError, match=re.escape(expect)) as err:
        load_dataset("pcam", data_root=tmp_path)
    assert str(tmp_path) in str(err.value) or PCAM in str(err.value)
    if damage == "bad_label":
        ds = load_dataset("pcam", data_root=tmp_path, on_bad_label="skip")
        assert len(ds.samples) == 3 and any("1 bad label" in n for n in ds.notes)


def test_pcam_features_and_pixel_cache_read_patches_lazily(tmp_path):
    from cellbench.features import FeatureConfig
    from cellbench.features.batch import extract_feature_set

    pcam_release(tmp_path / "data")
    ds = load_dataset("pcam", data_root=tmp_path / "data")
    in_memory = [Sample(id=s.id, label=s.label, group=s.group, image=read_image(s.image_source)) for s in ds.samples]
    config = FeatureConfig.for_kind("patch")
    common = {"config": config, "extraction": "given", "kind": "patch", "progress": False}
    lazy = extract_feature_set(ds.samples, dataset_fingerprint="lazy", cache_dir=tmp_path / "a", n_jobs=2, **common)
    ref = extract_feature_set(in_memory, dataset_fingerprint="mem", cache_dir=tmp_path / "b", n_jobs=1, **common)
    assert lazy.ids == ref.ids and lazy.X.shape == (16, len(ref.names))
    np.testing.assert_allclose(lazy.X, ref.X)
    ps = pixel_cache(
        ds.samples,
        size=48,
        kind="patch",
        dataset_fingerprint="lazy",
        extraction="given",
        cache_dir=tmp_path,
        progress=False,
    )
    expected = np.stack([fit_to_square(s.image, 48, keep_aspect=False) for s in in_memory])
    np.testing.assert_array_equal(ps.load(), expected)


def test_pcam_block_reads_equal_one_by_one_reads(tmp_path):
    pcam_release(tmp_path)
    ds = load_dataset("pcam", data_root=tmp_path, center_crop=40)
    blocks = [img for img, _ in iter_images(ds.samples, block=3)]
    assert len(blocks) == 16
    for s, img in zip(ds.samples, blocks):
        np.testing.assert_array_equal(img, read_image(s.image_source))


def _rss(root: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.pcam_rss", str(root)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_pcam_iteration_memory_does_not_grow_with_the_file(tmp_path):
    """8x the patches (14 MB -> 113 MB of pixels) must not raise the peak RSS by more than a fraction of that."""
    small, large = tmp_path / "small", tmp_path / "large"
    write_pcam_split(small, "train", np.arange(512) % 2, slides=[f"s{i // 64}" for i in range(512)])
    write_pcam_split(large, "train", np.arange(4096) % 2, slides=[f"s{i // 64}" for i in range(4096)])
    a, b = _rss(small), _rss(large)
    assert b["patches"] == 4096 and b["pixel_bytes"] == 4096 * 96 * 96 * 3
    growth = max(b["one_by_one_mib"], b["blocks_mib"]) - max(a["one_by_one_mib"], a["blocks_mib"])
    assert growth < 40, (a, b)  # holding the pixels in memory would add about 100 MiB


# -- Kaggle Histopathologic Cancer Detection ----------------------------------------------------------------


def test_kaggle_counts_labels_and_center_crop(tmp_path):
    root = write_kaggle(tmp_path / "histopathologic-cancer-detection", {"f0a1": 0, "c9b2": 1, "aa03": 1, "0d04": 0})
    write_tif(root / "test" / "zz99.tif", np.zeros((96, 96, 3), np.uint8))
    ds = load_dataset("kaggle_hcd", data_root=tmp_path)
    assert ds.root == root.resolve() and [s.id for s in ds.samples] == ["0d04", "aa03", "c9b2", "f0a1"]
    assert ds.class_counts() == {"no_tumor": 2, "tumor": 2} and not ds.has_groups
    assert any("image-level CV" in n for n in ds.notes) and any("test/ (1 unlabelled" in n for n in ds.notes)
    full = read_image(ds.samples[0].image_path)
    assert full.shape == (96, 96, 3)
    cropped = load_dataset("kaggle_hcd", data_root=tmp_path, center_crop=32)
    np.testing.assert_array_equal(read_image(cropped.samples[0].image_source), full[32:64, 32:64])
    assert cropped.fingerprint != ds.fingerprint
    assert load_dataset("kaggle_hcd", data_root=tmp_path).fingerprint == ds.fingerprint


def test_kaggle_csv_row_without_image_and_image_without_row(tmp_path):
    write_kaggle(tmp_path, {"a1": 0, "b2": 1, "c3": 1}, extra_images=("d4",))
    with pytest.raises(DataError, match=r"d4\.tif: no row for id 'd4' in .*train_labels\.csv"):
        load_dataset("kaggle_hcd", data_root=tmp_path)
    (tmp_path / "train" / "d4.tif").unlink()
    (tmp_path / "train" / "b2.tif").unlink()
    with pytest.raises(DataError, match=r"train_labels\.csv line 3: id 'b2' has no image .*b2\.tif"):
        load_dataset("kaggle_hcd", data_root=tmp_path)
    write_tif(tmp_path / "train" / "d4.tif", np.zeros((96, 96, 3), np.uint8))
    ds = load_dataset("kaggle_hcd", data_root=tmp_path, on_bad_label="skip")
    assert [s.id for s in ds.samples] == ["a1", "c3"]
    assert any("1 image without row, 1 row without image" in n for n in ds.notes)


def test_kaggle_bad_csv(tmp_path):
    write_kaggle(tmp_path, {"a1": 0, "b2": 1})
    (tmp_path / "train_labels.csv").write_text("image,target\na1,0\n")
    with pytest.raises(DataError, match="needs columns id,label; found image,target"):
        load_dataset("kaggle_hcd", data_root=tmp_path)
    (tmp_path / "train_labels.csv").write_text("id,label\na1,0\nb2,1\na1,1\n")
    with pytest.raises(DataError, match="line 4: id 'a1' appears again"):
        load_dataset("kaggle_hcd", data_root=tmp_path)


# -- MedMNIST -----------------------------------------------------------------------------------------------


def test_pathmnist_npz_counts_splits_and_class_names(tmp_path):
    arrays = write_medmnist(tmp_path / "medmnist" / "pathmnist.npz", n=(18, 9, 9), classes=9)
    ds = load_dataset("pathmnist", data_root=tmp_path)
    assert len(ds.samples) == 36 and len(ds.classes) == 9 and ds.classes[8] == "colorectal_adenocarcinoma_epithelium"
    assert Counter(s.meta["split"] for s in ds.samples) == {"train": 18, "val": 9, "test": 9}
    assert ds.has_predefined_folds and ds.info.task == "multiclass" and ds.positive_class is None
    assert ds.class_counts()["adipose"] == 4
    s = next(x for x in ds.samples if x.id == "val/000004")
    assert s.label == ds.classes[4] and s.image.shape == (28, 28, 3)
    np.testing.assert_array_equal(s.image, arrays["val_images"][4])


def test_one_rgb_rule_for_arrays_files_and_containers(tmp_path):
    def row(image) -> list[int]:
        return as_rgb8(np.asarray(image))[0, :, 0].tolist()

    assert row(np.array([[0, 257, 65535]], np.uint16)) == [0, 1, 255]  # 16 bits: / 257
    assert row([[True, False]]) == [255, 0]
    assert row([[0.0, 0.5, 1.0]]) == [0, 128, 255]  # floats in [0, 1]: x 255
    assert row([[0.0, 2.0, 200.0]]) == [0, 2, 200]  # within [0, 255]: as they are
    assert row([[-1.0, 0.0, 1.0]]) == row([[0, 500, 1000]]) == [0, 128, 255]  # else stretched
    assert row([[np.nan, 0.5]]) == [0, 128]
    grey = as_rgb8(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert grey.shape == (2, 3, 3) and (grey[..., 0] == grey[..., 2]).all() and grey.flags.c_contiguous
    rgba = np.dstack([np.full((2, 2, 3), (10, 20, 30), np.uint8), np.full((2, 2), 255, np.uint8)])
    assert as_rgb8(rgba).shape == (2, 2, 3) and as_rgb8(rgba)[0, 0].tolist() == [10, 20, 30]
    with pytest.raises(DataError, match=r"x\.h5\[3\]: unsupported image shape \(2, 2, 2\) \(float64\)"):
        as_rgb8(np.zeros((2, 2, 2)), where="x.h5[3]")
    with pytest.raises(DataError, match=r"sample s: the image is empty \(shape \(0, 3\)\)"):
        as_rgb8(np.zeros((0, 3), np.uint8), where="sample s")
    with pytest.raises(DataError, match="unsupported pixel type <U1"):
        as_rgb8(np.array([["a"]]))
    # a decoded file (BGR, BGRA, 16 bits) and an HDF5 row give the pixels of the array they hold
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[:, :, ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), as_rgb8(deep))
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png"), as_rgb8(rgba))
    floats = rng.uniform(0, 1, (2, 6, 6, 3))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = floats
    np.testing.assert_array_equal(read_image(H5Row(tmp_path / "x.h5", "x", 1)), as_rgb8(floats[1]))
    close_h5_files()


def test_breastmnist_grey_binary_and_generic_reader(tmp_path):
    write_medmnist(tmp_path / "breastmnist.npz", n=(6, 2, 4), classes=2, rgb=False)
    ds = load_dataset("breastmnist", data_root=tmp_path)
    assert ds.classes == ("malignant", "normal_benign") and ds.positive_class == "malignant"
    assert ds.info.task == "binary" and ds.samples[0].image.shape == (28, 28)
    assert as_rgb8(ds.samples[0].image).shape == (28, 28, 3)
    generic = load_dataset("medmnist", data_root=tmp_path)
    assert generic.name == "medmnist" and generic.classes == ds.classes
    assert generic.info.expected_split_counts == {"train": 546, "val": 78, "test": 156}
    write_medmnist(tmp_path / "foomnist_64.npz", n=(6, 3, 3), classes=3, side=64)
    with pytest.raises(DataError, match=r"2 \.npz files .*breastmnist\.npz, foomnist_64\.npz.*flag="):
        load_dataset("medmnist", data_root=tmp_path)
    other = load_dataset("medmnist", data_root=tmp_path, flag="foomnist", size=64, splits=["train", "test"])
    assert other.classes == ("0", "1", "2") and len(other.samples) == 9
    assert other.samples[0].image.shape == (64, 64, 3) and any("not in the built-in" in n for n in other.notes)


def test_medmnist_missing_keys_multilabel_and_3d_are_refused(tmp_path):
    write_medmnist(tmp_path / "a" / "dermamnist.npz", classes=7, drop=("val_labels", "test_images"))
    with pytest.raises(
        DataError, match=r"dermamnist\.npz: not a MedMNIST file: missing key\(s\) val_labels, test_images"
    ):
        load_dataset("dermamnist", data_root=tmp_path / "a")
    multi = {
        f"{s}_{p}": np.zeros((4, 28, 28) if p == "images" else (4, 14), np.uint8)
        for s in ("train", "val", "test")
        for p in ("images", "labels")
    }
    np.savez(tmp_path / "b.npz", **multi)
    with pytest.raises(DataError, match=r"b\.npz: train_labels has shape \(4, 14\): multi-label"):
        load_dataset("medmnist", data_root=tmp_path, file="b.npz")
    vol = {k: (np.zeros((4, 28, 28, 28), np.uint8) if "images" in k else np.zeros((4, 1), np.uint8)) for k in multi}
    np.savez(tmp_path / "c.npz", **vol)
    with pytest.raises(DataError, match=r"c\.npz: train_images has shape \(4, 28, 28, 28\): 3D volumes"):
        load_dataset("medmnist", data_root=tmp_path, file="c.npz")
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read .*d\.npz: not a valid \.npz file"):
        load_dataset("medmnist", data_root=tmp_path, file="d.npz")


def test_medmnist_large_arrays_are_decompressed_once_and_memory_mapped(tmp_path, monkeypatch):
    import cellbench.datasets.medmnist as mm

    arrays = write_medmnist(tmp_path / "data" / "bloodmnist.npz", n=(16, 8, 8), classes=8)
    monkeypatch.setattr(mm, "IN_MEMORY_BYTES", 1000)
    ds = load_dataset("bloodmnist", data_root=tmp_path / "data", cache_dir=tmp_path / "cache")
    first = ds.samples[0].image
    assert isinstance(first.base, np.memmap) or isinstance(first, np.memmap)
    np.testing.assert_array_equal(first, arrays["train_images"][0])
    assert len(list((tmp_path / "cache" / "medmnist").glob("*.npy"))) == 3  # the three image arrays
    again = load_dataset("bloodmnist", data_root=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert again.fingerprint == ds.fingerprint


# -- the generic folder adapter with labels.csv -------------------------------------------------------------


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def test_folder_labels_csv_gives_classes_and_groups(tmp_path):
    for i, name in enumerate(["a.png", "b.png", "sub/c.png", "d.png"]):
        _png(tmp_path / name, i * 40)
    (tmp_path / "labels.csv").write_text(
        "filename,label,group\na.png,benign,P1\nb.png,malignant,P1\nsub/c.png,benign,P2\nd.png,malignant,P2\n"
    )
    assert locate("folder", tmp_path) == tmp_path
    ds = load_dataset("folder", data_root=tmp_path)
    assert {s.id: (s.label, s.group) for s in ds.samples} == {
        "a": ("benign", "P1"),
        "b": ("malignant", "P1"),
        "sub/c": ("benign", "P2"),
        "d": ("malignant", "P2"),
    }
    assert ds.classes == ("benign", "malignant") and ds.has_groups and ds.info.default_cv == "group_kfold"


def test_folder_labels_csv_row_without_image_and_image_without_row(tmp_path):
    _png(tmp_path / "a.png", 1)
    _png(tmp_path / "b.png", 2)
    _png(tmp_path / "extra.png", 3)
    (tmp_path / "labels.csv").write_text("filename,label\na.png,x\nb.png,y\ngone.png,y\n")
    with pytest.raises(DataError, match=r"labels\.csv line 4: 'gone\.png' names no image"):
        load_dataset("folder", data_root=tmp_path)
    (tmp_path / "labels.csv").write_text("filename,label\na.png,x\nb.png,y\n")
    with pytest.raises(DataError, match=r"extra\.png: no row in .*labels\.csv"):
        load_dataset("folder", data_root=tmp_path)
    ds = load_dataset("folder", data_root=tmp_path, on_bad_label="skip")
    assert len(ds.samples) == 2 and not ds.has_groups


def test_folder_labels_csv_without_label_column_falls_back_to_class_folders(tmp_path):
    _png(tmp_path / "x" / "a.png", 1)
    _png(tmp_path / "y" / "b.png", 2)
    (tmp_path / "labels.csv").write_text("filename,class_name\nx/a.png,x\n")
    assert load_dataset("folder", data_root=tmp_path).classes == ("x", "y")
    with pytest.raises(DataError, match="needs columns filename,label"):
        load_dataset("folder", data_root=tmp_path, labels="csv")


def test_layout_matching_no_adapter_names_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.bin").write_bytes(b"\0")
    with pytest.raises(DataError, match="matches no known layout") as err:
        load_dataset("pcam", data_root=tmp_path)
    assert str(tmp_path) in str(err.value) and "notes.txt" in str(err.value)
    write_kaggle(tmp_path, {"a": 0, "b": 1})
    with pytest.raises(DataError, match="holds the layout of: .*kaggle_hcd"):
        load_dataset("pcam", data_root=tmp_path)


# -- cards and verification ---------------------------------------------------------------------------------


def test_every_registered_data_set_has_a_card():
    for name, entry in DATASETS.items():
        info = entry.info
        assert info.name == name and info.title and info.description and info.task in ("binary", "multiclass")
        assert info.primary_metric and info.default_cv and info.source and info.licence and info.citation
        assert info.image_size and info.layout
        if entry.needs_data:
            assert info.download and info.folder_names
        if info.classes and info.task == "binary":
            assert info.positive_class in info.classes
    for name in ("pcam", "kaggle_hcd", "pathmnist", "bloodmnist", "breastmnist", "dermamnist"):
        info = DATASETS[name].info
        assert info.expected_counts.get("total") or info.expected_split_counts


def test_datasets_show_prints_the_card(capsys):
    assert main(["datasets", "show", "pcam"]) == 0
    out = capsys.readouterr().out
    assert "expected per split  train 262,144, valid 32,768, test 32,768" in out
    assert "positive class      tumor" in out and "## Download" in out and "zenodo" in out.lower()


def test_verify_reports_counts_duplicates_and_unreadable_files(tmp_path, capsys):
    root = write_kaggle(tmp_path, {"a1": 0, "b2": 1, "c3": 1, "d4": 0})
    (root / "train" / "c3.tif").write_bytes((root / "train" / "a1.tif").read_bytes())  # byte-identical copy
    (root / "train" / "d4.tif").write_bytes(b"broken")
    report = verify("kaggle_hcd", data_root=tmp_path, progress=False)
    assert [sid for sid, _ in report.unreadable] == ["d4"] and report.duplicates.n_sets == 1
    assert report.duplicates.conflicting == 1 and report.sizes == {"96x96": 3}
    assert main(["datasets", "verify", "kaggle_hcd", "--data-root", str(tmp_path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "| samples" in out and "| class tumor    | 2 (50.0%)" in out
    assert "2 images in 1 set(s)" in out and "1 set(s) with conflicting labels" in out and "a1 = c3" in out
    assert "unreadable images: 1" in out and "d4: cannot read image" in out
    assert "problems: 1 unreadable image(s); 1 duplicate set(s) with conflicting labels" in out


def test_verify_option_parsing():
    assert parse_options(["center_crop=32", 'splits=["test"]', "flag=pathmnist"]) == {
        "center_crop": 32,
        "splits": ["test"],
        "flag": "pathmnist",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["center_crop"])


def test_verify_idc_dev_prints_counts_patients_and_balance(capsys):
    root = shared("idc_dev")
    assert main(["datasets", "verify", "idc", "--data-root", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "read 3,873 images once" in out and "| class non_idc | 2,819 (72.8%)" in out
    assert "| patients      | 100" in out and "positive class idc 27.2% (1,054 of 3,873)" in out


# -- duplicates in CV ---------------------------------------------------------------------------------------


def _dup_case():
    n = 40
    ids = [f"s{i}" for i in range(n)]
    y = np.arange(n) % 2
    groups = [f"g{i // 2}" for i in range(n)]
    keys: list[str | None] = [None] * n
    keys[0] = keys[39] = "A"  # copies in groups g0 and g19
    keys[5] = keys[20] = keys[21] = "B"
    return ids, y, groups, keys


@pytest.mark.parametrize("scheme", ["group_kfold", "stratified_kfold"])
def test_copies_of_an_image_land_on_the_same_side_of_every_split(scheme):
    ids, y, groups, keys = _dup_case()
    g = groups if scheme == "group_kfold" else None
    for seed in range(3):
        folds = make_folds(
            ids=ids, y=y, groups=g, predefined=None, scheme=scheme, n_splits=5, seed=seed, duplicates=keys
        )
        for f in range(5):
            test = set(folds.train_test(f)[1].tolist())
            assert (0 in test) == (39 in test)
            assert (5 in test) == (20 in test) == (21 in test)
    assert "copies of an image kept on one side" in folds.description
    plain = make_folds(ids=ids, y=y, groups=g, predefined=None, scheme=scheme, n_splits=5, seed=2)
    unique = make_folds(
        ids=ids, y=y, groups=g, predefined=None, scheme=scheme, n_splits=5, seed=2, duplicates=[str(i) for i in ids]
    )
    assert plain.key == unique.key and plain.key != folds.key  # without copies nothing changes


def test_leakage_guard_refuses_copies_on_both_sides():
    ids, y, _, keys = _dup_case()
    test = np.array([0, 2, 4, 6, 8, 10, 12, 14])  # s0 in test, its copy s39 in training
    folds = Folds(
        key="k", scheme="stratified_kfold", ids=tuple(ids), test=(test,), description="", n_splits=1, repeats=1
    )
    with pytest.raises(DataError, match=r"leakage: identical images 's39' \(training\) and 's0' \(test\) in fold 0"):
        check_folds(folds, y=y, groups=None, duplicates=keys)


def test_duplicates_are_found_by_pixels_and_cached(tmp_path):
    pcam_release(tmp_path / "data", copies={6: 1})  # slide D's row 6 repeats slide A's row 1
    ds = load_dataset("pcam", data_root=tmp_path / "data")
    dup = find_duplicates(
        ds.samples, fingerprint=ds.fingerprint, extraction="given", cache_dir=tmp_path, progress=False
    )
    assert [[ds.samples[i].id for i in s] for s in dup.sets] == [["train/000001", "train/000006"]]
    assert dup.conflicting == 1 and dup.across_groups == 1 and dup.across_folds == 0
    assert "2 images are copies of each other" in dup.note() and "same side of every split" in dup.note()
    assert len(list((tmp_path / "content").glob("*.json"))) == 1
    assert (
        find_duplicates(ds.samples, fingerprint=ds.fingerprint, extraction="given", cache_dir=tmp_path).keys == dup.keys
    )
    assert pixel_digest(read_image(ds.samples[1].image_source)) == dup.keys[1]


# -- subsampling --------------------------------------------------------------------------------------------


def _grouped(n_groups=30, seed=0, folds=False):
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_groups):
        for k in range(int(rng.integers(1, 12))):
            meta = {"fold": "train" if g < 2 * n_groups // 3 else "test"} if folds else {}
            out.append(
                Sample(id=f"g{g:02d}_{k}", label="pos" if rng.random() < 0.3 else "neg", group=f"P{g}", meta=meta)
            )
    return out


def test_subsample_max_groups_is_deterministic_and_keeps_whole_groups():
    samples = _grouped()
    kept, notes = subsample(samples, max_groups=7, seed=3)
    assert len({s.group for s in kept}) == 7 and {s.label for s in kept} == {"pos", "neg"}
    sizes = Counter(s.group for s in samples)
    assert all(Counter(s.group for s in kept)[g] == sizes[g] for g in {s.group for s in kept})
    assert [s.id for s in subsample(samples, max_groups=7, seed=3)[0]] == [s.id for s in kept]
    assert [s.id for s in subsample(samples, max_groups=7, seed=4)[0]] != [s.id for s in kept]
    assert [s.id for s in kept] == [s.id for s in samples if s in kept]  # original order
    assert "SUBSAMPLE" in notes[0] and "7 of 30 groups kept whole" in notes[0] and "seed 3" in notes[0]


def test_subsample_max_per_class_caps_each_class_and_shares_out_predefined_folds():
    samples = _grouped(60, folds=True)
    kept, _ = subsample(samples, max_per_class=40, seed=0)
    counts = Counter(s.label for s in kept)
    assert counts["neg"] <= 40 and counts["pos"] <= 40 and counts["neg"] >= 30
    assert {s.meta["fold"] for s in kept} == {"train", "test"}
    sizes = Counter(s.group for s in samples)
    assert all(Counter(s.group for s in kept)[g] == sizes[g] for g in {s.group for s in kept})
    kept, _ = subsample(_grouped(60, folds=True), max_groups=9, seed=0)
    per_fold = Counter(s.meta["fold"] for s in {s.group: s for s in kept}.values())
    assert per_fold == {"train": 6, "test": 3}
    # big slides (100 patches, 50 per class): the small folds' shares (12) are below one slide, yet they keep one
    big = [
        Sample(id=f"{sp}{g}_{k}", label="ab"[k % 2], group=f"{sp}{g}", meta={"fold": sp})
        for sp, n in (("train", 16), ("valid", 2), ("test", 2))
        for g in range(n)
        for k in range(100)
    ]
    kept, _ = subsample(big, max_per_class=160, seed=0)
    assert Counter(s.meta["fold"] for s in kept) == {"train": 100, "valid": 100, "test": 100}
    assert max(Counter(s.label for s in kept).values()) <= 160


def test_subsample_without_groups_and_bad_limits():
    samples = [Sample(id=str(i), label="a" if i % 4 else "b") for i in range(100)]
    kept, notes = subsample(samples, max_per_class=10, max_groups=5)
    assert Counter(s.label for s in kept) == {"a": 10, "b": 10}
    assert "--max-groups 5 ignored" in notes[0] and "image-level" in notes[1]
    assert subsample(samples, max_per_class=1000) == (samples, [])
    with pytest.raises(ConfigError, match="--max-per-class must be a positive integer, got 0"):
        subsample(samples, max_per_class=0)


def test_subsample_dataset_changes_fingerprint_and_notes(tmp_path):
    pcam_release(tmp_path)
    ds = load_dataset("pcam", data_root=tmp_path)
    small = subsample_dataset(ds, max_groups=4, seed=0)
    assert len({s.group for s in small.samples}) == 4 and small.fingerprint != ds.fingerprint
    assert {s.meta["split"] for s in small.samples} == {"train", "valid", "test"}
    assert any(n.startswith("SUBSAMPLE") for n in small.notes)
    assert subsample_dataset(ds, max_groups=100, seed=0) is ds


def test_cli_and_suite_carry_the_subsample_limits():
    from cellbench.run.suite import load_suite

    args = build_parser().parse_args(["run", "--suite", "smoke", "--max-per-class", "50", "--max-groups", "8"])
    suite = load_suite("smoke").narrow(max_per_class=args.max_per_class, max_groups=args.max_groups)
    assert (suite.max_per_class, suite.max_groups) == (50, 8)
    assert suite.narrowing["max_per_class"] == 50 and suite.narrowing["max_groups"] == 8
    assert load_suite("smoke").narrow(**suite.narrowing).max_groups == 8  # what --reproduce replays
    with pytest.raises(ConfigError, match="--max-groups must be a positive integer"):
        load_suite("smoke").narrow(max_groups=-1)


def test_full_suite_lists_the_new_data_sets_as_optional():
    from cellbench.run.suite import load_suite

    suite = load_suite("full")
    for name in ("pcam", "kaggle_hcd", "pathmnist", "bloodmnist", "breastmnist", "dermamnist"):
        assert suite.datasets[name].get("optional") is True


# -- the runner: duplicates and subsample notes reach the leaderboard ---------------------------------------


def _copies_release(root: Path) -> dict[int, int]:
    """60 training patches on 10 slides; slides S5..S8 each hold a copy of a patch of S0..S3."""
    copies = {30 + 6 * k: 6 * k for k in range(4)}
    write_pcam_split(root, "train", np.arange(60) % 2, slides=[f"S{i // 6}" for i in range(60)], copies=copies)
    return copies


def _copies_suite():
    from cellbench.run.suite import parse_suite

    raw = {
        "name": "catalog",
        "cv": {"folds": 3},
        "datasets": {"pcam": {"splits": ["train"]}},
        "models": {"dummy": {}, "logistic_regression": {}},
        "strategies": ["none"],
    }
    return parse_suite(raw, source="test").narrow(max_groups=9)


def test_prepare_keeps_copies_together_and_notes_duplicates_and_subsample(tmp_path):
    from cellbench.run.prepare import Settings, prepare

    copies = _copies_release(tmp_path / "data")
    settings = Settings(cache_dir=tmp_path / "cache", workers=1, progress=False)
    (p,) = prepare(_copies_suite(), data_root=tmp_path / "data", settings=settings)
    ids = list(p.folds.ids)
    pairs = [(f"train/{d:06d}", f"train/{s:06d}") for d, s in copies.items()]
    pairs = [(a, b) for a, b in pairs if a in ids and b in ids]
    assert len(pairs) >= 3  # one slide of ten is dropped by --max-groups 9
    for f in range(len(p.folds)):
        test = {ids[i] for i in p.folds.train_test(f)[1]}
        assert all((a in test) == (b in test) for a, b in pairs)
    notes = " ".join(p.record.notes)  # what the leaderboard prints under the data set's heading
    assert "SUBSAMPLE for a quick run (--max-groups 9, seed 0)" in notes and "9 of 10 groups kept whole" in notes
    assert f"{2 * len(pairs)} images are copies of each other by content hash ({len(pairs)} set(s)" in notes


@pytest.mark.slow
def test_leaderboard_notes_duplicates_and_subsample(tmp_path):
    from cellbench.run.runner import run_suite

    _copies_release(tmp_path / "data")
    summary = run_suite(_copies_suite(), results_root=tmp_path / "out", cache=tmp_path / "cache",
                        data_root=tmp_path / "data", progress=False)  # fmt: skip
    board = leaderboard(summary)
    assert summary.failed == 0 and "SUBSAMPLE for a quick run (--max-groups 9, seed 0)" in board
    assert "images are copies of each other by content hash" in board


def test_plugins_register_data_sets_at_run_time(tmp_path, monkeypatch):
    from dataclasses import replace

    from cellbench.datasets import register_dataset
    from cellbench.datasets.catalog import BUILTIN
    from cellbench.datasets.synthetic import INFO, load_synthetic

    assert DATASETS.names() == [e.name for e in BUILTIN]
    assert DATASETS.names()[:3] == ["synthetic", "folder", "allidb2"]
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))  # left as it was after the test

    @register_dataset(replace(INFO, name="tiny"), needs_data=False, uses_cache=True)
    def load_tiny(root, *, cache_dir, **options):
        return load_synthetic(root, cache_dir=cache_dir, n_patients=2, fields_per_patient=1)

    ds = load_dataset("tiny", cache_dir=tmp_path)
    assert "tiny" in DATASETS and ds.root.is_relative_to(tmp_path) and len(ds.fields) == 2



def test_verify_names_images_too_small_to_measure(tmp_path, capsys):
    root = write_kaggle(tmp_path, {"a1": 0, "b2": 1, "c3": 1})
    write_tif(root / "train" / "b2.tif", np.zeros((1, 1, 3), np.uint8))
    report = verify("kaggle_hcd", data_root=tmp_path, progress=False)
    assert report.problems == ["1 image(s) of fewer than 64 pixels, too small to hold a cell or a texture (e.g. b2)"]
    assert main(["datasets", "verify", "kaggle_hcd", "--data-root", str(tmp_path), "--quiet"]) == 1
    assert "problems: 1 image(s) of fewer than 64 pixels" in capsys.readouterr().out
