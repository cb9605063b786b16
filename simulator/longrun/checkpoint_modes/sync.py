"""`mode: sync`: training stalls for the whole persistent write; no snapshot."""

from __future__ import annotations

from simulator.longrun.checkpoint import CheckpointMode
from simulator.longrun.checkpoint_modes.rules import CHECKPOINT_MODES, ModeRules


def no_snapshot_s(state_bytes: float, num_gpus: int, snapshot_bps: float,
                  peer_bps: float) -> float:
    """A synchronous checkpoint takes no snapshot: its stall is the write itself."""
    return 0.0


CHECKPOINT_MODES.add(CheckpointMode.SYNC,
                     ModeRules(snapshot_s=no_snapshot_s, persistent_every=1,
                               blocking_write=True, persist_every_snapshot=True,
                               restore_from_peer=False))
