"""Dataset adapters: the shared real samples (checked against their CSVs) and tiny layouts written here."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cellbench import datasets
from cellbench.core.errors import ConfigError, DataError, UnknownNameError
from cellbench.datasets import DATASETS, load_dataset, locate

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CELLBENCH_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data set {name} not found at {path} (set CELLBENCH_SHARED_DATA)")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_image(path: Path, value: int = 0) -> Path:
    """A tiny image; ``value`` varies the content (and so the fingerprint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix.lower(), np.full((4, 4, 3), value, np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def by_file(ds) -> dict[str, object]:
    return {s.image_path.relative_to(ds.root).as_posix(): s for s in ds.samples}


def test_datasets_package_is_this_repository():
    assert Path(datasets.__file__).resolve().is_relative_to(REPO)


def test_adapters_are_registered_with_full_info():
    for name in ("cnmc", "allidb2", "idc", "folder"):
        info = DATASETS[name].info
        assert info.name == name and info.title and info.description and info.layout and info.download
        assert info.folder_names and info.source and info.licence and info.citation


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(UnknownNameError) as err:
        load_dataset("nope")
    assert "'nope'" in str(err.value) and "cnmc" in str(err.value) and "allidb2" in str(err.value)


# -- the shared real samples ------------------------------------------------------------------------


def test_cnmc_shared_sample_matches_labels_csv():
    root = shared("cnmc_sample")
    ds = load_dataset("cnmc", data_root=root)
    assert ds.root == root.resolve()
    assert len(ds.samples) == 54 and ds.class_counts() == {"hem": 27, "all": 27}
    rows = read_csv(root / "labels.csv")
    files = by_file(ds)
    assert set(files) == {r["filename"] for r in rows}
    for r in rows:
        s = files[r["filename"]]
        assert s.label == r["class_name"] and s.group == r["patient_id"]
        assert (s.meta["image"], s.meta["cell"]) == (int(r["image_no"]), int(r["cell_no"]))
    # 13 ALL patients + 13 HEM subjects, h3 read as H3 (MANIFEST)
    assert len({s.group for s in ds.samples}) == 26 and "H3" in {s.group for s in ds.samples}
    assert ds.has_groups and not ds.has_predefined_folds and ds.info.default_cv == "group_kfold"
    assert any("h3" in n for n in ds.notes)
    assert [s.id for s in ds.samples] == sorted(s.id for s in ds.samples)
    assert ds.samples[0].id == "all/UID_11_1_1_all"


def test_allidb2_shared_copy_matches_labels_csv():
    root = shared("allidb2")
    ds = load_dataset("allidb2", data_root=root)
    assert len(ds.samples) == 260 and ds.class_counts() == {"healthy": 130, "blast": 130}
    files = by_file(ds)
    assert {f: s.label for f, s in files.items()} == {
        r["filename"]: r["class_name"] for r in read_csv(root / "labels.csv")
    }
    assert all(s.group is None for s in ds.samples) and not ds.has_groups
    assert any("image-level" in n for n in ds.notes)


def test_idc_shared_sample_matches_labels_csv():
    root = shared("idc_dev")
    ds = load_dataset("idc", data_root=root)
    assert len(ds.samples) == 3873 and ds.class_counts() == {"non_idc": 2819, "idc": 1054}
    files = by_file(ds)
    rows = read_csv(root / "labels.csv")
    assert set(files) == {r["relpath"] for r in rows}
    for r in rows:
        s = files[r["relpath"]]
        assert s.group == r["patient_id"] and s.label == ("idc" if r["label"] == "1" else "non_idc")
        assert (s.meta["x"], s.meta["y"]) == (int(r["x"]), int(r["y"]))
    assert len({s.group for s in ds.samples}) == 100


@pytest.mark.parametrize(("name", "folder"), [("cnmc", "cnmc_sample"), ("allidb2", "allidb2"), ("idc", "idc_dev")])
def test_locate_from_data_root_and_from_folder(name, folder):
    path = shared(folder)
    assert locate(name, SHARED_DATA) == path
    assert locate(name, path) == path


def test_detect_does_not_claim_other_layouts():
    shared("idc_dev")
    for name, folder in [("cnmc", "idc_dev"), ("idc", "allidb2"), ("allidb2", "cnmc_sample")]:
        assert not DATASETS[name].detect(SHARED_DATA / folder)
    assert locate("folder", SHARED_DATA) is None


# -- C-NMC layouts written here ---------------------------------------------------------------------


def cnmc_folds(root: Path) -> Path:
    """The Kaggle mirror's nesting: C-NMC_Leukemia/training_data/fold_<k>/{all,hem}/ (+ unlabelled data)."""
    base = root / "C-NMC_Leukemia"
    for k in range(3):
        write_image(base / "training_data" / f"fold_{k}" / "all" / f"UID_{k + 1}_1_1_all.bmp", k)
        write_image(base / "training_data" / f"fold_{k}" / "hem" / f"UID_H{k + 1}_1_1_hem.bmp", 10 + k)
    write_image(base / "validation_data" / "C-NMC_test_prelim_phase_data" / "1.bmp")
    return base


def test_cnmc_fold_folders_give_predefined_folds(tmp_path):
    base = cnmc_folds(tmp_path)
    assert locate("cnmc", tmp_path) == base
    ds = load_dataset("cnmc", data_root=tmp_path)
    assert ds.has_predefined_folds and ds.info.default_cv == "predefined"
    folds = {s.id: s.meta["fold"] for s in ds.samples}
    assert folds["training_data/fold_2/hem/UID_H3_1_1_hem"] == 2
    assert sorted(set(folds.values())) == [0, 1, 2]
    assert any("1 image file(s) outside" in n for n in ds.notes)


def test_cnmc_lower_case_subject_is_merged(tmp_path):
    write_image(tmp_path / "hem" / "UID_h3_1_1_hem.bmp", 1)
    write_image(tmp_path / "hem" / "UID_H3_2_1_hem.bmp", 2)
    write_image(tmp_path / "all" / "UID_7_1_1_all.bmp", 3)
    ds = load_dataset("cnmc", data_root=tmp_path)
    assert sorted({s.group for s in ds.samples}) == ["7", "H3"]


def test_cnmc_misnamed_file_raises_or_is_skipped(tmp_path):
    cnmc_folds(tmp_path)
    bad = write_image(tmp_path / "C-NMC_Leukemia" / "training_data" / "fold_0" / "all" / "cell_12.bmp")
    with pytest.raises(DataError, match="cell_12.bmp") as err:
        load_dataset("cnmc", data_root=tmp_path)
    assert "UID_<patient>_<image>_<cell>_<all|hem>.bmp" in str(err.value)
    ds = load_dataset("cnmc", data_root=tmp_path, on_bad_label="skip")
    assert len(ds.samples) == 6 and bad not in {s.image_path for s in ds.samples}
    assert any("1 file(s) skipped" in n and "bad name" in n for n in ds.notes)


def test_cnmc_label_mismatch_between_folder_and_name(tmp_path):
    cnmc_folds(tmp_path)
    write_image(tmp_path / "C-NMC_Leukemia" / "training_data" / "fold_1" / "all" / "UID_H9_1_1_hem.bmp")
    with pytest.raises(DataError, match=r"UID_H9_1_1_hem\.bmp.*'hem'.*'all'"):
        load_dataset("cnmc", data_root=tmp_path)
    ds = load_dataset("cnmc", data_root=tmp_path, on_bad_label="skip")
    assert len(ds.samples) == 6 and any("label mismatch" in n for n in ds.notes)


def test_cnmc_mixed_fold_and_loose_files(tmp_path):
    base = cnmc_folds(tmp_path)
    write_image(base / "all" / "UID_9_1_1_all.bmp")
    with pytest.raises(DataError, match="fold_<k>"):
        load_dataset("cnmc", data_root=base)


def test_unknown_option_and_bad_policy_are_config_errors(tmp_path):
    cnmc_folds(tmp_path)
    with pytest.raises(ConfigError, match="colour.*allowed options: on_bad_label"):
        load_dataset("cnmc", data_root=tmp_path, colour=True)
    with pytest.raises(ConfigError, match="'raise', 'skip'"):
        load_dataset("cnmc", data_root=tmp_path, on_bad_label="ignore")


def test_fingerprint_follows_content(tmp_path):
    base = cnmc_folds(tmp_path)
    first = load_dataset("cnmc", data_root=tmp_path).fingerprint
    assert load_dataset("cnmc", data_root=tmp_path).fingerprint == first
    write_image(base / "training_data" / "fold_0" / "all" / "UID_1_1_1_all.bmp", 99)
    assert load_dataset("cnmc", data_root=tmp_path).fingerprint != first


# -- ALL-IDB2 and IDC layouts written here ----------------------------------------------------------


def test_allidb2_original_layout_and_mismatch(tmp_path):
    img = tmp_path / "ALL_IDB2" / "img"
    write_image(img / "Im001_1.tif", 1)
    write_image(img / "Im131_0.TIF", 2)
    assert locate("allidb2", tmp_path) == tmp_path / "ALL_IDB2"
    ds = load_dataset("allidb2", data_root=tmp_path)
    assert {s.id: s.label for s in ds.samples} == {"img/Im001_1": "blast", "img/Im131_0": "healthy"}
    write_image(tmp_path / "ALL_IDB2" / "healthy" / "Im002_1.tif", 3)
    with pytest.raises(DataError, match=r"Im002_1\.tif.*'healthy'"):
        load_dataset("allidb2", data_root=tmp_path)


def test_idc_label_mismatch_and_double_copy(tmp_path):
    root = tmp_path / "breast-histopathology-images"
    for base in (root, root / "IDC_regular_ps50_idx5"):
        write_image(base / "8863" / "0" / "8863_idx5_x1_y1_class0.png", 1)
        write_image(base / "8863" / "1" / "8863_idx5_x51_y1_class1.png", 2)
    ds = load_dataset("idc", data_root=tmp_path)
    assert ds.root == root.resolve() and len(ds.samples) == 2
    assert any("IDC_regular_ps50_idx5" in n for n in ds.notes)
    write_image(root / "8863" / "0" / "8863_idx5_x9_y9_class1.png", 3)
    with pytest.raises(DataError, match=r"8863_idx5_x9_y9_class1\.png.*class1.*folder 0"):
        load_dataset("idc", data_root=tmp_path)


# -- the generic class-per-folder layout ------------------------------------------------------------


def test_folder_layout_with_groups_csv(tmp_path):
    for i, (cls, name) in enumerate([("benign", "a.png"), ("benign", "b.png"), ("malignant", "c.jpg")]):
        write_image(tmp_path / cls / name, i)
    (tmp_path / "groups.csv").write_text("filename,group\nbenign/a.png,P1\nb.png,P2\nc.jpg,P1\n")
    ds = load_dataset("folder", data_root=tmp_path)
    assert ds.classes == ("benign", "malignant") and ds.positive_class == "malignant"
    assert {s.id: (s.label, s.group) for s in ds.samples} == {
        "benign/a": ("benign", "P1"),
        "benign/b": ("benign", "P2"),
        "malignant/c": ("malignant", "P1"),
    }
    assert ds.has_groups and ds.info.default_cv == "group_kfold"
    ds = load_dataset("folder", data_root=tmp_path, classes=["malignant", "benign"], positive_class="benign")
    assert ds.classes == ("malignant", "benign") and ds.positive_class == "benign"


def test_folder_kind_option_declares_crops_or_patches(tmp_path):
    from cellbench.features import FeatureConfig

    write_image(tmp_path / "x" / "a.png", 1)
    write_image(tmp_path / "y" / "b.png", 2)
    cells = load_dataset("folder", data_root=tmp_path)
    crops = load_dataset("folder", data_root=tmp_path, kind="crop")
    assert cells.info.kind == "cell" and crops.info.kind == "crop" and crops.fingerprint != cells.fingerprint
    assert "whole_image" in FeatureConfig.for_kind(crops.info.kind).families
    with pytest.raises(ConfigError, match=r"kind='slide' is not allowed; use one of 'cell' \(single cells.*'patch'"):
        load_dataset("folder", data_root=tmp_path, kind="slide")
    csv_set = tmp_path / "csv"
    write_image(csv_set / "p.png", 3)
    write_image(csv_set / "q.png", 4)
    (csv_set / "labels.csv").write_text("filename,label\np.png,a\nq.png,b\n")
    assert load_dataset("folder", data_root=csv_set, kind="patch").info.kind == "patch"


def test_folder_missing_group_raises_or_is_skipped(tmp_path):
    write_image(tmp_path / "x" / "a.png", 1)
    write_image(tmp_path / "y" / "b.png", 2)
    write_image(tmp_path / "y" / "c.png", 3)
    (tmp_path / "groups.csv").write_text("filename,group\na.png,P1\nb.png,P2\n")
    with pytest.raises(DataError, match="c.png"):
        load_dataset("folder", data_root=tmp_path)
    ds = load_dataset("folder", data_root=tmp_path, on_bad_label="skip")
    assert len(ds.samples) == 2 and any("without group" in n for n in ds.notes)


def test_folder_with_one_class(tmp_path):
    write_image(tmp_path / "only" / "a.png")
    with pytest.raises(DataError, match="folder with one class") as err:
        load_dataset("folder", data_root=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_empty_class_folder(tmp_path):
    write_image(tmp_path / "x" / "a.png")
    (tmp_path / "y").mkdir()
    with pytest.raises(DataError, match=f"class folder {tmp_path / 'y'} holds no images"):
        load_dataset("folder", data_root=tmp_path)


def test_folder_bad_options(tmp_path):
    write_image(tmp_path / "x" / "a.png")
    write_image(tmp_path / "y" / "b.png")
    with pytest.raises(ConfigError, match="positive_class='z'"):
        load_dataset("folder", data_root=tmp_path, positive_class="z")
    with pytest.raises(ConfigError, match="allowed options: on_bad_label, classes, positive_class"):
        load_dataset("folder", data_root=tmp_path, group_file="g.csv")


def test_missing_data_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset("idc", data_root=tmp_path)
    with pytest.raises(DataError, match="data folder not found"):
        DATASETS["cnmc"].load(tmp_path / "absent")
