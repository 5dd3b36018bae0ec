"""External test sets: develop with cross-validation on one set, then score once on an independent one.

A data set of a suite names its external test set in a ``[datasets.NAME.test]`` table, or on the command
line with ``--test-data PATH`` (one data set at a time). Exactly one of:

- ``path = "FOLDER"``: another folder read by the same adapter (a second hospital, a later release).
  A relative path is taken under ``--data-root`` (or the working directory without one); the table's other
  keys are the adapter's options for that folder. Its sample ids get the prefix ``external:``.
- ``holdout_groups = 30`` (a count) or ``0.3`` (a fraction of the groups), optional ``seed = 0``: whole
  patients (slides) of the development folder itself are held out. The rule is documented and
  deterministic: the distinct group ids are sorted by the BLAKE2b hash of ``"<seed>:<group id>"`` (ties by
  id) and the first ones form the test set. It depends on the ids only, not on file order, and the seed is
  the table's own (default 0), not the suite's, so ``--seed`` does not move patients between the sets.
- ``split = "official"`` (or just ``test = "official"``): the release's own test split, i.e. the samples
  whose ``meta["split"] == "test"`` (PCam's and MedMNIST's test files); all other samples are development.

Before any feature is computed the harness refuses a test set that shares a group (patient, slide) or an
identical image (same decoded pixels, hashed) with the development set, naming the overlap. The external
samples go into the same task file as the development set (rows after the development rows, listed in
``TaskData.external``), in no fold and never trained on.

Jobs, for every model × strategy of the natural class ratio:

- each CV job also predicts the external set with its fold model: those predictions are stored under the
  key ``<job key>@external`` in the predictions table, their metrics in the job's ``extra["external"]``;
- one more job per model × strategy, ``fold = -1``, refits on the whole development set with the settings CV
  used (same inner validation split rule for early stopping and threshold tuning, the seed derived from its
  key the same way) and scores the external set; its predictions and metrics are the job's own.

CV jobs carry the external set's key in their spec (``Job.external``, only when set), so jobs without an
external set keep the keys they always had.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cellbench.core.errors import CellbenchError, ConfigError, DataError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Dataset, Job, Sample
from cellbench.datasets import load_dataset
from cellbench.datasets.content import find_duplicates
from cellbench.datasets.extraction import run_extraction
from cellbench.run.records import ExternalInfo
from cellbench.run.task import TaskData

REFIT_FOLD = -1
ID_PREFIX = "external:"


# -- the suite's test table ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TestSpec:
    """How a data set's external test set is found (see the module docstring)."""

    __test__ = False  # not a pytest test class

    dataset: str
    rule: Literal["path", "holdout", "official"]
    path: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # adapter options for ``path``
    holdout: int | float = 0
    seed: int = 0

    def canonical(self) -> dict[str, Any]:
        if self.rule == "path":
            return {"rule": "path", "options": dict(self.options)}  # the folder's content counts, not its name
        if self.rule == "holdout":
            return {"rule": "holdout", "holdout_groups": self.holdout, "seed": self.seed}
        return {"rule": "official"}


def parse_test_spec(dataset: str, value: Any, *, where: str = "") -> TestSpec:
    """Validate a ``[datasets.NAME.test]`` value.

    Raises
    ------
    ConfigError
        Naming the bad key or value and what is allowed.
    """
    at = f"{where}: " if where else ""
    name = f"datasets.{dataset}.test"
    choices = (
        'path = "FOLDER" (another folder of the same adapter), holdout_groups = N or a fraction (patients held '
        'out of the development folder) or split = "official" (the release\'s own test split)'
    )
    if value == "official":
        return TestSpec(dataset=dataset, rule="official")
    if not isinstance(value, Mapping):
        raise ConfigError(f'{at}{name} must be "official" or a table with one of {choices}; got {value!r}')
    given = [k for k in ("path", "holdout_groups", "split") if k in value]
    if len(given) != 1:
        what = f"both {' and '.join(given)}" if given else "none of them"
        raise ConfigError(f"{at}{name} needs exactly one of {choices}; got {what}")
    rule = given[0]
    if rule == "path":
        path = value["path"]
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"{at}{name}.path must be a folder path, got {path!r}")
        if "seed" in value:
            raise ConfigError(f"{at}{name}: seed applies to holdout_groups only, not to path")
        options = {k: v for k, v in value.items() if k != "path"}
        return TestSpec(dataset=dataset, rule="path", path=path, options=options)
    if rule == "holdout_groups":
        unknown = sorted(set(value) - {"holdout_groups", "seed"})
        if unknown:
            raise ConfigError(
                f"{at}{name}: unknown key(s) {', '.join(unknown)} with holdout_groups; allowed: holdout_groups, seed"
            )
        n = value["holdout_groups"]
        ok_int = isinstance(n, int) and not isinstance(n, bool) and n >= 1
        ok_float = isinstance(n, float) and 0.0 < n < 1.0
        if not (ok_int or ok_float):
            raise ConfigError(
                f"{at}{name}.holdout_groups must be a whole number of groups (>= 1) or a fraction in (0, 1); got {n!r}"
            )
        seed = value.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{at}{name}.seed must be an integer, got {seed!r}")
        return TestSpec(dataset=dataset, rule="holdout", holdout=n, seed=seed)
    if value["split"] != "official" or len(value) != 1:
        raise ConfigError(f'{at}{name}: split must be "official" and stand alone; got {dict(value)!r}')
    return TestSpec(dataset=dataset, rule="official")


def check_suite(suite) -> None:
    """Validate every data set's ``test`` entry of ``suite`` (called by :func:`cellbench.run.suite.validate`)."""
    for name, options in suite.datasets.items():
        if "test" in options:
            parse_test_spec(name, options["test"], where=f"suite {suite.source or suite.name}")


def with_test_data(datasets: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The suite's data sets with ``--test-data PATH`` as the only data set's external test set."""
    if len(datasets) != 1:
        raise ConfigError(
            f"--test-data applies when one data set is run; this suite runs {len(datasets)} "
            f"({', '.join(datasets)}): choose one with --datasets, or give each its own [datasets.NAME.test] table"
        )
    ((name, options),) = datasets.items()
    return {name: {**options, "test": {"path": str(path)}}}


# -- the deterministic holdout rule --------------------------------------------------------------------------


def holdout_groups(groups: Iterable[str], *, n: int | float, seed: int = 0, context: str = "") -> list[str]:
    """The groups held out as the external test set: the documented rule of the module docstring.

    ``n`` is a number of groups, or a fraction of them (rounded, at least 1). Returns the held-out group ids,
    sorted.

    Raises
    ------
    ConfigError
        When the rule would hold out no group or every group.
    """
    distinct = sorted({str(g) for g in groups})
    k = n if isinstance(n, int) else max(1, round(n * len(distinct)))
    if not 1 <= k < len(distinct):
        where = f" of {context}" if context else ""
        raise ConfigError(
            f"holdout_groups = {n!r}{where} would hold out {k} of {len(distinct)} groups; at least one must stay "
            "in each set"
        )

    def score(g: str) -> tuple[str, str]:
        return hashlib.blake2b(f"{seed}:{g}".encode(), digest_size=16).hexdigest(), g

    return sorted(sorted(distinct, key=score)[:k])


# -- leakage guard -------------------------------------------------------------------------------------------


def check_overlap(
    dev: Sequence[Sample],
    ext: Sequence[Sample],
    *,
    dev_hashes: Mapping[str, str],
    ext_hashes: Mapping[str, str],
    context: str,
    group_kind: str | None = None,
) -> str:
    """Refuse shared groups or identical images between the development and the external set.

    ``dev_hashes``/``ext_hashes`` map sample ids to pixel digests (:mod:`cellbench.datasets.content`; unreadable images
    are left out: feature extraction refuses or skips them). Returns a sentence for the leaderboard.

    Raises
    ------
    DataError
        One error naming every kind of overlap found (the first few shared groups or image pairs, and counts).
    """
    word = group_kind or "group"
    problems = []
    dev_groups = {s.group for s in dev}
    ext_groups = {s.group for s in ext}
    has_groups = None not in dev_groups and None not in ext_groups
    if has_groups:
        shared = sorted(map(str, dev_groups & ext_groups))
        if shared:
            problems.append(
                f"{len(shared)} {word}(s) appear in both the development and the external test set: "
                f"{', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''}"
            )
    by_hash: dict[str, str] = {}
    for s in dev:
        if s.id in dev_hashes:
            by_hash.setdefault(dev_hashes[s.id], s.id)
    pairs = [(s.id, by_hash[ext_hashes[s.id]]) for s in ext if s.id in ext_hashes and ext_hashes[s.id] in by_hash]
    if pairs:
        shown = "; ".join(f"external {a!r} = development {b!r}" for a, b in pairs[:3])
        problems.append(f"{len(pairs)} external image(s) are identical to development images (same pixels): {shown}")
    if problems:
        raise DataError(
            f"external test set of {context} overlaps the development set, so its score would not be independent: "
            + "; and ".join(problems)
            + ". Remove the overlap (or choose other held-out groups) and run again"
        )
    groups_text = (
        f"no {word} in both sets ({len(dev_groups)} development, {len(ext_groups)} external {word}s)"
        if has_groups
        else f"no {word} ids known, so only images were compared"
    )
    return f"{groups_text}; no identical image among {len(dev_hashes) + len(ext_hashes)} (hashes of decoded pixels)"


# -- preparing the data --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class ExternalSource:
    """A data set's parsed test spec and, for ``path``, the loaded test data set."""

    spec: TestSpec
    dataset: Dataset | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class ExternalPart:
    """What :func:`cellbench.run.prepare.prepare_arm` receives for a data set with an external test set.

    ``samples`` holds the development samples first, then the external ones (ids in ``external_ids``);
    ``dataset`` is the development data set with a fingerprint covering both parts.
    """

    dataset: Dataset
    samples: tuple[Sample, ...]
    external_ids: frozenset[str]
    info: ExternalInfo  # counts are filled in by describe_external, once unreadable images are left out


def load_external(name: str, value: Any, *, data_root: Path | None, cache_dir: Path) -> ExternalSource:
    """Parse ``value`` (the suite's ``test`` entry) and load the test folder when there is one."""
    spec = parse_test_spec(name, value)
    if spec.rule != "path":
        return ExternalSource(spec=spec)
    folder = Path(spec.path).expanduser()
    if not folder.is_absolute():
        folder = (data_root / folder) if data_root is not None else folder.resolve()
    try:
        dataset = load_dataset(name, data_root=folder, cache_dir=cache_dir, **spec.options)
    except DataError as exc:
        raise DataError(f"external test set of {name!r} (test path {spec.path!r}): {exc}") from None
    return ExternalSource(spec=spec, dataset=dataset)


def split_external(
    source: ExternalSource,
    dataset: Dataset,
    extraction: str,
    samples: Sequence[Sample],
    *,
    cache_dir: Path,
    extraction_options: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> ExternalPart:
    """Separate (or add) the external samples, check that they are independent, and describe them.

    ``dataset`` and ``samples`` are the development data after ``extraction``; a test folder is extracted the
    same way (with ``extraction_options``).

    Raises
    ------
    ConfigError
        When the rule finds no external sample, or the holdout rule has no groups to hold out.
    DataError
        When a group or an identical image is in both sets, or group ids are known in one set only.
    """
    spec, context = source.spec, f"{dataset.name}/{extraction}"
    if spec.rule == "path":
        parts = _folder_parts(source, dataset, extraction, tuple(samples), cache_dir=cache_dir,
                              extraction_options=extraction_options, n_jobs=n_jobs, progress=progress)  # fmt: skip
    else:
        parts = _split_parts(spec, dataset, extraction, tuple(samples), cache_dir=cache_dir, progress=progress)
    dev, ext = parts.dev, parts.ext
    _check_independent(parts, context=context, group_kind=dataset.info.group_kind)
    overlap = check_overlap(dev, ext, dev_hashes=parts.dev_hashes, ext_hashes=parts.ext_hashes, context=context,
                            group_kind=dataset.info.group_kind)  # fmt: skip
    notes = list(parts.notes)
    present = {s.label for s in ext}
    if len(present) < 2:
        notes.append(
            f"the external test set holds a single class ({', '.join(sorted(present))}): AUC and other two-class "
            "metrics are undefined on it"
        )
    key = stable_hash(
        {"spec": spec.canonical(), "fingerprint": parts.test_fingerprint, "ids": stable_hash(sorted(s.id for s in ext))}
    )
    union = dataset if parts.fingerprint == dataset.fingerprint else replace(dataset, fingerprint=parts.fingerprint)
    info = ExternalInfo(key=key, rule=spec.rule, description=parts.description, fingerprint=parts.test_fingerprint,
                        overlap_check=overlap, notes=tuple(notes))  # fmt: skip
    return ExternalPart(dataset=union, samples=(*dev, *ext), external_ids=frozenset(s.id for s in ext), info=info)


@dataclass(frozen=True, kw_only=True, eq=False)
class _Parts:
    """The development and external samples a rule gives, their pixel digests, fingerprints and description.

    ``fingerprint`` is the data version of both parts together (what caches and folds key on); ``test_fingerprint``
    the external part's own.
    """

    dev: tuple[Sample, ...]
    ext: tuple[Sample, ...]
    dev_hashes: Mapping[str, str]
    ext_hashes: Mapping[str, str]
    fingerprint: str
    test_fingerprint: str
    description: str
    notes: tuple[str, ...] = ()


def _folder_parts(source: ExternalSource, dataset: Dataset, extraction: str, samples: tuple[Sample, ...], *,
                  cache_dir: Path, extraction_options, n_jobs, progress: bool) -> _Parts:  # fmt: skip
    """``path``: the test folder, extracted like the development data; its ids get :data:`ID_PREFIX`."""
    test_ds = source.dataset
    if test_ds is None:
        raise CellbenchError(f"the external test folder of {dataset.name} was not loaded")
    extracted = run_extraction(extraction, test_ds, options=extraction_options, progress=progress, n_jobs=n_jobs,
                               cache_dir=cache_dir)  # fmt: skip
    raw = tuple(extracted.samples)
    found = _digests(raw, extracted.fingerprint, extraction, cache_dir, progress)
    fingerprint = stable_hash({"development": dataset.fingerprint, "external": extracted.fingerprint}, length=32)
    return _Parts(
        dev=samples,
        ext=tuple(replace(s, id=ID_PREFIX + s.id) for s in raw),
        # cached under the key the folds' duplicate check reads
        dev_hashes=_digests(samples, fingerprint, extraction, cache_dir, progress),
        ext_hashes={ID_PREFIX + k: v for k, v in found.items()},
        fingerprint=fingerprint,
        test_fingerprint=extracted.fingerprint,
        description=f"a separate folder read by the same adapter ({test_ds.root})",
        notes=(*test_ds.notes, *extracted.notes),
    )


def _split_parts(spec: TestSpec, dataset: Dataset, extraction: str, samples: tuple[Sample, ...], *, cache_dir: Path,
                 progress: bool) -> _Parts:  # fmt: skip
    """``holdout`` and ``official``: the development folder itself split in two."""
    context = f"{dataset.name}/{extraction}"
    is_ext, description = (_held_out if spec.rule == "holdout" else _official)(spec, samples, context=context,
                                                                               word=dataset.info.group_kind or "group")
    dev = tuple(s for s, e in zip(samples, is_ext) if not e)
    ext = tuple(s for s, e in zip(samples, is_ext) if e)
    if not dev:
        raise ConfigError(f"{context}: the external test set rule leaves no development sample")
    # both parts together are exactly the data set, so feature and pixel caches are shared with plain runs;
    # the development digests are cached under the key the folds' duplicate check reads (cellbench.run.prepare)
    fingerprint = dataset.fingerprint
    return _Parts(
        dev=dev,
        ext=ext,
        dev_hashes=_digests(dev, fingerprint, extraction, cache_dir, progress),
        ext_hashes=_digests(ext, fingerprint, extraction, cache_dir, progress),
        fingerprint=fingerprint,
        test_fingerprint=stable_hash({"data": dataset.fingerprint, "external": sorted(s.id for s in ext)}, length=32),
        description=description,
    )


def _held_out(spec: TestSpec, samples: tuple[Sample, ...], *, context: str, word: str) -> tuple[list[bool], str]:
    if any(s.group is None for s in samples):
        raise ConfigError(
            f"{context}: holdout_groups needs {word} ids for every sample, and this data set has none; "
            'give a separate test folder (path = "...") instead'
        )
    n_groups = len({s.group for s in samples})
    held = set(holdout_groups((s.group for s in samples), n=spec.holdout, seed=spec.seed, context=context))
    description = (
        f"{len(held)} of {n_groups} {word}s held out of the development folder: {word} ids sorted by the "
        f"BLAKE2b hash of '{spec.seed}:<id>', the first {len(held)} form the test set"
    )
    return [s.group in held for s in samples], description


def _official(spec: TestSpec, samples: tuple[Sample, ...], *, context: str, word: str) -> tuple[list[bool], str]:
    is_ext = [s.meta.get("split") == "test" for s in samples]
    if not any(is_ext):
        splits = sorted({str(s.meta.get("split")) for s in samples})
        raise ConfigError(
            f'{context}: test = "official" needs the release\'s own test split (samples with '
            f"meta['split'] == 'test'); this data set has none (splits found: {', '.join(splits)}). "
            'Give a separate test folder (path = "...") or holdout_groups instead'
        )
    return is_ext, "the release's official test split (all other samples are development)"


def _check_independent(parts: _Parts, *, context: str, group_kind: str | None) -> None:
    """Group ids known in both parts or in neither, and no sample id in both."""
    word = group_kind or "group"
    dev_known = all(s.group is not None for s in parts.dev)
    ext_known = all(s.group is not None for s in parts.ext)
    if dev_known != ext_known:
        has, lacks = ("development", "external test") if dev_known else ("external test", "development")
        raise DataError(
            f"{context}: the {has} set has {word} ids but the {lacks} set has none, so {word} overlap cannot be "
            "checked; use data with ids in both sets (or in neither)"
        )
    ids = [s.id for s in (*parts.dev, *parts.ext)]
    if len(set(ids)) != len(ids):
        raise DataError(f"{context}: sample ids repeat across the development and the external test set")


def _digests(samples: Sequence[Sample], fingerprint: str, extraction: str, cache_dir: Path, progress: bool):
    """Pixel digests by sample id (cached per data version, see :func:`cellbench.datasets.content.find_duplicates`)."""
    found = find_duplicates(samples, fingerprint=fingerprint, extraction=extraction, cache_dir=cache_dir,
                            progress=progress)  # fmt: skip
    return {s.id: k for s, k in zip(samples, found.keys) if k is not None}


def describe_external(task: TaskData, part: ExternalPart, *, context: str, group_kind: str | None) -> ExternalInfo:
    """The external set's record, with its counts in the task file (after unreadable images were skipped)."""
    if task.external is None or not len(task.external):
        raise DataError(f"{context}: no readable image is left in the external test set")
    dev = np.setdiff1d(np.arange(len(task.ids)), task.external)
    if (
        not set(task.ids[task.external].tolist()) <= part.external_ids
        or set(task.ids[dev].tolist()) & part.external_ids
    ):
        raise CellbenchError(f"{context}: external rows of the task file are misplaced")
    y = task.y[task.external]
    groups = task.groups[task.external] if task.groups is not None else None
    return replace(
        part.info,
        n_samples=len(task.external),
        class_counts={c: int((y == i).sum()) for i, c in enumerate(task.classes)},
        n_groups=len(set(groups.tolist())) if groups is not None else None,
        group_kind=group_kind,
    )


# -- planning ------------------------------------------------------------------------------------------------


def add_external_jobs(items: list[tuple[Job, str]], prepared: Sequence[Any]) -> list[tuple[Job, str]]:
    """Tie the natural-ratio CV jobs of data sets with an external set to it, and add one refit per row.

    Sweep jobs (a subsampled training ratio) stay as they are.
    """
    keys = {(p.dataset, p.extraction): p.record.external.key for p in prepared if p.record.external is not None}
    if not keys:
        return items
    out, refits, seen = [], [], set()
    for job, path in items:
        key = keys.get((job.dataset, job.extraction))
        if key is None or job.ratio is not None:
            out.append((job, path))
            continue
        out.append((replace(job, external=key), path))
        refit = replace(job, external=key, fold=REFIT_FOLD, explain=False)
        if refit.key not in seen:
            seen.add(refit.key)
            refits.append((refit, path))
    return out + refits


# -- inside a job --------------------------------------------------------------------------------------------


def external_positions(job: Job, task) -> np.ndarray:
    """Rows a CV job's fold model predicts besides its test fold: the external set, else none.

    The refit (fold -1) has the external set as its test part already, so it gets none here.
    """
    if not job.external or job.fold < 0:
        return np.empty(0, dtype=np.int64)
    if task.external is None:
        raise CellbenchError(f"the job asks for external test set {job.external}, but its task file holds none")
    return np.asarray(task.external, dtype=np.int64)
