"""The driver's job progress: an ETA from the expected cost of pending jobs, and per-epoch status of deep jobs.

:class:`JobProgress` weighs each pending job by the stored timings of finished jobs of the same model (else of its
kind), draws a bar only on a terminal and writes plain periodic lines otherwise (a log file gets a line every 30 s,
not every redraw).

A worker training a deep model writes one small JSON file per job (epoch, phase, losses) into a folder the
driver gives it; a thread in the driver shows the most recently updated one in the bar's postfix. Files, not
pipes, so it works the same for local processes and for Dask workers on a shared file system; the file is
removed when the job ends.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

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
        status.update({k: int(logs[k]) for k in ("batch", "batches") if k in logs})  # within an epoch
        try:
            write_json(path, status)
        except OSError:  # status is cosmetic: never fail a job for it
            pass

    report.batches = True  # deep training also reports batches within an epoch (``batch``, ``batches`` in logs)
    return report


def clear_status(folder: str | os.PathLike, job: Job) -> None:
    (Path(folder) / f"{job.key}.json").unlink(missing_ok=True)


def describe(status: dict[str, Any]) -> str:
    """``cnn/none fold 2: epoch 5/30 val_loss 0.412``, or ``… epoch 6/30 batch 12/40`` within an epoch (``ft``
    marks the fine-tuning phase, ``refit`` the refit on
    the whole training fold)."""
    ratio = f" {status['ratio']}" if status.get("ratio") else ""
    phase = {"finetune": " ft", "refit": " refit"}.get(status.get("phase", ""), "")
    loss = f" val_loss {status['val_loss']:.3f}" if "val_loss" in status else ""
    batch = ""
    if "batch" in status:
        of = f"/{status['batches']}" if status.get("batches") else ""
        batch = f" batch {status['batch']}{of}"
    return (
        f"{status['model']}/{status['strategy']}{ratio} fold {status['fold']}: "
        f"epoch {status['epoch']}/{status['max_epochs']}{phase}{batch}{loss}"
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


# -- the job bar: an ETA from the expected cost of pending jobs, bars only on a terminal -------------------------


def expected_costs(pending: Sequence[tuple[str, str]], timings: Iterable[tuple[str, str, float]]) -> list[float]:
    """The expected seconds of each pending ``(model, kind)`` job from finished ``(model, kind, seconds)``.

    A model's own mean where it has finished jobs, else the mean of its kind (classical, deep), else of all; 1.0
    where nothing has finished yet (the ETA then counts jobs).
    """
    by_model: dict[str, list[float]] = {}
    by_kind: dict[str, list[float]] = {}
    for model, kind, seconds in timings:
        by_model.setdefault(model, []).append(seconds)
        by_kind.setdefault(kind, []).append(seconds)
    every = [t for ts in by_model.values() for t in ts]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    return [
        mean(by_model[m]) if m in by_model else mean(by_kind[k]) if k in by_kind else mean(every) if every else 1.0
        for m, k in pending
    ]


class JobProgress:
    """Counts finished jobs and estimates the time left from the expected cost of those still pending.

    ``pending`` holds each job's ``(key, model, kind)``; ``timings`` the ``(model, kind, seconds)`` of jobs stored
    earlier (this run's finished jobs are added as they come). On a terminal ``stream`` it draws a tqdm bar; on
    anything else (a log file, a pipe) it writes one plain line every ``every`` seconds and one at the end.
    """

    def __init__(self, pending: Sequence[tuple[str, str, str]], *, timings: Iterable[tuple[str, str, float]] = (),
                 workers: int = 1, desc: str = "jobs", enabled: bool = True, stream: TextIO | None = None,
                 every: float = 30.0, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.jobs = {key: (model, kind) for key, model, kind in pending}
        self.timings = list(timings)
        self.workers, self.desc, self.every, self.clock = max(1, workers), desc, every, clock
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=len(self.jobs), desc=desc, unit="job", file=self.stream, dynamic_ncols=True,
                        disable=not self.terminal)  # fmt: skip
        self.done = 0
        self.postfix = ""
        self._last = clock()

    def eta(self) -> float:
        """Seconds left: the expected cost of the pending jobs over the workers."""
        return sum(expected_costs(list(self.jobs.values()), self.timings)) / self.workers

    def finished(self, key: str, *, seconds: float | None, status: str = "") -> None:
        """Job ``key`` finished after ``seconds`` (its stored total time; ``None`` when unknown)."""
        model, kind = self.jobs.pop(key, ("", ""))
        if seconds is not None and model:
            self.timings.append((model, kind, float(seconds)))
        self.done += 1
        self.bar.update(1)
        self.set_postfix_str(status)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        """The bar's postfix (``EpochWatcher`` writes deep jobs' epochs here), with the ETA."""
        self.postfix = text
        self.bar.set_postfix_str(f"{text} | ETA {_duration(self.eta())}" if text else f"ETA {_duration(self.eta())}",
                                 refresh=refresh)  # fmt: skip
        if self.enabled and not self.terminal and self.clock() - self._last >= self.every:
            self._line()

    def close(self) -> None:
        if self.enabled and not self.terminal:
            self._line()
        self.bar.close()

    def _line(self) -> None:
        self._last = self.clock()
        total = self.done + len(self.jobs)
        extra = f" ({self.postfix})" if self.postfix else ""
        self.stream.write(f"{self.desc}: {self.done}/{total} done, ETA {_duration(self.eta())}{extra}\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
