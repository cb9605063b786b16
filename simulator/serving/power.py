"""Power of serving replicas, step by step, and power capping.

Each step's FLOPs and bytes (hwmodels.power.StepPower: 2 x active params per token + attention
pairs; weights once per step + KV read) give its roofline compute and memory times on the
replica's devices; hwmodels.power turns that split into utilizations and board power (compute-bound prefill draws
near TDP, memory-bound decode far less). A cap (fraction of TDP) lowers the SM clock to
freq_scale_for_cap and stretches the step by capped_time_s: prefill slows with the clock, decode
barely (Splitwise, ISCA'24, Sec. III). PowerMeter integrates energy per replica into time bins;
CapController is the POLCA-style row controller (thresholds, levels, hysteresis, latency) the
power planner drives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwmodels.errors import ConfigError
from hwmodels.power import StepPower, freq_scale_for_cap, power_w, utilization_from_roofline
from simulator.serving.cluster_config import CapControllerConfig


class PowerMeter:
    """Energy per replica in time bins (busy joules and busy seconds), plus running totals
    that the cap controller reads."""

    def __init__(self, bin_s: float) -> None:
        self.bin_s = bin_s
        self.joules: dict[int, list[float]] = {}
        self.busy: dict[int, list[float]] = {}
        self.total_j: dict[int, float] = {}
        self.total_busy_s: dict[int, float] = {}
        # device-seconds stepped above the device cap: the SM clock cannot bring memory-bound
        # work under a low cap (HBM is not clocked down), reported rather than hidden
        self.over_cap_device_s = 0.0
        self.capped_device_s = 0.0

    def add(self, replica: int, start: float, end: float, watts: float) -> None:
        """`watts` drawn by the replica's devices from start to end."""
        dt = end - start
        if dt <= 0:
            return
        self.total_j[replica] = self.total_j.get(replica, 0.0) + watts * dt
        self.total_busy_s[replica] = self.total_busy_s.get(replica, 0.0) + dt
        j, b = self.joules.setdefault(replica, []), self.busy.setdefault(replica, [])
        w = self.bin_s
        b0, b1 = int(start / w), int(end / w)
        if b1 >= len(j):
            grow = b1 + 1 - len(j)
            j.extend([0.0] * grow)
            b.extend([0.0] * grow)
        if b0 == b1:
            j[b0] += watts * dt
            b[b0] += dt
            return
        for k in range(b0, b1 + 1):
            lo, hi = max(start, k * w), min(end, (k + 1) * w)
            if hi > lo:
                j[k] += watts * (hi - lo)
                b[k] += hi - lo


class LanePower:
    """A lane's power state: the last step's utilizations and clock, its replica's cap."""

    __slots__ = ("sp", "meter", "replica", "share", "cap_w", "cu", "mu", "fs", "tdp_w")

    def __init__(self, sp: StepPower, meter: PowerMeter, replica: int, *, lanes: int) -> None:
        self.sp, self.meter, self.replica = sp, meter, replica
        self.share = sp.devices / lanes  # PP lanes share the replica's devices
        self.tdp_w = sp.device.tdp_w
        self.cap_w: float | None = None
        self.cu = self.mu = 0.0
        self.fs = 1.0

    def set_cap(self, fraction: float | None) -> None:
        """Cap each device at fraction x TDP (None or >= 1: uncapped)."""
        self.cap_w = None if fraction is None or fraction >= 1.0 else fraction * self.tdp_w

    def _factor(self, tokens: float, pairs: float, kv_read: float) -> float:
        c, m = self.sp.split_s(tokens, pairs, kv_read)
        u = utilization_from_roofline(c, m)
        self.cu, self.mu = u.compute_util, u.memory_util
        if self.cap_w is None or self.cu <= 0.0:
            self.fs = 1.0
            return 1.0
        self.fs = freq_scale_for_cap(self.sp.device, self.cap_w, compute_util=self.cu,
                                     memory_util=self.mu)
        return u.compute_fraction / self.fs + (1.0 - u.compute_fraction)

    def decode_factor(self, n: int, c0: int, k: int) -> float:
        """Clock slowdown of a run of k decode steps (n sequences, c0 context tokens first)."""
        ctx = c0 + n * (k - 1) / 2.0
        return self._factor(n, ctx, ctx)

    def plan_factor(self, lane: object, plan: object) -> float:
        """Clock slowdown of a step with prefill chunks (and the lane's decodes if any)."""
        tokens = pairs = cached = 0.0
        for seq, new in plan.prefill:  # type: ignore[attr-defined]
            before = seq.computed  # the plan has not been applied yet
            tokens += new
            pairs += new * (before + new / 2.0)
            cached += before
        n = lane.n_dec if plan.decode else 0  # type: ignore[attr-defined]
        ctx = lane.kv_sum() + n if n else 0  # type: ignore[attr-defined]
        return self._factor(tokens + n, pairs + ctx, cached + ctx)

    def record(self, start: float, end: float) -> None:
        watts = power_w(self.sp.device, compute_util=self.cu, memory_util=self.mu,
                        freq_scale=self.fs)
        self.meter.add(self.replica, start, end, watts * self.share)
        if self.cap_w is not None and end > start:
            self.meter.capped_device_s += (end - start) * self.share
            if watts > self.cap_w * (1 + 1e-9):
                self.meter.over_cap_device_s += (end - start) * self.share


def next_cap_level(level: int, load: float, *, enter: Sequence[float],
                   release: Sequence[float], max_step: int | None = None) -> int:
    """The capping ladder: level k (1..len(enter)) is entered when load > enter[k-1] and held
    while load >= release[k-1]; at most max_step levels per decision (None: jump)."""
    up = sum(1 for t in enter if load > t)
    hold = max((k for k in range(1, level + 1) if load >= release[k - 1]), default=0)
    target = max(up, hold)
    if max_step is not None:
        target = level + max(-max_step, min(max_step, target - level))
    return target


@dataclass(slots=True, kw_only=True)
class CapController:
    """The row power controller of the serving engine and of plan power: load = row power /
    budget_w drives next_cap_level; decide() returns the new level's cap fraction or None."""

    budget_w: float
    enter: tuple[float, ...]  # load above which level k+1 is entered (ascending)
    release: tuple[float, ...]  # load below which level k+1 is released
    max_step: int | None = None
    levels: tuple[float, ...] | None = None  # cap fraction per level (0: uncapped)
    level: int = 0

    def __post_init__(self) -> None:
        if len(self.release) != len(self.enter) or list(self.enter) != sorted(self.enter):
            raise ConfigError("enter must be ascending and release as long as enter",
                              key="power.controller", allowed="one threshold pair per level")
        if self.levels is not None and len(self.levels) != len(self.enter) + 1:
            raise ConfigError(f"{len(self.enter) + 1} levels needed, got {len(self.levels)}",
                              key="power.controller.levels")

    @classmethod
    def from_config(cls, config: CapControllerConfig) -> CapController:
        """A scenario's power.controller: above high x budget tighten one level, below low x
        budget loosen one (hysteresis between them)."""
        steps = len(config.levels) - 1
        return cls(budget_w=config.budget_w, enter=(config.high,) * steps,
                   release=(config.low,) * steps, max_step=1, levels=config.levels)

    def step(self, row_power_w: float) -> int:
        """Move to the level for this row power; the level index."""
        self.level = next_cap_level(self.level, row_power_w / self.budget_w, enter=self.enter,
                                    release=self.release, max_step=self.max_step)
        return self.level

    def decide(self, now: float, row: int, row_power_w: float) -> float | None:
        """The new cap fraction when the level changes, else None (power_control's hook)."""
        before = self.level
        after = self.step(row_power_w)
        if after == before or self.levels is None:
            return None
        return self.levels[after]
