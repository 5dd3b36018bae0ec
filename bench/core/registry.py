"""Plain-dict registries filled by a decorator; unknown names raise an error listing the known ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from cellbench.core.errors import UnknownNameError
from cellbench.core.paths import check_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with a registering decorator.

    Parameters
    ----------
    kind
        What the entries are ("model", "dataset", ...), used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    @classmethod
    def of(cls, kind: str, entries: Iterable[T]) -> Registry[T]:
        """A registry of ``entries`` (each with a ``name``), in their order; a repeated name is refused."""
        registry = cls(kind)
        for entry in entries:
            registry.add(entry.name, entry)
        return registry

    def register(self, name: str) -> Callable[[T], T]:
        check_name(name, what=self.kind)  # names become folder, file and column names

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._items.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self):
        return self._items.items()

    def check(self, names) -> list[str]:
        """Return ``names`` as a list after checking each is registered."""
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            self[n]
        return names
