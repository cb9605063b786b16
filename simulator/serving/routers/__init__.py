"""Global request routers: one module per policy, registered in ROUTERS keyed by RouterKind."""

from __future__ import annotations

import numpy as np

from simulator.serving.routers import (  # noqa: F401  (each module registers its policy)
    capacity_weighted,
    least_kv,
    least_loaded,
    llumnix,
    power_of_two,
    prefix_affinity,
    round_robin,
    session_affinity,
)
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind


def make_router(name: str | RouterKind, rng: np.random.Generator | None = None) -> Router:
    """A router instance by kind (or name); unknown names list the valid ones."""
    return ROUTERS.get(name)(rng)


__all__ = ["ROUTERS", "Routable", "Router", "RouterKind", "make_router"]
