"""Energy of a serving run: from the per-step power series when the engine recorded one, else
each group's busy power at its mean achieved utilization plus idle power the rest of the time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwmodels.power import StepPower, power_w
from simulator.serving.cluster_config import ReplicaGroup
from simulator.serving.plan import ServingPlan


def busy_power_w(plan: ServingPlan, lanes: pd.DataFrame, group: ReplicaGroup) -> float:
    """Per-device power while stepping, from the group's roofline utilizations over the run
    under the step-power model (linear FLOPs; weights per step + KV read)."""
    sv, dev = plan.serving, group.device
    busy = float(lanes["busy_s"].sum())
    if busy <= 0:
        return dev.idle_w
    sp = StepPower(plan.model, dev, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                   kv_dtype=sv.kv_dtype)
    # lanes of one replica overlap in time (one per PP stage); steps sum them
    util = sp.run_utilization(tokens=float(lanes["tokens"].sum()),
                              steps=float(lanes["steps"].sum()) / group.pp,
                              kv_read_tokens=float(lanes["ctx_read_tokens"].sum()))
    return power_w(dev, compute_util=util.compute_util, memory_util=util.memory_util)


def energy_j(plan: ServingPlan, out: Any, groups: tuple[ReplicaGroup, ...]) -> float:
    """From the per-step power series if recorded, else each group's mean-utilization busy
    power while stepping and idle power the rest of each replica's billed time."""
    if getattr(out, "energy_j", None) is not None:
        return float(out.energy_j)  # the engine's per-step meter (with or without power:)
    if out.power is not None and len(out.power):
        w = plan.power.bin_s  # type: ignore[union-attr]
        width = np.clip(out.duration_s - out.power["time_s"].to_numpy(), 0.0, w)
        return float((out.power["power_w"].to_numpy() * width).sum())
    joules = 0.0
    by_name = {g.name: g for g in groups}
    for name, lanes in out.lanes.groupby("group"):
        g = by_name[name]
        busy_w = busy_power_w(plan, lanes, g)
        for rep, rl in lanes.groupby("replica"):
            row = out.replicas.iloc[int(rep)]
            life = max(0.0, float(row["end_s"] - row["start_s"]))
            busy = min(life, float(rl["busy_s"].sum()) / len(rl))
            joules += g.devices_per_replica * (busy * busy_w + (life - busy) * g.device.idle_w)
    return joules
