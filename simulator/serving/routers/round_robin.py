"""Round-robin: the i-th request goes to replica i mod n (Kubernetes Service default)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, Router, RouterKind


@ROUTERS.register(RouterKind.ROUND_ROBIN)
class RoundRobinRouter(Router):
    def __init__(self, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng)
        self._next = 0

    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i
