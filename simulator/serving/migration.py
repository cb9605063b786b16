"""Llumnix-style live migration (Sun et al., OSDI'24) as a periodic rebalancing policy: every
interval_s the most and least loaded live replicas of a pool are compared; when their
outstanding requests differ by >= threshold, up to max_per_round of the source's most recently
admitted decoding requests move to the destination. The move happens at the source's next step
boundary; the request's KV is copied over the actual link (transfer.py, NIC contention
included) and it resumes decoding on the destination (stop-and-copy: it does not decode during
the copy - conservative next to Llumnix's pipelined copy)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from simulator.serving.cluster_config import MigrationConfig
from simulator.serving.hooks import Cluster, EngineExtension
from simulator.serving.kinds import ReplicaState


def _rebalance(cluster: Cluster, cfg: MigrationConfig) -> Generator[simpy.Event, Any, None]:
    env = cluster.env
    while True:
        yield env.timeout(cfg.interval_s)
        pool = cluster.decode_pool if cluster.decode_pool else cluster.entry
        pool = [r for r in pool if r.alive and r.state is ReplicaState.ACTIVE]
        if len(pool) < 2:
            continue
        src = max(pool, key=lambda r: r.outstanding)
        dst = min(pool, key=lambda r: r.outstanding)
        gap = src.outstanding - dst.outstanding
        if gap >= cfg.threshold:
            cluster.migrate(src, dst, min(cfg.max_per_round, gap // 2))


class Rebalancer(EngineExtension):
    """Periodic live migration from the most to the least loaded replica of a pool."""

    def __init__(self, cfg: MigrationConfig) -> None:
        self.cfg = cfg

    def start(self, cluster: Cluster) -> list[simpy.Process]:
        return [cluster.env.process(_rebalance(cluster, self.cfg))]
