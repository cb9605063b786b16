"""What every router shares: the RouterKind keys and their registry, the view of a replica a
router may use, and the choose() interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.registry import Registry
from simulator.serving.request import Seq


class RouterKind(StrEnum):
    """The `serving.router` names (one module per policy under simulator/serving/routers/)."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"  # fewest outstanding requests (vLLM production-stack's LOR)
    LEAST_KV = "least_kv"
    POWER_OF_TWO = "power_of_two"
    PREFIX_AFFINITY = "prefix_affinity"
    SESSION_AFFINITY = "session_affinity"
    CAPACITY_WEIGHTED = "capacity_weighted"
    LLUMNIX = "llumnix"  # least-KV dispatch + live migration between replicas


class Routable(Protocol):
    """What a router may look at: a replica's index, load, KV usage and relative capacity."""

    index: int
    capacity: float

    @property
    def outstanding(self) -> int: ...

    def kv_usage(self) -> float: ...


class Router(ABC):
    """Base: choose(seq, replicas) returns a position in `replicas` (the live pool)."""

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self.rng = rng or np.random.default_rng(0)

    @abstractmethod
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        """Subclasses decide; see the class docstring."""

    def reset(self, replicas: Sequence[Routable]) -> None:
        """The pool changed (failure, repair, scale-up/down); stateful routers rebuild here."""
        return None  # optional hook: stateless by default


ROUTERS: Registry[RouterKind, type[Router]] = Registry("router", RouterKind, key="serving.router")


def least_outstanding(replicas: Sequence[Routable]) -> int:
    """Position of the replica with the fewest outstanding requests (first on ties)."""
    best, best_load = 0, None
    for i, rep in enumerate(replicas):
        load = rep.outstanding
        if best_load is None or load < best_load:
            best, best_load = i, load
            if load == 0:
                break
    return best
