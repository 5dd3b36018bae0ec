"""Your own images in one command: ``<class>/<patient>/<image>``, ``--positive-class``, ``--option``, and a results
folder per (suite, data selection)."""

import json
import shutil

import cv2
import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.datasets import DATASETS, load_dataset
from cellbench.run.selection import SELECTION_FILE
from cellbench.run.store import Store
from cellbench.run.suite import load_suite
from cellbench.tools.cli import main

CLASSES = {"leukemic": 11, "normal": 7}  # nucleus radius (px) of each class's cells


def write_cells(root, *, patients=6, per_patient=4, seed=0):
    """``root/<class>/<patient>/<image>.png``: cells with a purple nucleus whose size tells the class apart."""
    rng = np.random.default_rng(seed)
    for cls, radius in CLASSES.items():
        for p in range(patients):
            folder = root / cls / f"{cls[0].upper()}{p:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_patient):
                img = np.full((48, 48, 3), (215, 195, 225), np.uint8)
                cv2.circle(img, (24, 24), 17, (190, 150, 200), -1)
                cv2.circle(
                    img, (24 + int(rng.integers(-2, 3)), 24), radius + int(rng.integers(-1, 2)), (120, 40, 110), -1
                )
                img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"img{i}.png"), img)
    return root


def test_class_patient_image_layout_gives_patients_as_groups(tmp_path):
    root = write_cells(tmp_path / "mydata", patients=2, per_patient=2)
    (root / "normal" / "L00").mkdir()  # a patient seen in both classes is one patient
    shutil.copy(root / "leukemic" / "L00" / "img0.png", root / "normal" / "L00" / "x.png")
    assert DATASETS["folder"].detect(root)
    ds = load_dataset("folder", data_root=root)
    assert ds.classes == ("leukemic", "normal") and ds.positive_class == "normal"  # the last class, as before
    by_id = {s.id: (s.label, s.group) for s in ds.samples}
    assert by_id["leukemic/L00/img0"] == ("leukemic", "L00") and by_id["normal/L00/x"] == ("normal", "L00")
    assert ds.has_groups and ds.info.default_cv == "group_kfold" and ds.info.group_kind == "patient"
    assert len({s.group for s in ds.samples}) == 4
    assert load_dataset("folder", data_root=root, positive_class="leukemic").positive_class == "leukemic"


def test_class_patient_layout_refuses_mixtures_and_names_them(tmp_path):
    root = write_cells(tmp_path / "mixed", patients=1, per_patient=1)
    shutil.copy(root / "normal" / "N00" / "img0.png", root / "normal" / "loose.png")
    with pytest.raises(DataError, match=r"normal holds images \(loose.png, ...\) beside patient folders"):
        load_dataset("folder", data_root=root)
    (root / "normal" / "loose.png").unlink()
    (root / "groups.csv").write_text("filename,group\n")
    with pytest.raises(DataError, match="both give patients"):
        load_dataset("folder", data_root=root)
    with pytest.raises(ConfigError, match="layout='deep' is not allowed; use one of auto, flat, patients"):
        load_dataset("folder", data_root=root, layout="deep")
    with pytest.raises(DataError, match=r"holds no images .*holds sub-folders: L00"):
        load_dataset("folder", data_root=root, layout="flat")


def test_a_positive_class_that_is_not_a_class_names_the_classes(tmp_path):
    root = write_cells(tmp_path / "mydata", patients=1, per_patient=1)
    with pytest.raises(ConfigError, match="positive_class='tumour' is not a class .*classes: leukemic, normal"):
        load_dataset("folder", data_root=root, positive_class="tumour")


def test_option_and_positive_class_need_one_data_set():
    suite = load_suite("smoke")
    two = suite.narrow(datasets=["synthetic", "folder"])
    with pytest.raises(ConfigError, match=r"apply when one data set is run; this run has 2 \(synthetic, folder\)"):
        two.narrow(positive_class="leukemic")
    one = suite.narrow(datasets=["folder"], options={"layout": "patients"}, positive_class="leukemic")
    assert one.datasets == {"folder": {"layout": "patients", "positive_class": "leukemic"}}


def _run(*args):
    return main(["run", "--suite", "smoke", "--models", "logistic_regression,dummy", "--strategies", "none",
                 "--quiet", *args])  # fmt: skip


def test_own_folder_runs_in_one_command_patient_disjoint_in_its_own_results_folder(tmp_path, capsys):
    mine = write_cells(tmp_path / "mydata")
    results = tmp_path / "results"
    flags = [
        "--datasets",
        "folder",
        "--data-root",
        str(mine),
        "--positive-class",
        "leukemic",
        "--option",
        "layout=patients",
    ]
    assert _run(*flags, "--results", str(results)) == 0
    out = capsys.readouterr().out
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    assert folder.name.startswith("smoke--folder-mydata-") and f"leaderboard: {folder}" in out
    assert not (results / "smoke").exists()  # never merged into the suite's own store
    chosen = json.loads((folder / SELECTION_FILE).read_text())
    assert chosen["choices"]["positive_class"] == "leukemic" and chosen["folders"] == {"folder": str(mine)}

    with Store.open(folder, write=False) as store:
        (record,) = store.data_sets().values()
        assert record.positive_class == "leukemic" and record.n_groups == 12 and record.group_kind == "patient"
        samples = store.samples("folder", "given").set_index("sample_id")
        assert samples.loc["leukemic/L03/img2", "grp"] == "L03"
        (key,) = store.fold_sets().folds_key
        folds = store.fold_ids(key)
        assert len(folds) == 3 and sum(map(len, folds.values())) == 48
        patients = [set(samples.loc[ids, "grp"]) for ids in folds.values()]
        for i, a in enumerate(patients):  # every patient's images in one test fold only
            for b in patients[i + 1 :]:
                assert not a & b
        jobs = store.jobs(status="ok")
        assert len(jobs) == 12 and set(jobs.model) == {"logistic_regression", "dummy"} and set(jobs.folds_key) == {key}

    # leaderboard and export take the run's flags and find the same folder; without them they name it
    assert main(["leaderboard", "--suite", "smoke", "--results", str(results), *flags]) == 0
    assert f"leaderboard: {folder / 'LEADERBOARD.md'}" in capsys.readouterr().out
    assert main(["export", "--suite", "smoke", "--results", str(results), "--format", "csv", *flags]) == 0
    assert str(folder / "export" / "csv") in capsys.readouterr().out
    assert main(["leaderboard", "--suite", "smoke", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"no result store at {results / 'smoke' / 'store.sqlite'}" in err
    assert f'{folder.name}: --datasets folder --option layout="patients" --positive-class leukemic' in err

    # another folder of one's own images, or another positive class, is another selection: another store
    other = write_cells(tmp_path / "other" / "mydata", seed=1)
    assert _run("--datasets", "folder", "--data-root", str(other), "--results", str(results)) == 0
    capsys.readouterr()
    folders = sorted(p.name for p in results.iterdir())
    assert len(folders) == 2 and folder.name in folders


def test_predict_takes_the_runs_data_selection_flags_and_uses_that_runs_final_model(tmp_path, capsys):
    mine = write_cells(tmp_path / "mydata", per_patient=3)
    results = tmp_path / "results"
    flags = ["--datasets", "folder", "--data-root", str(mine), "--positive-class", "leukemic", "--option",
             "layout=patients"]  # fmt: skip
    assert _run(*flags, "--results", str(results), "--final") == 0
    capsys.readouterr()
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    image = str(mine / "leukemic" / "L00" / "img0.png")

    assert main(["predict", "--suite", "smoke", "--results", str(results), *flags, "--csv", str(tmp_path / "p.csv"),
                 image]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "final model:" in out
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) >= 1 and set(table.columns) >= {"image"}
    with Store.open(folder, write=False) as store:
        (record,) = store.data_sets().values()
    assert record.positive_class == "leukemic"

    # without the flags: the suite's own store, which this run did not write, and the selection that holds it
    assert main(["predict", "--suite", "smoke", "--results", str(results), image]) == 2
    err = capsys.readouterr().err
    assert "no final model" in err and folder.name in err


def test_explain_reads_the_data_as_the_run_did_when_given_its_flags(tmp_path, monkeypatch, capsys):
    from cellbench.tools import cli

    seen = {}

    def fake_explain(**kw):
        seen.update(kw)
        return []

    monkeypatch.setattr(cli, "explain_suite", fake_explain)
    mine = write_cells(tmp_path / "mydata", patients=1, per_patient=1)
    flags = ["--datasets", "folder", "--data-root", str(mine), "--positive-class", "leukemic", "--option",
             "layout=patients"]  # fmt: skip
    assert main(["explain", "--suite", "smoke", "--model", "cnn_tiny", *flags, "--quiet"]) == 0
    assert seen["dataset"] == "folder"  # the one data set of --datasets
    assert seen["selected"].datasets == {"folder": {"layout": "patients", "positive_class": "leukemic"}}
    assert main(["explain", "--suite", "smoke", "--model", "cnn_tiny", "--quiet"]) == 2
    assert "explain needs --dataset NAME" in capsys.readouterr().err
    seen.clear()
    assert main(["explain", "--suite", "smoke", "--model", "cnn_tiny", "--dataset", "synthetic", "--quiet"]) == 0
    assert seen["selected"] is None and seen["dataset"] == "synthetic"  # no flags: the suite's own data
