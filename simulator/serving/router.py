"""Request routers across replicas (the import path of issue 4; the policies live in
simulator/serving/routers/, one module each)."""

from __future__ import annotations

from simulator.serving.routers import ROUTERS, Routable, Router, RouterKind, make_router

__all__ = ["ROUTERS", "Routable", "Router", "RouterKind", "make_router"]
