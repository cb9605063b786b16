"""`mode: async`: stall for a GPU -> host snapshot; the persistent write runs behind."""

from __future__ import annotations

from simulator.longrun.checkpoint import CheckpointMode, shard_copy_time_s
from simulator.longrun.checkpoint_modes.rules import CHECKPOINT_MODES, ModeRules


def host_snapshot_s(state_bytes: float, num_gpus: int, snapshot_bps: float,
                    peer_bps: float) -> float:
    """Every GPU copies its shard to pinned host memory."""
    return shard_copy_time_s(state_bytes, num_gpus=num_gpus, per_gpu_Bps=snapshot_bps)


CHECKPOINT_MODES.add(CheckpointMode.ASYNC,
                     ModeRules(snapshot_s=host_snapshot_s, persistent_every=1,
                               blocking_write=False, persist_every_snapshot=True,
                               restore_from_peer=False))
