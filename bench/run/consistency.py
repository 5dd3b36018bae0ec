"""Stored metrics cross-checked against the stored predictions they were computed from.

A leaderboard takes its means from the stored metrics and its confidence intervals from the stored predictions;
an edited or damaged store could make the two disagree silently (a mean of 0.173 beside a CI of 0.848–0.953).
:func:`metric_mismatches` recomputes every job's metrics from its predictions; the leaderboard and ``compare``
refuse a store where they differ (:func:`check_store`), naming the jobs.

Recomputing every metric costs tens of milliseconds a job, so a passed check leaves a stamp in the results folder
(:data:`STAMP`): per job, a digest of its stored metrics and predictions. A later check recomputes only the jobs
whose digest is new or changed; an edited metric or prediction changes its job's digest and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.files import write_json
from cellbench.run.store import Store
from cellbench.stats.metrics import compute_metrics

STAMP = "consistency.json"
STAMP_FORMAT = 1
REL_TOL = 1e-9  # stored predictions are full precision (float64 JSON), so recomputed metrics agree to rounding


def job_digests(store: Store) -> dict[str, str]:
    """Per finished job, a digest of its stored metrics text and its stored prediction rows (read as text)."""
    digests = {key: hashlib.blake2b(metrics.encode(), digest_size=16) for key, metrics in store.conn.execute(
        "SELECT key, metrics FROM jobs WHERE status = 'ok'")}  # fmt: skip
    rows = store.conn.execute(
        "SELECT job_key, sample_id, y_true, y_pred, proba FROM predictions ORDER BY job_key, sample_id"
    )
    for key, sid, y_true, y_pred, proba in rows:
        if key in digests:
            digests[key].update(f"\x1f{sid}\x1e{y_true}\x1e{y_pred}\x1e{proba}".encode())
    return {key: h.hexdigest() for key, h in digests.items()}


def metric_mismatches(store: Store, *, keys: Iterable[str] | None = None, limit: int = 10) -> list[str]:
    """``"<job key> <dataset>/<extraction> <model>/<strategy> fold F: <metric> stored X, recomputed Y"`` for every
    finished job (of ``keys``, default all; at most ``limit``) whose stored metrics differ from those its stored
    predictions give, and for every finished job without predictions."""
    jobs = store.jobs(status="ok")
    if keys is not None:
        jobs = jobs[jobs.key.isin(set(keys))]
    if not len(jobs):
        return []
    records = store.data_sets()
    preds = store.predictions(jobs.key.tolist())
    by_job = {key: g for key, g in preds.groupby("job_key", sort=False)}
    out: list[str] = []
    for row in jobs.itertuples(index=False):
        where = f"{row.key[:12]} {row.dataset}/{row.extraction} {row.model}/{row.imbalance} fold {row.fold}"
        g = by_job.get(row.key)
        if g is None and row.extra.n_test == 0 and not row.metrics:
            continue  # a final model's refit with no external test set: nothing predicted, nothing scored
        if g is None:
            out.append(f"{where}: no stored predictions")
        else:
            record = records.get((row.dataset, row.extraction))
            positive = record.positive if record is not None else None
            again = compute_metrics(
                g.y_true.to_numpy(), np.array(g.proba.tolist(), dtype=float), g.y_pred.to_numpy(), positive=positive
            )
            out.extend(f"{where}: {d}" for d in _differences(row.metrics, again))
        if len(out) >= limit:
            break
    return out[:limit]


def _differences(stored: dict, again: dict) -> list[str]:
    diffs = []
    for name, value in stored.items():
        if name not in again:
            continue
        new = again[name]
        if isinstance(value, list) or isinstance(new, list):
            if value != new:
                diffs.append(f"{name} stored {value}, recomputed {new}")
        elif value is None or new is None:
            if (value is None) != (new is None or math.isnan(new)):
                diffs.append(f"{name} stored {value}, recomputed {new}")
        elif not (math.isnan(value) and math.isnan(new)) and not math.isclose(value, new, rel_tol=REL_TOL,
                                                                               abs_tol=1e-12):  # fmt: skip
            diffs.append(f"{name} stored {value:.6g}, recomputed {new:.6g}")
    return diffs


def check_store(store: Store) -> None:
    """Refuse a store whose stored metrics disagree with its stored predictions.

    Raises
    ------
    DataError
        Naming the store and the first jobs that disagree.
    """
    digests = job_digests(store)
    stamp_path = store.folder / STAMP
    stamped = _read_stamp(stamp_path)
    todo = [key for key, digest in digests.items() if stamped.get(key) != digest]
    bad = metric_mismatches(store, keys=todo) if todo else []
    if not bad and todo:
        try:
            write_json(stamp_path, {"format": STAMP_FORMAT, "jobs": digests}, sort_keys=True)
        except OSError:  # a read-only results folder: checked now, checked again next time
            pass
    if bad:
        listing = "\n".join(f"  {b}" for b in bad)
        raise DataError(
            f"the store in {store.folder} is inconsistent: stored metrics differ from the metrics of the stored "
            f"predictions (edited or damaged?); rerun the jobs named here (delete their rows) or the suite:\n{listing}"
        )


def _read_stamp(path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc.get("jobs", {}) if isinstance(doc, dict) and doc.get("format") == STAMP_FORMAT else {}
