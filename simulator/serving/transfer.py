"""KV-cache transfers between replicas (disaggregated prefill -> decode, live migration).

Replicas are packed onto nodes in order (devices_per_node each). A transfer between replicas on
one node goes over the scale-up link (NVLink), across nodes over the NICs (IB/RoCE, one per
GPU). Each of the min(src, dst) devices sends its shard of the KV in parallel, so
time = latency + bytes / (lanes x per-device bandwidth); the latency and bandwidth come from
hwmodels.collectives' send_recv on the actual link (alpha-beta fit of two message sizes).
Contention: each replica has one egress and one ingress port (a SimPy Resource, FIFO); a
transfer holds its source's egress and destination's ingress for its duration, so concurrent
transfers through one replica's NICs queue (bandwidth shared in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import simpy

from hwmodels.cluster import build_cluster
from hwmodels.collectives import CollectiveOp, collective_time
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec

SMALL_BYTES, LARGE_BYTES = 1 << 20, 1 << 30  # alpha-beta fit points (1 MiB, 1 GiB)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCost:
    """alpha-beta cost of one device-to-device send: latency_s + nbytes / bandwidth_Bps."""

    latency_s: float
    bandwidth_Bps: float


def link_cost(device: DeviceSpec, *, intra_node: str | None, inter_node: str | None,
              cross_node: bool, devices_per_node: int | None = None,
              profile: DeviceProfile | None = None) -> LinkCost:
    """Fit send_recv on the actual link (same node: ranks 0,1; across nodes: 0, node size),
    with the device profile's measured send_recv where it applies (same link, one node)."""
    per_node = devices_per_node or device.devices_per_node
    cluster = build_cluster(device, 2 * per_node, devices_per_node=per_node,
                            intra_node=intra_node, inter_node=inter_node)
    ranks = (0, per_node) if cross_node else (0, 1)
    t1 = collective_time(cluster, ranks, CollectiveOp.SEND_RECV, SMALL_BYTES,
                         profile=profile).time_s
    t2 = collective_time(cluster, ranks, CollectiveOp.SEND_RECV, LARGE_BYTES,
                         profile=profile).time_s
    bw = (LARGE_BYTES - SMALL_BYTES) / max(t2 - t1, 1e-12)
    return LinkCost(latency_s=max(0.0, t1 - SMALL_BYTES / bw), bandwidth_Bps=bw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaPlacement:
    """Where a replica's devices sit and what one token of its KV weighs."""

    node: int
    devices: int
    kv_bytes_per_token: float  # whole model (all layers), as hwmodels.memory


class TransferModel:
    """Transfer times and per-replica NIC resources for KV moves."""

    def __init__(self, env: simpy.Environment, *, intra: LinkCost, inter: LinkCost,
                 placements: Sequence[ReplicaPlacement] = ()) -> None:
        self.env, self.intra, self.inter = env, intra, inter
        self.placements: list[ReplicaPlacement] = list(placements)
        self.egress: list[simpy.Resource] = []
        self.ingress: list[simpy.Resource] = []
        for _ in self.placements:
            self._ports()

    def _ports(self) -> None:
        self.egress.append(simpy.Resource(self.env, capacity=1))
        self.ingress.append(simpy.Resource(self.env, capacity=1))

    def add(self, placement: ReplicaPlacement) -> None:
        """A replica created at run time (autoscaling)."""
        self.placements.append(placement)
        self._ports()

    def time_s(self, src: int, dst: int, tokens: int) -> float:
        a, b = self.placements[src], self.placements[dst]
        link = self.intra if a.node == b.node else self.inter
        lanes = min(a.devices, b.devices)
        return link.latency_s + a.kv_bytes_per_token * tokens / (lanes * link.bandwidth_Bps)

    def move(self, src: int, dst: int, tokens: int):  # type: ignore[no-untyped-def]
        """SimPy process body: queue for the ports, then hold them for the transfer."""
        with self.egress[src].request() as out:
            yield out
            with self.ingress[dst].request() as inn:
                yield inn
                yield self.env.timeout(self.time_s(src, dst, tokens))
