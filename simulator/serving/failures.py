"""Replica crashes and stragglers: each replica fails after a time drawn from an exponential or
Weibull distribution with the given MTBF (per replica), is repaired after repair_s, and its
in-flight requests are retried elsewhere from scratch (prefill recomputed) until the retry
budget is spent (engine.retry). Stragglers: a seeded fraction of replicas runs every step
`slowdown` x slower (a throttled or degraded GPU)."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simulator.serving.cluster_config import FailureConfig, FailureDistribution
from simulator.serving.hooks import Cluster, EngineExtension
from simulator.serving.kinds import ReplicaState
from simulator.serving.records import EventKind

if TYPE_CHECKING:
    from simulator.serving.replica import Replica


def time_to_failure_s(cfg: FailureConfig, rng: np.random.Generator) -> float:
    """One draw with mean cfg.mtbf_s (Weibull scale = mtbf / Gamma(1 + 1/shape))."""
    if cfg.mtbf_s is None:
        return math.inf
    if cfg.distribution is FailureDistribution.WEIBULL:
        k = cfg.weibull_shape
        scale = cfg.mtbf_s / math.gamma(1.0 + 1.0 / k)
        return float(scale * rng.weibull(k))
    return float(rng.exponential(cfg.mtbf_s))


def _crash_loop(cluster: Cluster, rep: Replica, cfg: FailureConfig,
                rng: np.random.Generator) -> Generator[simpy.Event, Any, None]:
    env = cluster.env
    while True:
        yield env.timeout(time_to_failure_s(cfg, rng))
        if rep.state in (ReplicaState.RETIRED, ReplicaState.BOOTING) or not rep.alive:
            if rep.state is ReplicaState.RETIRED:
                return
            continue
        cluster.crash(rep)
        yield env.timeout(cfg.repair_s)
        if rep.state is not ReplicaState.RETIRED:
            cluster.activate(rep)


class FailureInjector(EngineExtension):
    """Stragglers marked at start, then one crash/repair process per initial replica."""

    def __init__(self, cfg: FailureConfig) -> None:
        self.cfg = cfg

    def start(self, cluster: Cluster) -> list[simpy.Process]:
        cfg = self.cfg
        rng = np.random.default_rng(cluster.fail_ss)
        replicas = cluster.replicas
        if cfg.straggler_fraction > 0 and cfg.straggler_slowdown > 1:
            count = int(round(cfg.straggler_fraction * len(replicas)))
            for r in rng.choice(len(replicas), size=count, replace=False):
                for lane in replicas[int(r)].lanes:
                    lane.timer.slow *= cfg.straggler_slowdown
                    lane.timer.dscale *= cfg.straggler_slowdown
                cluster.event(EventKind.STRAGGLER, int(r), str(cfg.straggler_slowdown))
        if cfg.mtbf_s is None:
            return []
        streams = rng.spawn(len(replicas))
        return [cluster.env.process(_crash_loop(cluster, rep, cfg, s))
                for rep, s in zip(replicas, streams, strict=True)]
