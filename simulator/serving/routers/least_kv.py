"""Least KV-cache usage (Llumnix's dispatch on free memory); ties by outstanding requests."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind


@ROUTERS.register(RouterKind.LEAST_KV)
class LeastKVRouter(Router):
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        best, key = 0, None
        for i, rep in enumerate(replicas):
            k = (rep.kv_usage(), rep.outstanding)
            if key is None or k < key:
                best, key = i, k
        return best
