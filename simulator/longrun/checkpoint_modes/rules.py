"""What differs between checkpoint modes at set-up: the default stall and persistent cadence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwmodels.registry import Registry
from simulator.longrun.checkpoint import CheckpointMode

# snapshot_s(state_bytes, num_gpus, snapshot_Bps_per_gpu, peer_Bps_per_gpu) -> seconds
SnapshotFn = Callable[[float, int, float, float], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeRules:
    """One checkpoint mode's defaults: its snapshot stall and how often it persists."""

    snapshot_s: SnapshotFn  # default `run.checkpoint.snapshot_s`
    persistent_every: int  # default `run.checkpoint.persistent_every`


CHECKPOINT_MODES: Registry[CheckpointMode, ModeRules] = Registry(
    "checkpoint mode", CheckpointMode, key="run.checkpoint.mode")
