"""Models named by import path in a suite: ``[models.extra_trees] estimator = "sklearn.ensemble:ExtraTreesClassifier"``
for a scikit-learn-style classifier, ``[models.my_net] factory = "mypkg.nets:build"`` for a Keras model
(:mod:`cellbench.models.factory`).

The driver builds the entry when the suite is loaded (import errors, a class that is no classifier and unknown
parameter names are refused there, before anything runs); a worker that does not have it rebuilds it from the job's
:class:`~cellbench.core.types.ModelSpec` (:func:`ensure`), so an import that fails in a worker fails that job with the
error, never the pool.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from sklearn.base import is_classifier
from sklearn.utils.validation import has_fit_parameter

from cellbench.core.errors import ConfigError
from cellbench.core.types import ModelSpec
from cellbench.models.catalog import MODELS
from cellbench.models.deep import add_deep_model
from cellbench.models.entry import ModelEntry
from cellbench.models.factory import factory_entry

PLUGIN_KEYS = ("estimator", "factory")
ENTRY_POINT_GROUP = "cellbench.models"  # installed packages: ``name = "pkg.module:ENTRY"``, a ModelEntry
_SHAPES = {"estimator": "module:Class", "factory": "module:function"}
_BUILT: dict[str, str] = {}  # model name -> import path it was built from (one name, one class)


def split_plugin(params: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(``{"estimator": path}``, ``{"factory": path}`` or ``{}``, the other parameters) of a suite's
    ``[models.NAME]`` table."""
    plugin = {k: params[k] for k in PLUGIN_KEYS if k in params}
    if len(plugin) > 1:
        raise ConfigError("give estimator (a scikit-learn classifier) or factory (a Keras model), not both")
    for key, value in plugin.items():
        if not isinstance(value, str):
            raise ConfigError(f'{key} must be text "{_SHAPES[key]}", got {value!r}')
    return plugin, {k: v for k, v in params.items() if k not in PLUGIN_KEYS}


def load_object(path: str, *, key: str = "estimator") -> Any:
    """The object ``module:attribute`` names (``key``: the suite key that gave it, for messages).

    Raises
    ------
    ConfigError
        For a path without ``:``, a module that cannot be imported (with the import error) or a missing attribute.
    """
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        example = "sklearn.ensemble:ExtraTreesClassifier" if key == "estimator" else "mypkg.nets:build"
        raise ConfigError(f'{key} {path!r} must look like "{_SHAPES[key]}", e.g. "{example}"')
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{key} {path!r}: cannot import module {module!r}: {exc}") from None
    except Exception as exc:  # the module itself fails while importing: say so, not a traceback from the pool
        raise ConfigError(f"{key} {path!r}: importing module {module!r} failed: {type(exc).__name__}: {exc}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = ", ".join(n for n in dir(mod) if not n.startswith("_"))[:300]
            raise ConfigError(f"{key} {path!r}: module {module!r} has no attribute {attr!r}; it has: {public}")
        obj = getattr(obj, part)
    return obj


def estimator_entry(name: str, path: str, params: Mapping[str, Any]) -> ModelEntry:
    """A classical :class:`ModelEntry` for the scikit-learn-style classifier class at ``path`` with ``params``.

    Raises
    ------
    ConfigError
        For a path that names no class, a class that is not a classifier with ``predict_proba``, or parameter names
        the class does not take (naming those it does).
    """
    cls = load_object(path)
    if not isinstance(cls, type):
        raise ConfigError(f"estimator {path!r} is a {type(cls).__name__}, not a class")
    try:
        probe = cls()
    except Exception as exc:  # a constructor with required arguments cannot be cloned per fold either
        raise ConfigError(f"estimator {path!r} cannot be built without arguments: {exc}") from None
    if not is_classifier(probe) or not hasattr(probe, "predict_proba"):
        raise ConfigError(f"estimator {path!r} is not a classifier with predict_proba (scikit-learn's ClassifierMixin)")
    allowed = set(probe.get_params(deep=False))
    if unknown := sorted(set(params) - allowed):
        raise ConfigError(
            f"estimator {path!r}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    fixed = {k: v for k, v in (("random_state", None), ("n_jobs", 1)) if k in allowed and k not in params}

    def build(p: Mapping[str, Any], seed: int):
        extra = {k: (seed if k == "random_state" else v) for k, v in fixed.items()}
        return cls(**{**p, **extra})

    weight = (
        "param" if "class_weight" in allowed else "sample_weight" if has_fit_parameter(probe, "sample_weight") else None
    )
    return ModelEntry(name, "classical", "features", build, dict(params), weight, f"{cls.__name__} ({path})")


def from_entry_point(name: str) -> bool:
    """Add model ``name`` from an installed package's ``cellbench.models`` entry point; whether there was one.

    Raises
    ------
    ConfigError
        For an entry point that cannot be loaded (with the error) or that is not a ``ModelEntry`` named ``name``.
    """
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        return False
    ep = found[0]
    try:
        entry = ep.load()
    except Exception as exc:  # a plugin's import can fail in any way: say which and why
        raise ConfigError(f"entry point {ep.value!r} of model {name!r} cannot be loaded: {exc}") from None
    if not isinstance(entry, ModelEntry) or entry.name != name:
        raise ConfigError(f"entry point {ep.value!r} of model {name!r} must be a ModelEntry named {name!r}")
    if entry.kind == "deep":  # trained by cellbench.models.deep, which builds it through entry.build
        add_deep_model(entry)
    MODELS.add(name, entry)
    return True


def register_suite_model(name: str, params: Mapping[str, Any]) -> None:
    """Add the model a suite names by import path, or an installed package's model of that name, to :data:`MODELS`
    (nothing for a catalogued model)."""
    plugin, rest = split_plugin(params)
    if not plugin:
        if name not in MODELS:
            from_entry_point(name)
        return
    ((key, path),) = plugin.items()
    if name in MODELS and _BUILT.get(name) != path:
        known = f"built from {_BUILT[name]}" if name in _BUILT else "a built-in model"
        raise ConfigError(f"{name!r} is {known}; give the model from {path!r} another name")
    if name not in MODELS:
        if key == "estimator":
            entry = estimator_entry(name, path, rest)
        else:
            entry = add_deep_model(factory_entry(name, path, load_object(path, key=key), rest))
        MODELS.add(name, entry)
        _BUILT[name] = path


def ensure(spec: ModelSpec) -> None:
    """Make ``spec``'s model known in this process (a worker): rebuild a suite's import-path model from its spec."""
    if spec.name not in MODELS:
        try:
            register_suite_model(spec.name, {**spec.plugin, **spec.params} if spec.plugin else {})
        except ConfigError as exc:  # this job's error: name the suite table it came from
            where = f"[models.{spec.name}]"
            raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
