"""Prefix affinity (SGLang router's cache-aware policy, approximated): the replica holding the
longest remembered run of the request's leading prefix blocks; unknown prefixes by consistent
hash of the first block, with the load-balance escape of consistent_hash.py."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.serving.request import Seq
from simulator.serving.routers.base import ROUTERS, Routable, RouterKind
from simulator.serving.routers.consistent_hash import AffinityRouter


@ROUTERS.register(RouterKind.PREFIX_AFFINITY)
class PrefixAffinityRouter(AffinityRouter):
    """Longest remembered prefix wins; unknown prefixes by consistent hash."""

    by_session = False

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng)
        self._owner: dict[int, int] = {}  # prefix block hash -> replica last sent to

    def target(self, seq: Seq, replicas: Sequence[Routable]) -> int | None:
        if not seq.hashes:
            return None
        owner, best = None, 0
        for depth, h in enumerate(seq.hashes, 1):
            r = self._owner.get(h)
            if r is None:
                break
            owner, best = r, depth
        if owner is not None and best:
            for pos, rep in enumerate(replicas):
                if rep.index == owner:
                    return pos
        return super().target(seq, replicas)

    def chosen(self, seq: Seq, replica: int) -> None:
        owner = self._owner
        for h in seq.hashes:
            owner[h] = replica
