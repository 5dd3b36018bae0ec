"""The driver: prepare data and folds, plan jobs, run the ones not yet stored, write the leaderboard."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import ConfigError, check_on_bad_image
from cellbench.core.hashing import canonical_json
from cellbench.core.paths import cache_dir
from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.core.workers import preload
from cellbench.features import batch
from cellbench.models import pipeline
from cellbench.run import jobs
from cellbench.run.cv import Folds, make_folds
from cellbench.run.progress import EpochWatcher
from cellbench.run.store import Store
from cellbench.run.suite import Suite
from cellbench.run.task import TaskData, load_task, save_task

log = logging.getLogger("cellbench")


@dataclass(kw_only=True)
class Prepared:
    """A (data set, extraction) ready to run: its task file, folds and what the leaderboard needs to say."""

    dataset: str
    extraction: str
    fingerprint: str
    task_path: Path
    folds: Folds
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RunSummary:
    suite: str
    results_dir: Path
    leaderboard: Path | None
    planned: int
    skipped_done: int
    ran: int
    failed: int
    wall_s: float
    warned: int = 0  # finished jobs that raised warnings (stored with the job and listed in the leaderboard)


def results_folder(results_root: str | Path, suite: Suite) -> Path:
    return Path(results_root) / suite.name


def prepare(
    suite: Suite,
    *,
    data_root: Path | None,
    on_bad_image: str = "raise",
    workers: int | None = None,
    progress: bool = True,
) -> list[Prepared]:
    """Load every data set, extract, compute features (cached) and folds (shared by every model)."""
    from cellbench.datasets import DATASETS, load_dataset, locate
    from cellbench.datasets.extraction import replace_fingerprint, run_extraction, split_options
    from cellbench.datasets.subsample import subsample_dataset
    from cellbench.models import MODELS
    from cellbench.run.external import describe_prepared, load_external, split_external

    check_on_bad_image(on_bad_image, name="--on-bad-image")
    need_features = any(MODELS[m].input == "features" for m in suite.models)
    sizes = sorted({int(model_spec(suite, m).params["size"]) for m in suite.models if MODELS[m].input == "pixels"})
    out: list[Prepared] = []
    for name, options in suite.datasets.items():
        options = dict(options)
        extractions = options.pop("extractions", ["given"])
        optional = options.pop("optional", False)
        test = options.pop("test", None)  # an external test set: see bench.external
        max_per_class = options.pop("max_per_class", suite.max_per_class)  # quick-run subsample
        max_groups = options.pop("max_groups", suite.max_groups)
        options, extraction_options = split_options(options)  # [datasets.NAME.manual|segmentation] tables
        if optional and DATASETS[name].needs_data and locate(name, data_root) is None:
            log.info("data set %s not found under %s: skipped (optional in this suite)", name, data_root)
            continue
        dataset = load_dataset(name, data_root=data_root, **options)
        dataset = subsample_dataset(dataset, max_per_class=max_per_class, max_groups=max_groups, seed=suite.seed)
        source = load_external(name, test, data_root=data_root) if test is not None else None
        for extraction in extractions:
            extracted = run_extraction(
                extraction,
                dataset,
                options=extraction_options.get(extraction),
                progress=progress,
                n_jobs=workers,
                on_bad_image=on_bad_image,
            )
            samples = extracted.samples
            # cells cut from fields: caches key on the extraction (its parameters), not only on the data
            arm = replace_fingerprint(dataset, extracted) if extracted.fingerprint != dataset.fingerprint else dataset
            part = None
            if source is not None:  # refuses overlapping patients or images before any feature is computed
                part = split_external(
                    source,
                    arm,
                    extraction,
                    samples,
                    extraction_options=extraction_options.get(extraction),
                    n_jobs=workers,
                    progress=progress,
                )
            out.append(
                _prepare_one(
                    suite,
                    part.dataset if part else arm,
                    extraction,
                    part.samples if part else samples,
                    need_features=need_features,
                    pixel_sizes=sizes,
                    on_bad_image=on_bad_image,
                    workers=workers,
                    progress=progress,
                    external_ids=part.external_ids if part else frozenset(),
                )
            )
            if part is not None:
                describe_prepared(out[-1], part)
            if extracted.info:  # counts, parameters, detection quality, overlay outlines (see bench.extraction_report)
                out[-1].info["extraction"] = extracted.info
    if not out:
        raise ConfigError(f"suite {suite.name}: none of its data sets ({', '.join(suite.datasets)}) was found")
    return out


def model_spec(suite: Suite, name: str) -> ModelSpec:
    """The model's spec in this suite: registry defaults < suite ``[deep]`` settings < the model's own params."""
    from cellbench.models import MODELS
    from cellbench.models.classical import resolve_params

    entry = MODELS[name]
    params = dict(suite.models.get(name, {}))
    if entry.kind == "deep":
        params = resolve_params(name, {**suite.deep, **params})
    else:
        resolve_params(name, params)  # refuse unknown parameters before anything runs
    return ModelSpec(name=name, kind=entry.kind, input=entry.input, params=params)


def _prepare_one(
    suite,
    dataset,
    extraction,
    samples,
    *,
    need_features,
    pixel_sizes,
    on_bad_image,
    workers,
    progress,
    external_ids: frozenset[str] = frozenset(),
) -> Prepared:
    from cellbench.datasets.content import find_duplicates
    from cellbench.features import FeatureConfig
    from cellbench.features.batch import extract_feature_set
    from cellbench.models.pixels import pixel_cache

    context = f"{dataset.name}/{extraction}"
    classes = tuple(dataset.classes)
    index = {c: i for i, c in enumerate(classes)}
    notes = list(dataset.notes)
    X = None
    names: tuple[str, ...] = ()
    by_id = {s.id: s for s in samples}
    ids = [s.id for s in samples]
    if need_features:
        config = FeatureConfig.for_kind(dataset.info.kind)
        if suite.features:
            config = replace(config, **{k: tuple(v) if isinstance(v, list) else v for k, v in suite.features.items()})
        fs = extract_feature_set(
            samples,
            config=config,
            dataset_fingerprint=dataset.fingerprint,
            extraction=extraction,
            kind=dataset.info.kind,
            cache_dir=cache_dir(),
            n_jobs=workers,
            on_bad_image=on_bad_image,
            progress=progress,
        )
        if fs.skipped:
            notes.append(
                f"{len(fs.skipped)} unreadable image(s) skipped (--on-bad-image skip): {', '.join(fs.skipped[:5])}"
            )
        ids, X, names = list(fs.ids), fs.X, fs.names
    pixels: dict[int, str] = {}
    for size in pixel_sizes:
        ps = pixel_cache(
            [by_id[i] for i in ids],
            size=size,
            kind=dataset.info.kind,
            dataset_fingerprint=dataset.fingerprint,
            extraction=extraction,
            cache_dir=cache_dir(),
            on_bad_image=on_bad_image,
            progress=progress,
        )
        if ps.skipped:
            notes.append(
                f"{len(ps.skipped)} unreadable image(s) skipped (--on-bad-image skip): {', '.join(ps.skipped[:5])}"
            )
            if X is not None:  # features skip the same unreadable files, so this only aligns rows to be safe
                keep = set(ps.ids)
                X = X[[k for k, i in enumerate(ids) if i in keep]]
            ids = list(ps.ids)
        pixels[size] = str(ps.path)
    kept = [by_id[i] for i in ids]
    n_dev = sum(i not in external_ids for i in ids)  # external test samples come last and stay out of every fold
    y = np.asarray([index[s.label] for s in kept], dtype=np.int64)
    groups = [s.group for s in kept]
    has_groups = all(g is not None for g in groups)
    predefined = [s.meta.get("fold") for s in kept[:n_dev]]
    # identical images (by decoded pixels, cached per data version) stay on one side of every split
    dups = find_duplicates(
        kept[:n_dev], fingerprint=dataset.fingerprint, extraction=extraction, cache_dir=cache_dir(), progress=progress
    )
    if dups.n_sets:
        notes.append(dups.note())
    folds = make_folds(
        ids=ids[:n_dev],
        y=y[:n_dev],
        groups=groups[:n_dev] if has_groups else None,
        predefined=predefined if all(p is not None for p in predefined) else None,
        scheme=suite.cv_scheme,
        n_splits=suite.folds,
        repeats=suite.repeats,
        seed=suite.seed,
        context=context,
        duplicates=dups.keys if dups.n_sets else None,
        group_kind=dataset.info.group_kind,
    )
    positive = index[dataset.positive_class] if dataset.positive_class is not None and len(classes) == 2 else None
    task = TaskData(
        ids=np.asarray(ids, dtype=str),
        y=y,
        groups=np.asarray(groups, dtype=str) if has_groups else None,
        X=X,
        feature_names=names,
        tests=folds.test,
        classes=classes,
        positive=positive,
        pixels=pixels or None,
        kind=dataset.info.kind,
        feature_config=canonical_json(asdict(config)) if need_features else "",
        external=np.arange(n_dev, len(ids)) if external_ids else None,
    )
    task_path = save_task(task, cache_dir() / "tasks")
    counts = {c: int((y[:n_dev] == i).sum()) for i, c in enumerate(classes)}
    info = {
        "title": dataset.info.title,
        "kind": dataset.info.kind,
        "synthetic": dataset.info.synthetic,
        "classes": list(classes),
        "positive_class": dataset.positive_class,
        "primary_metric": suite.primary_metric or dataset.info.primary_metric,
        "n_samples": n_dev,
        "class_counts": counts,
        "n_groups": len(set(groups[:n_dev])) if has_groups else None,
        "group_kind": dataset.info.group_kind if has_groups else None,
        "cv": folds.description,
        "cv_scheme": folds.scheme,
        "n_features": len(names),
        "notes": notes,
        "root": str(dataset.root) if dataset.root else None,
    }
    return Prepared(
        dataset=dataset.name,
        extraction=extraction,
        fingerprint=dataset.fingerprint,
        task_path=task_path,
        folds=folds,
        info=info,
        notes=notes,
    )


def plan(suite: Suite, prepared: list[Prepared]) -> tuple[list[tuple[Job, str]], list[str]]:
    """Expand the suite over the prepared data: one job per coordinate, plus notes on skipped combinations."""
    from cellbench.models import MODELS, STRATEGIES, applicable

    items: list[tuple[Job, str]] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(p: Prepared, model: str, strategy: str, ratio: str | None) -> None:
        ok, why = applicable(model, strategy)
        if not ok:
            note = f"{model} × {strategy}: not run — {why}"
            if note not in notes:
                notes.append(note)
            return
        entry = MODELS[model]
        spec = model_spec(suite, model)
        strat = ImbalanceSpec(name=strategy, params=dict(STRATEGIES[strategy].resolve({})))
        explain = (
            ratio is None
            and model in suite.explain_models
            and strategy in suite.explain_strategies
            and entry.kind == "classical"
        )
        for fold in range(len(p.folds)):
            job = Job(
                explain=explain,
                suite=suite.name,
                dataset=p.dataset,
                extraction=p.extraction,
                model=spec,
                imbalance=strat,
                fold=fold,
                seed=suite.seed,
                cv=p.folds.scheme,
                ratio=ratio,
                data_fingerprint=p.fingerprint,
                folds_key=p.folds.key,
            )
            if job.key not in seen:
                seen.add(job.key)
                items.append((job, str(p.task_path)))

    for p in prepared:
        for model in suite.models:
            deep = MODELS[model].kind == "deep"
            for strategy in (suite.deep_strategies or suite.strategies) if deep else suite.strategies:
                add(p, model, strategy, None)
        if suite.sweep_ratios:
            if p.info["positive_class"] is None or len(p.info["classes"]) != 2:
                notes.append(f"{p.dataset}: imbalance sweep skipped — it applies to binary tasks only")
                continue
            for model in suite.models if suite.sweep_models is None else suite.sweep_models:
                for strategy in suite.sweep_strategies:
                    for ratio in suite.sweep_ratios:
                        add(p, model, strategy, ratio)
    return items, notes


def run_suite(
    suite: Suite,
    *,
    results_root: str | Path = "results",
    data_root: Path | None = None,
    workers: int | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    on_bad_image: str = "raise",
    progress: bool = True,
    argv: list[str] | None = None,
    on_result: Callable | None = None,
) -> RunSummary:
    """Run ``suite``, skipping jobs already stored as ``ok``, and regenerate its leaderboard."""
    from cellbench.report.leaderboard import write_leaderboard
    from cellbench.run.executors import EXECUTORS
    from cellbench.run.external import add_external_jobs
    from cellbench.run.manifest import build_manifest

    # the fork server imports what every job needs once, not every worker again
    preload(jobs.__name__, batch.__name__, pipeline.__name__, "imblearn.pipeline", "sklearn.ensemble", "sklearn.svm",
            "xgboost")  # fmt: skip
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; known executors: {', '.join(EXECUTORS)}")
    t0 = time.perf_counter()
    folder = results_folder(results_root, suite)
    with Store.open(folder) as store:  # takes the lock before any work
        prepared = prepare(suite, data_root=data_root, on_bad_image=on_bad_image, workers=workers, progress=progress)
        items, notes = plan(suite, prepared)
        items = add_external_jobs(items, prepared)  # fold models score the external set; one refit per row
        for p in prepared:
            store.save_data_set(p.dataset, p.extraction, p.fingerprint, {**p.info, "plan_notes": notes})
            store.save_folds(p.folds, dataset=p.dataset, extraction=p.extraction)
            task = load_task(str(p.task_path))
            store.save_samples(
                p.dataset,
                p.extraction,
                task.ids.tolist(),
                task.groups.tolist() if task.groups is not None else [None] * len(task.ids),
                [task.classes[i] for i in task.y],
            )
        done = store.done_keys()
        todo = [(j, path) for j, path in items if j.key not in done]
        by_key = {j.key: j for j, _ in todo}
        job_options = {"save_dir": str((folder / "models").resolve())} if suite.save_models else {}
        if progress and any(j.model.kind == "deep" for j, _ in todo):  # epochs of running deep jobs in the bar
            job_options["status_dir"] = str((cache_dir() / "status" / f"{os.getpid()}-{suite.name}").resolve())
        manifest = build_manifest(suite=suite, fingerprints={p.dataset: p.fingerprint for p in prepared}, argv=argv)
        manifest["planned_jobs"] = len(items)
        run_id = store.start_run(suite.name, manifest)
        failed = ran = warned = 0
        bar = _progress(len(todo), f"jobs {suite.name}", progress)
        status = "interrupted"
        status_dir = job_options.get("status_dir")
        watcher = EpochWatcher(bar, status_dir) if status_dir else contextlib.nullcontext()
        try:
            extra_options = {"gpu_for_deep": suite.deep_gpu} if executor == "dask" else {}
            results = EXECUTORS[executor](
                todo, workers=workers, options=job_options, **extra_options, **(executor_options or {})
            )
            with watcher:
                for result in results:
                    store.write_result(result, run_id=run_id, spec=by_key[result.key].canonical())
                    ran += 1
                    failed += result.status != "ok"
                    warned += bool(result.extra.get("warnings")) and result.status == "ok"
                    if on_result is not None:
                        on_result(result)
                    bar.set_postfix_str(
                        f"{result.coordinates['model']}/{result.coordinates['imbalance']} "
                        f"fold {result.coordinates['fold']}" + (" ERROR" if result.status != "ok" else "")
                    )
                    bar.update(1)
            status = "finished"
        finally:
            bar.close()
            store.finish_run(run_id, status)
            if status_dir:
                shutil.rmtree(status_dir, ignore_errors=True)
        leaderboard = write_leaderboard(store, out_dir=folder)
    return RunSummary(
        suite=suite.name,
        results_dir=folder,
        leaderboard=leaderboard,
        planned=len(items),
        skipped_done=len(items) - len(todo),
        ran=ran,
        failed=failed,
        warned=warned,
        wall_s=time.perf_counter() - t0,
    )


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="job", disable=not enabled, dynamic_ncols=True)
