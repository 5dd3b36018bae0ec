"""Reproduction checks: compare two stores, or rerun a stored run from its manifest and compare."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from cellbench.core.errors import ConfigError
from cellbench.report.leaderboard import write_leaderboard
from cellbench.report.markdown import render_markdown
from cellbench.report.summary import summarise
from cellbench.run.consistency import check_store
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import parse_suite


def compare_stores(a: Path, b: Path, *, max_report: int = 20) -> list[str]:
    """Differences between two result folders: job sets, statuses, metrics, predictions and leaderboards.

    Timings are excluded (wall time is not deterministic); everything else must be identical.
    """
    diffs: list[str] = []
    with Store.open(a, write=False) as sa, Store.open(b, write=False) as sb:
        check_store(sa)  # a store whose metrics disagree with its own predictions is not compared, it is refused
        check_store(sb)
        ja, jb = sa.jobs().set_index("key"), sb.jobs().set_index("key")
        only_a, only_b = sorted(set(ja.index) - set(jb.index)), sorted(set(jb.index) - set(ja.index))
        if only_a:
            diffs.append(f"{len(only_a)} job(s) only in {a}: {', '.join(only_a[:5])}")
        if only_b:
            diffs.append(f"{len(only_b)} job(s) only in {b}: {', '.join(only_b[:5])}")
        for key in sorted(set(ja.index) & set(jb.index)):
            ra, rb = ja.loc[key], jb.loc[key]
            where = f"{ra.dataset}/{ra.extraction} {ra.model}/{ra.imbalance}/{ra.ratio} fold {ra.fold}"
            if ra.status != rb.status:
                diffs.append(f"{where}: status {ra.status} vs {rb.status}")
            elif json.dumps(ra.metrics, sort_keys=True) != json.dumps(rb.metrics, sort_keys=True):
                changed = sorted(k for k in ra.metrics if ra.metrics.get(k) != rb.metrics.get(k))
                diffs.append(f"{where}: metrics differ ({', '.join(changed)})")
        pa, pb = sa.predictions(), sb.predictions()
        pa["proba"], pb["proba"] = pa.proba.map(json.dumps), pb.proba.map(json.dumps)
        merged = pa.merge(pb, on=["job_key", "sample_id"], how="outer", suffixes=("_a", "_b"), indicator=True)
        bad = merged[
            (merged._merge != "both") | (merged.y_pred_a != merged.y_pred_b) | (merged.proba_a != merged.proba_b)
        ]
        if len(bad):
            diffs.append(
                f"{len(bad)} per-sample prediction(s) differ, e.g. job {bad.job_key.iloc[0]} "
                f"sample {bad.sample_id.iloc[0]}"
            )
        la = render_markdown(summarise(sa), timings=False)
        lb = render_markdown(summarise(sb), timings=False)
        if la != lb:
            lines = [x for x, y in zip(la.splitlines(), lb.splitlines()) if x != y]
            diffs.append(f"leaderboards differ ({len(lines)} line(s)), first: {lines[0] if lines else '(length)'}")
    return diffs[:max_report]


def reproduce(
    folder: Path,
    *,
    data_root: Path | None,
    workers: int | None,
    cache: Path | None = None,
    progress: bool = True,
    executor: str = "local",
) -> tuple[Path, list[str]]:
    """Rerun the latest run stored in ``folder`` from its manifest in a fresh folder (with its leaderboard); return
    that folder and the differences."""
    with Store.open(folder, write=False) as store:
        runs = store.runs()
    if not len(runs):
        raise ConfigError(f"no run recorded in {folder}; nothing to reproduce")
    manifest = json.loads(runs.manifest.iloc[-1])
    raw = manifest.get("suite_raw")
    if not raw:
        raise ConfigError(f"the manifest in {folder} does not hold the suite; cannot reproduce")
    suite = parse_suite(raw, source=manifest.get("suite_file", "manifest"), default_name=manifest["suite"])
    suite = replace(suite.narrow(**(manifest.get("narrowing") or {})), text=manifest.get("suite_text") or "")
    out = Path(tempfile.mkdtemp(prefix="cellbench-repro-"))
    summary = run_suite(suite, results_root=out, cache=cache, data_root=data_root, workers=workers, progress=progress,
                        executor=executor)  # fmt: skip
    with Store.open(summary.results_dir, write=False) as store:
        write_leaderboard(store, out_dir=summary.results_dir)
    return summary.results_dir, compare_stores(folder, summary.results_dir)
