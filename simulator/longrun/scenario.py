"""The `run:` section of a training scenario: its schema (RunSpec) and its resolution for a job.

```yaml
run:
  duration: 54d                 # or seconds; and/or token_budget: 15.6e12
  seeds: 1                      # >1: mean and 5-95% band of ETTR
  seed: 0
  failures: {model: llama3}     # llama3 | exponential | weibull (failure_models/); false: none
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

The scenario loader reads the section into a RunSpec up front (simulator.schema); checkpoint
times and Young/Daly intervals need the job (state bytes, MTTF), so `RunSpec.resolve(job)`
makes the RunConfig the engine runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
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
from simulator.longrun.checkpoint_modes import CHECKPOINT_MODES
from simulator.longrun.closed_form import daly_interval_s, young_interval_s
from simulator.longrun.config import JobShape, RunConfig, RunSettings
from simulator.longrun.failure_models import FailuresSpec, build_failure_model
from simulator.longrun.spot import SpotSpec, lossy_rate_per_s
from simulator.schema import Bytes, BytesPerSecond, Seconds, read_section, with_file

CK = "run.checkpoint"


class IntervalRule(StrEnum):
    """`run.checkpoint.interval_s` by rule instead of a duration (auto = daly)."""

    AUTO = "auto"
    DALY = "daly"
    YOUNG = "young"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSpec:
    """`run.checkpoint` as written: times left out are derived from state size and bandwidth."""

    interval_s: IntervalRule | Seconds = IntervalRule.AUTO
    mode: CheckpointMode = CheckpointMode.SYNC
    write_s: Seconds | None = None
    read_s: Seconds | None = None
    snapshot_s: Seconds | None = None
    memory_load_s: Seconds | None = None
    persistent_every: int | None = None  # None: the mode's default (multilevel 5, else 1)
    keep: int = 2
    storage_write_bandwidth: BytesPerSecond = DEFAULT_STORAGE_WRITE_BPS
    storage_read_bandwidth: BytesPerSecond = DEFAULT_STORAGE_READ_BPS
    storage_capacity: Bytes = DEFAULT_STORAGE_CAPACITY_BYTES
    snapshot_bandwidth_per_gpu: BytesPerSecond = DEFAULT_SNAPSHOT_BPS_PER_GPU
    peer_bandwidth_per_gpu: BytesPerSecond = DEFAULT_PEER_BPS_PER_GPU

    def __post_init__(self) -> None:
        if not isinstance(self.interval_s, IntervalRule) and not (
                self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ConfigError(f"must be > 0, got {self.interval_s!r}", key=f"{CK}.interval_s")
        for name in ("storage_write_bandwidth", "storage_read_bandwidth",
                     "snapshot_bandwidth_per_gpu", "peer_bandwidth_per_gpu"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)!r}",
                                  key=f"{CK}.{name}")
        for name in ("keep", "persistent_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"must be >= 1, got {value}", key=f"{CK}.{name}")

    def policy(self, job: JobShape, *, mttf_s: float, file: str | None = None
               ) -> CheckpointPolicy:
        """The CheckpointPolicy for `job`; auto/daly/young intervals from the job's MTTF."""
        check_storage(job.state_bytes, keep=self.keep, capacity_bytes=self.storage_capacity,
                      file=file)
        state, n = job.state_bytes, job.num_gpus
        snap_bps, peer_bps = self.snapshot_bandwidth_per_gpu, self.peer_bandwidth_per_gpu
        rules = CHECKPOINT_MODES.get(self.mode)

        def given(value: float | None, default: float) -> float:
            return default if value is None else value

        write_s = given(self.write_s, write_time_s(
            state, num_gpus=n, storage_write_Bps=self.storage_write_bandwidth,
            per_gpu_Bps=snap_bps))
        read_s = given(self.read_s, write_time_s(
            state, num_gpus=n, storage_write_Bps=self.storage_read_bandwidth,
            per_gpu_Bps=snap_bps))
        snapshot_s = given(self.snapshot_s, rules.snapshot_s(state, n, snap_bps, peer_bps))
        memory_load_s = given(self.memory_load_s,
                              shard_copy_time_s(state, num_gpus=n, per_gpu_Bps=peer_bps))
        stall = write_s if rules.blocking_write else snapshot_s
        if isinstance(self.interval_s, IntervalRule):
            rule = young_interval_s if self.interval_s is IntervalRule.YOUNG else daly_interval_s
            interval_s = (rule(stall_s=max(stall, 1e-3), mttf_s=mttf_s)
                          if mttf_s < float("inf") else 86400.0)
        else:
            interval_s = self.interval_s
        try:
            return CheckpointPolicy(
                mode=self.mode, interval_s=interval_s, write_s=write_s, read_s=read_s,
                snapshot_s=snapshot_s, memory_load_s=memory_load_s,
                persistent_every=given(self.persistent_every, rules.persistent_every),
                state_bytes=state)
        except ConfigError as err:
            raise with_file(err, file) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec(RunSettings):
    """The `run:` section as written (every key typed and checked when the scenario loads)."""

    failures: FailuresSpec | Literal[False, "none"] = field(default_factory=FailuresSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    spot: SpotSpec | None = None  # preemptible capacity (simulator/longrun/spot.py)

    def resolve(self, job: JobShape, *, file: str | None = None) -> RunConfig:
        """The RunConfig for `job` (checks that need the job included)."""
        failures = (build_failure_model(self.failures, file=file)
                    if isinstance(self.failures, FailuresSpec) else None)
        rate_s = (failures.job_rate_per_s(num_gpus=job.num_gpus,
                                          gpus_per_node=job.gpus_per_node,
                                          nodes_per_leaf=job.nodes_per_leaf)
                  if failures is not None else 0.0)
        spot = self.spot.resolve(file=file) if self.spot is not None else None
        if spot is not None:  # preemptions the warning cannot cover lose work like failures
            no_spot = self.checkpoint.policy(job, mttf_s=float("inf"), file=file)
            rate_s += lossy_rate_per_s(spot, job.num_nodes, save_s=no_spot.write_s)
        mttf_s = 1.0 / rate_s if rate_s > 0 else float("inf")
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunSettings)}
        cfg = RunConfig(**settings, failures=failures, spot=spot,
                        checkpoint=self.checkpoint.policy(job, mttf_s=mttf_s, file=file))
        cfg.check_job(job, file=file)
        return cfg


def read_run(mapping: Mapping[str, object] | None, *, file: str | None = None) -> RunSpec:
    """The RunSpec of a `run:` mapping (every key checked; None: the defaults)."""
    return read_section(mapping, RunSpec, file=file, section="run")


def parse_run(mapping: Mapping[str, object] | None, *, job: JobShape,
              file: str | None = None) -> RunConfig:
    """RunConfig from the `run:` mapping for `job`: read_run, then resolve."""
    return read_run(mapping, file=file).resolve(job, file=file)
