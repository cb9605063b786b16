"""Serving scenarios: the YAML mapping of ARCHITECTURE.md -> a ServingScenario (a ServingPlan
plus its workload spec) and the workload frame; simulator.serving.simulate runs the plan.

Keys: model, cluster{device, num_devices, devices_per_node, intra_node, inter_node},
serving{replicas, tp, pp, scheduler, max_batch_tokens, max_num_seqs, chunk_size, kv_block_size,
preemption, router, gpu_memory_utilization, dtype, kv_dtype, prefix_caching, max_model_len,
horizon_s, fast_forward, replica_groups, disaggregation, routers, migration, client_timeout_s},
workload{trace | synthetic{...}, rate_scale, window{start_s, end_s}, prefix_block_tokens},
slo{ttft_s, tpot_s}, power, failures, autoscale, seed, name, description (cluster keys:
simulator/serving/__init__ and cluster_config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.specs import DeviceSpec
from hwmodels.units import parse_duration_s
from simulator.sections import read_section
from simulator.serving.cluster_config import (
    ReplicaGroup,
    parse_autoscale,
    parse_failures,
    parse_groups,
    parse_migration,
    parse_power,
)
from simulator.serving.kinds import PreemptionMode
from simulator.serving.plan import ServingConfig, ServingPlan
from simulator.serving.router import RouterKind
from simulator.serving.schedulers import SchedulerKind
from simulator.serving.simulate import simulate_serving
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
P = TypeVar("P", bound=ServingPlan)

__all__ = ["ServingConfig", "ServingScenario", "apply_overrides", "load_serving_scenario",
           "load_workload", "parse_serving_section", "simulate_serving", "with_groups"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingScenario(ServingPlan):
    """A parsed serving scenario: the plan plus its workload spec and name."""

    workload: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""


def with_groups(scenario: P, groups: list[ReplicaGroup] | tuple[ReplicaGroup, ...]) -> P:
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
    preemption = _choice(sec, "preemption", PreemptionMode, "recompute", file)
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


def parse_serving_section(section: Mapping[str, Any], *, device: DeviceSpec,
                          num_devices: Any = None, file: str | None = None
                          ) -> tuple[ServingConfig, tuple[ReplicaGroup, ...], dict[str, Any]]:
    """A serving: section -> (ServingConfig, replica groups, disaggregation options); planners
    build typed plans from their serving keys this way. `num_devices` (cluster.num_devices)
    defaults and bounds the replica count unless groups or disaggregation size the cluster."""
    sec = _section({"serving": section}, "serving", SERVING_KEYS, file)
    sized = "replica_groups" in sec or sec.get("disaggregation") is not None
    cluster = {} if sized or num_devices is None else {"num_devices": num_devices}
    serving = _serving(sec, cluster, file)
    groups, disagg = parse_groups(sec, device=device, tp=serving.tp, pp=serving.pp,
                                  replicas=serving.replicas, file=file)
    return serving, tuple(groups), dict(disagg)


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
    serving, groups, disagg = parse_serving_section(
        serving_sec, device=device, num_devices=cluster.get("num_devices"), file=file)
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
        groups=groups, devices_per_node=per_node,
        prefix_block_tokens=workload.get("prefix_block_tokens"),
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
