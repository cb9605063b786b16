"""Global request routers, one module per policy, one registry keyed by RouterKind."""

from __future__ import annotations

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import UnknownNameError
from simulator.serving.routers.affinity import PrefixAffinityRouter, SessionAffinityRouter
from simulator.serving.routers.base import Routable, Router
from simulator.serving.routers.capacity_weighted import CapacityWeightedRouter
from simulator.serving.routers.least_kv import LeastKVRouter
from simulator.serving.routers.least_loaded import LeastLoadedRouter
from simulator.serving.routers.power_of_two import PowerOfTwoRouter
from simulator.serving.routers.round_robin import RoundRobinRouter


class RouterKind(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"  # fewest outstanding requests (vLLM production-stack's LOR)
    LEAST_KV = "least_kv"
    POWER_OF_TWO = "power_of_two"
    PREFIX_AFFINITY = "prefix_affinity"
    SESSION_AFFINITY = "session_affinity"
    CAPACITY_WEIGHTED = "capacity_weighted"
    LLUMNIX = "llumnix"  # least-KV dispatch + live migration between replicas


REGISTRY: dict[RouterKind, type[Router]] = {
    RouterKind.ROUND_ROBIN: RoundRobinRouter,
    RouterKind.LEAST_LOADED: LeastLoadedRouter,
    RouterKind.LEAST_KV: LeastKVRouter,
    RouterKind.POWER_OF_TWO: PowerOfTwoRouter,
    RouterKind.PREFIX_AFFINITY: PrefixAffinityRouter,
    RouterKind.SESSION_AFFINITY: SessionAffinityRouter,
    RouterKind.CAPACITY_WEIGHTED: CapacityWeightedRouter,
    RouterKind.LLUMNIX: LeastKVRouter,
}


def make_router(name: str | RouterKind, rng: np.random.Generator | None = None) -> Router:
    """A router instance by name; unknown names list the valid ones."""
    try:
        kind = RouterKind(str(name))
    except ValueError:
        raise UnknownNameError("router", str(name), [k.value for k in RouterKind],
                               key="serving.router") from None
    return REGISTRY[kind](rng)


__all__ = ["REGISTRY", "Routable", "Router", "RouterKind", "make_router"]
