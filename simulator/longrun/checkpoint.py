"""Checkpoint policies and their costs: state size, write/read/snapshot times, storage checks.

The modes (one module each in checkpoint_modes/, registered by CheckpointMode):

- sync: training stalls for the whole write (state bytes / storage write bandwidth).
- async: training stalls for a snapshot to host memory, the write runs in the background;
  a failure before the write commits falls back to the previous checkpoint.
- multilevel: every checkpoint is an in-memory snapshot copied to a peer node; every
  `persistent_every`-th one is also written to storage in the background. A failure that
  loses a node and its peer (a switch taking both down) needs the persistent one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError

# Bytes of checkpointed state per parameter: bf16 weights (2) + fp32 main-gradient/ master
# buffer (4) + fp32 master weights and Adam m, v (12): Megatron-LM mixed precision with a
# distributed optimizer (Rajbhandari et al., ZeRO, SC'20, K=12 optimizer bytes). Conservative.
CHECKPOINT_BYTES_PER_PARAM = 2 + 4 + 12

# Meta's Tectonic store for Llama 3: 240 PB, 2 TB/s sustained, 7 TB/s peak (arXiv 2407.21783,
# Section 3.3.1): our default storage write (sustained), read (peak) bandwidth and capacity.
DEFAULT_STORAGE_WRITE_BPS = 2e12
DEFAULT_STORAGE_READ_BPS = 7e12
DEFAULT_STORAGE_CAPACITY_BYTES = 240e15
# GPU -> pinned host memory copy of a snapshot: PCIe Gen4/5 x16 practical ~20 GB/s per GPU.
DEFAULT_SNAPSHOT_BPS_PER_GPU = 20e9
# Peer-node copy / restore over the scale-out NIC: 400 Gb/s NDR ~ 45 GB/s effective per GPU.
DEFAULT_PEER_BPS_PER_GPU = 45e9


class CheckpointMode(StrEnum):
    """How a checkpoint is taken (`run.checkpoint.mode`)."""

    SYNC = "sync"
    ASYNC = "async"
    MULTILEVEL = "multilevel"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointPolicy:
    """When and how checkpoints are taken, with the resulting times (seconds)."""

    mode: CheckpointMode = CheckpointMode.SYNC
    interval_s: float  # compute time between checkpoints (rounded to whole iterations)
    write_s: float  # persistent write of the whole state
    read_s: float  # persistent load on restart
    snapshot_s: float = 0.0  # async/multilevel stall: GPU -> host (+ peer) copy
    memory_load_s: float = 0.0  # multilevel restore from the in-memory/peer copy
    persistent_every: int = 1  # multilevel: every M-th snapshot also goes to storage
    state_bytes: float = 0.0

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ConfigError(f"must be > 0, got {self.interval_s!r}",
                              key="run.checkpoint.interval_s")
        for name in ("write_s", "read_s", "snapshot_s", "memory_load_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"must be >= 0, got {value!r}", key=f"run.checkpoint.{name}")
        if self.persistent_every < 1:
            raise ConfigError(f"must be >= 1, got {self.persistent_every}",
                              key="run.checkpoint.persistent_every")

    @property
    def stall_s(self) -> float:
        """Training stall per checkpoint (the delta of Young/Daly)."""
        return self.write_s if self.mode is CheckpointMode.SYNC else self.snapshot_s


def checkpoint_state_bytes(num_params: float, *,
                           bytes_per_param: float = CHECKPOINT_BYTES_PER_PARAM) -> float:
    """Bytes of one full checkpoint (weights + optimizer), summed over all shards."""
    return float(num_params) * bytes_per_param


def write_time_s(state_bytes: float, *, num_gpus: int, storage_write_Bps: float,
                 per_gpu_Bps: float = DEFAULT_SNAPSHOT_BPS_PER_GPU) -> float:
    """All ranks write their shard in parallel; the slower of storage and the GPUs' links bounds it."""
    return state_bytes / min(storage_write_Bps, per_gpu_Bps * num_gpus)


def shard_copy_time_s(state_bytes: float, *, num_gpus: int, per_gpu_Bps: float) -> float:
    """Time for every GPU to copy its 1/num_gpus shard at per_gpu_Bps (snapshot, peer copy)."""
    return state_bytes / num_gpus / per_gpu_Bps


def check_storage(state_bytes: float, *, keep: int, capacity_bytes: float,
                  file: str | None = None) -> None:
    """ConfigError when `keep` checkpoints do not fit in the storage capacity."""
    if keep < 1:
        raise ConfigError(f"must be >= 1, got {keep}", file=file, key="run.checkpoint.keep")
    if state_bytes * keep > capacity_bytes:
        raise ConfigError(
            f"{keep} checkpoint(s) of {state_bytes / 1e12:.3g} TB do not fit in "
            f"{capacity_bytes / 1e12:.3g} TB of storage", file=file,
            key="run.checkpoint.storage_capacity")
