"""`mode: multilevel`: host snapshot plus a peer-node copy each time; every 5th persists."""

from __future__ import annotations

from simulator.longrun.checkpoint import CheckpointMode, shard_copy_time_s
from simulator.longrun.checkpoint_modes.asynchronous import host_snapshot_s
from simulator.longrun.checkpoint_modes.rules import CHECKPOINT_MODES, ModeRules


def peer_snapshot_s(state_bytes: float, num_gpus: int, snapshot_bps: float,
                    peer_bps: float) -> float:
    """The host snapshot, then the copy to the peer node."""
    return (host_snapshot_s(state_bytes, num_gpus, snapshot_bps, peer_bps)
            + shard_copy_time_s(state_bytes, num_gpus=num_gpus, per_gpu_Bps=peer_bps))


CHECKPOINT_MODES.add(CheckpointMode.MULTILEVEL,
                     ModeRules(snapshot_s=peer_snapshot_s, persistent_every=5,
                               blocking_write=False, persist_every_snapshot=False,
                               restore_from_peer=True))
