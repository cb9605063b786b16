"""TrainingPlan: the typed, frozen input of one simulated training iteration (the planner seam)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, TrainingConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training.hetero import PoolSpec

_FIELD_TYPES: tuple[tuple[str, type], ...] = (
    ("model", ModelSpec), ("cluster", ClusterSpec), ("training", TrainingConfig),
    ("parallel", ParallelConfig), ("timeline", bool), ("flash_attention", bool))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingPlan:
    """One parallel plan of a model on a cluster; picklable, so executors can fan it out.

    flash_attention=False models Megatron's pre-FlashAttention fused softmax (SC'21 runs);
    timeline=True records per-op trace events in the result.
    """

    model: ModelSpec
    cluster: ClusterSpec
    training: TrainingConfig
    parallel: ParallelConfig
    profile: DeviceProfile | str | Path | None = None
    timeline: bool = False
    flash_attention: bool = True
    name: str | None = None  # the scenario, named by an InvariantError
    # a heterogeneous job: the pools its stages run on (cluster is then their union's rank
    # space, simulator.training.hetero); () for a homogeneous job
    pools: tuple[PoolSpec, ...] = ()

    def __post_init__(self) -> None:
        for name, kind in _FIELD_TYPES:
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ConfigError(f"must be a {kind.__name__}, got {type(value).__name__}",
                                  key=f"plan.{name}")
        if self.profile is not None and not isinstance(self.profile, DeviceProfile | str | Path):
            raise ConfigError(f"must be a DeviceProfile, a path or None, got "
                              f"{type(self.profile).__name__}", key="plan.profile")
