"""Progress bars that follow one rule: a bar on a terminal, plain periodic lines anywhere else.

tqdm redraws its bar with ``\\r`` several times a second; written to a log file or a pipe that is a stream of
carriage returns. :func:`progress_bar` gives a tqdm bar when the stream is a terminal and otherwise a tqdm that writes
one plain line when it starts, at most one every ``every`` seconds, and one when it ends.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm as terminal_tqdm
from tqdm.std import tqdm as plain_tqdm

PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
EVERY_S = 30.0


class LineStream(io.TextIOBase):
    """A stream for tqdm off a terminal: each redraw (``\\r`` + text, padded) becomes one line; blanks are dropped."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class PlainBar(plain_tqdm):
    """tqdm writing through a :class:`LineStream`; a new postfix waits for the next line instead of forcing one."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, stream: TextIO | None = None,
                 every: float = EVERY_S, **options: Any):  # fmt: skip
    """A tqdm progress bar over ``iterable`` (``options`` are tqdm's: ``total``, ``desc``, ``unit``, …).

    On a terminal ``stream`` (default stderr) it is tqdm's bar; elsewhere plain lines, at most one every ``every``
    seconds besides the first and the last; nothing when not ``enabled``.
    """
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return plain_tqdm(iterable, disable=True, **options)
    if is_terminal(stream):
        return terminal_tqdm(iterable, file=stream, **options)
    options = {k: v for k, v in options.items() if k not in ("dynamic_ncols", "ncols")}
    return PlainBar(iterable, file=LineStream(stream), mininterval=every, maxinterval=every, miniters=1,
                      bar_format=PLAIN_FORMAT, ascii=True, **options)  # fmt: skip
