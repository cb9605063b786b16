"""Checkpoint modes, one module per mode, registered in CHECKPOINT_MODES by CheckpointMode."""

from simulator.longrun.checkpoint_modes import asynchronous, multilevel, sync
from simulator.longrun.checkpoint_modes.rules import CHECKPOINT_MODES, ModeRules

__all__ = ["CHECKPOINT_MODES", "ModeRules", "asynchronous", "multilevel", "sync"]
