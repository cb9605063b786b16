"""What differs between checkpoint modes: default stall and cadence, and how the engine
treats a checkpoint (blocking write, background write, restore from a peer's copy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwmodels.registry import Registry
from simulator.longrun.checkpoint import CheckpointMode

# snapshot_s(state_bytes, num_gpus, snapshot_Bps_per_gpu, peer_Bps_per_gpu) -> seconds
SnapshotFn = Callable[[float, int, float, float], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeRules:
    """One checkpoint mode: its defaults and the engine's view of it."""

    snapshot_s: SnapshotFn  # default `run.checkpoint.snapshot_s`
    persistent_every: int  # default `run.checkpoint.persistent_every`
    blocking_write: bool  # training stalls for the persistent write (no snapshot)
    persist_every_snapshot: bool  # each snapshot is written (ignores persistent_every)
    restore_from_peer: bool  # a failure that spares the peer restores the in-memory copy


CHECKPOINT_MODES: Registry[CheckpointMode, ModeRules] = Registry(
    "checkpoint mode", CheckpointMode, key="run.checkpoint.mode")
