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

from dataclasses import dataclass

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


@dataclass(slots=True, kw_only=True)
class CapController:
    """Row power controller: above high x budget tighten one level, below low x budget loosen
    one (hysteresis between them); decide() returns the new cap fraction or None."""

    config: CapControllerConfig
    level: int = 0

    def decide(self, now: float, row: int, row_power_w: float) -> float | None:
        cfg = self.config
        if row_power_w > cfg.high * cfg.budget_w and self.level < len(cfg.levels) - 1:
            self.level += 1
            return cfg.levels[self.level]
        if row_power_w < cfg.low * cfg.budget_w and self.level > 0:
            self.level -= 1
            return cfg.levels[self.level]
        return None
