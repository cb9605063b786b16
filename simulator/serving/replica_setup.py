"""How to build one replica: its step cost, limits, scheduler kind, PP lanes and cluster facts
(group, role, price, speed, power model, placement) - the engine's typed input per replica."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from simulator.serving.cluster_config import Role
from simulator.serving.kinds import enum_value
from simulator.serving.lane_state import LaneConfig
from simulator.serving.schedulers import SCHEDULERS, SchedulerKind
from simulator.serving.steptime import DEFAULT_KNOT_TOKENS, StepCost

if TYPE_CHECKING:
    from hwmodels.power import StepPower


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaSetup:
    """One replica's recipe; scheduler and role accept their enum (or its name)."""

    step_cost: StepCost
    lane: LaneConfig  # total_blocks / max_num_seqs for the whole replica; split over pp lanes
    scheduler: SchedulerKind = SchedulerKind.VLLM
    pp: int = 1
    devices: int = 1
    prefix_caching: bool = False
    knot_tokens: int = DEFAULT_KNOT_TOKENS
    name: str = ""
    group: str = "default"
    role: Role = Role.BOTH
    price_usd_per_hour: float = 0.0  # per device
    slowdown: float = 1.0  # step-time multiplier
    capacity: float = 1.0  # relative throughput estimate (capacity-aware routing)
    idle_w: float = 0.0  # per device
    step_power: StepPower | None = None
    kv_bytes_per_token: float = 0.0
    weight_bytes_per_device: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheduler", SCHEDULERS.kind(self.scheduler))
        object.__setattr__(self, "role", enum_value(Role, self.role, "role"))

    def lane_config(self) -> LaneConfig:
        """One PP lane's share of the replica's KV blocks, sequences and watermark."""
        cfg, pp = self.lane, self.pp
        if pp == 1:
            return cfg
        return replace(cfg, total_blocks=max(1, cfg.total_blocks // pp),
                       max_num_seqs=max(1, cfg.max_num_seqs // pp),
                       watermark_blocks=cfg.watermark_blocks // pp)


__all__ = ["ReplicaSetup"]
