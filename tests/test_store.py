import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cellbench.core.types import JobResult
from cellbench.run.records import DataSetRecord
from cellbench.run.store import Store, StoreError


def _result(key="k1", status="ok"):
    preds = pd.DataFrame(
        {"sample_id": ["a", "b"], "y_true": [0, 1], "y_pred": [0, 0], "proba_x": [0.9, 0.6], "proba_y": [0.1, 0.4]}
    )
    coords = {
        "suite": "s",
        "dataset": "d",
        "extraction": "given",
        "model": "m",
        "kind": "classical",
        "imbalance": "none",
        "ratio": "natural",
        "fold": 0,
        "seed": 0,
        "cv": "group_kfold",
        "folds_key": "f",
    }
    return JobResult(
        key=key,
        coordinates=coords,
        status=status,
        metrics={"accuracy": 0.5, "roc_auc": float("nan")},
        predictions=preds if status == "ok" else None,
        timings={"fit_s": 0.1},
        error=None if status == "ok" else "boom",
    )


def test_result_round_trip_and_done_keys(tmp_path):
    with Store.open(tmp_path) as store:
        store.write_result(_result(), run_id=None, spec={"x": 1})
        store.write_result(_result("k2", "error"), run_id=None, spec={"x": 2})
        assert store.done_keys() == {"k1"}
        jobs = store.jobs()
        assert set(jobs.status) == {"ok", "error"}
        assert jobs.set_index("key").loc["k1", "metrics"] == {"accuracy": 0.5, "roc_auc": None}
        preds = store.predictions(["k1"])
        assert preds.proba.tolist() == [[0.9, 0.1], [0.6, 0.4]]


def test_rewriting_a_job_replaces_it_without_duplicates(tmp_path):
    with Store.open(tmp_path) as store:
        store.write_result(_result("k", "error"), run_id=None, spec={})
        store.write_result(_result("k"), run_id=None, spec={})
        store.write_result(_result("k"), run_id=None, spec={})
        assert len(store.jobs()) == 1
        assert len(store.predictions()) == 2


def test_a_second_writer_is_refused(tmp_path):
    with Store.open(tmp_path):
        with pytest.raises(StoreError, match="in use by a run"):
            Store.open(tmp_path)
    Store.open(tmp_path).close()  # the lock is released on close


def test_foreign_and_corrupt_files_are_refused_and_left_untouched(tmp_path):
    (tmp_path / "a").mkdir()
    junk = tmp_path / "a" / "store.sqlite"
    junk.write_bytes(b"this is not a database at all" * 10)
    before = junk.read_bytes()
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store.open(tmp_path / "a")
    assert junk.read_bytes() == before

    (tmp_path / "b").mkdir()
    other = tmp_path / "b" / "store.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(StoreError, match="not a cellbench store"):
        Store.open(tmp_path / "b")
    assert other.read_bytes() == before


def test_reading_a_missing_store_names_it(tmp_path):
    with pytest.raises(StoreError, match="no result store"):
        Store.open(tmp_path / "nothing", write=False)


def test_leaderboard_of_a_store_without_jobs_says_so(tmp_path):
    from cellbench.report.leaderboard import write_leaderboard

    with Store.open(tmp_path) as store:
        record = DataSetRecord(dataset="synthetic", extraction="given", fingerprint="fp", classes=("a", "b"))
        store.save_data_set(record)
        text = write_leaderboard(store, out_dir=tmp_path).read_text()
    assert "No finished jobs yet" in text


def test_records_round_trip_through_the_store(tmp_path):
    from cellbench.core.types import ExternalScore, Importance, JobExtra
    from cellbench.run.records import ExternalInfo

    ext = ExternalInfo(key="e", rule="holdout", description="3 patients held out", fingerprint="f2",
                       overlap_check="none shared", notes=("n",), n_samples=4, class_counts={"a": 2, "b": 2})
    record = DataSetRecord(dataset="d", extraction="given", fingerprint="fp", classes=("a", "b"), positive_class="b",
                           n_samples=10, class_counts={"a": 5, "b": 5}, notes=("x",), external=ext)
    extra = JobExtra(threshold=0.4, n_train=8, n_test=2, train_counts=(4, 4), warnings=("W: w",),
                     importance=Importance(permutation={"f": 0.1}), external=ExternalScore(metrics={"m": 1.0}, n=4))
    with Store.open(tmp_path) as store:
        store.save_data_set(record)
        store.write_result(replace(_result(), extra=extra), run_id=None, spec={})
        assert store.data_sets()[("d", "given")] == record
        assert store.jobs().extra.iloc[0] == extra
    assert record.positive == 1 and record.n_classes == 2


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path):
    with Store.open(tmp_path):
        (tmp_path / "store.lock").unlink()
        with pytest.raises(StoreError, match="in use by a run"):
            Store.open(tmp_path)


def test_a_run_killed_before_it_could_finish_is_marked_interrupted_on_the_next_start(tmp_path):
    store = Store.open(tmp_path)
    store.start_run("s", {})
    with Store.open(tmp_path, write=False) as reader:
        assert reader.runs().status.tolist() == ["running"]  # the writer holds the lock: it is running
    store.close()  # as a kill -9 leaves it: no finish_run, the lock gone with the process
    with Store.open(tmp_path, write=False) as reader:
        assert reader.runs().status.tolist() == ["interrupted"]  # shown so; the next writer records it
    with sqlite3.connect(tmp_path / "store.sqlite") as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
    with Store.open(tmp_path) as store:
        assert store.runs().status.tolist() == ["interrupted"]
        store.finish_run(store.start_run("s", {}))
        assert store.runs().status.tolist() == ["interrupted", "finished"]


def test_a_read_only_results_folder_is_read_and_refused_for_writing_with_the_reason(tmp_path, monkeypatch):
    with Store.open(tmp_path) as store:
        store.write_result(_result("k"), run_id=None, spec={})
    for side in tmp_path.glob("store.sqlite-*"):
        side.unlink()  # as a copy without the WAL files would be
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with Store.open(tmp_path, write=False) as store:
        assert store.jobs().key.tolist() == ["k"]
    assert not list(tmp_path.glob("store.sqlite-*"))  # nothing created beside it
    with pytest.raises(StoreError, match="is not writable"):
        Store.open(tmp_path)


def test_disk_errors_are_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno

    from cellbench.tools import cli

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "store.sqlite"))

    monkeypatch.setattr(cli, "run_suite", full)
    assert cli.main(["run", "--suite", "smoke", "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: the disk is full: cannot write {tmp_path / 'r' / 'store.sqlite'}")
    assert "rerun the same command" in err

    def damaged(*a, **k):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(cli, "run_suite", damaged)
    assert cli.main(["run", "--suite", "smoke", "--results", str(tmp_path / "r"), "--quiet"]) == 2
    assert "the result store failed: database disk image is malformed" in capsys.readouterr().err
