"""Job progress: the ETA from the cost of pending jobs, plain lines off a terminal, per-epoch status of deep jobs."""

from __future__ import annotations

import io
import os
import time

from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.run.progress import EpochWatcher, JobProgress, clear_status, epoch_reporter, expected_costs


class Bar:
    def __init__(self):
        self.shown: list[str] = []

    def set_postfix_str(self, text, refresh=True):
        self.shown.append(text)


def _job(fold: int) -> Job:
    return Job(
        suite="s",
        dataset="d",
        extraction="given",
        model=ModelSpec(name="cnn", kind="deep", input="pixels", params={"max_epochs": 30}),
        imbalance=ImbalanceSpec(name="none"),
        fold=fold,
        seed=0,
        cv="kfold",
    )


def test_the_newest_epoch_of_a_running_job_is_shown_and_cleared_at_the_end(tmp_path):
    bar = Bar()
    watcher = EpochWatcher(bar, tmp_path)
    assert watcher.poll() is None  # nothing running yet
    epoch_reporter(tmp_path, _job(0))(0, {"loss": 0.7, "val_loss": 0.69, "phase": "head"})
    assert watcher.poll() == "cnn/none fold 0: epoch 1/30 val_loss 0.690"
    assert watcher.poll() is None  # unchanged: nothing redrawn
    time.sleep(0.01)
    epoch_reporter(tmp_path, _job(1))(4, {"loss": 0.5, "val_loss": 0.41234, "phase": "finetune"})
    os.utime(tmp_path / f"{_job(1).key}.json")
    assert watcher.poll() == "cnn/none fold 1: epoch 5/30 ft val_loss 0.412"
    clear_status(tmp_path, _job(0))
    clear_status(tmp_path, _job(1))
    assert not list(tmp_path.glob("*.json")) and bar.shown[-1].endswith("0.412")


def test_a_run_with_a_deep_model_leaves_no_status_files(tmp_path, monkeypatch):
    from cellbench.run.runner import run_suite
    from cellbench.run.suite import parse_suite

    monkeypatch.setenv("CELLBENCH_CACHE", str(tmp_path / "cache"))
    suite = parse_suite(
        {
            "name": "p",
            "cv": {"folds": 2},
            "datasets": {"synthetic": {"n_patients": 6, "fields_per_patient": 1}},
            "models": {"cnn_tiny": {}},
            "deep": {"max_epochs": 2, "strategies": ["none"]},
        },
        source="test",
    )
    summary = run_suite(suite, results_root=tmp_path / "r", workers=1, progress=True)
    assert summary.failed == 0
    status = tmp_path / "cache" / "status"
    assert not status.exists() or not any(status.iterdir())


# -- the job bar's ETA and its output off a terminal ------------------------------------------------------------


def test_expected_costs_weigh_pending_jobs_by_their_models_stored_timings():
    timings = [("cnn", "deep", 100.0), ("cnn", "deep", 140.0), ("knn", "classical", 1.0), ("svm", "classical", 3.0)]
    pending = [("cnn", "deep"), ("knn", "classical"), ("xgboost", "classical"), ("mobilenet_v2", "deep")]
    # the model's own mean, else its kind's mean: an unseen deep model costs like the deep ones seen
    assert expected_costs(pending, timings) == [120.0, 1.0, 2.0, 120.0]
    assert expected_costs(pending, []) == [1.0] * 4  # nothing finished yet: count jobs


def test_eta_follows_the_cost_of_what_is_left_not_the_number_of_jobs():
    jobs = [("a", "cnn", "deep"), ("b", "knn", "classical"), ("c", "knn", "classical"), ("d", "knn", "classical")]
    bar = JobProgress(jobs, timings=[("cnn", "deep", 300.0), ("knn", "classical", 2.0)], workers=2, enabled=False)
    assert bar.eta() == (300 + 3 * 2) / 2
    bar.finished("b", seconds=4.0)  # knn's mean is now 3 s
    assert bar.eta() == (300 + 2 * 3) / 2
    bar.finished("a", seconds=500.0)  # the deep job done: 3 of 4 jobs' count, but almost all the time
    assert bar.eta() == 2 * 3 / 2
    bar.close()


def test_off_a_terminal_progress_is_plain_lines_every_interval_not_every_update():
    now = [0.0]
    out = io.StringIO()  # a file: not a terminal
    jobs = [(f"k{i}", "knn", "classical") for i in range(100)]
    bar = JobProgress(jobs, workers=1, desc="jobs smoke", stream=out, every=30.0, clock=lambda: now[0])
    for i in range(100):
        now[0] += 1.0  # one job a second: 100 updates in 100 s
        bar.finished(f"k{i}", seconds=1.0, status=f"knn/none fold {i % 3}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4  # at 30, 60, 90 s and the end
    assert lines[0].startswith("jobs smoke: 30/100 done, ETA 70 s (knn/none fold") and lines[-1].startswith(
        "jobs smoke: 100/100 done, ETA 0 s"
    )


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    bar = JobProgress([("k", "knn", "classical")], stream=out, enabled=False, clock=lambda: 1e9)
    bar.finished("k", seconds=1.0, status="x")
    bar.close()
    assert out.getvalue() == ""


def test_deep_training_reports_batches_within_an_epoch(tmp_path):
    import keras
    import numpy as np

    from cellbench.models.deep import _batch_reporter

    seen = []
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    reporter = _batch_reporter(lambda epoch, logs: seen.append((epoch, logs)), phase="head", offset=2, every_s=0.0)
    model.fit(np.zeros((8, 3)), np.zeros(8, int), batch_size=2, epochs=2, verbose=0, callbacks=[reporter])
    assert [(e, b["batch"], b["batches"]) for e, b in seen] == [(2, 1, 4), (2, 2, 4), (2, 3, 4), (2, 4, 4),
                                                                (3, 1, 4), (3, 2, 4), (3, 3, 4), (3, 4, 4)]  # fmt: skip
    bar = Bar()
    watcher = EpochWatcher(bar, tmp_path)
    epoch_reporter(tmp_path, _job(0))(*seen[5])
    assert watcher.poll() == "cnn/none fold 0: epoch 4/30 batch 2/4"


# -- deep jobs: epochs × batches, stored rates per batch, the rate a running job shows ---------------------------


def test_planned_batches_are_epochs_times_batches_twice_with_the_refit():
    from cellbench.run.progress import planned_batches

    assert planned_batches({"max_epochs": 10, "batch_size": 32, "refit": False}, 100) == 10 * 4
    assert planned_batches({"max_epochs": 10, "batch_size": 32, "refit": True}, 100) == 2 * 10 * 4
    ft = {"max_epochs": 5, "batch_size": 50, "refit": True, "finetune_layers": 30, "finetune_epochs": None}
    assert planned_batches(ft, 100) == 2 * (5 + 5) * 2
    assert planned_batches({**ft, "finetune_epochs": 1}, 100) == 2 * (5 + 1) * 2


def test_a_deep_jobs_cost_scales_with_its_batches_not_the_mean_of_other_jobs():
    # cnn ran 200 batches in 100 s: 0.5 s a batch; a pending cnn job of 800 batches costs 400 s, not the mean 100 s
    timings = [("cnn", "deep", 100.0, 200.0), ("knn", "classical", 2.0, 1.0)]
    pending = [("cnn", "deep", 800.0), ("mobilenet_v2", "deep", 100.0), ("knn", "classical", 1.0)]
    assert expected_costs(pending, timings) == [400.0, 50.0, 2.0]
    # no deep job finished yet: a deep job costs its batches times the seconds a batch the running one shows
    assert expected_costs(pending, timings[1:], batch_seconds={"cnn": 0.25}) == [200.0, 25.0, 2.0]
    assert expected_costs(pending, timings[1:]) == [2.0, 2.0, 2.0]  # nothing known about deep jobs: the mean


def test_the_eta_orders_deep_jobs_by_their_batches_from_a_running_jobs_rate(tmp_path):
    """A fake clock for the status files' times: the watcher measures 0.5 s a batch and the ETA follows the
    batches left, before any deep job has finished."""
    small, large = _job(0), _job(1)
    jobs = [(small.key, "cnn", "deep", 100.0), (large.key, "cnn", "deep", 1000.0), ("k", "knn", "classical", 1.0)]
    bar = JobProgress(jobs, timings=[("knn", "classical", 3.0, 1.0)], workers=1, enabled=False)
    assert bar.eta() == 3.0 + 3.0 + 3.0  # no deep rate yet: every job costs the mean of what finished
    watcher = EpochWatcher(bar, tmp_path)
    report = epoch_reporter(tmp_path, small)
    status = tmp_path / f"{small.key}.json"
    for t, (epoch, batch) in enumerate([(0, 2), (0, 6), (1, 2)]):  # 10 batches an epoch; written at t = 0, 2, 4 s
        report(epoch, {"phase": "head", "batch": batch, "batches": 10})
        os.utime(status, (1000.0 + 2 * t, 1000.0 + 2 * t))
        watcher.poll()
    assert bar.live == {"cnn": 4.0 / 10}  # 10 batches (epoch 1 batch 2 -> epoch 2 batch 2) in 4 s
    assert bar.eta() == 0.4 * 100 + 0.4 * 1000 + 3.0
    bar.finished(large.key, seconds=500.0)  # now a stored rate: 0.5 s a batch
    assert bar.eta() == 0.5 * 100 + 3.0
    report(0, {"phase": "refit", "batch": 1, "batches": 10})  # the refit starts counting again
    os.utime(status, (1010.0, 1010.0))
    watcher.poll()
    assert bar.live == {"cnn": 0.4}
    bar.close()


def test_stored_deep_jobs_give_their_work_in_planned_batches(tmp_path):
    from cellbench.core.types import JobExtra, JobResult
    from cellbench.run.runner import _stored_timings
    from cellbench.run.store import Store

    deep, knn = _job(0), Job(suite="s", dataset="d", extraction="given", model=ModelSpec(name="knn"),
                             imbalance=ImbalanceSpec(name="none"), fold=0, seed=0, cv="kfold")  # fmt: skip
    with Store.open(tmp_path) as store:
        for job, seconds, n_train in ((deep, 90.0, 64), (knn, 2.0, 64)):
            store.write_result(JobResult(key=job.key, coordinates={**job.coordinates(), "folds_key": "f"}, status="ok",
                                         timings={"total_s": seconds}, extra=JobExtra(n_train=n_train)),
                               run_id=None, spec=job.canonical())  # fmt: skip
        # cnn: 30 epochs of 64 / 32 = 2 batches, twice with the refit (its default)
        assert sorted(_stored_timings(store)) == [("cnn", "deep", 90.0, 30 * 2 * 2.0), ("knn", "classical", 2.0, 1.0)]


# -- data preparation's bars follow the same rule ----------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_off_a_terminal_is_plain_lines_at_start_and_end_and_no_carriage_returns():
    from cellbench.core.bars import progress_bar

    out = io.StringIO()
    with progress_bar(total=1000, desc="features given", unit="img", stream=out, every=3600.0) as bar:
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix_str("cell 3")  # a new postfix waits for the next line
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[0].startswith("features given: 0/1000 img") and lines[1].startswith("features given: 1000/1000 img")
    term = _Terminal()
    for _ in progress_bar(range(10), desc="features given", unit="img", stream=term):
        pass
    assert "\r" in term.getvalue()  # a terminal gets tqdm's bar
    quiet = io.StringIO()
    for _ in progress_bar(range(10), desc="x", stream=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


def test_preparing_data_off_a_terminal_writes_plain_lines(tmp_path, capfd):
    from cellbench.run.prepare import Settings, prepare
    from cellbench.run.suite import parse_suite

    suite = parse_suite(
        {
            "name": "p",
            "cv": {"folds": 2},
            "datasets": {"synthetic": {"n_patients": 4, "fields_per_patient": 1}},
            "models": {"knn": {}, "cnn_tiny": {}},
        },
        source="test",
    )
    capfd.readouterr()
    prepare(suite, data_root=None, settings=Settings(cache_dir=tmp_path / "cache", progress=True))
    err = capfd.readouterr().err
    assert "\r" not in err
    shown = {line.split(":")[0] for line in err.splitlines()}
    assert {"features given", "pixels given 32px"} <= shown, err


def test_the_eta_is_an_upper_bound_until_a_deep_model_has_a_finished_job():
    """Untimed deep jobs cost their planned batches (max_epochs, twice with the refit) at a running job's rate: the ETA
    says "≤" until a job of that model (or kind) has finished, and "≥" before any deep rate is known."""
    jobs = [("a", "cnn", "deep", 100.0), ("b", "cnn", "deep", 100.0), ("c", "knn", "classical", 1.0)]
    bar = JobProgress(jobs, timings=[("knn", "classical", 3.0, 1.0)], workers=1, enabled=False)
    assert bar.eta_text() == "ETA ≥ 9 s"  # no deep rate yet: each job costed as the mean finished one, 3 s
    bar.batch_seconds("cnn", 0.4)  # a running cnn job shows 0.4 s a batch
    assert bar.eta_text() == "ETA ≤ 83 s"  # 0.4 × 100 × 2 + 3
    bar.finished("a", seconds=50.0)
    assert bar.eta_text() == "ETA 53 s"  # 0.5 s a planned batch × 100 + the knn job's 3 s
    classical = JobProgress([("c", "knn", "classical", 1.0)], timings=[("knn", "classical", 3.0, 1.0)], enabled=False)
    assert classical.eta_text() == "ETA 3 s"
