"""Accelerator power as a function of utilization and clock, and what a power cap costs in time.

Model (fractions of the dynamic range tdp_w - idle_w):

    demand(f) = ACTIVE_SHARE * busy + COMPUTE_SHARE * compute_util * f**FREQ_EXPONENT
                + MEMORY_SHARE * memory_util,          busy = max(compute_util, memory_util)

- The compute term is CMOS dynamic power C V^2 f with V roughly linear in f over the DVFS
  range, which measured GPU power-vs-clock curves fit as ~f^2.4 near the top of the range
  (NVIDIA's DVFS/"Max-Q" notes; Tang et al., "The Impact of GPU DVFS on the Energy and
  Performance of Deep Learning", e-Energy'19).
- Power capping lowers only the SM clock; HBM and the uncore keep their clocks, so the memory
  and active-floor terms do not shrink under a cap (nvidia-smi -pl semantics).
- The shares sum to 1.3: a fully loaded H100 would draw more than its 700 W TDP at its 1.98 GHz
  max clock, so the firmware already throttles heavy GEMMs (to ~0.85 x max, ~1.7 GHz, the clock
  seen in power-limited H100 GEMM runs). Hence `freq_scale` is relative to the clock the same
  work runs at without a cap (the clock at which profile timings were taken), never above TDP.

Calibration target: Splitwise (Patel et al., ISCA'24, Sec. III, DGX-H100 power-capping runs)
and POLCA (Patel et al., ASPLOS'24): prompt (compute-bound) phases draw close to TDP and slow
down markedly under a cap, token (memory-bound) phases draw far less and barely slow down.
With these constants a 70% cap slows a compute_fraction=0.9 prefill by ~1.23x and leaves a
decode step within 1%.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwmodels.dtypes import compute_dtype_for, kv_cache_dtype, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.flops import active_param_count, attention_core_flops
from hwmodels.memory import kv_bytes_per_token, serving_weight_bytes
from hwmodels.specs import DeviceSpec, ModelSpec

# Exponent of compute power in the SM clock (P ~ f V(f)^2 ~ f^2.4 in the DVFS range).
FREQ_EXPONENT = 2.4
# Shares of (tdp - idle). Active floor: leakage at operating voltage, clock trees, L2/NoC and
# NVLink PHYs once any kernel runs (H100 reads ~180-200 W on nearly idle kernels vs ~70 W idle).
ACTIVE_SHARE = 0.2
# SMs + tensor cores at full load and max clock (~570 W of the H100's 630 W dynamic range).
COMPUTE_SHARE = 0.9
# HBM3 at full bandwidth: ~3.35 TB/s x ~4-5 pJ/bit ~ 110-130 W on H100 (JEDEC HBM3 energy/bit).
MEMORY_SHARE = 0.2
# Lowest clock a power cap drives the SMs to, as a fraction of the uncapped clock (H100 SXM:
# nvidia-smi's minimum power limit of 200 W sits near half of the 1.98 GHz max clock).
MIN_FREQ_SCALE = 0.5


def _check_util(**values: float) -> None:
    for key, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {value!r}", key=key)


def _demand(compute_util: float, memory_util: float, clock: float) -> float:
    """Dynamic power demand as a fraction of tdp - idle at absolute clock fraction `clock`."""
    busy = max(compute_util, memory_util)
    return (ACTIVE_SHARE * busy + COMPUTE_SHARE * compute_util * clock ** FREQ_EXPONENT
            + MEMORY_SHARE * memory_util)


def _fixed_demand(compute_util: float, memory_util: float) -> float:
    """The part of the demand a clock change does not touch."""
    return ACTIVE_SHARE * max(compute_util, memory_util) + MEMORY_SHARE * memory_util


def _clock_for_demand(target: float, compute_util: float, memory_util: float) -> float:
    """Absolute clock fraction (<= 1) at which demand equals `target`."""
    if compute_util <= 0.0:
        return 1.0
    room = target - _fixed_demand(compute_util, memory_util)
    if room <= 0.0:
        return 0.0
    return min(1.0, (room / (COMPUTE_SHARE * compute_util)) ** (1.0 / FREQ_EXPONENT))


def operating_clock(compute_util: float, memory_util: float = 0.0) -> float:
    """Clock (fraction of max) the firmware runs this load at without a cap: max clock unless
    TDP would be exceeded."""
    _check_util(compute_util=compute_util, memory_util=memory_util)
    return _clock_for_demand(1.0, compute_util, memory_util)


def power_w(device: DeviceSpec, *, compute_util: float, memory_util: float = 0.0,
            freq_scale: float = 1.0) -> float:
    """Board power (W) at these utilizations with the SM clock at `freq_scale` of its uncapped
    clock; idle_w at zero utilization, never above tdp_w."""
    _check_util(compute_util=compute_util, memory_util=memory_util)
    if not 0.0 < freq_scale <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {freq_scale!r}", key="freq_scale")
    clock = _clock_for_demand(1.0, compute_util, memory_util) * freq_scale
    demand = min(1.0, _demand(compute_util, memory_util, clock))
    return device.idle_w + (device.tdp_w - device.idle_w) * demand


def freq_scale_for_cap(device: DeviceSpec, cap_w: float, *, compute_util: float,
                       memory_util: float = 0.0) -> float:
    """Fraction of the uncapped SM clock that keeps power under `cap_w` (>= MIN_FREQ_SCALE)."""
    _check_util(compute_util=compute_util, memory_util=memory_util)
    if not cap_w > device.idle_w:
        raise ConfigError(f"power cap {cap_w} W must exceed {device.name}'s idle "
                          f"{device.idle_w} W", key="power.cap_w",
                          allowed=f"({device.idle_w}, {device.tdp_w}] W")
    if cap_w >= device.tdp_w or compute_util <= 0.0:
        return 1.0
    target = (cap_w - device.idle_w) / (device.tdp_w - device.idle_w)
    uncapped = _clock_for_demand(1.0, compute_util, memory_util)
    if _demand(compute_util, memory_util, uncapped) <= target:
        return 1.0
    capped = _clock_for_demand(target, compute_util, memory_util)
    return max(MIN_FREQ_SCALE, capped / uncapped)


def power_capped(device: DeviceSpec, cap_w: float, *, key: str = "power_cap_w") -> DeviceSpec:
    """`device` under a static board power limit (nvidia-smi -pl): compute-bound kernels run at
    the SM clock the cap leaves a large GEMM (compute_util 1, its HBM traffic neglected), HBM
    keeps its clock. A cap at TDP changes nothing; one at or below idle, or above TDP, is an
    error naming `key`."""
    allowed = f"({device.idle_w:g}, {device.tdp_w:g}] W for {device.name}"
    if isinstance(cap_w, bool) or not isinstance(cap_w, int | float) or not (
            device.idle_w < cap_w <= device.tdp_w):
        raise ConfigError(f"power cap {cap_w!r} W must lie above {device.name}'s idle "
                          f"{device.idle_w:g} W and at most its TDP {device.tdp_w:g} W",
                          key=key, allowed=allowed)
    scale = freq_scale_for_cap(device, float(cap_w), compute_util=1.0)  # vs the uncapped clock
    return replace(device, power_cap_w=float(cap_w), sm_clock_scale=scale)


def capped_time_s(time_s: float, *, compute_fraction: float, freq_scale: float) -> float:
    """Duration at a reduced SM clock: the compute share stretches by 1/freq_scale, the
    memory-bound share does not (memory clock is not capped)."""
    if time_s < 0:
        raise ConfigError(f"must be >= 0, got {time_s!r}", key="time_s")
    _check_util(compute_fraction=compute_fraction)
    if not 0.0 < freq_scale <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {freq_scale!r}", key="freq_scale")
    return time_s * (compute_fraction / freq_scale + (1.0 - compute_fraction))


@dataclass(frozen=True, slots=True, kw_only=True)
class RooflineUtilization:
    """Utilizations of a kernel whose compute and memory phases overlap (roofline)."""

    compute_util: float  # compute_s / max(compute_s, memory_s)
    memory_util: float  # memory_s / max(compute_s, memory_s)
    compute_fraction: float  # compute_s / (compute_s + memory_s): the clock-sensitive share


def utilization_from_roofline(compute_s: float, memory_s: float) -> RooflineUtilization:
    """Map a kernel's ideal compute time and memory time to power-model utilizations."""
    if compute_s < 0 or memory_s < 0:
        raise ConfigError(f"times must be >= 0, got compute_s={compute_s}, "
                          f"memory_s={memory_s}", key="compute_s")
    span = max(compute_s, memory_s)
    if span == 0.0:
        return RooflineUtilization(compute_util=0.0, memory_util=0.0, compute_fraction=0.0)
    return RooflineUtilization(compute_util=compute_s / span, memory_util=memory_s / span,
                               compute_fraction=compute_s / (compute_s + memory_s))


class StepPower:
    """Roofline compute/memory seconds of a serving step on one replica (pure arithmetic, O(1)):
    the one step-power model of the engine, the energy fallback and the power planner."""

    __slots__ = ("device", "devices", "flops_per_token", "flops_per_pair", "weight_bytes",
                 "kv_bytes", "peak_flops", "bw_Bps")

    def __init__(self, model: ModelSpec, device: DeviceSpec, *, tp: int, pp: int,
                 dtype: str = "bf16", kv_dtype: str | None = None) -> None:
        dt = parse_dtype(dtype)
        kv_dt = kv_cache_dtype(dt, kv_dtype)
        self.device = device
        self.devices = tp * pp
        self.flops_per_token = 2.0 * active_param_count(model)
        self.flops_per_pair = attention_core_flops(model, query_tokens=1.0,
                                                   key_tokens=1.0) * model.num_layers
        self.weight_bytes = serving_weight_bytes(model, dt, tp=tp, pp=pp) * self.devices
        self.kv_bytes = kv_bytes_per_token(model, kv_dt)
        self.peak_flops = device.peak(compute_dtype_for(dt)) * self.devices
        self.bw_Bps = device.memory_bw_Bps * self.devices

    def split_s(self, tokens: float, attn_pairs: float, kv_read_tokens: float
                ) -> tuple[float, float]:
        """(compute_s, memory_s) of a step with `tokens` rows through the linear layers."""
        flops = self.flops_per_token * tokens + self.flops_per_pair * attn_pairs
        nbytes = self.weight_bytes + self.kv_bytes * (kv_read_tokens + tokens)
        return flops / self.peak_flops, nbytes / self.bw_Bps

    def run_utilization(self, *, tokens: float, steps: float,
                        kv_read_tokens: float) -> RooflineUtilization:
        """Roofline utilizations of a run of `steps` steps that moved `tokens` through the
        linear layers reading kv_read_tokens of context: the convention of split_s per step
        (the bound resource at 1), so run-level and per-step energy agree."""
        return utilization_from_roofline(
            self.flops_per_token * tokens / self.peak_flops,
            (self.weight_bytes * steps + self.kv_bytes * kv_read_tokens) / self.bw_Bps)
