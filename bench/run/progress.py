"""Per-epoch status of running deep jobs in the driver's job bar.

A worker training a deep model writes one small JSON file per job (epoch, phase, losses) into a folder the
driver gives it; a thread in the driver shows the most recently updated one in the bar's postfix. Files, not
pipes, so it works the same for local processes and for Dask workers on a shared file system; the file is
removed when the job ends.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellbench.core.files import write_json
from cellbench.core.types import Job


def epoch_reporter(folder: str | os.PathLike, job: Job) -> Callable[[int, dict[str, Any]], None]:
    """``on_epoch(epoch, logs)`` for :func:`cellbench.models.deep.train_predict`: writes the job's status file."""
    path = Path(folder) / f"{job.key}.json"
    head = {"model": job.model.name, "strategy": job.imbalance.name, "fold": job.fold, "ratio": job.ratio}
    max_epochs = int(job.model.params.get("max_epochs", 0))

    def report(epoch: int, logs: dict[str, Any]) -> None:
        status = {**head, "epoch": epoch + 1, "max_epochs": max_epochs, "phase": logs.get("phase", "")}
        status.update({k: float(logs[k]) for k in ("loss", "val_loss") if k in logs})
        try:
            write_json(path, status)
        except OSError:  # status is cosmetic: never fail a job for it
            pass

    return report


def clear_status(folder: str | os.PathLike, job: Job) -> None:
    (Path(folder) / f"{job.key}.json").unlink(missing_ok=True)


def describe(status: dict[str, Any]) -> str:
    """``cnn/none fold 2: epoch 5/30 val_loss 0.412`` (``ft`` marks the fine-tuning phase, ``refit`` the refit on
    the whole training fold)."""
    ratio = f" {status['ratio']}" if status.get("ratio") else ""
    phase = {"finetune": " ft", "refit": " refit"}.get(status.get("phase", ""), "")
    loss = f" val_loss {status['val_loss']:.3f}" if "val_loss" in status else ""
    return (
        f"{status['model']}/{status['strategy']}{ratio} fold {status['fold']}: "
        f"epoch {status['epoch']}/{status['max_epochs']}{phase}{loss}"
    )


class EpochWatcher:
    """While active, shows the newest status file of ``folder`` in ``bar``'s postfix every ``interval`` s."""

    def __init__(self, bar, folder: str | os.PathLike, *, interval: float = 1.0):
        self.bar, self.folder, self.interval = bar, Path(folder), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cellbench-epochs", daemon=True)
        self._seen: tuple[str, float] | None = None

    def __enter__(self) -> EpochWatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> str | None:
        """Show the newest status (if it changed); returns its text."""
        newest = None
        for f in self.folder.glob("*.json"):
            try:
                mtime = f.stat().st_mtime
            except OSError:  # finished and removed meanwhile
                continue
            if newest is None or mtime > newest[1]:
                newest = (f, mtime)
        if newest is None or (str(newest[0]), newest[1]) == self._seen:
            return None
        try:
            text = describe(json.loads(newest[0].read_text()))
        except (OSError, ValueError, KeyError):
            return None
        self._seen = (str(newest[0]), newest[1])
        self.bar.set_postfix_str(text, refresh=True)
        return text
