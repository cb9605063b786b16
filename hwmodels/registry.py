"""One generic registry for every extension family (schedulers, routers, pipeline schedules,
failure models, checkpoint modes, executors, preemption modes, roles), keyed by a StrEnum.

A family declares its enum and a `Registry`; each policy module registers itself with
`@REGISTRY.register(Kind.X)`. Lookups by string go through `kind()` so an unknown name raises
`UnknownNameError` listing the valid ones, with the scenario key it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum
from typing import Generic, TypeVar

from hwmodels.errors import UnknownNameError

K = TypeVar("K", bound=Enum)
V = TypeVar("V")


class Registry(Generic[K, V]):
    """Maps each member of one StrEnum to one implementation (a class or a factory)."""

    def __init__(self, family: str, kinds: type[K], *, key: str | None = None) -> None:
        self.family = family
        self.kinds = kinds
        self.key = key
        self._items: dict[K, V] = {}

    def register(self, kind: K) -> Callable[[V], V]:
        """Decorator: `@REGISTRY.register(Kind.X)` above a class or factory."""

        def deco(item: V) -> V:
            if kind in self._items:
                raise RuntimeError(f"{self.family} '{kind}' registered twice")
            self._items[self.kind(kind)] = item
            return item

        return deco

    def add(self, kind: K, item: V) -> None:
        """Register without a decorator."""
        self.register(kind)(item)

    def kind(self, name: str | K, *, key: str | None = None, file: str | None = None) -> K:
        """The enum member for `name`; unknown names list the valid ones."""
        if isinstance(name, self.kinds):
            return name
        try:
            return self.kinds(str(name))
        except ValueError:
            raise UnknownNameError(self.family, str(name), [str(k.value) for k in self.kinds],
                                   key=key or self.key, file=file) from None

    def get(self, name: str | K, *, key: str | None = None, file: str | None = None) -> V:
        """The implementation registered for `name`."""
        kind = self.kind(name, key=key, file=file)
        try:
            return self._items[kind]
        except KeyError:
            raise UnknownNameError(self.family, str(name), self.names(), key=key or self.key,
                                   file=file) from None

    def names(self) -> list[str]:
        """Registered names, in enum order."""
        return [str(k.value) for k in self.kinds if k in self._items]

    def __contains__(self, name: object) -> bool:
        try:
            return self.kinds(str(name)) in self._items
        except ValueError:
            return False

    def __iter__(self) -> Iterator[K]:
        return (k for k in self.kinds if k in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[K, V]]:
        return [(k, self._items[k]) for k in self]


__all__ = ["Registry"]
