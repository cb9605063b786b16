"""Training scenarios: the YAML mapping of ARCHITECTURE.md -> specs, and `--set key=value`.

Keys: model (catalog name, path to an HF config.json/YAML, or inline HF keys),
cluster{device, num_devices, devices_per_node, intra_node, inter_node, nics_per_node, topology,
oversubscription, nodes_per_leaf}, training{seq_len, global_batch, micro_batch, dtype},
parallelism{tp, pp, vpp, cp, ep, dp (int or auto), zero, sequence_parallel, recompute,
schedule, cp_mode, fsdp_impl, overlap_grad_reduce, overlap_param_gather, overlap_tp_comm,
rank_order},
optional run{...} (kept raw for the long-run simulator), name, description.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    CPMode,
    FSDPImpl,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
)
from hwmodels.specs import ClusterSpec, ModelSpec
from simulator.sections import read_section

TOP_KEYS = ("model", "cluster", "training", "parallelism", "run", "name", "description")
CLUSTER_KEYS = ("device", "num_devices", "devices_per_node", "intra_node", "inter_node",
                "nics_per_node", "topology", "oversubscription", "nodes_per_leaf")
TRAINING_KEYS = ("seq_len", "global_batch", "micro_batch", "dtype")
PARALLEL_KEYS = ("tp", "pp", "vpp", "cp", "ep", "dp", "zero", "sequence_parallel", "recompute",
                 "schedule", "cp_mode", "fsdp_impl", "overlap_grad_reduce",
                 "overlap_param_gather", "overlap_tp_comm", "rank_order")
_BOOL_KEYS = ("sequence_parallel", "overlap_grad_reduce", "overlap_param_gather",
              "overlap_tp_comm")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingScenario:
    """A parsed training scenario: specs for simulate_iteration plus the raw run: section."""

    model: ModelSpec
    cluster: ClusterSpec
    training: TrainingConfig
    parallel: ParallelConfig
    run_section_raw: Mapping[str, Any] | None = None
    name: str = ""


def _section(mapping: Mapping[str, Any], key: str, allowed: Sequence[str], file: str | None,
             *, required: bool = True) -> dict[str, Any]:
    return read_section(mapping, key, allowed, file, required=required)


def _int(section: dict[str, Any], sec: str, key: str, file: str | None,
         default: int | None = None, minimum: int = 1) -> int:
    value = section.get(key, default)
    if value is None:
        raise ConfigError("missing required key", file=file, key=f"{sec}.{key}")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, got {value!r}", file=file,
                          key=f"{sec}.{key}")
    return value


def _bool(section: dict[str, Any], key: str, file: str | None, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", file=file,
                          key=f"parallelism.{key}", allowed=["true", "false"])
    return value


def _enum(section: dict[str, Any], key: str, enum_cls: type, default: str,
          file: str | None) -> Any:
    value = section.get(key, default)
    try:
        return enum_cls(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown value '{value}'", file=file, key=f"parallelism.{key}",
                          allowed=[e.value for e in enum_cls]) from None


def _cluster(section: dict[str, Any], file: str | None) -> ClusterSpec:
    if "device" not in section:
        raise ConfigError("missing required key", file=file, key="cluster.device")
    kwargs: dict[str, Any] = {}
    for key in ("devices_per_node", "nics_per_node", "nodes_per_leaf"):
        if key in section:
            kwargs[key] = _int(section, "cluster", key, file,
                               minimum=0 if key == "nics_per_node" else 1)
    for key in ("intra_node", "inter_node", "topology"):
        if key in section:
            kwargs[key] = str(section[key])
    if "oversubscription" in section:
        value = section["oversubscription"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
            raise ConfigError(f"expected a number >= 1, got {value!r}", file=file,
                              key="cluster.oversubscription")
        kwargs["oversubscription"] = float(value)
    try:
        return build_cluster(str(section["device"]), _int(section, "cluster", "num_devices", file),
                             **kwargs)
    except ConfigError as err:
        if err.file:
            raise
        raise ConfigError(str(err), file=file) from None


def _parallel(section: dict[str, Any], cluster: ClusterSpec, file: str | None) -> ParallelConfig:
    sizes = {k: _int(section, "parallelism", k, file, default=1)
             for k in ("tp", "pp", "vpp", "cp", "ep")}
    dp_raw = section.get("dp", "auto")
    if dp_raw == "auto":
        denom = sizes["tp"] * sizes["pp"] * sizes["cp"]
        if cluster.num_devices % denom:
            raise ConfigError(f"dp: auto needs num_devices {cluster.num_devices} divisible by "
                              f"tp*pp*cp = {denom}", file=file, key="parallelism.dp")
        dp = cluster.num_devices // denom
    else:
        dp = _int(section, "parallelism", "dp", file)
    zero = section.get("zero", 0)
    if zero not in (0, 1, 2, 3) or isinstance(zero, bool):
        raise ConfigError(f"unknown ZeRO stage {zero!r}", file=file, key="parallelism.zero",
                          allowed=[0, 1, 2, 3])
    schedule = _enum(section, "schedule", PipelineSchedule,
                     "interleaved" if sizes["vpp"] > 1 else "1f1b", file)
    rank_order = section.get("rank_order", "tp-cp-ep-dp-pp")
    if isinstance(rank_order, str):
        rank_order = tuple(x.strip() for x in rank_order.replace(",", "-").split("-"))
    elif isinstance(rank_order, list):
        rank_order = tuple(str(x) for x in rank_order)
    else:
        raise ConfigError(f"expected a list or 'tp-cp-ep-dp-pp', got {rank_order!r}", file=file,
                          key="parallelism.rank_order")
    try:
        return ParallelConfig(
            dp=dp, zero=zero, schedule=schedule, rank_order=rank_order,
            recompute=_enum(section, "recompute", Recompute, "none", file),
            cp_mode=_enum(section, "cp_mode", CPMode, "ring", file),
            fsdp_impl=_enum(section, "fsdp_impl", FSDPImpl, "nccl", file),
            **sizes, **{k: _bool(section, k, file, k != "sequence_parallel" and
                                 k != "overlap_tp_comm") for k in _BOOL_KEYS})
    except ConfigError as err:
        raise ConfigError(str(err), file=file) from None


def load_training_scenario(mapping: Mapping[str, Any], *, file: str | None = None
                           ) -> TrainingScenario:
    """Specs from a scenario mapping; bad keys/values raise ConfigError naming file and key."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("scenario must be a mapping", file=file)
    for k in mapping:
        if k not in TOP_KEYS:
            raise ConfigError(f"unknown key '{k}'", file=file, key=str(k), allowed=list(TOP_KEYS))
    if "model" not in mapping:
        raise ConfigError("missing required key", file=file, key="model")
    try:
        model = load_model(mapping["model"], file=file)
    except ConfigError as err:
        if err.file:
            raise
        raise ConfigError(str(err), file=file, key="model") from None
    cluster = _cluster(_section(mapping, "cluster", CLUSTER_KEYS, file), file)
    tsec = _section(mapping, "training", TRAINING_KEYS, file)
    try:
        training = TrainingConfig(
            seq_len=_int(tsec, "training", "seq_len", file),
            global_batch=_int(tsec, "training", "global_batch", file),
            micro_batch=_int(tsec, "training", "micro_batch", file, default=1),
            dtype=parse_dtype(tsec.get("dtype", "bf16"), key="training.dtype", file=file))
    except ConfigError as err:
        if err.file:
            raise
        raise ConfigError(str(err), file=file) from None
    parallel = _parallel(_section(mapping, "parallelism", PARALLEL_KEYS, file,
                                  required=False), cluster, file)
    run = mapping.get("run")
    if run is not None and not isinstance(run, Mapping):
        raise ConfigError("expected a mapping", file=file, key="run")
    return TrainingScenario(model=model, cluster=cluster, training=training, parallel=parallel,
                            run_section_raw=run, name=str(mapping.get("name", "")))


def apply_overrides(mapping: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `mapping` with each 'a.b.c=value' set (value parsed as YAML: 4, true, 1f1b)."""
    out = copy.deepcopy(dict(mapping))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got '{item}'", key="--set")
        path, _, text = item.partition("=")
        keys = [k.strip() for k in path.strip().split(".") if k.strip()]
        if not keys:
            raise ConfigError(f"empty key in '{item}'", key="--set")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node: dict[str, Any] = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"'{k}' is not a section", key=f"--set {path}")
            node = child
        node[keys[-1]] = value
    return out
