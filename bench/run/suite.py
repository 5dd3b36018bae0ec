"""Suites: TOML files naming data sets, extractions, models, strategies, CV scheme, seeds and metrics."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cellbench.core.errors import ConfigError
from cellbench.core.paths import check_name
from cellbench.core.types import ModelSpec
from cellbench.datasets import DATASETS
from cellbench.datasets.extraction import EXTRACTIONS, check_suite_options
from cellbench.datasets.stain import check_method
from cellbench.datasets.subsample import check_limit
from cellbench.features import FeatureConfig, feature_names
from cellbench.models import MODELS, STRATEGIES, resolve_params
from cellbench.models.deep import TRAINING_DEFAULTS
from cellbench.models.imbalance import parse_ratio
from cellbench.models.plugins import register_suite_model, split_plugin
from cellbench.run.cv import SCHEMES
from cellbench.run.external import check_suite, with_test_data
from cellbench.run.schema import check_suite_table
from cellbench.stats.metrics import METRICS

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"

_TOP_KEYS = {
    "name",
    "description",
    "seed",
    "primary_metric",
    "metrics",
    "cv",
    "datasets",
    "models",
    "strategies",
    "imbalance_sweep",
    "features",
    "deep",
    "explain",
    "save_models",
    "final",
    "stain",
}
_CV_KEYS = {"scheme", "folds", "repeats", "allow_duplicates_across_folds"}
_SWEEP_KEYS = {"ratios", "strategies", "models"}


@dataclass(frozen=True, kw_only=True)
class Suite:
    """A parsed, validated suite.

    ``datasets`` maps a data set name to its options (``extractions`` plus adapter options); ``models``
    maps a model name to its parameters; ``primary_metric`` of ``None`` means each data set's own.
    """

    name: str
    description: str = ""
    seed: int = 0
    cv_scheme: str = "auto"
    folds: int = 5
    repeats: int = 1
    allow_duplicates_across_folds: bool = False  # copies of an image in two predefined folds: refused unless set
    datasets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    strategies: tuple[str, ...] = ("none",)
    sweep_ratios: tuple[str, ...] = ()
    sweep_strategies: tuple[str, ...] = ("none",)
    sweep_models: tuple[str, ...] | None = None
    explain_models: tuple[str, ...] = ()
    explain_strategies: tuple[str, ...] = ("none",)
    primary_metric: str | None = None
    metrics: tuple[str, ...] = METRICS
    features: Mapping[str, Any] = field(default_factory=dict)
    deep: Mapping[str, Any] = field(default_factory=dict)  # training settings for every deep model
    deep_strategies: tuple[str, ...] | None = None  # strategies for deep models (default: ``strategies``)
    save_models: bool = False  # keep every fold's fitted model under <results>/models/ (for predict/explain)
    deep_gpu: bool = False  # on Dask, deep jobs ask for a GPU worker resource
    final: bool = False  # refit each arm's champion on all development data (cellbench.run.final)
    stain: str = "none"  # stain normalisation per training fold (cellbench.run.stain): none, reinhard, macenko
    stain_images: int = 200  # training images each fold's stain reference is fitted on, at most
    max_per_class: int | None = None  # quick-run subsample of every data set (see datasets.subsample)
    max_groups: int | None = None
    source: str = ""
    text: str = ""
    narrowing: Mapping[str, Any] = field(default_factory=dict)  # command-line choices, kept for --reproduce
    raw: Mapping[str, Any] = field(default_factory=dict)  # the parsed suite table, kept for --reproduce

    def narrow(
        self,
        *,
        datasets: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        strategies: Sequence[str] | None = None,
        folds: int | None = None,
        seed: int | None = None,
        test_data: str | None = None,
        max_per_class: int | None = None,
        max_groups: int | None = None,
        final: bool = False,
        options: Mapping[str, Any] | None = None,
        positive_class: str | None = None,
    ) -> Suite:
        """The suite with command-line choices applied.

        Data sets, models and strategies named here replace the suite's lists (options and parameters
        the suite gives for them are kept); names are checked against the registries. ``test_data`` is a
        folder that becomes the (only) data set's external test set (see :mod:`cellbench.run.external`).
        ``max_per_class`` / ``max_groups`` subsample every data set deterministically and group-wise
        (:mod:`cellbench.datasets.subsample`; a data set's own ``max_per_class``/``max_groups`` options win).
        ``final`` turns the final models on (``--final``; a suite's ``[final] enabled = true`` stays on without it).
        ``options`` (adapter options, ``--option``) and ``positive_class`` apply to the one data set run, over the
        suite's own options for it.
        """
        changes: dict[str, Any] = {}
        if datasets:
            changes["datasets"] = {d: self.datasets.get(d, {}) for d in datasets}
        if models:
            changes["models"] = {m: self.models.get(m, {}) for m in models}
            if self.sweep_models is not None:
                changes["sweep_models"] = tuple(m for m in self.sweep_models if m in models)
        if strategies:
            changes["strategies"] = tuple(strategies)
            changes["deep_strategies"] = None
            changes["sweep_strategies"] = tuple(s for s in self.sweep_strategies if s in strategies)
        if folds is not None:
            changes["folds"] = folds
        if seed is not None:
            changes["seed"] = seed
        if final:
            changes["final"] = True
        if test_data is not None:
            changes["datasets"] = with_test_data(changes.get("datasets", self.datasets), test_data)
        if options or positive_class is not None:
            own = {**(options or {}), **({"positive_class": positive_class} if positive_class is not None else {})}
            changes["datasets"] = _with_options(changes.get("datasets", self.datasets), own)
        given = {"datasets": datasets, "models": models, "strategies": strategies, "folds": folds, "seed": seed,
                 "options": dict(options or {}), "positive_class": positive_class,
                 "final": final or None}  # fmt: skip
        if test_data is not None:
            given["test_data"] = str(test_data)
        for key, value in (("max_per_class", max_per_class), ("max_groups", max_groups)):
            if value is not None:
                changes[key] = given[key] = check_limit(f"--{key.replace('_', '-')}", value)
        narrowing = {
            **self.narrowing,
            **{
                k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in given.items()
                if v is not None and v != [] and v != {}
            },
        }
        out = replace(self, **changes, narrowing=narrowing)
        validate(out)
        return out


def _with_options(datasets: Mapping[str, Mapping[str, Any]], options: Mapping[str, Any]) -> dict[str, dict]:
    """The only data set's options with ``options`` (``--option``, ``--positive-class``) over them."""
    if len(datasets) != 1:
        raise ConfigError(
            f"--option and --positive-class apply when one data set is run; this run has {len(datasets)} "
            f"({', '.join(datasets)}): choose one with --datasets"
        )
    ((name, own),) = datasets.items()
    return {name: {**own, **options}}


def suite_path(name_or_path: str | Path) -> Path:
    """The TOML file of a built-in suite name, or the given path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ConfigError(f"suite file not found: {p}")
        return p
    builtin = SUITES_DIR / f"{name_or_path}.toml"
    if not builtin.is_file():
        known = sorted(f.stem for f in SUITES_DIR.glob("*.toml"))
        raise ConfigError(
            f"unknown suite {str(name_or_path)!r}; built-in suites: {', '.join(known)} (or give a .toml path)"
        )
    return builtin


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and validate a suite file.

    Raises
    ------
    ConfigError
        For malformed TOML (with the file and the parser's line), unknown keys, unknown names or bad values.
    """
    path = suite_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed suite file {path}: {exc}") from None
    suite = parse_suite(raw, source=str(path), default_name=path.stem)
    return replace(suite, text=text)


def parse_suite(raw: Mapping[str, Any], *, source: str = "<suite>", default_name: str = "suite") -> Suite:
    where = f"suite {source}"
    check_suite_table(raw, where=where)  # keys and types (bench.run.schema); names and ranges below
    _no_unknown(raw, _TOP_KEYS, where)
    cv = _table(raw.get("cv", {}), f"{where} [cv]")
    _no_unknown(cv, _CV_KEYS, f"{where} [cv]")
    sweep = _table(raw.get("imbalance_sweep", {}), f"{where} [imbalance_sweep]")
    _no_unknown(sweep, _SWEEP_KEYS, f"{where} [imbalance_sweep]")
    deep = _table(raw.get("deep", {}), f"{where} [deep]")
    _no_unknown(deep, {*TRAINING_DEFAULTS, "strategies", "save_models", "gpu"}, f"{where} [deep]")
    explain = _table(raw.get("explain", {}), f"{where} [explain]")
    _no_unknown(explain, {"models", "strategies"}, f"{where} [explain]")
    final = _table(raw.get("final", {}), f"{where} [final]")
    _no_unknown(final, {"enabled"}, f"{where} [final]")
    stain = _table(raw.get("stain", {}), f"{where} [stain]")
    _no_unknown(stain, {"method", "max_images"}, f"{where} [stain]")
    suite = Suite(
        name=str(raw.get("name", default_name)),
        description=str(raw.get("description", "")),
        seed=_int(raw.get("seed", 0), f"{where}: seed"),
        cv_scheme=str(cv.get("scheme", "auto")),
        folds=_int(cv.get("folds", 5), f"{where}: cv.folds"),
        repeats=_int(cv.get("repeats", 1), f"{where}: cv.repeats"),
        allow_duplicates_across_folds=_bool(
            cv.get("allow_duplicates_across_folds", False), f"{where}: cv.allow_duplicates_across_folds"
        ),
        datasets=_named_tables(raw.get("datasets", {}), f"{where}: datasets"),
        models=_named_tables(raw.get("models", {}), f"{where}: models"),
        strategies=tuple(_str_list(raw.get("strategies", ["none"]), f"{where}: strategies")),
        sweep_ratios=tuple(_str_list(sweep.get("ratios", []), f"{where}: imbalance_sweep.ratios")),
        sweep_strategies=tuple(_str_list(sweep.get("strategies", ["none"]), f"{where}: imbalance_sweep.strategies")),
        sweep_models=tuple(_str_list(sweep["models"], f"{where}: imbalance_sweep.models"))
        if "models" in sweep
        else None,
        explain_models=tuple(_str_list(explain.get("models", []), f"{where}: explain.models")),
        explain_strategies=tuple(_str_list(explain.get("strategies", ["none"]), f"{where}: explain.strategies")),
        primary_metric=raw.get("primary_metric"),
        metrics=tuple(_str_list(raw.get("metrics", list(METRICS)), f"{where}: metrics")),
        features=_table(raw.get("features", {}), f"{where} [features]"),
        deep={k: v for k, v in deep.items() if k not in ("strategies", "save_models", "gpu")},
        deep_gpu=_bool(deep.get("gpu", False), f"{where}: deep.gpu"),
        deep_strategies=tuple(_str_list(deep["strategies"], f"{where}: deep.strategies"))
        if "strategies" in deep
        else None,
        save_models=_bool(raw.get("save_models", deep.get("save_models", False)), f"{where}: save_models"),
        final=_bool(final.get("enabled", False), f"{where}: final.enabled"),
        stain=str(stain.get("method", "none")),
        stain_images=_int(stain.get("max_images", 200), f"{where}: stain.max_images"),
        source=source,
        raw=dict(raw),
    )
    validate(suite)
    return suite


def validate(suite: Suite) -> None:
    """Check every name against its registry and every value against its allowed range."""
    where = f"suite {suite.source or suite.name}"
    check_name(suite.name, what=f"{where}: name")  # the results folder's name
    if not suite.datasets:
        raise ConfigError(f"{where} names no data sets; known data sets: {', '.join(DATASETS.names())}")
    if not suite.models:
        raise ConfigError(f"{where} names no models; known models: {', '.join(MODELS.names())}")
    for name, opts in suite.datasets.items():
        DATASETS[name]
        EXTRACTIONS.check(opts.get("extractions", ["given"]))
        check_suite_options(name, opts)  # [datasets.NAME.manual] / [datasets.NAME.segmentation] parameters
    check_suite(suite)  # each data set's external test set ([datasets.NAME.test])
    for name, params in suite.models.items():  # models named by import path: imported and checked here, in the driver
        try:
            register_suite_model(name, params)
        except ConfigError as exc:
            raise ConfigError(f"{where}: [models.{name}]: {exc}") from None
    MODELS.check(suite.models)
    for name, params in suite.models.items():  # parameter names and types, before any data set is loaded
        try:
            resolve_params(name, split_plugin(params)[1])
        except ConfigError as exc:
            raise ConfigError(f"{where}: [models.{name}]: {exc}") from None
    STRATEGIES.check(suite.strategies)
    STRATEGIES.check(suite.sweep_strategies)
    if suite.sweep_models is not None:
        missing = sorted(set(suite.sweep_models) - set(suite.models))
        if missing:
            raise ConfigError(
                f"{where}: imbalance_sweep.models names {', '.join(missing)}, which the suite does not run"
            )
    if suite.deep_strategies is not None:
        STRATEGIES.check(suite.deep_strategies)
    MODELS.check(suite.explain_models)
    STRATEGIES.check(suite.explain_strategies)
    for r in suite.sweep_ratios:
        parse_ratio(r)
    if suite.cv_scheme not in SCHEMES:
        raise ConfigError(f"{where}: unknown CV scheme {suite.cv_scheme!r}; known: {', '.join(SCHEMES)}")
    if suite.folds < 2:
        raise ConfigError(f"{where}: cv.folds must be at least 2, got {suite.folds}")
    if suite.repeats < 1:
        raise ConfigError(f"{where}: cv.repeats must be at least 1, got {suite.repeats}")
    if suite.features:  # refused before any data set is loaded, not when features are first extracted
        try:
            feature_names(FeatureConfig.from_table("cell", suite.features))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    for name, params in suite.models.items():
        hed = {**suite.deep, **params}.get("hed_augment", 0.0)
        number = isinstance(hed, int | float) and not isinstance(hed, bool)
        if MODELS[name].kind == "deep" and not (number and 0 <= hed <= 1):
            raise ConfigError(f"{where}: hed_augment of {name} must be a number from 0 to 1, got {hed!r}")
    try:
        check_method(suite.stain)
    except ConfigError as exc:
        raise ConfigError(f"{where}: [stain] method: {exc}") from None
    if suite.stain_images < 1:
        raise ConfigError(f"{where}: stain.max_images must be at least 1, got {suite.stain_images}")
    for m in (*suite.metrics, *([suite.primary_metric] if suite.primary_metric else [])):
        if m not in METRICS:
            raise ConfigError(f"{where}: unknown metric {m!r}; known metrics: {', '.join(METRICS)}")


def _no_unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(allowed))}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(value).__name__}")
    return dict(value)


def _named_tables(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Accept ``["a", "b"]`` or ``{a = {...}, b = {}}``."""
    if isinstance(value, list):
        return {str(v): {} for v in _str_list(value, where)}
    table = _table(value, where)
    return {str(k): _table(v, f"{where}.{k}") for k, v in table.items()}


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of names, got {value!r}")
    return list(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    return value


def model_spec(suite: Suite, name: str) -> ModelSpec:
    """The model's spec in this suite: registry defaults < suite ``[deep]`` settings < the model's own params."""
    entry = MODELS[name]
    plugin, params = split_plugin(suite.models.get(name, {}))
    if entry.kind == "deep":
        params = resolve_params(name, {**suite.deep, **params})
        if not params.get("hed_augment"):  # none: the spec (and the job keys) as before the option existed
            params.pop("hed_augment", None)
    elif entry.input != "features":  # embedding heads: which embedding they read is part of their spec
        params = resolve_params(name, params)
    else:
        resolve_params(name, params)  # refuse unknown parameters before anything runs
    return ModelSpec(name=name, kind=entry.kind, input=entry.input, params=params, plugin=plugin)
