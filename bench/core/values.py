"""Missing values between JSON and numbers: ``None`` (JSON) and NaN (arithmetic) for an undefined value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def as_float(x: Any) -> float:
    """``x`` as a float, ``None`` as NaN (an undefined metric read back from JSON)."""
    return math.nan if x is None else float(x)


def json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every non-finite float as ``None``, which JSON can hold (NaN is not JSON)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
