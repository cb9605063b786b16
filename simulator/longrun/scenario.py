"""Parse the `run:` section of a training scenario into a RunConfig (one-line ConfigErrors).

```yaml
run:
  duration: 54d                 # or seconds; and/or token_budget: 15.6e12
  seeds: 1                      # >1: mean and 5-95% band of ETTR
  seed: 0
  failures: {model: llama3}     # llama3 | exponential | weibull (see failures.py); false: none
  detection_s: 60s
  restart_s: 5m
  checkpoint: {interval_s: 10m, mode: async, write_s: ..., storage_write_bandwidth: 2TB/s,
               storage_read_bandwidth: 7TB/s, storage_capacity: 240PB, keep: 2,
               persistent_every: 5}                    # interval_s: auto|daly|young|duration
  stragglers: {fraction: 0.01, slowdown: 1.2, sigma: 0.1, kind: persistent, evict_after_s: 1h}
  spares: 64                    # hot-spare nodes
  on_shortage: wait             # wait | elastic
  min_dp: 1
```
"""

from __future__ import annotations

from collections.abc import Mapping

from hwmodels.errors import ConfigError
from hwmodels.units import parse_duration_s, parse_size_bytes
from simulator.longrun.checkpoint import (
    DEFAULT_PEER_BPS_PER_GPU,
    DEFAULT_SNAPSHOT_BPS_PER_GPU,
    DEFAULT_STORAGE_CAPACITY_BYTES,
    DEFAULT_STORAGE_READ_BPS,
    DEFAULT_STORAGE_WRITE_BPS,
    CheckpointMode,
    CheckpointPolicy,
    check_storage,
    shard_copy_time_s,
    write_time_s,
)
from simulator.longrun.closed_form import daly_interval_s, young_interval_s
from simulator.longrun.config import JobShape, RunConfig, ShortagePolicy
from simulator.longrun.failures import build_failure_model
from simulator.longrun.stragglers import StragglerKind, StragglerSpec

RUN_KEYS = {"duration", "token_budget", "seeds", "seed", "failures", "detection_s", "restart_s",
            "checkpoint", "stragglers", "spares", "on_shortage", "min_dp"}
CHECKPOINT_KEYS = {"interval_s", "mode", "write_s", "read_s", "snapshot_s", "memory_load_s",
                   "persistent_every", "keep", "storage_write_bandwidth",
                   "storage_read_bandwidth", "storage_capacity", "snapshot_bandwidth_per_gpu",
                   "peer_bandwidth_per_gpu"}
STRAGGLER_KEYS = {"fraction", "slowdown", "sigma", "kind", "duration_s", "evict_after_s"}
INTERVAL_RULES = ("auto", "daly", "young")


def _mapping(value: object, key: str, file: str | None) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, got {value!r}", file=file, key=key)
    return dict(value)


def _no_unknown(d: Mapping[str, object], allowed: set[str], key: str, file: str | None) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(f"unknown key '{sorted(unknown)[0]}'", file=file, key=key,
                          allowed=sorted(allowed))


def _int(value: object, key: str, file: str | None, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", file=file, key=key)
    return value


def _number(value: object, key: str, file: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, got {value!r}", file=file, key=key)
    return float(value)


def _positive_duration(value: object, key: str, file: str | None) -> float:
    seconds = parse_duration_s(value, key=key, file=file)
    if seconds <= 0:
        raise ConfigError(f"must be > 0, got {value!r}", file=file, key=key)
    return seconds


def _bandwidth(value: object, key: str, file: str | None) -> float:
    """B/s from a number or a string like '2TB/s'."""
    text = value.strip().removesuffix("/s") if isinstance(value, str) else value
    bps = parse_size_bytes(text, key=key, file=file)
    if bps <= 0:
        raise ConfigError(f"must be > 0, got {value!r}", file=file, key=key)
    return bps


def parse_checkpoint(d: Mapping[str, object], *, job: JobShape, mttf_s: float,
                     file: str | None = None) -> CheckpointPolicy:
    """CheckpointPolicy from `run.checkpoint`, times derived from state size and bandwidths."""
    _no_unknown(d, CHECKPOINT_KEYS, "run.checkpoint", file)
    mode_name = str(d.get("mode", CheckpointMode.SYNC))
    try:
        mode = CheckpointMode(mode_name)
    except ValueError:
        raise ConfigError(f"unknown checkpoint mode '{mode_name}'", file=file,
                          key="run.checkpoint.mode",
                          allowed=[m.value for m in CheckpointMode]) from None
    k = "run.checkpoint."
    write_bps = _bandwidth(d.get("storage_write_bandwidth", DEFAULT_STORAGE_WRITE_BPS),
                           k + "storage_write_bandwidth", file)
    read_bps = _bandwidth(d.get("storage_read_bandwidth", DEFAULT_STORAGE_READ_BPS),
                          k + "storage_read_bandwidth", file)
    snap_bps = _bandwidth(d.get("snapshot_bandwidth_per_gpu", DEFAULT_SNAPSHOT_BPS_PER_GPU),
                          k + "snapshot_bandwidth_per_gpu", file)
    peer_bps = _bandwidth(d.get("peer_bandwidth_per_gpu", DEFAULT_PEER_BPS_PER_GPU),
                          k + "peer_bandwidth_per_gpu", file)
    capacity = parse_size_bytes(d.get("storage_capacity", DEFAULT_STORAGE_CAPACITY_BYTES),
                                key=k + "storage_capacity", file=file)
    keep = _int(d.get("keep", 2), k + "keep", file, minimum=1)
    check_storage(job.state_bytes, keep=keep, capacity_bytes=capacity, file=file)
    state, n = job.state_bytes, job.num_gpus

    def duration(name: str, default: float) -> float:
        return parse_duration_s(d[name], key=k + name, file=file) if name in d else default

    write_s = duration("write_s", write_time_s(state, num_gpus=n, storage_write_Bps=write_bps,
                                               per_gpu_Bps=snap_bps))
    read_s = duration("read_s", write_time_s(state, num_gpus=n, storage_write_Bps=read_bps,
                                             per_gpu_Bps=snap_bps))
    snap_default = shard_copy_time_s(state, num_gpus=n, per_gpu_Bps=snap_bps)
    if mode is CheckpointMode.MULTILEVEL:  # plus the copy to the peer node
        snap_default += shard_copy_time_s(state, num_gpus=n, per_gpu_Bps=peer_bps)
    snapshot_s = duration("snapshot_s", snap_default if mode is not CheckpointMode.SYNC else 0.0)
    memory_load_s = duration("memory_load_s",
                             shard_copy_time_s(state, num_gpus=n, per_gpu_Bps=peer_bps))
    every = _int(d.get("persistent_every", 5 if mode is CheckpointMode.MULTILEVEL else 1),
                 k + "persistent_every", file, minimum=1)
    stall = write_s if mode is CheckpointMode.SYNC else snapshot_s
    interval = d.get("interval_s", "auto")
    if isinstance(interval, str) and interval in INTERVAL_RULES:
        rule = young_interval_s if interval == "young" else daly_interval_s
        interval_s = rule(stall_s=max(stall, 1e-3), mttf_s=mttf_s) if mttf_s < float("inf") \
            else 86400.0
    else:
        interval_s = _positive_duration(interval, k + "interval_s", file)
    return CheckpointPolicy(mode=mode, interval_s=interval_s, write_s=write_s, read_s=read_s,
                            snapshot_s=snapshot_s, memory_load_s=memory_load_s,
                            persistent_every=every, state_bytes=state)


def parse_stragglers(d: Mapping[str, object], file: str | None = None) -> StragglerSpec:
    """StragglerSpec from `run.stragglers`."""
    _no_unknown(d, STRAGGLER_KEYS, "run.stragglers", file)
    k = "run.stragglers."
    kind_name = str(d.get("kind", StragglerKind.PERSISTENT))
    try:
        kind = StragglerKind(kind_name)
    except ValueError:
        raise ConfigError(f"unknown straggler kind '{kind_name}'", file=file, key=k + "kind",
                          allowed=[s.value for s in StragglerKind]) from None
    evict = d.get("evict_after_s")
    try:
        return StragglerSpec(
            fraction=_number(d.get("fraction", 0.0), k + "fraction", file),
            slowdown=_number(d.get("slowdown", 1.0), k + "slowdown", file),
            sigma=_number(d.get("sigma", 0.0), k + "sigma", file),
            kind=kind,
            mean_duration_s=_positive_duration(d.get("duration_s", 600.0), k + "duration_s", file),
            evict_after_s=None if evict is None else parse_duration_s(
                evict, key=k + "evict_after_s", file=file))
    except ConfigError as err:
        if err.file or not file:
            raise
        raise ConfigError(str(err), file=file) from None


def parse_run(mapping: Mapping[str, object] | None, *, job: JobShape,
              file: str | None = None) -> RunConfig:
    """RunConfig from the `run:` mapping for `job` (checks that need the job included)."""
    d = _mapping(mapping, "run", file)
    _no_unknown(d, RUN_KEYS, "run", file)
    failures_opt = d.get("failures", {})
    failures = (None if failures_opt is False or failures_opt == "none"
                else build_failure_model(_mapping(failures_opt, "run.failures", file), file=file))
    mttf_s = (1.0 / failures.job_rate_per_s(num_gpus=job.num_gpus,
                                            gpus_per_node=job.gpus_per_node,
                                            nodes_per_leaf=job.nodes_per_leaf)
              if failures is not None else float("inf"))
    checkpoint = parse_checkpoint(_mapping(d.get("checkpoint"), "run.checkpoint", file),
                                  job=job, mttf_s=mttf_s, file=file)
    strag = d.get("stragglers")
    shortage_name = str(d.get("on_shortage", ShortagePolicy.WAIT))
    try:
        shortage = ShortagePolicy(shortage_name)
    except ValueError:
        raise ConfigError(f"unknown policy '{shortage_name}'", file=file, key="run.on_shortage",
                          allowed=[s.value for s in ShortagePolicy]) from None
    budget = d.get("token_budget")
    try:
        cfg = RunConfig(
            duration_s=(_positive_duration(d["duration"], "run.duration", file)
                        if d.get("duration") is not None else None),
            token_budget=None if budget is None else _number(budget, "run.token_budget", file),
            failures=failures,
            detection_s=parse_duration_s(d.get("detection_s", 60.0), key="run.detection_s",
                                         file=file),
            restart_s=parse_duration_s(d.get("restart_s", 300.0), key="run.restart_s",
                                       file=file),
            checkpoint=checkpoint,
            stragglers=(parse_stragglers(_mapping(strag, "run.stragglers", file), file)
                        if strag else None),
            spares=_int(d.get("spares", 0), "run.spares", file, minimum=0),
            shortage=shortage,
            min_dp=_int(d.get("min_dp", 1), "run.min_dp", file, minimum=1),
            seeds=_int(d.get("seeds", 1), "run.seeds", file, minimum=1),
            seed=_int(d.get("seed", 0), "run.seed", file, minimum=0),
        )
        cfg.check_job(job, file=file)
    except ConfigError as err:
        if err.file or not file:
            raise
        raise ConfigError(str(err), file=file) from None
    return cfg
