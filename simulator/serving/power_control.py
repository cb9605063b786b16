"""The power-capping control loop: every interval_s each row's power over the last interval
(busy energy from the meter + idle power of its devices) goes to that row's controller
(power.CapController or any object with decide(now, row, row_power_w)); a new cap level takes
effect latency_s later on the row's targeted replicas (all | prefill | decode | a group)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from simulator.serving.cluster_config import CapTarget, PowerConfig
from simulator.serving.hooks import Cluster, EngineExtension
from simulator.serving.kinds import ReplicaState
from simulator.serving.records import EventKind

if TYPE_CHECKING:
    from simulator.serving.power import CapController


def rows_of(cluster: Cluster, cfg: PowerConfig) -> dict[int, list[int]]:
    """Row -> replica indices (replicas packed onto servers in index order)."""
    rows: dict[int, list[int]] = {}
    offset = 0
    for rep in cluster.replicas:
        row = offset // cfg.devices_per_server // cfg.servers_per_row
        offset += rep.devices
        rows.setdefault(row, []).append(rep.index)
    return rows


def _targeted(cluster: Cluster, r: int, targets: str) -> bool:
    rep = cluster.replicas[r]
    return targets in (CapTarget.ALL, rep.role, rep.group)


def _apply(cluster: Cluster, members: list[int], fraction: float, targets: str,
           delay_s: float, row: int) -> Generator[simpy.Event, Any, None]:
    yield cluster.env.timeout(delay_s)
    for r in members:
        if _targeted(cluster, r, targets):
            rep = cluster.replicas[r]
            rep.cap_fraction = fraction
            for lane in rep.lanes:
                if lane.power is not None:
                    lane.power.set_cap(fraction)
    cluster.event(EventKind.CAP, row, f"{fraction:g}")


def _loop(cluster: Cluster, cfg: PowerConfig,
          factory: Callable[[], CapController]) -> Generator[simpy.Event, Any, None]:
    env, meter = cluster.env, cluster.meter
    ctl_cfg = cfg.controller
    interval = ctl_cfg.interval_s if ctl_cfg is not None else 1.0
    latency = ctl_cfg.latency_s if ctl_cfg is not None else 0.0
    targets = ctl_cfg.targets if ctl_cfg is not None else CapTarget.ALL
    controllers: dict[int, Any] = {}
    last_j: dict[int, float] = {}
    last_b: dict[int, float] = {}
    while True:
        yield env.timeout(interval)
        for row, members in rows_of(cluster, cfg).items():
            watts = 0.0
            for r in members:
                rep = cluster.replicas[r]
                if rep.state is ReplicaState.RETIRED:
                    continue
                j = meter.total_j.get(r, 0.0)  # type: ignore[union-attr]
                b = meter.total_busy_s.get(r, 0.0)  # type: ignore[union-attr]
                dj, db = j - last_j.get(r, 0.0), b - last_b.get(r, 0.0)
                last_j[r], last_b[r] = j, b
                idle_s = max(0.0, interval - db / len(rep.lanes))
                watts += dj / interval + idle_s / interval * rep.devices \
                    * cluster.setup_of[r].idle_w
            ctl = controllers.get(row)
            if ctl is None:
                ctl = controllers[row] = factory()
            level = ctl.decide(env.now, row, watts)
            if level is not None:
                env.process(_apply(cluster, members, level, targets, latency, row))


class PowerCapping(EngineExtension):
    """Per-row cap controllers (one from `factory` per row) driven by the power meter."""

    def __init__(self, cfg: PowerConfig, factory: Callable[[], CapController]) -> None:
        self.cfg = cfg
        self.factory = factory

    def start(self, cluster: Cluster) -> list[simpy.Process]:
        return [cluster.env.process(_loop(cluster, self.cfg, self.factory))]
