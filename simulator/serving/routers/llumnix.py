"""Llumnix (Sun et al., OSDI'24) dispatch: least KV usage; the scenario adds its live migration
between replicas (simulator/serving/migration.py)."""

from __future__ import annotations

from simulator.serving.routers.base import ROUTERS, RouterKind
from simulator.serving.routers.least_kv import LeastKVRouter


@ROUTERS.register(RouterKind.LLUMNIX)
class LlumnixRouter(LeastKVRouter):
    """Least-KV dispatch; migration is a cluster extension, not a routing decision."""
