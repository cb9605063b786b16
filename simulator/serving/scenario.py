"""Serving scenarios: the YAML mapping of ARCHITECTURE.md -> a ServingScenario, the workload
frame, and simulate_serving (hwmodels' step model and KV capacity -> the engine -> a result).

Keys: model, cluster{device, num_devices, devices_per_node, intra_node, inter_node},
serving{replicas, tp, pp, scheduler, max_batch_tokens, max_num_seqs, chunk_size, kv_block_size,
preemption, router, gpu_memory_utilization, dtype, kv_dtype, prefix_caching, max_model_len,
horizon_s, fast_forward, replica_groups, disaggregation, routers, migration, client_timeout_s},
workload{trace | synthetic{...}, rate_scale, window{start_s, end_s}, prefix_block_tokens},
slo{ttft_s, tpot_s}, power, failures, autoscale, seed, name, description (cluster keys:
simulator/serving/__init__ and cluster_config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device, load_link, load_model
from hwmodels.dtypes import parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.flops import active_param_count
from hwmodels.memory import kv_bytes_per_token, kv_cache_capacity, serving_weight_bytes
from hwmodels.power import power_w
from hwmodels.specs import DeviceSpec, ModelSpec
from hwmodels.step import StepCostModel
from hwmodels.units import parse_duration_s
from simulator.sections import read_section
from simulator.serving.cluster_config import (
    AutoscaleConfig,
    FailureConfig,
    MigrationConfig,
    PowerConfig,
    ReplicaGroup,
    Role,
    parse_autoscale,
    parse_failures,
    parse_groups,
    parse_migration,
    parse_power,
)
from simulator.serving.engine import ClusterOptions, ReplicaSetup, ServingEngine
from simulator.serving.metrics import ServingResult
from simulator.serving.power import CapController, StepPower
from simulator.serving.replica import LaneConfig
from simulator.serving.router import RouterKind
from simulator.serving.schedulers import SchedulerKind
from simulator.serving.steptime import step_cost_from_model
from simulator.serving.transfer import link_cost
from simulator.training.scenario import apply_overrides
from traces.readers import read_trace
from traces.stats import scale_trace, window_trace
from traces.synth import synthesize

TOP_KEYS = ("model", "cluster", "serving", "workload", "slo", "seed", "name", "description",
            "power", "failures", "autoscale")
CLUSTER_KEYS = ("device", "num_devices", "devices_per_node", "intra_node", "inter_node",
                "nics_per_node", "topology")
SERVING_KEYS = ("replicas", "tp", "pp", "scheduler", "max_batch_tokens", "max_num_seqs",
                "chunk_size", "kv_block_size", "preemption", "router", "gpu_memory_utilization",
                "dtype", "kv_dtype", "prefix_caching", "max_model_len", "horizon_s",
                "fast_forward", "disaggregation", "replica_groups", "routers", "migration",
                "client_timeout_s")
WORKLOAD_KEYS = ("trace", "synthetic", "rate_scale", "window", "prefix_block_tokens")
SLO_KEYS = ("ttft_s", "tpot_s")
PREEMPTION = ("recompute", "swap")
# vLLM's block manager keeps 1% of blocks free when admitting prompts (watermark=0.01).
WATERMARK_FRACTION = 0.01

__all__ = ["ServingConfig", "ServingScenario", "apply_overrides", "load_serving_scenario",
           "load_workload", "simulate_serving", "with_groups", "build_group_setup"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingConfig:
    """The serving: section, validated (defaults follow vLLM's)."""

    replicas: int = 1
    tp: int = 1
    pp: int = 1
    scheduler: SchedulerKind = SchedulerKind.VLLM
    max_batch_tokens: int = 8192
    max_num_seqs: int = 256
    chunk_size: int = 512
    kv_block_size: int = 16
    preemption: str = "recompute"
    router: RouterKind = RouterKind.ROUND_ROBIN
    gpu_memory_utilization: float = 0.9
    dtype: str = "bf16"
    kv_dtype: str | None = None
    prefix_caching: bool = False
    max_model_len: int | None = None
    horizon_s: float | None = None
    fast_forward: bool = True
    routers: int = 1
    client_timeout_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingScenario:
    """A parsed serving scenario."""

    model: ModelSpec
    device: DeviceSpec
    serving: ServingConfig
    workload: Mapping[str, Any]
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    seed: int = 0
    intra_node: str | None = None
    inter_node: str = "ib-ndr"
    name: str = ""
    file: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)  # power/failures/autoscale raw
    groups: tuple[ReplicaGroup, ...] = ()  # empty: serving.replicas x (tp, pp) of device
    devices_per_node: int | None = None
    disagg_link: str | None = None
    disagg_same_node: bool = False
    power: PowerConfig | None = None
    failures: FailureConfig | None = None
    autoscale: AutoscaleConfig | None = None
    migration: MigrationConfig | None = None

    def replica_groups(self) -> tuple[ReplicaGroup, ...]:
        """The groups (the homogeneous form as one group)."""
        if self.groups:
            return self.groups
        sv = self.serving
        return (ReplicaGroup(name="default", device=self.device, count=sv.replicas, tp=sv.tp,
                             pp=sv.pp),)

    @property
    def disaggregated(self) -> bool:
        return any(g.role is not Role.BOTH for g in self.replica_groups())


def with_groups(scenario: ServingScenario, groups: list[ReplicaGroup] | tuple[ReplicaGroup, ...]
                ) -> ServingScenario:
    """The scenario with other replica groups (planners: heterogeneous mixes, pools)."""
    return replace(scenario, groups=tuple(groups))


def _section(mapping: Mapping[str, Any], key: str, allowed: tuple[str, ...],
             file: str | None, *, required: bool = False) -> dict[str, Any]:
    return read_section(mapping, key, allowed, file, required=required)


def _int(sec: Mapping[str, Any], key: str, where: str, file: str | None, default: int | None,
         minimum: int = 1) -> int | None:
    value = sec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, got {value!r}", file=file,
                          key=f"{where}.{key}")
    return value


def _bool(sec: Mapping[str, Any], key: str, where: str, file: str | None, default: bool) -> bool:
    value = sec.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", file=file,
                          key=f"{where}.{key}", allowed=["true", "false"])
    return value


def _choice(sec: Mapping[str, Any], key: str, cls: type, default: str, file: str | None) -> Any:
    value = sec.get(key, default)
    try:
        return cls(str(value))
    except ValueError:
        raise ConfigError(f"unknown value {value!r}", file=file, key=f"serving.{key}",
                          allowed=[m.value for m in cls]) from None


def _positive_s(sec: Mapping[str, Any], key: str, where: str, file: str | None) -> float | None:
    if sec.get(key) is None:
        return None
    value = parse_duration_s(sec[key], key=f"{where}.{key}", file=file)
    if not value > 0:
        raise ConfigError(f"must be > 0, got {sec[key]!r}", file=file, key=f"{where}.{key}")
    return value


def _serving(sec: dict[str, Any], cluster: dict[str, Any], file: str | None) -> ServingConfig:
    w = "serving"
    tp = _int(sec, "tp", w, file, 1)
    pp = _int(sec, "pp", w, file, 1)
    num_devices = _int(cluster, "num_devices", "cluster", file, None)
    default_replicas = max(1, num_devices // (tp * pp)) if num_devices else 1
    replicas = _int(sec, "replicas", w, file, default_replicas)
    if num_devices is not None and replicas * tp * pp > num_devices:
        raise ConfigError(f"replicas x tp x pp = {replicas * tp * pp} exceeds "
                          f"cluster.num_devices {num_devices}", file=file, key="serving.replicas")
    util = sec.get("gpu_memory_utilization", 0.9)
    if isinstance(util, bool) or not isinstance(util, (int, float)) or not 0 < util <= 1:
        raise ConfigError(f"must be in (0, 1], got {util!r}", file=file,
                          key="serving.gpu_memory_utilization")
    preemption = str(sec.get("preemption", "recompute"))
    if preemption not in PREEMPTION:
        raise ConfigError(f"unknown value {preemption!r}", file=file, key="serving.preemption",
                          allowed=PREEMPTION)
    dtype = str(parse_dtype(sec.get("dtype", "bf16"), key="serving.dtype", file=file))
    kv = sec.get("kv_dtype")
    kv_dtype = None if kv is None else str(parse_dtype(kv, key="serving.kv_dtype", file=file))
    timeout = _positive_s(sec, "client_timeout_s", w, file)
    return ServingConfig(
        routers=_int(sec, "routers", w, file, 1), client_timeout_s=timeout,
        replicas=replicas, tp=tp, pp=pp,
        scheduler=_choice(sec, "scheduler", SchedulerKind, "vllm", file),
        max_batch_tokens=_int(sec, "max_batch_tokens", w, file, 8192),
        max_num_seqs=_int(sec, "max_num_seqs", w, file, 256),
        chunk_size=_int(sec, "chunk_size", w, file, 512),
        kv_block_size=_int(sec, "kv_block_size", w, file, 16),
        preemption=preemption, router=_choice(sec, "router", RouterKind, "round_robin", file),
        gpu_memory_utilization=float(util), dtype=dtype, kv_dtype=kv_dtype,
        prefix_caching=_bool(sec, "prefix_caching", w, file, False),
        max_model_len=_int(sec, "max_model_len", w, file, None),
        horizon_s=_positive_s(sec, "horizon_s", w, file),
        fast_forward=_bool(sec, "fast_forward", w, file, True))


def load_serving_scenario(mapping: Mapping[str, Any], *, file: str | None = None
                          ) -> ServingScenario:
    """Validate a serving scenario mapping; errors name the file and key."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("a scenario must be a mapping", file=file)
    for k in mapping:
        if k not in TOP_KEYS:
            raise ConfigError(f"unknown top-level key '{k}'", file=file, key=str(k),
                              allowed=list(TOP_KEYS))
    if "model" not in mapping:
        raise ConfigError("missing required key", file=file, key="model")
    model = load_model(mapping["model"], file=file)
    cluster = _section(mapping, "cluster", CLUSTER_KEYS, file, required=True)
    if "device" not in cluster:
        raise ConfigError("missing required key", file=file, key="cluster.device")
    device = load_device(str(cluster["device"]))
    serving_sec = _section(mapping, "serving", SERVING_KEYS, file)
    if "replica_groups" in serving_sec or serving_sec.get("disaggregation") is not None:
        cluster = {k: v for k, v in cluster.items() if k != "num_devices"}  # groups size it
    serving = _serving(serving_sec, cluster, file)
    groups, disagg = parse_groups(serving_sec, device=device, tp=serving.tp, pp=serving.pp,
                                  replicas=serving.replicas, file=file)
    per_node = _int(cluster, "devices_per_node", "cluster", file, None)
    workload = _section(mapping, "workload", WORKLOAD_KEYS, file, required=True)
    if ("trace" in workload) == ("synthetic" in workload):
        raise ConfigError("give exactly one of trace and synthetic", file=file, key="workload",
                          allowed=["trace", "synthetic"])
    slo = _section(mapping, "slo", SLO_KEYS, file)
    seed = mapping.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"expected an integer >= 0, got {seed!r}", file=file, key="seed")
    return ServingScenario(
        model=model, device=device, serving=serving, workload=workload,
        slo_ttft_s=_positive_s(slo, "ttft_s", "slo", file),
        slo_tpot_s=_positive_s(slo, "tpot_s", "slo", file), seed=seed,
        intra_node=cluster.get("intra_node"), inter_node=cluster.get("inter_node", "ib-ndr"),
        name=str(mapping.get("name", "")), file=file,
        raw={k: mapping[k] for k in ("power", "failures", "autoscale") if k in mapping},
        groups=groups, devices_per_node=per_node,
        disagg_link=None if disagg.get("link") is None else str(disagg["link"]),
        disagg_same_node=bool(disagg.get("same_node", False)),
        power=parse_power(mapping.get("power"), devices_per_node=per_node
                          or device.devices_per_node, file=file),
        failures=parse_failures(mapping.get("failures"), file=file),
        autoscale=parse_autoscale(mapping.get("autoscale"), file=file),
        migration=parse_migration(serving_sec.get("migration"), file=file))


def load_workload(scenario: ServingScenario, *, trace: str | Path | None = None,
                  seed: int | None = None) -> pd.DataFrame:
    """The scenario's request frame: its trace (a path relative to the scenario file, a bundled
    sample name, or `trace` overriding it) or its synthetic spec, then window and rate_scale."""
    wl, file = scenario.workload, scenario.file
    if trace is not None or "trace" in wl:
        ref = str(trace if trace is not None else wl["trace"])
        if trace is None and file and not Path(ref).is_absolute() \
                and (Path(file).parent / ref).exists():
            ref = str(Path(file).parent / ref)
        df = read_trace(ref)
    else:
        df = synthesize(wl["synthetic"], seed=scenario.seed if seed is None else seed, file=file)
    window = wl.get("window")
    if window is not None:
        if isinstance(window, Mapping):
            start, end = window.get("start_s", 0), window.get("end_s")
        elif isinstance(window, (list, tuple)) and len(window) == 2:
            start, end = window
        else:
            raise ConfigError(f"expected {{start_s, end_s}} or [start, end], got {window!r}",
                              file=file, key="workload.window")
        start_s = parse_duration_s(start, key="workload.window", file=file)
        end_s = None if end is None else parse_duration_s(end, key="workload.window", file=file)
        df = window_trace(df, start_s, end_s)
    if wl.get("rate_scale") is not None:
        df = scale_trace(df, wl["rate_scale"])
    return df


def _busy_power_w(scenario: ServingScenario, lanes: pd.DataFrame,
                  group: ReplicaGroup | None = None) -> float:
    """Per-device power while stepping, from mean achieved compute and memory utilization:
    FLOPs ~ 2 x active params per token; bytes ~ weights per step + KV read."""
    sv, model = scenario.serving, scenario.model
    g = group or scenario.replica_groups()[0]
    dev, tp, pp = g.device, g.tp, g.pp
    busy = float(lanes["busy_s"].sum())
    if busy <= 0:
        return dev.idle_w
    devices = tp * pp
    flops = 2.0 * active_param_count(model) * float(lanes["tokens"].sum())
    kv_dt = sv.kv_dtype or ("bf16" if sv.dtype in ("int4", "int8") else sv.dtype)
    weight_bytes = serving_weight_bytes(model, sv.dtype, tp=tp, pp=pp) * devices
    nbytes = (weight_bytes * float(lanes["steps"].sum()) / pp
              + kv_bytes_per_token(model, kv_dt) * float(lanes["ctx_read_tokens"].sum()))
    # lanes of one replica overlap in time; busy_s sums them, devices share the work
    time_dev = busy / pp
    compute_util = min(1.0, flops / (time_dev * devices * dev.peak(parse_dtype(sv.dtype))))
    memory_util = min(1.0, nbytes / (time_dev * devices * dev.memory_bw_Bps))
    return power_w(dev, compute_util=compute_util, memory_util=memory_util)


# Reference decode batch for capacity-aware routing: 64 sequences at 1024 context tokens.
CAPACITY_BATCH, CAPACITY_CONTEXT = 64, 1024


def build_group_setup(scenario: ServingScenario, group: ReplicaGroup) -> ReplicaSetup:
    """hwmodels -> the step cost, KV blocks, limits, price, power model of one group's
    replicas."""
    sv, model, device = scenario.serving, scenario.model, group.device
    cost = StepCostModel(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                         kv_dtype=sv.kv_dtype, intra_link=scenario.intra_node,
                         inter_link=scenario.inter_node)
    cap = kv_cache_capacity(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                            kv_dtype=sv.kv_dtype,
                            gpu_memory_utilization=sv.gpu_memory_utilization,
                            block_size=sv.kv_block_size)
    host = load_link(device.host_link)
    block_bytes = cap.bytes / cap.blocks  # per device; every device swaps its share at once
    lane = LaneConfig(total_blocks=cap.blocks, block_size=sv.kv_block_size,
                      max_num_seqs=sv.max_num_seqs, max_batch_tokens=sv.max_batch_tokens,
                      chunk_size=sv.chunk_size,
                      max_model_len=sv.max_model_len or model.max_seq_len,
                      preemption=sv.preemption,
                      swap_s_per_block=block_bytes / (host.bandwidth_Bps * host.efficiency),
                      watermark_blocks=int(WATERMARK_FRACTION * cap.blocks),
                      fast_forward=sv.fast_forward, client_timeout_s=sv.client_timeout_s)
    kv_dt = sv.kv_dtype or ("bf16" if sv.dtype in ("int4", "int8") else sv.dtype)
    ref = cost.time_s(0, 0, CAPACITY_BATCH, CAPACITY_BATCH * CAPACITY_CONTEXT)
    return ReplicaSetup(
        step_cost=step_cost_from_model(cost, pp=group.pp), lane=lane,
        scheduler=str(sv.scheduler), pp=group.pp, devices=group.devices_per_replica,
        prefix_caching=sv.prefix_caching, name=f"{model.name}@{device.name}",
        group=group.name, role=str(group.role), price_usd_per_hour=group.price,
        slowdown=group.slowdown, capacity=CAPACITY_BATCH / (ref * group.slowdown),
        idle_w=device.idle_w,
        step_power=StepPower(model, device, tp=group.tp, pp=group.pp, dtype=sv.dtype,
                             kv_dtype=sv.kv_dtype),
        kv_bytes_per_token=kv_bytes_per_token(model, kv_dt),
        weight_bytes_per_device=serving_weight_bytes(model, sv.dtype, tp=group.tp,
                                                     pp=group.pp))


def build_replica_setup(scenario: ServingScenario) -> ReplicaSetup:
    """hwmodels -> one replica's step cost, KV blocks and limits (the first group)."""
    return build_group_setup(scenario, scenario.replica_groups()[0])


def _cap_w(scenario: ServingScenario, group: ReplicaGroup) -> float | None:
    """The static cap (W per device) for a group, if power.cap_* targets it."""
    pc = scenario.power
    if pc is None or (pc.cap_fraction is None and pc.cap_w is None):
        return None
    if pc.cap_targets not in ("all", str(group.role), group.name):
        return None
    watts = pc.cap_w if pc.cap_w is not None else pc.cap_fraction * group.device.tdp_w  # type: ignore
    if not watts > group.device.idle_w:
        raise ConfigError(f"cap {watts:g} W must exceed {group.device.name}'s idle "
                          f"{group.device.idle_w:g} W", file=scenario.file, key="power.cap_w")
    return None if watts >= group.device.tdp_w else watts


def cluster_options(scenario: ServingScenario, groups: tuple[ReplicaGroup, ...], *,
                    cap_controller: Any = None) -> ClusterOptions:
    """The engine's cluster options from the scenario's sections."""
    sv = scenario.serving
    transfer = None
    if scenario.disaggregated or scenario.migration is not None \
            or sv.router == RouterKind.LLUMNIX:
        dev = groups[0].device
        per_node = scenario.devices_per_node or dev.devices_per_node
        intra = link_cost(dev, intra_node=scenario.disagg_link or scenario.intra_node,
                          inter_node=scenario.inter_node, cross_node=False,
                          devices_per_node=per_node)
        inter = link_cost(dev, intra_node=scenario.intra_node,
                          inter_node=scenario.disagg_link or scenario.inter_node,
                          cross_node=True, devices_per_node=per_node)
        transfer = (intra, inter, per_node, scenario.disagg_same_node)
    migration = scenario.migration
    if migration is None and sv.router == RouterKind.LLUMNIX:
        migration = MigrationConfig()
    factory = None
    pc = scenario.power
    if cap_controller is not None:
        factory = cap_controller if callable(cap_controller) else (lambda: cap_controller)
    elif pc is not None and pc.controller is not None:
        ctl_cfg = pc.controller
        factory = lambda: CapController(config=ctl_cfg)  # noqa: E731
    caps = {g.name: c for g in groups if (c := _cap_w(scenario, g)) is not None}
    decode_router = ("least_loaded" if sv.router in (RouterKind.PREFIX_AFFINITY,
                                                     RouterKind.SESSION_AFFINITY)
                     else str(sv.router))
    return ClusterOptions(routers=sv.routers, decode_router=decode_router, transfer=transfer,
                          power=pc, cap_w=caps, cap_controller=factory,
                          failures=scenario.failures, autoscale=scenario.autoscale,
                          migration=migration)


def _energy_j(scenario: ServingScenario, out: Any, groups: tuple[ReplicaGroup, ...]) -> float:
    """From the per-step power series if recorded, else each group's mean-utilization busy
    power while stepping and idle power the rest of each replica's billed time."""
    if out.power is not None and len(out.power):
        w = scenario.power.bin_s  # type: ignore[union-attr]
        width = np.clip(out.duration_s - out.power["time_s"].to_numpy(), 0.0, w)
        return float((out.power["power_w"].to_numpy() * width).sum())
    joules = 0.0
    by_name = {g.name: g for g in groups}
    for name, lanes in out.lanes.groupby("group"):
        g = by_name[name]
        busy_w = _busy_power_w(scenario, lanes, g)
        for rep, rl in lanes.groupby("replica"):
            row = out.replicas.iloc[int(rep)]
            life = max(0.0, float(row["end_s"] - row["start_s"]))
            busy = min(life, float(rl["busy_s"].sum()) / len(rl))
            joules += g.devices_per_replica * (busy * busy_w + (life - busy) * g.device.idle_w)
    return joules


def simulate_serving(scenario: ServingScenario, requests: pd.DataFrame, *,
                     seed: int | None = None, progress: Callable[[float], None] | None = None,
                     setup: ReplicaSetup | None = None, cap_controller: Any = None
                     ) -> ServingResult:
    """Replay `requests` on the scenario's replicas; `setup` overrides the hwmodels-built
    replica of a homogeneous scenario (tests inject step costs this way); `cap_controller`
    (a CapController-like object, or a factory returning one per row) drives power capping."""
    sv = scenario.serving
    groups = scenario.replica_groups()
    setups: list[ReplicaSetup] = []
    for g in groups:
        built = setup if setup is not None and len(groups) == 1 else build_group_setup(scenario, g)
        setups += [built] * g.count
    if not setups:
        raise ConfigError("no replicas: every group has count 0", file=scenario.file,
                          key="serving.replica_groups")
    block_tokens = scenario.workload.get("prefix_block_tokens")
    engine = ServingEngine(requests, setups, router=str(sv.router),
                           seed=scenario.seed if seed is None else seed,
                           horizon_s=sv.horizon_s, prefix_block_tokens=block_tokens,
                           progress=progress,
                           cluster=cluster_options(scenario, groups,
                                                   cap_controller=cap_controller))
    out = engine.run()
    return ServingResult(records=out.records, timeseries=out.timeseries, lanes=out.lanes,
                         duration_s=out.duration_s, device=groups[0].device,
                         slo_ttft_s=scenario.slo_ttft_s, slo_tpot_s=scenario.slo_tpot_s,
                         prefix_hit_rate=out.prefix_hit_rate,
                         busy_power_w=_busy_power_w(scenario, out.lanes[
                             out.lanes["group"] == groups[0].name], groups[0]),
                         replicas=out.replicas, power=out.power, events=out.events,
                         energy_j=_energy_j(scenario, out, groups),
                         migrations=engine.migrations,
                         notes={"kv_blocks_per_replica": setups[0].lane.total_blocks,
                                "energy": ("per-step roofline power (hwmodels.power)"
                                           if out.power is not None else
                                           "hwmodels.power at mean achieved utilization")})
