"""Power of two choices (Mitzenmacher 2001): sample two replicas with the router's seeded
stream, send to the one with fewer outstanding requests."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind


@ROUTERS.register(RouterKind.POWER_OF_TWO)
class PowerOfTwoRouter(Router):
    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        n = len(replicas)
        if n == 1:
            return 0
        a = int(self.rng.integers(n))
        b = int(self.rng.integers(n - 1))
        b += b >= a  # a distinct second choice
        return a if replicas[a].outstanding <= replicas[b].outstanding else b
