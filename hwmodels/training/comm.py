"""Collective costs on the concrete rank groups of the plan, memoized per simulation.

Every number comes from hwmodels.collectives.collective_time for the actual ranks on the actual
links (so a TP group inside a node rides NVLink and a DP group across nodes rides the NICs).
nbytes follows nccl-tests' "size": all_gather -> the gathered output, reduce_scatter -> the
full input, all_reduce/all_to_all/send_recv -> the buffer. `channels` caps the NCCL channels
(parallel rings) a collective uses across nodes (hwmodels.collectives); None = NCCL's default.
Training is SPMD: every rank of a node runs the same collective on its own group at once, so
groups are costed with their sibling groups sharing the node's NICs (concurrent=True in
hwmodels.cluster.group_info): DP grad sync, FSDP gathers, p2p and EP/CP traffic of all local
ranks contend for the NICs when nics_per_node < devices_per_node.
"""

from __future__ import annotations

from hwmodels.collectives import CollectiveOp, collective_time
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.specs import ClusterSpec


class CommModel:
    """collective_time with a per-simulation cache (no process-wide state). The profile is
    resolved once (hwmodels.ops.resolve_profile): its measured collective curves, if any,
    drive single-node groups."""

    __slots__ = ("cluster", "profile", "_cache")

    def __init__(self, cluster: ClusterSpec, profile: ProfileArg = None) -> None:
        self.cluster = cluster
        self.profile = resolve_profile(cluster.device, profile)
        self._cache: dict[tuple[tuple[int, ...], CollectiveOp, float, int | None], float] = {}

    def time_s(self, ranks: tuple[int, ...], op: CollectiveOp, nbytes: float,
               channels: int | None = None) -> float:
        """Seconds for `op` of `nbytes` over `ranks`; 0 for a group of one or no bytes."""
        if len(ranks) <= 1 or nbytes <= 0:
            return 0.0
        key = (ranks, op, float(nbytes), channels)
        cached = self._cache.get(key)
        if cached is None:
            cached = collective_time(self.cluster, ranks, op, nbytes, profile=self.profile,
                                     channels=channels, concurrent=True).time_s
            self._cache[key] = cached
        return cached

    def all_reduce(self, ranks: tuple[int, ...], nbytes: float) -> float:
        return self.time_s(ranks, CollectiveOp.ALL_REDUCE, nbytes)

    def all_gather(self, ranks: tuple[int, ...], nbytes: float,
                   channels: int | None = None) -> float:
        return self.time_s(ranks, CollectiveOp.ALL_GATHER, nbytes, channels)

    def reduce_scatter(self, ranks: tuple[int, ...], nbytes: float,
                       channels: int | None = None) -> float:
        return self.time_s(ranks, CollectiveOp.REDUCE_SCATTER, nbytes, channels)

    def all_to_all(self, ranks: tuple[int, ...], nbytes: float) -> float:
        return self.time_s(ranks, CollectiveOp.ALL_TO_ALL, nbytes)

    def send_recv(self, src: int, dst: int, nbytes: float) -> float:
        if src == dst:
            return 0.0
        return self.time_s((src, dst), CollectiveOp.SEND_RECV, nbytes)
