"""The hostile probes of the hardening issue, through the command line only.

Each test drives ``python -m <CLI>`` in a subprocess, so the same file also runs against an older checkout of the
harness (whose package had another name) to show that the failure it guards against was there:

    git worktree add /tmp/old 50df44d
    cd /tmp/old && CELLBENCH_CLI=bench PYTHONPATH=/tmp/old python -m pytest -p no:cacheprovider \\
        /path/to/tests/test_hardening_probes.py

Add ``-m ""`` for the probes that run a suite: they are slow tests, and the default run has in-process versions
of them (test_integrity, test_store, test_names_and_paths, test_workers). Only the command line, the results
folder's ``store.sqlite`` schema and the cache's files are relied on.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

CLI = os.environ.get("CELLBENCH_CLI", "cellbench")

PROBE = """\
name = "{name}"
seed = 0
strategies = ["none"]

[cv]
folds = 2

[datasets.synthetic]
n_patients = 6
fields_per_patient = 1

[models]
logistic_regression = {{}}
{extra}
"""

DEEP = """\
cnn_tiny = {}

[deep]
max_epochs = 1
strategies = ["none"]
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "CELLBENCH_OFFLINE": "1", "CELLBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("CELLBENCH_DATA", None)
    return env


def cli(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the harness' command line from ``tmp_path`` with a cache of its own; text output."""
    return subprocess.run(
        [sys.executable, "-m", CLI, *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def suite_file(
    tmp_path: Path, *, name: str = "probe", deep: bool = False, save_models: bool = False, file: str = "probe.toml"
) -> Path:
    path = tmp_path / file
    text = PROBE.format(name=name.replace("\\", "\\\\"), extra=DEEP if deep else "")
    path.write_text(("save_models = true\n" if save_models else "") + text)
    return path


def run_suite(tmp_path: Path, suite: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(tmp_path, "run", "--suite", str(suite), "--results", str(results), "--quiet", *extra)


def finished_run(tmp_path: Path, *, deep: bool = False, save_models: bool = False) -> tuple[Path, Path]:
    """The probe suite's file and results root after a run that must succeed."""
    suite, results = suite_file(tmp_path, deep=deep, save_models=save_models), tmp_path / "results"
    proc = run_suite(tmp_path, suite, results)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return suite, results


def one_clear_error(proc: subprocess.CompletedProcess) -> str:
    """The output of a refused command: non-zero status and no traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"exit 0 where an error was expected:\n{out[-2000:]}"
    assert "Traceback" not in out, f"a traceback instead of one message:\n{out[-3000:]}"
    return out


def job_metrics(store: Path) -> dict[str, dict]:
    """Finished jobs' metrics by job key, from a store in a results folder."""
    with sqlite3.connect(store) as con:
        rows = con.execute("SELECT key, metrics FROM jobs WHERE status = 'ok'").fetchall()
    assert rows, f"no finished jobs in {store}"
    return {key: json.loads(metrics) for key, metrics in rows}


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def write_png(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def folder_set(root: Path) -> Path:
    """A two-class folder data set of small, valid RGB images."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for i in range(4):
            write_png(root / label / f"{label}{i}.png", rng.integers(0, 255, (72, 72, 3), dtype=np.uint8))
    return root


# -- critical: the suite name is a name --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../victim", "ABSOLUTE", ""])
def test_a_hostile_suite_name_is_refused_and_nothing_is_written_outside_results_and_cache(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    if name == "ABSOLUTE":
        name = str(tmp_path / "victim")
    suite = suite_file(work, name=name)
    results, cache = work / "a" / "b" / "results", work / "cache"
    before = files_under(tmp_path)
    proc = run_suite(work, suite, results)
    created = {p for p in files_under(tmp_path) - before if cache not in p.parents and results not in p.parents}
    assert not created, f"suite name {name!r} wrote outside --results and --cache: {sorted(map(str, created))}"
    one_clear_error(proc)


# -- high: model files run no code, corruption is caught ------------------------------------------------------------


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.slow
def test_predict_does_not_unpickle_a_crafted_model_file(tmp_path):
    import hashlib

    import joblib

    _, results = finished_run(tmp_path, save_models=True)
    cards = sorted((results / "probe" / "models").glob("*.json"))
    assert cards, "no saved model card to imitate"
    marker = tmp_path / "code-ran"
    evil = tmp_path / "model.joblib"
    joblib.dump(_Payload(str(marker)), evil)
    card = json.loads(cards[0].read_text())
    card["sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()  # a card as a crafted file would carry
    (tmp_path / "model.json").write_text(json.dumps(card))
    image = write_png(tmp_path / "cell.png", np.full((72, 72, 3), 128, np.uint8))
    proc = cli(tmp_path, "predict", "--model", str(evil), str(image))
    assert not marker.exists(), "loading the model file ran the code inside it"
    one_clear_error(proc)


@pytest.mark.slow
def test_a_stored_metric_edited_by_hand_is_refused_by_the_leaderboard(tmp_path):
    _, results = finished_run(tmp_path)
    store = results / "probe" / "store.sqlite"
    key = sorted(job_metrics(store))[0]
    with sqlite3.connect(store) as con:
        con.execute("UPDATE jobs SET metrics = json_set(metrics, '$.balanced_accuracy', 0.173) WHERE key = ?", (key,))
    proc = cli(tmp_path, "leaderboard", "--suite", "probe", "--results", str(results))
    out = one_clear_error(proc)
    assert key in out or key[:12] in out, f"the message does not name the edited job {key}:\n{out[-2000:]}"


def _rewrite_parquet(path: Path) -> None:
    """Shuffle every float column, keeping the file's schema and metadata (a valid file with other values)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata
    rng = np.random.default_rng(0)
    for i, column in enumerate(table.schema):
        if pa.types.is_floating(column.type):  # noise, not an affine change a scaler would undo
            table = table.set_column(i, column, pa.array(rng.permutation(table.column(i).to_numpy())))
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _rewrite_npy(path: Path) -> None:
    array = np.load(path)
    np.save(path, (255 - array) if array.dtype == np.uint8 else -array)


def _same_results_after_altering_the_cache(tmp_path, *, deep: bool, pattern: str, alter) -> None:
    suite = suite_file(tmp_path, deep=deep)
    first = tmp_path / "first"
    assert run_suite(tmp_path, suite, first).returncode == 0
    cached = sorted((tmp_path / "cache").rglob(pattern))
    assert cached, f"no cached {pattern} file to alter"
    for path in cached:
        alter(path)
    for task in (tmp_path / "cache" / "tasks").glob("*"):  # assembled from the features and pixels: rebuilt
        task.unlink()
    second = tmp_path / "second"
    proc = run_suite(tmp_path, suite, second)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert job_metrics(second / "probe" / "store.sqlite") == job_metrics(first / "probe" / "store.sqlite"), (
        f"altered cached {pattern} files changed the metrics"
    )


@pytest.mark.slow
def test_an_altered_feature_cache_is_detected_and_recomputed(tmp_path):
    _same_results_after_altering_the_cache(tmp_path, deep=False, pattern="*.parquet", alter=_rewrite_parquet)


@pytest.mark.slow
def test_an_altered_pixel_cache_is_detected_and_recomputed(tmp_path):
    _same_results_after_altering_the_cache(tmp_path, deep=True, pattern="*.npy", alter=_rewrite_npy)


# -- medium: bounds, the store, suite values ------------------------------------------------------------------------


def test_an_image_over_the_pixel_bound_is_one_error_naming_the_file(tmp_path):
    root = folder_set(tmp_path / "mydata")
    write_png(root / "a" / "huge.png", np.zeros((8200, 8200), np.uint8))
    proc = cli(tmp_path, "datasets", "verify", "folder", "--data-root", str(root))
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "huge.png" in out and ("pixels" in out or "large" in out), f"huge.png not named as too large:\n{out}"


SUITE_VALUES = {
    "features_typo": ('[features]\nfamilies_ = ["haralick"]\n', "families_"),
    "gpu_string": ('[deep]\ngpu = "no"\n', "gpu"),
    "optional_string": ('[datasets.synthetic]\noptional = "no"\n', "optional"),
    "max_epochs_word": ('[deep]\nmax_epochs = "three"\n', "max_epochs"),
}


@pytest.mark.parametrize("case", sorted(SUITE_VALUES))
def test_a_bad_suite_value_is_one_error_at_load_naming_the_key(tmp_path, case):
    text, key = SUITE_VALUES[case]
    body = PROBE.format(name="probe", extra="cnn_tiny = {}")
    if text.startswith("[datasets.synthetic]"):
        body = body.replace("[datasets.synthetic]\n", text)
    else:
        body += "\n" + text
    suite = tmp_path / "bad.toml"
    suite.write_text(body)
    results = tmp_path / "results"
    proc = run_suite(tmp_path, suite, results)
    out = one_clear_error(proc)
    assert key in out, f"the message does not name {key!r}:\n{out[-2000:]}"
    assert not list(results.rglob("store.sqlite")), "a store was opened for a suite that does not validate"


@pytest.mark.slow
def test_a_store_with_corrupt_pages_is_one_clear_error(tmp_path):
    suite, results = finished_run(tmp_path)
    store = results / "probe" / "store.sqlite"
    with sqlite3.connect(store) as con:  # every page in the main file, none left in the write-ahead log
        con.execute("PRAGMA journal_mode=DELETE")
    data = bytearray(store.read_bytes())
    for offset in range(2 * 4096, len(data), 4096):  # the header and the first pages stay, the tables' pages go
        data[offset : offset + 4096] = os.urandom(4096)
    store.write_bytes(bytes(data))
    for args in (("leaderboard", "--suite", "probe"), ("run", "--suite", str(suite), "--quiet")):
        one_clear_error(cli(tmp_path, *args, "--results", str(results)))


# -- medium/minor: process hygiene ----------------------------------------------------------------------------------


def _status(store: Path) -> list[str]:
    with sqlite3.connect(store) as con:
        return [row[0] for row in con.execute("SELECT status FROM runs ORDER BY run_id")]


def _start(tmp_path: Path, suite: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", CLI, "run", "--suite", str(suite), "--results", str(results), "--quiet"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for_jobs(store: Path, proc: subprocess.Popen, deadline: float = 300) -> None:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=1) as con:
                    if con.execute("SELECT count(*) FROM jobs").fetchone()[0]:
                        return
            except sqlite3.Error:
                pass
        time.sleep(0.2)
    raise AssertionError("no job was stored in time")


@pytest.mark.slow
def test_a_killed_run_is_marked_interrupted_and_its_workers_die_with_it(tmp_path):
    suite = suite_file(tmp_path, deep=True)
    results = tmp_path / "results"
    store = results / "probe" / "store.sqlite"
    proc = _start(tmp_path, suite, results)
    _wait_for_jobs(store, proc)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not alive, f"processes {alive} outlived the killed driver"
    cli(tmp_path, "leaderboard", "--suite", "probe", "--results", str(results))
    runs = [line for line in (results / "probe" / "LEADERBOARD.md").read_text().splitlines() if "runs" in line]
    assert any("interrupted" in line and "running" not in line for line in runs), runs
    assert run_suite(tmp_path, suite, results).returncode == 0
    assert _status(store)[0] == "interrupted", _status(store)


@pytest.mark.slow
def test_deleting_the_lock_file_does_not_let_a_second_run_in(tmp_path):
    suite = suite_file(tmp_path, deep=True)
    results = tmp_path / "results"
    store = results / "probe" / "store.sqlite"
    proc = _start(tmp_path, suite, results)
    try:
        _wait_for_jobs(store, proc)
        for lock in (results / "probe").glob("*lock*"):
            lock.unlink()
        second = run_suite(tmp_path, suite, results)
        out = one_clear_error(second)
        assert "lock" in out.lower() or "running" in out.lower() or "in use" in out.lower(), out[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_extract_refuses_a_folder_it_did_not_create_and_deletes_nothing(tmp_path):
    out = tmp_path / "mine"
    (out / "cells").mkdir(parents=True)
    (out / "index.csv").write_text("my,own,table\n")
    keep = out / "cells" / "keep.txt"
    keep.write_text("precious")
    proc = cli(tmp_path, "extract", "--dataset", "synthetic", "--method", "manual", "--out", str(out), "--quiet")
    assert keep.exists(), "extract deleted a file it did not write"
    one_clear_error(proc)


# -- minor: small things with one message ---------------------------------------------------------------------------


def test_verify_reports_a_one_pixel_image(tmp_path):
    root = folder_set(tmp_path / "mydata")
    write_png(root / "b" / "dot.png", np.full((1, 1, 3), 200, np.uint8))
    proc = cli(tmp_path, "datasets", "verify", "folder", "--data-root", str(root))
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "problems: none" not in out and "dot" in out.split("problems:")[-1], f"1x1 image not a problem:\n{out}"


def test_an_unreachable_dask_scheduler_is_one_error(tmp_path, monkeypatch):
    suite = suite_file(tmp_path)
    # Dask's own setting for the connect timeout (30 s by default): the probe need not wait that long
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "3s")
    proc = run_suite(tmp_path, suite, tmp_path / "results", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    out = one_clear_error(proc)
    assert "127.0.0.1:9" in out, out[-2000:]


@pytest.mark.slow
def test_a_bad_keras_file_is_one_error(tmp_path):
    import hashlib

    _, results = finished_run(tmp_path, deep=True, save_models=True)
    cards = [c for c in sorted((results / "probe" / "models").glob("*.json")) if c.with_suffix(".keras").exists()]
    assert cards, "no saved deep model card to imitate"
    model = tmp_path / "model.keras"
    with zipfile.ZipFile(model, "w") as archive:  # a Keras archive whose config names a class that is not a layer
        archive.writestr("config.json", json.dumps({"module": "os", "class_name": "system", "config": {}}))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("model.weights.h5", b"")
    card = json.loads(cards[0].read_text())
    card["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps(card))
    image = write_png(tmp_path / "cell.png", np.full((72, 72, 3), 128, np.uint8))
    proc = cli(tmp_path, "predict", "--model", str(model), str(image))
    out = one_clear_error(proc)
    assert "model.keras" in out, out[-2000:]


def test_verify_says_when_16_bit_files_hold_12_bit_data(tmp_path):
    root = folder_set(tmp_path / "mydata")
    rng = np.random.default_rng(2)
    write_png(root / "b" / "camera.tif", rng.integers(0, 4096, (72, 72, 3), dtype=np.uint16))
    proc = cli(tmp_path, "datasets", "verify", "folder", "--data-root", str(root))
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "camera.tif" in out.split("problems:")[-1] and "12-bit" in out, f"12-bit data not said:\n{out}"


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {proc.stderr.decode().strip()}")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="filling a disk needs a tmpfs mount (root)")
@pytest.mark.parametrize("size", ["160k", "200k", "260k"])
def test_a_full_disk_is_one_error_and_a_rerun_with_room_completes_the_same_results(tmp_path, size):
    suite = suite_file(tmp_path)
    reference = run_suite(tmp_path, suite, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-2000:]
    full = tmp_path / "full"
    _mount_tmpfs(full, size)
    try:
        proc = run_suite(tmp_path, suite, full)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, f"a traceback on a full disk ({size}):\n{out[-3000:]}"
        if proc.returncode != 0:
            assert "full" in out.lower(), f"the error does not say the disk is full:\n{out[-2000:]}"
        subprocess.run(["mount", "-o", "remount,size=64m", str(full)], check=True)
        again = run_suite(tmp_path, suite, full)
        assert again.returncode == 0, f"the rerun with room failed after a full disk ({size}):\n{again.stderr[-3000:]}"
        stored = job_metrics(full / "probe" / "store.sqlite")
        assert stored == job_metrics(tmp_path / "reference" / "probe" / "store.sqlite")
    finally:
        subprocess.run(["umount", "-l", str(full)], capture_output=True)


def _predictions(store: Path) -> dict[tuple[str, str], tuple[int, str]]:
    with sqlite3.connect(store) as con:
        rows = con.execute("SELECT job_key, sample_id, y_pred, proba FROM predictions").fetchall()
    return {(key, sample): (pred, proba) for key, sample, pred, proba in rows}


@pytest.mark.slow
def test_dask_workers_store_the_same_deep_results_as_the_local_pool(tmp_path):
    suite = suite_file(tmp_path, deep=True)
    local = run_suite(tmp_path, suite, tmp_path / "local")
    assert local.returncode == 0, local.stderr[-2000:]
    dask = run_suite(tmp_path, suite, tmp_path / "dask", "--executor", "dask", "--workers", "2")
    assert dask.returncode == 0, dask.stderr[-2000:]
    stores = [tmp_path / where / "probe" / "store.sqlite" for where in ("local", "dask")]
    metrics = [job_metrics(store) for store in stores]
    with sqlite3.connect(stores[0]) as con:
        deep = con.execute("SELECT COUNT(*) FROM jobs WHERE model = 'cnn_tiny' AND status = 'ok'").fetchone()[0]
    assert deep > 0, "no finished deep job to compare"
    assert metrics[0] == metrics[1], "dask and local stores differ in job metrics"
    assert _predictions(stores[0]) == _predictions(stores[1]), "dask and local stores differ in predictions"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="a read-only folder for root needs a ro mount")
def test_a_read_only_results_folder_is_read_and_a_run_there_is_one_error(tmp_path):
    suite = suite_file(tmp_path)
    results = tmp_path / "ro"
    _mount_tmpfs(results, "64m")
    try:
        proc = run_suite(tmp_path, suite, results)
        assert proc.returncode == 0, proc.stderr[-2000:]
        subprocess.run(["mount", "-o", "remount,ro", str(results)], check=True)
        folder = str(results / "probe")
        compared = cli(tmp_path, "compare", folder, folder)
        out = compared.stdout + compared.stderr
        assert compared.returncode == 0 and "Traceback" not in out, f"compare of a read-only store:\n{out[-2000:]}"
        board = one_clear_error(cli(tmp_path, "leaderboard", "--suite", str(suite), "--results", str(results)))
        assert "not a cellbench store" not in board and "read-only" in board.lower(), board[-2000:]
        assert ".tmp" not in board, f"the error names a temporary file:\n{board}"
        assert "--out" in board, board[-2000:]  # the way out: the leaderboard written elsewhere
        elsewhere = cli(tmp_path, "leaderboard", "--suite", str(suite), "--results", str(results), "--out",
                        str(tmp_path / "board"))  # fmt: skip
        assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
        assert (tmp_path / "board" / "LEADERBOARD.md").is_file()
        refused = one_clear_error(run_suite(tmp_path, suite, results))
        assert "read-only" in refused.lower() and str(results) in refused, refused[-2000:]
    finally:
        subprocess.run(["umount", "-l", str(results)], capture_output=True)
