"""Request routers across replicas, one registry keyed by RouterKind (the cluster layer adds
power-of-two, KV-aware, prefix-affinity and migrating routers as further modules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import UnknownNameError
from simulator.serving.request import Seq


class Routable(Protocol):
    """What a router may look at: a replica's index, load and KV usage."""

    index: int

    @property
    def outstanding(self) -> int: ...

    def kv_usage(self) -> float: ...


class RouterKind(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"  # fewest outstanding requests (vLLM production-stack's LOR)


class Router:
    """Base: choose(seq, replicas) returns the index of the target replica."""

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self.rng = rng or np.random.default_rng(0)

    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        raise NotImplementedError


class RoundRobinRouter(Router):
    def __init__(self, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng)
        self._next = 0

    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i


class LeastLoadedRouter(Router):
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        best, best_load = 0, None
        for i, rep in enumerate(replicas):
            load = rep.outstanding
            if best_load is None or load < best_load:
                best, best_load = i, load
                if load == 0:
                    break
        return best


REGISTRY: dict[RouterKind, type[Router]] = {
    RouterKind.ROUND_ROBIN: RoundRobinRouter,
    RouterKind.LEAST_LOADED: LeastLoadedRouter,
}


def make_router(name: str | RouterKind, rng: np.random.Generator | None = None) -> Router:
    """A router instance by name; unknown names list the valid ones."""
    try:
        kind = RouterKind(str(name))
    except ValueError:
        raise UnknownNameError("router", str(name), [k.value for k in RouterKind],
                               key="serving.router") from None
    return REGISTRY[kind](rng)
