"""Threshold autoscaling of one replica group: every interval_s a metric over the group's live
replicas - queue (outstanding requests per replica, requests waiting for any replica
included), latency (p90 TTFT of the requests that got their first token in the last interval)
or utilization (busy fraction of the last interval) - is compared with the thresholds. Above
up_threshold a replica is provisioned: it is billed from that moment and joins the pool after
instance_start_s + weight bytes per device / storage_Bps (weight load); below down_threshold
the least loaded replica stops receiving requests and is released when it has drained. After
an action nothing happens for cooldown_s. Cost follows the replica count over time
(ServingResult.replicas holds each replica's billed interval)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hwmodels.errors import ConfigError
from simulator.serving.cluster_config import AutoscaleConfig

if TYPE_CHECKING:
    from simulator.serving.engine import ReplicaSetup, ServingEngine
    from simulator.serving.replica import Replica


def provisioning_delay_s(cfg: AutoscaleConfig, setup: ReplicaSetup) -> float:
    """Instance start + every device loading its weight shard in parallel from storage."""
    return cfg.instance_start_s + setup.weight_bytes_per_device / cfg.storage_Bps


def _metric(engine: ServingEngine, live: list[Replica], cfg: AutoscaleConfig,
            last: dict[str, Any]) -> float:
    now = engine.env.now
    if cfg.metric == "queue":
        return (sum(r.outstanding for r in live) + len(engine.pending)) / max(1, len(live))
    if cfg.metric == "latency":
        first = engine.first
        window = (first > now - cfg.interval_s) & (first <= now)
        ttft = first[window] - engine.arrival[window]
        return float(np.percentile(ttft, 90)) if len(ttft) else 0.0
    busy = sum(lane.stats.busy_s for r in live for lane in r.lanes)
    lanes = sum(len(r.lanes) for r in live)
    prev = last.get("busy", busy)
    last["busy"] = busy
    return (busy - prev) / (cfg.interval_s * max(1, lanes))


def _loop(engine: ServingEngine, cfg: AutoscaleConfig, setup: ReplicaSetup):  # type: ignore[no-untyped-def]
    env = engine.env
    last_action = -np.inf
    state: dict[str, Any] = {}
    delay = provisioning_delay_s(cfg, setup)

    def boot(rep: Replica):  # type: ignore[no-untyped-def]
        yield env.timeout(delay)
        engine.activate(rep, event="scale_up")

    while True:
        yield env.timeout(cfg.interval_s)
        mine = [r for r in engine.replicas if r.group == setup.group]
        live = [r for r in mine if r.state == "active" and r.alive]
        booting = sum(r.state == "booting" for r in mine)
        value = _metric(engine, live, cfg, state)
        if env.now - last_action < cfg.cooldown_s:
            continue
        if value > cfg.up_threshold and len(live) + booting < cfg.max_replicas:
            env.process(boot(engine.provision(setup)))
            last_action = env.now
        elif (value < cfg.down_threshold and len(live) > cfg.min_replicas and not booting
              and not engine.pending):
            engine.decommission(min(live, key=lambda r: r.outstanding))
            last_action = env.now


def start(engine: ServingEngine, cfg: AutoscaleConfig) -> list[Any]:
    groups = {s.group: s for s in engine.setups}
    name = cfg.group or engine.setups[0].group
    if name not in groups:
        raise ConfigError(f"unknown group {name!r}", key="autoscale.group",
                          allowed=sorted(groups))
    return [engine.env.process(_loop(engine, cfg, groups[name]))]
