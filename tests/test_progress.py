"""Per-epoch status of running deep jobs: workers write it, the driver's bar shows the newest."""

from __future__ import annotations

import os
import time

from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.run.progress import EpochWatcher, clear_status, epoch_reporter


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
