"""Energy of a serving run: from the per-step power series when the engine recorded one, else
each group's busy power at its mean achieved utilization plus idle power the rest of the time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwmodels.dtypes import kv_cache_dtype, parse_dtype
from hwmodels.flops import active_param_count
from hwmodels.memory import kv_bytes_per_token, serving_weight_bytes
from hwmodels.power import power_w
from simulator.serving.cluster_config import ReplicaGroup
from simulator.serving.plan import ServingPlan


def busy_power_w(plan: ServingPlan, lanes: pd.DataFrame, group: ReplicaGroup) -> float:
    """Per-device power while stepping, from mean achieved compute and memory utilization:
    FLOPs ~ 2 x active params per token; bytes ~ weights per step + KV read."""
    sv, model = plan.serving, plan.model
    dev, tp, pp = group.device, group.tp, group.pp
    busy = float(lanes["busy_s"].sum())
    if busy <= 0:
        return dev.idle_w
    devices = tp * pp
    flops = 2.0 * active_param_count(model) * float(lanes["tokens"].sum())
    kv_dt = kv_cache_dtype(sv.dtype, sv.kv_dtype)
    weight_bytes = serving_weight_bytes(model, sv.dtype, tp=tp, pp=pp) * devices
    nbytes = (weight_bytes * float(lanes["steps"].sum()) / pp
              + kv_bytes_per_token(model, kv_dt) * float(lanes["ctx_read_tokens"].sum()))
    # lanes of one replica overlap in time; busy_s sums them, devices share the work
    time_dev = busy / pp
    compute_util = min(1.0, flops / (time_dev * devices * dev.peak(parse_dtype(sv.dtype))))
    memory_util = min(1.0, nbytes / (time_dev * devices * dev.memory_bw_Bps))
    return power_w(dev, compute_util=compute_util, memory_util=memory_util)


def energy_j(plan: ServingPlan, out: Any, groups: tuple[ReplicaGroup, ...]) -> float:
    """From the per-step power series if recorded, else each group's mean-utilization busy
    power while stepping and idle power the rest of each replica's billed time."""
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
