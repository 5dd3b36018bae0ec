"""Preparing a suite's data: load each data set, extract its cells, compute features and pixels (cached), make the
folds every model shares, and write one task file per (data set, extraction)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cellbench.core.errors import ConfigError, check_on_bad_image
from cellbench.core.hashing import canonical_json
from cellbench.core.types import Dataset, FeatureSet, Sample
from cellbench.datasets import DATASETS, load_dataset, locate
from cellbench.datasets.content import find_duplicates
from cellbench.datasets.extraction import replace_fingerprint, run_extraction, split_options
from cellbench.datasets.subsample import subsample_dataset
from cellbench.features import FeatureConfig, extract_feature_set
from cellbench.models import MODELS
from cellbench.models.pixels import pixel_cache
from cellbench.run.cv import Folds, make_folds
from cellbench.run.external import ExternalPart, describe_external, load_external, split_external
from cellbench.run.records import DataSetRecord, ExtractionInfo, OfRecord
from cellbench.run.suite import Suite, model_spec
from cellbench.run.task import TaskData, save_task

log = logging.getLogger("cellbench")

# keys of a suite's data-set table that the runner reads itself; the others are the adapter's options
RUNNER_KEYS = ("extractions", "optional", "test", "max_per_class", "max_groups")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a suite's data are prepared: where caches go, how many workers, what to do with unreadable images."""

    cache_dir: Path
    workers: int | None = None
    on_bad_image: str = "raise"
    progress: bool = True


@dataclass(frozen=True, kw_only=True, eq=False)
class Prepared(OfRecord):
    """A (data set, extraction) ready to run: its task file, its folds and the record the leaderboard reads."""

    task_path: Path
    folds: Folds
    record: DataSetRecord


def prepare(suite: Suite, *, data_root: Path | None, settings: Settings) -> list[Prepared]:
    """Every (data set, extraction) of ``suite``, prepared; optional data sets that are absent are skipped."""
    check_on_bad_image(settings.on_bad_image, name="--on-bad-image")
    out: list[Prepared] = []
    for name, options in suite.datasets.items():
        out += _prepare_dataset(suite, name, dict(options), data_root=data_root, settings=settings)
    if not out:
        raise ConfigError(f"suite {suite.name}: none of its data sets ({', '.join(suite.datasets)}) was found")
    return out


def _prepare_dataset(suite: Suite, name: str, options: dict, *, data_root: Path | None,
                     settings: Settings) -> list[Prepared]:  # fmt: skip
    extractions = options.pop("extractions", ["given"])
    optional = options.pop("optional", False)
    test = options.pop("test", None)  # an external test set: see cellbench.run.external
    max_per_class = options.pop("max_per_class", suite.max_per_class)  # quick-run subsample
    max_groups = options.pop("max_groups", suite.max_groups)
    options, extraction_options = split_options(options)  # [datasets.NAME.manual|segmentation] tables
    if optional and DATASETS[name].needs_data and locate(name, data_root) is None:
        log.info("data set %s not found under %s: skipped (optional in this suite)", name, data_root)
        return []
    dataset = load_dataset(name, data_root=data_root, cache_dir=settings.cache_dir, **options)
    dataset = subsample_dataset(dataset, max_per_class=max_per_class, max_groups=max_groups, seed=suite.seed)
    source = (
        load_external(name, test, data_root=data_root, cache_dir=settings.cache_dir) if test is not None else None
    )
    out = []
    for extraction in extractions:
        extracted = run_extraction(
            extraction,
            dataset,
            options=extraction_options.get(extraction),
            progress=settings.progress,
            n_jobs=settings.workers,
            on_bad_image=settings.on_bad_image,
            cache_dir=settings.cache_dir,
        )
        # cells cut from fields: caches key on the extraction (its parameters), not only on the data
        arm = replace_fingerprint(dataset, extracted) if extracted.fingerprint != dataset.fingerprint else dataset
        part = None
        if source is not None:  # refuses overlapping patients or images before any feature is computed
            part = split_external(
                source,
                arm,
                extraction,
                extracted.samples,
                cache_dir=settings.cache_dir,
                extraction_options=extraction_options.get(extraction),
                n_jobs=settings.workers,
                progress=settings.progress,
            )
        prepared = prepare_arm(
            suite,
            part.dataset if part else arm,
            extraction,
            part.samples if part else tuple(extracted.samples),
            settings=settings,
            external=part,
        )
        if extracted.info:  # counts, parameters, detection quality, overlay outlines (see cellbench.report.extraction)
            record = replace(prepared.record, extracted=ExtractionInfo.from_json(extracted.info))
            prepared = replace(prepared, record=record)
        out.append(prepared)
    return out


def prepare_arm(suite: Suite, dataset: Dataset, extraction: str, samples: tuple[Sample, ...], *, settings: Settings,
                external: ExternalPart | None = None) -> Prepared:  # fmt: skip
    """Features, pixels, folds and the task file of one (data set, extraction).

    With ``external``, its samples come last in ``samples`` and stay out of every fold.
    """
    context = f"{dataset.name}/{extraction}"
    notes = list(dataset.notes)
    config = FeatureConfig.from_table(dataset.info.kind, suite.features) if _reads_features(suite) else None
    features = _features(config, dataset, extraction, samples, settings=settings, notes=notes) if config else None
    ids = list(features.ids) if features else [s.id for s in samples]
    X = features.X if features else None
    by_id = {s.id: s for s in samples}
    ids, X, pixels = _pixels(suite, dataset, extraction, by_id, ids, X, settings=settings, notes=notes)
    kept = [by_id[i] for i in ids]
    external_ids = external.external_ids if external else frozenset()
    n_dev = sum(i not in external_ids for i in ids)  # external test samples come last and stay out of every fold
    index = {c: i for i, c in enumerate(dataset.classes)}
    y = np.asarray([index[s.label] for s in kept], dtype=np.int64)
    groups = [s.group for s in kept]
    has_groups = all(g is not None for g in groups)
    folds = _folds(suite, dataset, extraction, kept[:n_dev], y[:n_dev], settings=settings, notes=notes)
    binary = dataset.positive_class is not None and len(dataset.classes) == 2
    task = TaskData(
        ids=np.asarray(ids, dtype=str),
        y=y,
        groups=np.asarray(groups, dtype=str) if has_groups else None,
        X=X,
        feature_names=features.names if features else (),
        tests=folds.test,
        classes=tuple(dataset.classes),
        positive=index[dataset.positive_class] if binary else None,
        pixels=pixels or None,
        kind=dataset.info.kind,
        feature_config=canonical_json(asdict(config)) if config else "",
        external=np.arange(n_dev, len(ids)) if external_ids else None,
    )
    task_path = save_task(task, settings.cache_dir / "tasks")
    record = DataSetRecord(
        dataset=dataset.name,
        extraction=extraction,
        fingerprint=dataset.fingerprint,
        title=dataset.info.title,
        kind=dataset.info.kind,
        synthetic=dataset.info.synthetic,
        classes=tuple(dataset.classes),
        positive_class=dataset.positive_class,
        primary_metric=suite.primary_metric or dataset.info.primary_metric,
        n_samples=n_dev,
        class_counts={c: int((y[:n_dev] == i).sum()) for i, c in enumerate(dataset.classes)},
        n_groups=len(set(groups[:n_dev])) if has_groups else None,
        group_kind=dataset.info.group_kind if has_groups else None,
        cv=folds.description,
        cv_scheme=folds.scheme,
        n_features=len(features.names) if features else 0,
        notes=tuple(notes),
        root=str(dataset.root) if dataset.root else None,
    )
    if external is not None:
        info = describe_external(task, external, context=context, group_kind=record.group_kind)
        record = replace(record, external=info)
    return Prepared(task_path=task_path, folds=folds, record=record)


def _reads_features(suite: Suite) -> bool:
    """Whether a model of ``suite`` reads handcrafted features."""
    return any(MODELS[m].input == "features" for m in suite.models)


def _features(config: FeatureConfig, dataset: Dataset, extraction: str, samples, *, settings: Settings,
              notes: list[str]) -> FeatureSet:  # fmt: skip
    """The handcrafted features of ``samples`` under ``config`` (cached)."""
    fs = extract_feature_set(
        samples,
        config=config,
        dataset_fingerprint=dataset.fingerprint,
        extraction=extraction,
        kind=dataset.info.kind,
        cache_dir=settings.cache_dir,
        n_jobs=settings.workers,
        on_bad_image=settings.on_bad_image,
        progress=settings.progress,
    )
    if fs.skipped:
        notes.append(_skipped_note(fs.skipped))
    return fs


def _pixels(suite: Suite, dataset: Dataset, extraction: str, by_id: Mapping[str, Sample], ids: list[str],
            X: np.ndarray | None, *, settings: Settings,
            notes: list[str]) -> tuple[list[str], np.ndarray | None, dict[int, str]]:  # fmt: skip
    """The pixel caches of ``ids`` at every input size the suite's deep models use, and the rows kept."""
    sizes = sorted({int(model_spec(suite, m).params["size"]) for m in suite.models if MODELS[m].input == "pixels"})
    pixels: dict[int, str] = {}
    for size in sizes:
        ps = pixel_cache(
            [by_id[i] for i in ids],
            size=size,
            kind=dataset.info.kind,
            dataset_fingerprint=dataset.fingerprint,
            extraction=extraction,
            cache_dir=settings.cache_dir,
            on_bad_image=settings.on_bad_image,
            progress=settings.progress,
        )
        if ps.skipped:
            notes.append(_skipped_note(ps.skipped))
            if X is not None:  # features skip the same unreadable files, so this only aligns rows to be safe
                keep = set(ps.ids)
                X = X[[k for k, i in enumerate(ids) if i in keep]]
            ids = list(ps.ids)
        pixels[size] = str(ps.path)
    return ids, X, pixels


def _folds(suite: Suite, dataset: Dataset, extraction: str, dev: list[Sample], y: np.ndarray, *, settings: Settings,
           notes: list[str]) -> Folds:  # fmt: skip
    """The folds of the development samples, shared by every model; identical images stay on one side."""
    groups = [s.group for s in dev]
    has_groups = all(g is not None for g in groups)
    predefined = [s.meta.get("fold") for s in dev]
    # identical images (by decoded pixels, cached per data version) stay on one side of every split
    dups = find_duplicates(dev, fingerprint=dataset.fingerprint, extraction=extraction,
                           cache_dir=settings.cache_dir, progress=settings.progress)  # fmt: skip
    if dups.n_sets:
        notes.append(dups.note())
    return make_folds(
        ids=[s.id for s in dev],
        y=y,
        groups=groups if has_groups else None,
        predefined=predefined if all(p is not None for p in predefined) else None,
        scheme=suite.cv_scheme,
        n_splits=suite.folds,
        repeats=suite.repeats,
        seed=suite.seed,
        context=f"{dataset.name}/{extraction}",
        duplicates=dups.keys if dups.n_sets else None,
        group_kind=dataset.info.group_kind,
    )


def _skipped_note(skipped) -> str:
    return f"{len(skipped)} unreadable image(s) skipped (--on-bad-image skip): {', '.join(skipped[:5])}"
