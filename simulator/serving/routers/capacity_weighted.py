"""Capacity-aware least load for heterogeneous replicas: the smallest (outstanding + 1) /
capacity, capacity being each replica's throughput estimate from its step model."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind


@ROUTERS.register(RouterKind.CAPACITY_WEIGHTED)
class CapacityWeightedRouter(Router):
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        best, key = 0, None
        for i, rep in enumerate(replicas):
            k = (rep.outstanding + 1) / rep.capacity
            if key is None or k < key:
                best, key = i, k
        return best
