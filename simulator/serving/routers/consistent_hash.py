"""The consistent-hash ring with a load-balance escape shared by the affinity routers.

Session affinity: consistent hashing (vnodes on a ring, so a pool change moves only ~1/n of the
keys) on the session id, or on the first prefix-block hash when the trace has no sessions.
Prefix affinity (SGLang router's cache-aware policy, approximated): the router remembers which
replica it last sent each prefix block to and picks the replica holding the longest run of the
request's leading blocks; a request with no known prefix goes by consistent hash of its first
block. Either way a target whose outstanding requests exceed the least loaded replica's by more
than max(SLACK_MIN, least) falls back to least loaded (SGLang's balance threshold), so a hot
prefix (a shared system prompt) cannot melt one replica."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from simulator.serving.request import Seq
from simulator.serving.routers.base import Routable, Router, least_outstanding

SLACK_MIN = 4  # outstanding requests above the least loaded before falling back
VNODES = 64  # ring points per replica (load spread within ~10% for 16+ replicas)
MIX = 0x9E3779B97F4A7C15  # 64-bit golden-ratio multiplier (Fibonacci hashing)
MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finalizer: a stable, well-spread 64-bit hash of an int."""
    x = (x + MIX) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


class AffinityRouter(Router):
    """Consistent hashing on the request's affinity key with a load-balance escape."""

    by_session = False

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng)
        self._points: list[int] = []
        self._owners: list[int] = []  # replica index per ring point
        self._members: tuple[int, ...] = ()

    def reset(self, replicas: Sequence[Routable]) -> None:
        ring = sorted((_mix(rep.index * 1_000_003 + v), rep.index)
                      for rep in replicas for v in range(VNODES))
        self._points = [p for p, _ in ring]
        self._owners = [o for _, o in ring]
        self._members = tuple(rep.index for rep in replicas)

    def key(self, seq: Seq) -> int | None:
        if self.by_session and seq.session >= 0:
            return seq.session
        return seq.hashes[0] if seq.hashes else None

    def _ring_pos(self, key: int, replicas: Sequence[Routable]) -> int:
        if len(self._members) != len(replicas) or \
                any(r.index != m for r, m in zip(replicas, self._members, strict=False)):
            self.reset(replicas)
        j = bisect.bisect_left(self._points, _mix(key)) % len(self._points)
        return self._members.index(self._owners[j])

    def target(self, seq: Seq, replicas: Sequence[Routable]) -> int | None:
        key = self.key(seq)
        return None if key is None else self._ring_pos(key, replicas)

    def choose(self, seq: Seq, replicas: Sequence[Routable]) -> int:
        low = least_outstanding(replicas)
        pos = self.target(seq, replicas)
        if pos is None:
            return low
        least = replicas[low].outstanding
        if replicas[pos].outstanding > least + max(SLACK_MIN, least):
            pos = low
        self.chosen(seq, replicas[pos].index)
        return pos

    def chosen(self, seq: Seq, replica: int) -> None:
        """Hook: the request went to `replica`."""
