"""Request routers across replicas (kept as the import path of issue 4; the policies live in
simulator/serving/routers/, one module each)."""

from __future__ import annotations

from simulator.serving.routers import REGISTRY, Routable, Router, RouterKind, make_router
from simulator.serving.routers.least_loaded import LeastLoadedRouter
from simulator.serving.routers.round_robin import RoundRobinRouter

__all__ = ["REGISTRY", "LeastLoadedRouter", "Routable", "RoundRobinRouter", "Router",
           "RouterKind", "make_router"]
