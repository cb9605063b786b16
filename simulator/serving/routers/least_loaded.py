"""Least outstanding requests (vLLM production-stack's and Envoy's LEAST_REQUEST)."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind, least_outstanding


@ROUTERS.register(RouterKind.LEAST_LOADED)
class LeastLoadedRouter(Router):
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        return least_outstanding(replicas)
