"""Keras models named by import path in a suite: ``[models.my_net] factory = "mypkg.nets:build"``.

The factory is a function ``build(*, input_shape, n_classes, **params)`` returning an **uncompiled** ``keras.Model``
from raw RGB images (``input_shape`` = (size, size, 3), values 0-255) to class probabilities: one sigmoid unit for two
classes, a softmax over ``n_classes`` otherwise. The harness compiles it (Adam, the strategy's loss) and trains it as
its own CNN; a model the factory compiled is compiled again, so every deep arm trains the same way. Its last layer
must be a sigmoid/softmax ``Activation`` or ``Dense`` layer (or a layer named ``logits`` must feed it): losses read
probabilities and Grad-CAM reads the logit behind them (:func:`cellbench.models.cam.logit_layer`).

The suite table's other keys are either the harness's training settings (``size``, ``max_epochs``, … as in
``[deep]``) or the factory's own keyword parameters, checked against its signature when the suite is loaded.
Keras is imported only when a model is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cellbench.core.errors import ConfigError
from cellbench.models.cam import logit_layer
from cellbench.models.deep import TRAINING_DEFAULTS
from cellbench.models.entry import ModelEntry

GIVEN = ("input_shape", "n_classes")  # what the harness passes to every factory


@dataclass(frozen=True)
class FactoryBuilder:
    """``build(params, seed, n_classes)`` of a factory model: calls the factory and checks what it returns."""

    name: str
    path: str
    factory: Callable[..., Any]
    own: tuple[str, ...] | None  # the factory's parameter names; None: it takes any (``**kwargs``)

    def __call__(self, params: Mapping[str, Any], seed: int, n_classes: int = 2):
        import keras

        where = f"[models.{self.name}]: factory {self.path!r}"
        size = int(params["size"])
        shape = (size, size, 3)
        own = {k: v for k, v in params.items() if k not in TRAINING_DEFAULTS and (self.own is None or k in self.own)}
        try:
            model = self.factory(input_shape=shape, n_classes=n_classes, **own)
        except Exception as exc:  # the user's code can fail in any way: say where, with what it was given
            raise ConfigError(
                f"{where} failed for input_shape={shape}, n_classes={n_classes}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(model, keras.Model):
            raise ConfigError(f"{where} returned a {type(model).__name__}, not a keras.Model")
        check_model(model, where=where, shape=shape, n_classes=n_classes)
        return model


def check_model(model, *, where: str, shape: tuple[int, int, int], n_classes: int) -> None:
    """Refuse a model whose input is not ``shape`` images or whose output is not ``n_classes`` probabilities.

    Raises
    ------
    ConfigError
        Naming ``where``, the shape found and the one expected.
    """
    units = 1 if n_classes == 2 else n_classes
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(
            f"{where}: the model has {len(model.inputs)} input(s) and {len(model.outputs)} output(s); it must have "
            "one image input and one probability output"
        )
    got_in = tuple(model.inputs[0].shape[1:])
    if len(got_in) != 3 or any(g is not None and g != w for g, w in zip(got_in, shape)):
        raise ConfigError(f"{where}: the model's input shape is (None, {_dims(got_in)}); it must take {shape} images")
    got_out = tuple(model.outputs[0].shape[1:])
    if got_out != (units,):
        raise ConfigError(
            f"{where}: the model's output shape is (None, {_dims(got_out)}); for {n_classes} classes it must be "
            f"(None, {units}): "
            + ("one sigmoid unit for two classes" if units == 1 else f"a softmax over the {n_classes} classes")
        )
    try:
        logit_layer(model)
    except ConfigError as exc:
        raise ConfigError(f"{where}: the model must output probabilities; {exc}") from None


def _dims(shape: tuple) -> str:
    return ", ".join("None" if d is None else str(d) for d in shape)


def factory_entry(name: str, path: str, factory: Any, params: Mapping[str, Any]) -> ModelEntry:
    """A deep :class:`ModelEntry` whose model ``factory`` (found at ``path``) builds, with the suite's ``params``.

    Raises
    ------
    ConfigError
        For a factory that is not callable, does not take ``input_shape`` and ``n_classes`` as keywords, has a
        parameter named like a training setting, needs parameters the suite does not give, or for suite keys that
        are neither training settings nor the factory's parameters (naming the allowed ones).
    """
    if not callable(factory):
        raise ConfigError(f"factory {path!r} is not callable: it is {type(factory).__name__} {factory!r:.60}")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        raise ConfigError(f"factory {path!r} has no signature to read; wrap it in a Python function") from None
    kinds = inspect.Parameter
    takes_any = any(p.kind is kinds.VAR_KEYWORD for p in signature.parameters.values())
    keywords = (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    named = {n: p for n, p in signature.parameters.items() if p.kind in keywords}
    if missing := [g for g in GIVEN if g not in named and not takes_any]:
        raise ConfigError(
            f"factory {path!r} must take {', '.join(GIVEN)} as keyword arguments; it lacks {', '.join(missing)} "
            f"(its signature: {signature})"
        )
    own = {n: p for n, p in named.items() if n not in GIVEN}
    if clash := sorted(set(own) & set(TRAINING_DEFAULTS)):
        raise ConfigError(
            f"factory {path!r}: parameter(s) {', '.join(clash)} are training settings of the harness; rename them "
            f"(training settings: {', '.join(TRAINING_DEFAULTS)})"
        )
    extra = {k: v for k, v in params.items() if k not in TRAINING_DEFAULTS}
    if not takes_any and (unknown := sorted(set(extra) - set(own))):
        allowed = sorted({*TRAINING_DEFAULTS, *own})
        raise ConfigError(f"factory {path!r}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if needed := [n for n, p in own.items() if p.default is kinds.empty and n not in extra]:
        raise ConfigError(f"factory {path!r} needs parameter(s) {', '.join(needed)}; give them in the suite's table")
    defaults = {n: p.default for n, p in own.items() if p.default is not kinds.empty}
    # required parameters and those a ``**kwargs`` factory takes have no default of their own: the suite's value
    defaults = {**TRAINING_DEFAULTS, **{k: v for k, v in extra.items() if k not in defaults}, **defaults}
    builder = FactoryBuilder(name, path, factory, None if takes_any else tuple(own))
    doc = (inspect.getdoc(factory) or "").split("\n")[0]
    return ModelEntry(name, "deep", "pixels", builder, defaults, "param", f"{doc or 'Keras model'} ({path})")
