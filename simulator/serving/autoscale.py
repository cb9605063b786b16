"""Threshold autoscaling of one replica group: every interval_s a metric over the group's live
replicas - queue (outstanding requests per replica, requests waiting for any replica
included), latency (p90 TTFT of the requests that got their first token in the last interval)
(requests still waiting count with their age) or utilization (busy fraction of the last interval) - is compared with the thresholds. Above
up_threshold a replica is provisioned: it is billed from that moment and joins the pool after
instance_start_s + weight bytes per device / storage_Bps (weight load); below down_threshold
the least loaded replica stops receiving requests and is released when it has drained. After
an action nothing happens for cooldown_s. A group with no replica live or booting while
requests wait provisions one at once (scale from zero). Cost follows the replica count over time
(ServingResult.replicas holds each replica's billed interval)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from hwmodels.errors import ConfigError
from simulator.serving.cluster_config import AutoscaleConfig, AutoscaleMetric
from simulator.serving.hooks import Cluster, EngineExtension
from simulator.serving.kinds import ReplicaState
from simulator.serving.records import EventKind, status_code
from simulator.serving.request import Status

RUNNING_CODE = status_code(Status.RUNNING)

if TYPE_CHECKING:
    from simulator.serving.replica import Replica
    from simulator.serving.replica_setup import ReplicaSetup


def provisioning_delay_s(cfg: AutoscaleConfig, setup: ReplicaSetup) -> float:
    """Instance start + every device loading its weight shard in parallel from storage."""
    return cfg.instance_start_s + setup.weight_bytes_per_device / cfg.storage_Bps


def _metric(cluster: Cluster, live: list[Replica], cfg: AutoscaleConfig,
            last: dict[str, Any]) -> float:
    now = cluster.env.now
    if cfg.metric is AutoscaleMetric.QUEUE:
        return (sum(r.outstanding for r in live) + cluster.unrouted) / max(1, len(live))
    if cfg.metric is AutoscaleMetric.LATENCY:
        log = cluster.requests
        first = log.first_token_s
        window = (first > now - cfg.interval_s) & (first <= now)
        ttft = first[window] - log.arrival_s[window]
        # a request still waiting for its first token has a TTFT of at least its age: without
        # it a group scaled to zero (or stuck) reads 0 s forever and never scales up
        waiting = np.isnan(first) & (log.arrival_s <= now) & (log.status == RUNNING_CODE)
        ttft = np.concatenate([ttft, now - log.arrival_s[waiting]])
        return float(np.percentile(ttft, 90)) if len(ttft) else 0.0
    busy = sum(lane.stats.busy_s for r in live for lane in r.lanes)
    lanes = sum(len(r.lanes) for r in live)
    prev = last.get("busy", busy)
    last["busy"] = busy
    return (busy - prev) / (cfg.interval_s * max(1, lanes))


def _loop(cluster: Cluster, cfg: AutoscaleConfig,
          setup: ReplicaSetup) -> Generator[simpy.Event, Any, None]:
    env = cluster.env
    last_action = -np.inf
    state: dict[str, Any] = {}
    delay = provisioning_delay_s(cfg, setup)

    def boot(rep: Replica) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(delay)
        cluster.activate(rep, event=EventKind.SCALE_UP)

    while True:
        yield env.timeout(cfg.interval_s)
        mine = [r for r in cluster.replicas if r.group == setup.group]
        live = [r for r in mine if r.state is ReplicaState.ACTIVE and r.alive]
        booting = sum(r.state is ReplicaState.BOOTING for r in mine)
        value = _metric(cluster, live, cfg, state)
        if not live and not booting and cluster.unrouted and cfg.max_replicas > 0:
            # scale from zero on any waiting request (Knative's activator, KEDA's
            # activation): no threshold or cooldown may leave them waiting forever
            env.process(boot(cluster.provision(setup)))
            last_action = env.now
            continue
        if env.now - last_action < cfg.cooldown_s:
            continue
        if value > cfg.up_threshold and len(live) + booting < cfg.max_replicas:
            env.process(boot(cluster.provision(setup)))
            last_action = env.now
        elif (value < cfg.down_threshold and len(live) > cfg.min_replicas and not booting
              and not cluster.unrouted):
            cluster.decommission(min(live, key=lambda r: r.outstanding))
            last_action = env.now


class Autoscaler(EngineExtension):
    """Threshold autoscaling of one replica group (cfg.group, else the first group)."""

    def __init__(self, cfg: AutoscaleConfig) -> None:
        self.cfg = cfg

    def start(self, cluster: Cluster) -> list[simpy.Process]:
        cfg = self.cfg
        groups = {s.group: s for s in cluster.setups}
        name = cfg.group or cluster.setups[0].group
        if name not in groups:
            raise ConfigError(f"unknown group {name!r}", key="autoscale.group",
                              allowed=sorted(groups))
        return [cluster.env.process(_loop(cluster, cfg, groups[name]))]
