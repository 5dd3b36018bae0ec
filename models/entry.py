"""What the model catalog holds about a model, and which imbalance strategies apply to it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cellbench.core.errors import ConfigError
from cellbench.models.imbalance import Strategy

ClassWeightSupport = Literal["param", "sample_weight"] | None
# what a model reads: handcrafted features, pixels, frozen-backbone embeddings, the user's embeddings file, or
# handcrafted features ∥ embeddings
Input = Literal["features", "pixels", "embeddings", "user_embeddings", "combined"]


@dataclass(frozen=True)
class ModelEntry:
    """A model: ``build(params, seed)`` makes a fresh, unfitted estimator (Keras model for ``kind="deep"``).

    ``class_weight`` says how cost-sensitive learning reaches the estimator: through its
    ``class_weight`` parameter, through ``sample_weight`` in ``fit``, or not at all (``None``).
    """

    name: str
    kind: Literal["classical", "deep"]
    input: Input
    build: Callable[..., Any]
    defaults: Mapping[str, Any]
    class_weight: ClassWeightSupport
    description: str
    constant: bool = False  # predicts the same probabilities for every input (baselines)
    # ``fit`` takes the inner validation rows as ``eval_set`` (to stop early on) and leaves ``refit_params_`` for
    # the refit on the whole training fold (see cellbench.models.pipeline.fit_predict)
    stops_on_inner: bool = False

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` over the defaults, refusing unknown parameter names (naming the allowed ones)."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)} for model {self.name!r}; "
                f"allowed: {', '.join(sorted(self.defaults))}"
            )
        for key, value in params.items():
            want = _expected_type(self.defaults[key], value)
            if want:
                raise ConfigError(f"model {self.name!r}: parameter {key} must be {want}, got {value!r}")
        return {**self.defaults, **params}


def model_entry(
    name: str,
    *,
    defaults: Mapping[str, Any],
    class_weight: ClassWeightSupport,
    description: str,
    kind: Literal["classical", "deep"] = "classical",
    input: Input = "features",
    constant: bool = False,
) -> Callable[[Callable[..., Any]], ModelEntry]:
    """Decorator making ``build(params: dict, seed: int) -> estimator`` the :class:`ModelEntry` ``name``."""

    def decorate(build: Callable[..., Any]) -> ModelEntry:
        return ModelEntry(name, kind, input, build, dict(defaults), class_weight, description, constant)

    return decorate


def applies(model: ModelEntry, strategy: Strategy) -> tuple[bool, str]:
    """Whether ``strategy`` can be applied to ``model``; if not, the reason for the leaderboard."""
    if strategy.class_weight and model.class_weight is None:
        return False, f"{model.name} has no cost-sensitive form (no class or sample weights)"
    if strategy.tune_threshold and model.constant:
        return False, f"{model.name} predicts constant probabilities, so there is no threshold to tune"
    if model.kind == "classical" and not strategy.classical:
        return False, f"{strategy.name} is a loss for neural networks and does not apply to {model.name}"
    if model.kind == "deep" and not strategy.deep:
        return False, f"{strategy.name} interpolates feature vectors and does not apply to pixel models"
    return True, ""


def _expected_type(default: Any, value: Any) -> str | None:
    """What ``value`` should be, judged by the type of its default (``None`` when it fits or the default says
    nothing: ``None`` or text defaults, which scikit-learn often lets be numbers too)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):  # a number; true/false too, for switches like refit_ema = false
        return None if isinstance(value, (int, float)) else "a number"
    return None
