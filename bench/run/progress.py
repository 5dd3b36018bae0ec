"""The driver's job progress: an ETA from the expected cost of pending jobs, and per-epoch status of deep jobs.

:class:`JobProgress` weighs each pending job by its expected cost: the stored timings of finished jobs of the same
model (else of its kind), per unit of work — one unit for a classical job, the batches it trains at most (epochs ×
batches, :func:`planned_batches`) for a deep one — and, for deep jobs before any has finished, the seconds per batch
the running ones show. It draws a bar only on a terminal and writes plain periodic lines otherwise (a log file gets
a line every 30 s, not every redraw).

A worker training a deep model writes one small JSON file per job (epoch, phase, losses) into a folder the
driver gives it; a thread in the driver shows the most recently updated one in the bar's postfix. Files, not
pipes, so it works the same for local processes and for Dask workers on a shared file system; the file is
removed when the job ends.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        self._first: dict[str, tuple[str, int, float]] = {}  # status file -> (phase, batches done, mtime) first seen

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
            status = json.loads(newest[0].read_text())
            text = describe(status)
        except (OSError, ValueError, KeyError):
            return None
        self._seen = (str(newest[0]), newest[1])
        self._rate(str(newest[0]), status, newest[1])
        self.bar.set_postfix_str(text, refresh=True)
        return text

    def _rate(self, path: str, status: dict[str, Any], mtime: float) -> None:
        """Seconds per batch of a running deep job, between the first status seen of its phase and this one (given
        to the bar's ``batch_seconds`` where it has one)."""
        if not status.get("batches") or not hasattr(self.bar, "batch_seconds"):
            return
        done = (int(status["epoch"]) - 1) * int(status["batches"]) + int(status.get("batch", status["batches"]))
        phase = status.get("phase", "")
        first = self._first.get(path)
        if first is None or first[0] != phase or done < first[1]:  # a new phase (the refit) counts from its start
            self._first[path] = (phase, done, mtime)
        elif done > first[1] and mtime > first[2]:
            self.bar.batch_seconds(status.get("model", ""), (mtime - first[2]) / (done - first[1]))


# -- the job bar: an ETA from the expected cost of pending jobs, bars only on a terminal -------------------------


def planned_batches(params: Mapping[str, Any], n_train: int) -> float:
    """The batches a deep job trains at most: ``max_epochs`` (and the fine-tuning epochs of ``_ft`` models) of
    ⌈``n_train`` / ``batch_size``⌉ batches, twice with the refit on the whole training fold (``refit``)."""
    epochs = int(params.get("max_epochs", 1))
    if "finetune_layers" in params:  # a fine-tuned backbone: a second phase
        ft = params.get("finetune_epochs")
        epochs += int(ft) if ft is not None else int(params.get("max_epochs", 1))
    per_epoch = math.ceil(max(1, int(n_train)) / max(1, int(params.get("batch_size", 32))))
    return float(epochs * per_epoch * (2 if params.get("refit", True) else 1))


def job_work(kind: str, params: Mapping[str, Any], n_train: int) -> float:
    """A job's size for the ETA: 1 for a classical job, :func:`planned_batches` for a deep one."""
    return planned_batches(params, n_train) if kind == "deep" else 1.0


def expected_costs(pending: Sequence[tuple], timings: Iterable[tuple], *,
                   batch_seconds: Mapping[str, float] | None = None) -> list[float]:  # fmt: skip
    """The expected seconds of each pending ``(model, kind[, work])`` job from finished ``(model, kind, seconds[,
    work])`` ones.

    ``work`` (1 when left out) is a job's size: 1 for classical jobs, :func:`planned_batches` for deep ones. A job
    costs its work times the seconds per unit of work of its model's finished jobs, else of its kind's; a deep job
    of a kind nothing finished of yet costs its work times the seconds per batch a running job shows
    (``batch_seconds``, per model, of that model else their mean); else the mean of all finished jobs; 1.0 where
    nothing is known (the ETA then counts jobs).
    """
    by_model: dict[str, list[float]] = {}
    by_kind: dict[str, list[float]] = {}
    every: list[float] = []
    for model, kind, seconds, *rest in timings:
        work = float(rest[0]) if rest else 1.0
        by_model.setdefault(model, []).append(seconds / work)
        by_kind.setdefault(kind, []).append(seconds / work)
        every.append(seconds)
    live = dict(batch_seconds or {})

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    def cost(model: str, kind: str, work: float = 1.0) -> float:
        if model in by_model:
            return mean(by_model[model]) * work
        if kind in by_kind:
            return mean(by_kind[kind]) * work
        if kind == "deep" and live:
            return (live[model] if model in live else mean(live.values())) * work
        return mean(every) if every else 1.0

    return [cost(*p) for p in pending]


def untimed_deep(pending: Sequence[tuple], timings: Iterable[tuple]) -> bool:
    """Whether a pending deep ``(model, kind[, work])`` job has no finished job of its model or kind in ``timings``:
    its cost is then its planned batches (``max_epochs``; early stopping usually ends sooner), so the ETA is an
    upper bound."""
    timed = {t[0] for t in timings} | {t[1] for t in timings}
    return any(kind == "deep" and model not in timed and kind not in timed for model, kind, *_ in pending)


class JobProgress:
    """Counts finished jobs and estimates the time left from the expected cost of those still pending.

    ``pending`` holds each job's ``(key, model, kind[, work])``; ``timings`` the ``(model, kind, seconds[, work])`` of
    jobs stored earlier (this run's finished jobs are added as they come; see :func:`expected_costs`). On a terminal
    ``stream`` it draws a tqdm bar; on anything else (a log file, a pipe) it writes one plain line every ``every``
    seconds and one at the end.
    """

    def __init__(self, pending: Sequence[tuple], *, timings: Iterable[tuple] = (),
                 workers: int = 1, desc: str = "jobs", enabled: bool = True, stream: TextIO | None = None,
                 every: float = 30.0, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.jobs = {key: (model, kind, float(work[0]) if work else 1.0) for key, model, kind, *work in pending}
        self.live: dict[str, float] = {}  # model -> seconds per batch of its running deep jobs
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
        return sum(expected_costs(list(self.jobs.values()), self.timings, batch_seconds=self.live)) / self.workers

    def eta_text(self) -> str:
        """``ETA 4 min``; while a pending deep model has no finished job (:func:`untimed_deep`), ``ETA ≤ 11 min`` once
        a running deep job shows its seconds per batch (its planned batches at that rate: an upper bound), and
        ``ETA ≥ 25 s`` before (deep jobs costed as the mean finished job, far less than they take)."""
        bound = ""
        if self.jobs and untimed_deep(list(self.jobs.values()), self.timings):
            bound = "≤ " if self.live else "≥ "
        return f"ETA {bound}{_duration(self.eta())}"

    def batch_seconds(self, model: str, seconds: float) -> None:
        """A running deep job of ``model`` takes ``seconds`` a batch (:class:`EpochWatcher` measures it)."""
        self.live[model] = float(seconds)

    def finished(self, key: str, *, seconds: float | None, status: str = "") -> None:
        """Job ``key`` finished after ``seconds`` (its stored total time; ``None`` when unknown)."""
        model, kind, work = self.jobs.pop(key, ("", "", 1.0))
        if seconds is not None and model:
            self.timings.append((model, kind, float(seconds), work))
        self.done += 1
        self.bar.update(1)
        self.set_postfix_str(status)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        """The bar's postfix (``EpochWatcher`` writes deep jobs' epochs here), with the ETA."""
        self.postfix = text
        self.bar.set_postfix_str(f"{text} | {self.eta_text()}" if text else self.eta_text(), refresh=refresh)
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
        self.stream.write(f"{self.desc}: {self.done}/{total} done, {self.eta_text()}{extra}\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
