"""Errors raised for bad input. Each names the bad value and, where there is one, the allowed set."""

from __future__ import annotations

from collections.abc import Iterable


class CellbenchError(Exception):
    """Base class: an error the user can fix; the CLI prints its message without a traceback."""


class ConfigError(CellbenchError):
    """A suite, option or name is invalid."""


class DataError(CellbenchError):
    """A data set, image, mask or label is missing or malformed."""


class UnknownNameError(ConfigError, KeyError):
    """A name is not in a registry."""

    def __init__(self, kind: str, name: object, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        kinds = f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
        super().__init__(f"unknown {kind} {name!r}; known {kinds}: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


ON_BAD_IMAGE = ("raise", "skip")  # what to do with an image that cannot be read: stop naming it, or skip and count it


def check_on_bad_image(value: str, *, name: str = "on_bad_image") -> None:
    """Refuse an ``on_bad_image`` policy other than those in :data:`ON_BAD_IMAGE`, naming the allowed ones."""
    if value not in ON_BAD_IMAGE:
        raise ConfigError(f"{name} must be one of {', '.join(ON_BAD_IMAGE)}, got {value!r}")
