"""The suite file's schema: every table, key and type a suite may hold, checked when the file is loaded.

:func:`check_suite_table` validates a parsed TOML table with pydantic (strict types: ``"no"`` is not a boolean,
``"three"`` is not an integer) and turns the first problems into one :class:`ConfigError` naming each key, what it
must be and what it was. Names (data sets, models, strategies, metrics) and value ranges are checked afterwards
against their registries by :func:`cellbench.run.suite.validate`; adapter options and model parameters by the
adapter and the model entry. :func:`schema_markdown` renders the same schema as the suite-format reference
(``docs/SUITE_FORMAT.md``, kept in step by a test).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cellbench.core.errors import ConfigError
from cellbench.features import FeatureConfig


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CVTable(_Table):
    """``[cv]``: how folds are made."""

    scheme: str = Field("auto", description="auto, stratified_kfold, group_kfold or predefined")
    folds: int = Field(5, description="number of folds (at least 2)")
    repeats: int = Field(1, description="repetitions of the fold split with other seeds")
    allow_duplicates_across_folds: bool = Field(
        False, description="accept copies of one image in two predefined folds (refused by default)"
    )


class SweepTable(_Table):
    """``[imbalance_sweep]``: positive-class ratios to subsample the training folds to."""

    ratios: list[str] = Field(default_factory=list, description='ratios such as "1:4"')
    strategies: list[str] = Field(default_factory=lambda: ["none"], description="strategies run at each ratio")
    models: list[str] | None = Field(None, description="models run at each ratio (default: all the suite's)")


class DeepTable(_Table):
    """``[deep]``: training settings for every deep model (a model's own parameters win)."""

    size: int = Field(96, description="input size in pixels")
    max_epochs: int = Field(30, description="epochs at most")
    batch_size: int = Field(32, description="images per batch")
    patience: int = Field(5, description="epochs without a lower validation loss before stopping")
    min_delta: float = Field(1e-3, description="smallest fall of the validation loss that counts")
    warmup: int = Field(3, description="epochs before early stopping may stop")
    learning_rate: float = Field(1e-3, description="Adam's learning rate")
    augment: bool = Field(True, description="flips, turns, brightness/contrast/hue jitter while training")
    refit: bool = Field(True, description="refit on the whole training fold for the chosen epoch count")
    refit_ema: float | bool = Field(0.95, description="moving average of the refit's weights (0 or false: none)")
    strategies: list[str] | None = Field(None, description="strategies for deep models (default: the suite's)")
    save_models: bool = Field(False, description="keep every deep fold model (as save_models)")
    gpu: bool = Field(False, description="on Dask, deep jobs ask for a GPU worker resource")
    hed_augment: float = Field(
        0.0, description="HED colour augmentation of training batches: stain scale and shift within ± this (0: none)"
    )


class StainTable(_Table):
    """``[stain]``: stain normalisation of both arms' images to a reference fitted on each training fold only."""

    method: str = Field("none", description="none, reinhard (Lab statistics) or macenko (H&E stain vectors)")
    max_images: int = Field(200, description="training images (a seeded sample) the fold's reference is fitted on")


class ExplainTable(_Table):
    """``[explain]``: models and strategies whose explanations the leaderboard links."""

    models: list[str] = Field(default_factory=list, description="models to explain")
    strategies: list[str] = Field(default_factory=lambda: ["none"], description="their strategies")


class FinalTable(_Table):
    """``[final]``: refit each arm's champion on all development data and keep it for ``predict`` and ``app``."""

    enabled: bool = Field(False, description="after the CV grid, save each arm's final model under <results>/final/")


class DatasetTable(BaseModel):
    """``[datasets.NAME]``: options of one data set; any other key is the adapter's own (``datasets show NAME``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    extractions: list[str] | None = Field(None, description='"given", "manual" and/or "segmentation"')
    optional: bool = Field(False, description="skip the data set with a note when its files are absent")
    positive_class: str | None = Field(None, description="the positive class of a two-class data set (as loaded)")
    max_per_class: int | None = Field(None, description="subsample to at most this many samples per class")
    max_groups: int | None = Field(None, description="subsample to at most this many patients")
    embeddings: str | None = Field(None, description="your own embeddings file (Parquet/CSV/NPZ) for user_* models")
    test: Any = Field(None, description="an external test set: a folder, or a table with its options")
    manual: dict[str, Any] | None = Field(None, description="parameters of the manual extraction")
    segmentation: dict[str, Any] | None = Field(None, description="segmentation parameters (SegmentationParams)")


class SuiteTable(_Table):
    """The top level of a suite file."""

    name: str | None = Field(None, description="the results folder's name (default: the file's stem)")
    description: str = Field("", description="one line shown in the leaderboard")
    seed: int = Field(0, description="the seed every fold split, sampler and model derives its own from")
    primary_metric: str | None = Field(None, description="metric that ranks models (default: each data set's)")
    metrics: list[str] | None = Field(None, description="metrics reported (default: all)")
    cv: CVTable = Field(default_factory=CVTable, description="see [cv]")
    datasets: dict[str, DatasetTable] = Field(default_factory=dict, description="data sets, by name (or a list)")
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="models, by name, with parameters (or a list)"
    )
    strategies: list[str] = Field(default_factory=lambda: ["none"], description="imbalance strategies")
    imbalance_sweep: SweepTable = Field(default_factory=SweepTable, description="see [imbalance_sweep]")
    features: dict[str, Any] = Field(
        default_factory=dict, description="see [features]; checked by cellbench.features.FeatureConfig"
    )
    deep: DeepTable = Field(default_factory=DeepTable, description="see [deep]")
    explain: ExplainTable = Field(default_factory=ExplainTable, description="see [explain]")
    save_models: bool = Field(False, description="keep every fold's fitted model under <results>/models/")
    final: FinalTable = Field(default_factory=FinalTable, description="see [final]")
    stain: StainTable = Field(default_factory=StainTable, description="see [stain]")


_WANT = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "float_type": "a number",
    "string_type": "text (a quoted string)",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _normalised(raw: Mapping[str, Any]) -> dict[str, Any]:
    """TOML shorthands the schema's types do not spell: a list of names for a table of names, one name for a list."""
    out = dict(raw)
    for key in ("datasets", "models"):
        if isinstance(out.get(key), list) and all(isinstance(v, str) for v in out[key]):
            out[key] = {v: {} for v in out[key]}
    if isinstance(out.get("strategies"), str):
        out["strategies"] = [out["strategies"]]
    for table, keys in _NAME_LISTS.items():
        if isinstance(out.get(table), Mapping):
            out[table] = {k: [v] if k in keys and isinstance(v, str) else v for k, v in out[table].items()}
    return out


_NAME_LISTS = {"deep": ("strategies",), "explain": ("models", "strategies"),
               "imbalance_sweep": ("ratios", "strategies", "models"),}  # fmt: skip


def check_suite_table(raw: Mapping[str, Any], *, where: str) -> None:
    """Refuse a suite table whose keys or types do not fit :class:`SuiteTable`.

    Raises
    ------
    ConfigError
        ``"<where>: <key>: must be <type>, got <value>"`` per problem (at most five), unknown keys with the keys
        allowed in their table.
    """
    try:
        SuiteTable.model_validate(_normalised(raw))
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()[:5]]
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ConfigError(f"{where}: " + "; ".join(problems) + more) from None


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        table = _table_at(loc[:-1])
        allowed = ", ".join(table.model_fields) if table is not None else ""
        where = f"[{'.'.join(loc[:-1])}]" if len(loc) > 1 else "the top level"
        return f"unknown key {key!r}; allowed keys in {where}: {allowed}"
    want = _WANT.get(error["type"])
    got = error.get("input")
    return f"{key} must be {want}, got {got!r}" if want else f"{key}: {error['msg']} (got {got!r})"


def _table_at(loc: list[str]) -> type[BaseModel] | None:
    table: type[BaseModel] = SuiteTable
    for part in loc:
        field = table.model_fields.get(part)
        if field is None:
            return None if table is not SuiteTable or part not in ("datasets",) else DatasetTable
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            table = annotation
        elif part == "datasets":
            table = DatasetTable
            continue
        else:
            return None
    return table


def schema_markdown() -> str:
    """The suite-format reference: one table of keys, types, defaults and meanings per suite table."""
    lines = [
        "# Suite file format",
        "",
        "Generated from `cellbench.run.schema`, the schema every suite is checked with when it is loaded; "
        "regenerate with `python -m bench suite-format > docs/SUITE_FORMAT.md`.",
        "",
    ]
    for title, model in _TABLES:
        lines += [f"## {title}", "", " ".join((model.__doc__ or "").split()), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {field.description} |")
        lines.append("")
    lines += [
        "## [features]",
        "",
        "The handcrafted feature families and their parameters (`cellbench.features.FeatureConfig`; defaults for "
        "single cells shown; a data set's kind — `cell`, `crop` (multi-cell crops) or `patch` (tissue) — and its card "
        'decide the default families: see the README, "Handcrafted features").',
        "",
        "| key | default |",
        "|---|---|",
    ]
    lines += [f"| `{f.name}` | `{getattr(FeatureConfig.for_kind('cell'), f.name)!r}` |" for f in fields(FeatureConfig)]
    lines.append("")
    lines.append(
        "`[models.NAME]` tables hold a model's parameters (unknown names are refused with the allowed ones); a value "
        "must have its default's type: an integer, a number, or true/false. A table with `estimator = "
        '"module:Class"` names your own scikit-learn-style classifier '
        '(e.g. `"sklearn.ensemble:ExtraTreesClassifier"`); '
        "its other keys are that class's parameters, checked against its `get_params()` when the suite is loaded. "
        'A table with `factory = "module:function"` names a function building an uncompiled Keras model '
        '(`build(*, input_shape, n_classes, **params)`, probabilities out; see the README, "Your own Keras model"); '
        "its other keys are `[deep]` training settings or the function's own parameters, checked against its "
        "signature when the suite is loaded."
    )
    return "\n".join(lines) + "\n"


_TABLES = (
    ("top level", SuiteTable),
    ("[cv]", CVTable),
    ("[datasets.NAME]", DatasetTable),
    ("[imbalance_sweep]", SweepTable),
    ("[deep]", DeepTable),
    ("[explain]", ExplainTable),
    ("[final]", FinalTable),
    ("[stain]", StainTable),
)
_TYPE_NAMES = {str: "text", int: "integer", float: "number", bool: "true/false", type(None): "none"}


def _default(field) -> str:
    if field.default_factory is None:
        return "—" if field.default is None else f"`{field.default!r}`"
    value = field.default_factory()
    return "(table)" if isinstance(value, BaseModel) else f"`{value!r}`"


def _type_name(annotation: Any) -> str:
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "table" if args and args[0] is str and len(args) == 2 and args[1] is Any else "tables by name"
    if args and origin is not None and len(args) < len(typing.get_args(annotation)):  # X | None: optional
        return _type_name(args[0]) if len(args) == 1 else " or ".join(_type_name(a) for a in args)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "any"
