"""Preparing a suite's data: load each data set, extract its cells, compute features and pixels (cached), make the
folds every model shares, and write one task file per (data set, extraction)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from cellbench.core.bars import progress_bar
from cellbench.core.errors import ConfigError, DataError, check_on_bad_image
from cellbench.core.files import seal, sealed_cache_ok, write_atomic
from cellbench.core.hashing import canonical_json, stable_hash
from cellbench.core.types import Dataset, FeatureSet, Sample
from cellbench.datasets import DATASETS, load_dataset, locate
from cellbench.datasets.content import find_duplicates
from cellbench.datasets.embeddings import load_user_embeddings
from cellbench.datasets.extraction import replace_fingerprint, run_extraction, split_options
from cellbench.datasets.subsample import subsample_dataset
from cellbench.features import FeatureConfig, extract_feature_set
from cellbench.features.config import KEYLESS_FAMILIES
from cellbench.models import MODELS
from cellbench.models.embeddings import embed, embedding_id, embedding_key, embedding_params
from cellbench.models.pixels import pixel_cache
from cellbench.run.cv import Folds, make_folds
from cellbench.run.external import REFIT_FOLD, ExternalPart, describe_external, load_external, split_external
from cellbench.run.records import DataSetRecord, ExtractionInfo, OfRecord
from cellbench.run.stain import fold_reference, normalised, read_rgb, stain_key
from cellbench.run.suite import Suite, model_spec
from cellbench.run.task import FoldInputs, TaskData, save_task

log = logging.getLogger("cellbench")

# keys of a suite's data-set table that the runner reads itself; the others are the adapter's options
RUNNER_KEYS = ("extractions", "optional", "test", "max_per_class", "max_groups", "embeddings")


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
    inputs: Mapping[str, str] = field(default_factory=dict)  # embedding id -> its cache key (see Job.inputs)
    stain: str = ""  # stain normalisation and its per-fold references (see Job.stain); "" for none
    features: str = ""  # the feature set's key where it is not its kind's keyless one (see feature_set_key)


def feature_set_key(config: FeatureConfig | None, dataset: Dataset) -> str:
    """``config.key()`` where the feature set differs from the one jobs of the data set's kind (and card) were fitted
    on while job keys held none (:data:`~cellbench.features.config.KEYLESS_FAMILIES`), else ``""``: the job keys of
    suites with those features stay as they were, and a suite whose families or parameters differ — the suite's
    ``[features]``, or a kind's default that has changed since — never resumes jobs fitted on other features."""
    keyless = dataset.info.families or KEYLESS_FAMILIES[dataset.info.kind]
    if config is None or config == FeatureConfig.for_kind(dataset.info.kind, families=keyless):
        return ""
    return config.key()


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
    user_file = options.pop("embeddings", None)  # the user's embeddings file (cellbench.datasets.embeddings)
    max_per_class = options.pop("max_per_class", suite.max_per_class)  # quick-run subsample
    max_groups = options.pop("max_groups", suite.max_groups)
    options, extraction_options = split_options(options)  # [datasets.NAME.manual|segmentation] tables
    if optional and DATASETS[name].needs_data and locate(name, data_root) is None:
        log.info("data set %s not found under %s: skipped (optional in this suite)", name, data_root)
        return []
    dataset = load_dataset(name, data_root=data_root, cache_dir=settings.cache_dir, **options)
    dataset = subsample_dataset(dataset, max_per_class=max_per_class, max_groups=max_groups, seed=suite.seed)
    source = load_external(name, test, data_root=data_root, cache_dir=settings.cache_dir) if test is not None else None
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
            user_embeddings=user_file,
        )
        if extracted.info:  # counts, parameters, detection quality, overlay outlines (see cellbench.report.extraction)
            record = replace(prepared.record, extracted=ExtractionInfo.from_json(extracted.info))
            prepared = replace(prepared, record=record)
        out.append(prepared)
    return out


def prepare_arm(suite: Suite, dataset: Dataset, extraction: str, samples: tuple[Sample, ...], *, settings: Settings,
                external: ExternalPart | None = None, user_embeddings: str | None = None) -> Prepared:  # fmt: skip
    """Features, pixels, embeddings, folds and the task file of one (data set, extraction).

    With ``external``, its samples come last in ``samples`` and stay out of every fold; ``user_embeddings`` is the
    data set's file of user-supplied vectors (read by the ``user_*`` and ``combined_*`` heads).
    """
    context = f"{dataset.name}/{extraction}"
    notes = list(dataset.notes)
    config = None
    if _reads_features(suite):
        config = FeatureConfig.from_table(dataset.info.kind, suite.features, families=dataset.info.families)
    external_ids = external.external_ids if external else frozenset()
    index = {c: i for i, c in enumerate(dataset.classes)}
    if suite.stain != "none":
        got = _stained(suite, dataset, extraction, samples, config, external_ids=external_ids,
                       user_embeddings=user_embeddings, settings=settings, notes=notes)  # fmt: skip
        kept, y, n_dev, folds = got.kept, got.y, got.n_dev, got.folds
        feature_names, X, pixels, embedded, inputs = got.feature_names, None, None, got.user, got.inputs
    else:
        features = _features(config, dataset, extraction, samples, settings=settings, notes=notes) if config else None
        ids = list(features.ids) if features else [s.id for s in samples]
        X = features.X if features else None
        feature_names = features.names if features else ()
        by_id = {s.id: s for s in samples}
        ids, X, pixels = _pixels(suite, dataset, extraction, by_id, ids, X, settings=settings, notes=notes)
        kept = [by_id[i] for i in ids]
        embedded, inputs = _embeddings(suite, dataset, kept, pixels, user_embeddings, settings=settings)
        n_dev = sum(i not in external_ids for i in ids)  # external test samples come last and stay out of every fold
        y = np.asarray([index[s.label] for s in kept], dtype=np.int64)
        folds = _folds(suite, dataset, extraction, kept[:n_dev], y[:n_dev], settings=settings, notes=notes)
        got = None
    ids = [s.id for s in kept]
    groups = [s.group for s in kept]
    has_groups = all(g is not None for g in groups)
    binary = dataset.positive_class is not None and len(dataset.classes) == 2
    task = TaskData(
        ids=np.asarray(ids, dtype=str),
        y=y,
        groups=np.asarray(groups, dtype=str) if has_groups else None,
        X=X,
        feature_names=feature_names,
        tests=folds.test,
        classes=tuple(dataset.classes),
        positive=index[dataset.positive_class] if binary else None,
        pixels=pixels or None,
        kind=dataset.info.kind,
        feature_config=canonical_json(asdict(config)) if config else "",
        external=np.arange(n_dev, len(ids)) if external_ids else None,
        embeddings=embedded or None,
        stain=suite.stain,
        by_fold=got.by_fold if got else None,
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
        n_features=len(feature_names),
        families=config.families if config else (),
        notes=tuple(notes),
        root=str(dataset.root) if dataset.root else None,
        stain=got.description if got else "",
    )
    if external is not None:
        info = describe_external(task, external, context=context, group_kind=record.group_kind)
        record = replace(record, external=info)
    return Prepared(task_path=task_path, folds=folds, record=record, inputs=inputs, stain=got.key if got else "",
                    features=feature_set_key(config, dataset))  # fmt: skip


@dataclass(frozen=True, kw_only=True, eq=False)
class _Stained:
    """A stain-normalised arm's rows, folds and per-fold inputs (see :mod:`cellbench.run.stain`)."""

    kept: list[Sample]
    y: np.ndarray
    n_dev: int
    folds: Folds
    feature_names: tuple[str, ...]
    by_fold: dict[int, FoldInputs]
    user: dict[str, str]  # the user's embeddings (not normalised: they are the user's own vectors)
    inputs: dict[str, str]  # embedding id -> a key of its per-fold caches (see Job.inputs)
    key: str  # see Job.stain
    description: str  # the leaderboard's line


def _stained(suite: Suite, dataset: Dataset, extraction: str, samples: tuple[Sample, ...],
             config: FeatureConfig | None, *, external_ids: frozenset[str], user_embeddings: str | None,
             settings: Settings, notes: list[str]) -> _Stained:  # fmt: skip
    """Folds first, then per fold a reference fitted on its training images, and the features, pixels and
    embeddings of every image normalised to it (fold -1 too where a refit on all development data runs)."""
    kept = [s for s in samples if s.id not in external_ids] + [s for s in samples if s.id in external_ids]
    if settings.on_bad_image == "skip":
        kept = _readable(kept, notes)
    index = {c: i for i, c in enumerate(dataset.classes)}
    y = np.asarray([index[s.label] for s in kept], dtype=np.int64)
    n_dev = sum(s.id not in external_ids for s in kept)
    folds = _folds(suite, dataset, extraction, kept[:n_dev], y[:n_dev], settings=settings, notes=notes)
    ids = [s.id for s in kept]
    fitted = [*range(len(folds)), *([REFIT_FOLD] if suite.final or external_ids else [])]
    by_fold: dict[int, FoldInputs] = {}
    stains, keys = [], {}
    names: tuple[str, ...] = ()
    for fold in fitted:
        st = fold_reference(kept[:n_dev], folds, fold, method=suite.stain, max_images=suite.stain_images,
                            seed=suite.seed, fingerprint=dataset.fingerprint)  # fmt: skip
        stains.append(st)
        bar = progress_bar(kept, desc=f"{suite.stain} fold {fold}", unit="img", enabled=settings.progress)
        images = normalised(bar, st)
        of_fold = replace(dataset, fingerprint=st.fingerprint)  # the caches' key: data + this fold's reference
        X = None
        if config is not None:
            fs = _features(config, of_fold, extraction, images, settings=settings, notes=[])
            _same_rows(fs.ids, ids, what=f"features of fold {fold}")
            X, names = fs.X, fs.names
        got, _, pixels = _pixels(suite, of_fold, extraction, {s.id: s for s in images}, ids, None,
                                 settings=settings, notes=[])  # fmt: skip
        _same_rows(got, ids, what=f"pixels of fold {fold}")
        embedded, fold_keys = _frozen_embeddings(suite, of_fold, list(images), pixels, settings=settings)
        for eid, key in fold_keys.items():
            keys.setdefault(eid, {})[fold] = key
        by_fold[fold] = FoldInputs(X=X, pixels=pixels, embeddings=embedded,
                                   reference=canonical_json(st.reference.as_json()))  # fmt: skip
    user, user_keys = {}, {}
    if _reads_user_embeddings(suite):
        user["user"], user_keys["user"] = _user_embeddings(dataset, kept, user_embeddings, settings=settings)
    first = stains[0].reference
    description = (
        f"{suite.stain} normalisation of both arms' images to a reference fitted on each training fold "
        f"({first.n_images} training images per fold at most {suite.stain_images})"
    )
    return _Stained(
        kept=kept,
        y=y,
        n_dev=n_dev,
        folds=folds,
        feature_names=names,
        by_fold=by_fold,
        user=user,
        inputs={**{eid: stable_hash(k) for eid, k in keys.items()}, **user_keys},
        key=stain_key(suite.stain, stains),
        description=description,
    )


def _readable(samples: list[Sample], notes: list[str]) -> list[Sample]:
    """The samples whose image can be read (--on-bad-image skip), the others named in a note."""
    out, bad = [], []
    for s in samples:
        try:
            read_rgb(s)
            out.append(s)
        except DataError:
            bad.append(s.id)
    if bad:
        notes.append(_skipped_note(bad))
    return out


def _same_rows(got, ids: list[str], *, what: str) -> None:
    if list(got) != ids:
        missing = sorted(set(ids) - set(got))[:5]
        raise DataError(f"stain normalisation: {what} lack samples {', '.join(missing)}; every image must be usable")


def _reads_features(suite: Suite) -> bool:
    """Whether a model of ``suite`` reads handcrafted features (alone or beside embeddings)."""
    return any(MODELS[m].input in ("features", "combined") for m in suite.models)


def _embedding_specs(suite: Suite) -> dict[str, dict]:
    """Embedding id -> its parameters, for every frozen-backbone embedding a model of ``suite`` reads."""
    out = {}
    for m in suite.models:
        params = model_spec(suite, m).params
        if MODELS[m].input == "embeddings" or (MODELS[m].input == "combined" and params["embedder"] != "user"):
            out[embedding_id(params)] = embedding_params(params)
    return out


def _reads_user_embeddings(suite: Suite) -> bool:
    return any(
        MODELS[m].input == "user_embeddings"
        or (MODELS[m].input == "combined" and model_spec(suite, m).params["embedder"] == "user")
        for m in suite.models
    )


def _embeddings(suite: Suite, dataset: Dataset, kept: list[Sample], pixels: Mapping[int, str],
                user_file: str | None, *, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """Cached embedding vectors of ``kept`` (id -> .npy path, rows aligned) and their cache keys (id -> key).

    Frozen-backbone embeddings are computed once per (pixels, embedder, weights, library versions) from the pixel
    cache; the user's file is read once per (file content, samples).
    """
    paths, keys = _frozen_embeddings(suite, dataset, kept, pixels, settings=settings)
    if _reads_user_embeddings(suite):
        paths["user"], keys["user"] = _user_embeddings(dataset, kept, user_file, settings=settings)
    return paths, keys


def _frozen_embeddings(suite: Suite, dataset: Dataset, kept: list[Sample], pixels: Mapping[int, str], *,
                       settings: Settings) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    paths, keys = {}, {}
    for eid, params in _embedding_specs(suite).items():
        pix = Path(pixels[params["size"]])
        key = embedding_key(params, pixels_key=pix.stem)
        path = settings.cache_dir / "embeddings" / f"{key}.npy"
        if not sealed_cache_ok(path, what="embedding cache"):
            images = np.load(pix, mmap_mode="r")
            if len(images) != len(kept):  # pixel rows follow the kept samples; anything else is a bug to report
                raise ConfigError(f"{dataset.name}: {len(images)} cached images for {len(kept)} samples in {pix}")
            with progress_bar(
                total=len(images), desc=f"embeddings {eid}", unit="img", enabled=settings.progress
            ) as bar:
                vectors = embed(images, params, seed=suite.seed, progress=lambda n: bar.update(n - bar.n))
            write_atomic(path, lambda fh, v=vectors: np.save(fh, v))
            seal(path)
        paths[eid], keys[eid] = str(path), key
    return paths, keys


def _user_embeddings(dataset: Dataset, kept: list[Sample], user_file: str | None, *,
                     settings: Settings) -> tuple[str, str]:  # fmt: skip
    """The cached vectors of the user's embeddings file for ``kept`` and their cache key."""
    if not user_file:
        raise ConfigError(
            f"{dataset.name}: a user_* or combined (embedder = 'user') model needs the data set's embeddings file: "
            f'embeddings = "vectors.parquet" in [datasets.{dataset.name}]'
        )
    file = Path(user_file).expanduser()
    if not file.is_absolute() and not file.exists() and dataset.root is not None:
        file = Path(dataset.root) / file
    rel = [_relative(s, dataset.root) for s in kept]
    # a subsampled run (--max-per-class, --max-groups) reads a file made for the whole data set
    extra = "ignore" if any("SUBSAMPLE" in n for n in dataset.notes) else "error"
    user = load_user_embeddings(file, ids=[s.id for s in kept], paths=rel, root=dataset.root, extra=extra)
    key = stable_hash({"file": user.digest, "ids": stable_hash([s.id for s in kept]), "match": user.key})
    path = settings.cache_dir / "embeddings" / f"user-{key}.npy"
    if not sealed_cache_ok(path, what="embedding cache"):
        write_atomic(path, lambda fh: np.save(fh, np.asarray(user.X, dtype=np.float32)))
        seal(path)
    return str(path), key


def _relative(sample: Sample, root: Path | None) -> str | None:
    """The sample's image path relative to the data set's root (how a user's embeddings file may key it)."""
    if sample.image_path is None:
        return None
    path = Path(sample.image_path)
    try:
        return path.relative_to(root).as_posix() if root is not None else path.as_posix()
    except ValueError:
        return path.as_posix()


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
    sizes = sorted(
        {int(model_spec(suite, m).params["size"]) for m in suite.models if MODELS[m].input == "pixels"}
        | {params["size"] for params in _embedding_specs(suite).values()}
    )
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
        allow_duplicates_across_folds=suite.allow_duplicates_across_folds,
    )


def _skipped_note(skipped) -> str:
    return f"{len(skipped)} unreadable image(s) skipped (--on-bad-image skip): {', '.join(skipped[:5])}"
