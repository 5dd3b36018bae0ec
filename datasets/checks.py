"""Checks of the fields of frozen parameter records (in ``__post_init__``), with errors naming the allowed values.

Numbers are stored as ``float`` once checked, so ``1`` and ``1.0`` give the same fingerprint and cache key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from cellbench.core.errors import ConfigError


def check_number(record, name: str, *, low: float, high: float, closed: tuple[bool, bool] = (True, True)) -> None:
    """Refuse field ``name`` unless it is a finite number within ``low``..``high`` (ends included per ``closed``)."""
    value = getattr(record, name)
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (value >= low if closed[0] else value > low) and (value <= high if closed[1] else value < high)
    if not ok:
        lo, hi = "[" if closed[0] else "(", "]" if closed[1] else ")"
        raise ConfigError(f"{name} must be a number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    object.__setattr__(record, name, float(value))


def check_integer(record, name: str, *, low: int) -> None:
    """Refuse field ``name`` unless it is an integer ``>= low``; store it as ``int``."""
    value = getattr(record, name)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    object.__setattr__(record, name, int(value))


def check_flags(record, names: Iterable[str]) -> None:
    """Refuse each field of ``names`` that is not ``True`` or ``False``."""
    for name in names:
        if not isinstance(getattr(record, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(record, name)!r}")


def check_choice(record, name: str, allowed: Iterable[str]) -> None:
    """Refuse field ``name`` unless it is one of ``allowed``."""
    allowed = tuple(allowed)
    if getattr(record, name) not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(record, name)!r}")
