"""Number formats of every leaderboard table: one rule each for values, p-values, mean ± std and differences."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from cellbench.stats.tests import ALPHA

MISSING = "—"


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def num(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; ``—`` when undefined (``None``, NaN, infinite)."""
    return f"{float(x):.{digits}f}" if _finite(x) else MISSING


def signed(x: Any, digits: int = 3) -> str:
    """A difference with its sign (``+0.012``); ``—`` when undefined."""
    return f"{float(x):+.{digits}f}" if _finite(x) else MISSING


def p_value(p: Any) -> str:
    """A p-value to 3 decimals (``<0.001`` below), ``*`` marking p < :data:`ALPHA`; ``—`` when undefined."""
    if not _finite(p):
        return MISSING
    mark = "*" if p < ALPHA else ""
    return f"<0.001{mark}" if p < 0.001 else f"{p:.3f}{mark}"


def mean_std(mean: Any, std: Any, digits: int = 3) -> str:
    """``mean ± std`` (just the mean when the std is undefined); ``—`` when the mean is undefined."""
    if not _finite(mean):
        return MISSING
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if _finite(std) else f"{mean:.{digits}f}"


def stat(summary: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A ``{"mean": …, "std": …}`` summary as :func:`mean_std`; ``—`` when absent."""
    if not summary:
        return MISSING
    return mean_std(summary.get("mean"), summary.get("std"), digits)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, numparse: bool = False) -> list[str]:
    """A GitHub-markdown table and the blank line after it. Cells are shown as given (already formatted) unless
    ``numparse``, where tabulate aligns and formats what looks like a number."""
    return [tabulate(rows, headers=list(headers), tablefmt="github", disable_numparse=not numparse), ""]
