"""`plan_power`: how many GPU servers fit under a row power budget with POLCA-style capping
(Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers", ASPLOS'24).

Model, per time bin (default 1 s):
- Load: each server's GPU load (planners.power_load): inference servers replay the trace on
  their own replicas (one uncapped serving simulation; server k sees it circularly shifted by
  a seeded random offset, so bursts do not line up); a training job's servers run in lockstep.
- Power: GPUs at hwmodels.power.power_w(compute_util, memory_util, freq_scale) while busy,
  idle_w otherwise; host (CPUs, NVSwitches, NICs, fans, PSU loss) = host_idle_w +
  host_dynamic_w x mean GPU load (ServerSpec; constants fitted to AcmeTrace's DGX-A100 server
  power CDF, see SERVER_PRESETS).
- Capping (POLCA's two thresholds): the controller reads row power every bin; above
  t1 x budget it caps low-priority servers' SM clock to low_freq[0]; above t2 x budget it
  caps every server (low to low_freq[1], high to high_freq); it steps back a level once power
  falls below (threshold - hysteresis) x budget. A decision takes effect latency_s later.
- Slowdown: a capped step lasts capped_time_s(compute_fraction, f) (compute-bound prefill and
  training slow with the clock, memory-bound decode barely). Work is a fluid per server: the
  uncapped busy seconds arrive as in the trace, a capped server serves them 1/stretch as fast,
  and the backlog carries over (raising busy time, hence power, until it drains).
- Impact: a request's capped latency = its uncapped latency dilated by the stretch in force
  over its lifetime + the server's backlog at its arrival; throughput = work done / work
  arrived. First-order: queueing inside the serving engine is not re-simulated under the cap.
- Search: the largest server count whose simulation keeps every over-budget episode within
  latency_s + one bin (the controller's reaction time) and the impact within limits
  (default high-priority p50 +1%, p99 +5%, low-priority throughput -5%).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError, InfeasibleError, UnknownNameError
from hwmodels.power import MIN_FREQ_SCALE, power_w
from hwmodels.specs import DeviceSpec, ModelSpec
from planners.executors import Executor, map_values
from planners.power_load import LoadProfile, inference_profile, training_profile
from simulator.profiles import ProfileChoice
from simulator.serving.power import CapController

# Utilization grid for the vectorized power lookup (power_w is smooth; 1/40 steps keep the
# interpolation error far below a watt per GPU).
_GRID = np.linspace(0.0, 1.0, 41)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """A GPU server: devices and the non-GPU power around them."""

    name: str
    device: str
    gpus: int = 8
    host_idle_w: float  # CPUs, NVSwitch, NICs, fans, PSU loss with the GPUs idle
    host_dynamic_w: float  # extra host power at full GPU load (fans, PSU loss, NVSwitch)

    def device_spec(self) -> DeviceSpec:
        return load_device(self.device)

    @property
    def nameplate_w(self) -> float:
        """TDP-based provisioning figure: every GPU at TDP plus the host at full load."""
        return self.gpus * self.device_spec().tdp_w + self.host_idle_w + self.host_dynamic_w

    @property
    def idle_w(self) -> float:
        return self.gpus * self.device_spec().idle_w + self.host_idle_w

    def power_w(self, per_gpu_w: np.ndarray | float) -> np.ndarray | float:
        """Server power with every GPU drawing per_gpu_w: GPUs + host idle + host dynamic x
        the GPUs' load (share of their idle..TDP range, may exceed 1 above TDP)."""
        dev = self.device_spec()
        load = np.maximum((np.asarray(per_gpu_w) - dev.idle_w) / (dev.tdp_w - dev.idle_w), 0.0)
        return self.gpus * np.asarray(per_gpu_w) + self.host_idle_w + self.host_dynamic_w * load


# DGX-A100 (8x A100-80GB): fitted to AcmeTrace (NSDI'24) server-power CDF (15 s IPMI):
# p5 1512 W with GPUs idle (~60 W each) -> host ~900 W; p90 4851 W with GPUs at ~404 W ->
# host ~1650 W at load -> +750 W dynamic. (NVIDIA's DGX-A100 datasheet max is 6.5 kW, the
# provisioning figure operators derate from.) DGX-H100: NVIDIA datasheet 10.2 kW max;
# 2x Xeon 8480C (350 W each) vs 2x EPYC 7742 (225 W) -> host idle/dynamic estimated
# 1100/1000 W (estimate, not measured).
SERVER_PRESETS: dict[str, ServerSpec] = {
    "dgx-a100": ServerSpec(name="dgx-a100", device="a100-80gb", gpus=8, host_idle_w=900.0,
                           host_dynamic_w=750.0),
    "dgx-h100": ServerSpec(name="dgx-h100", device="h100-sxm", gpus=8, host_idle_w=1100.0,
                           host_dynamic_w=1000.0),
}


def load_server(server: str | ServerSpec | Mapping[str, Any]) -> ServerSpec:
    """A preset name, a ServerSpec, or {device, gpus, host_idle_w, host_dynamic_w}."""
    if isinstance(server, ServerSpec):
        return server
    if isinstance(server, str):
        if server not in SERVER_PRESETS:
            raise UnknownNameError("server", server, sorted(SERVER_PRESETS), key="power.server")
        return SERVER_PRESETS[server]
    allowed = ("name", "device", "gpus", "host_idle_w", "host_dynamic_w")
    for k in server:
        if k not in allowed:
            raise ConfigError(f"unknown key '{k}'", key=f"power.server.{k}", allowed=allowed)
    if "device" not in server:
        raise ConfigError("missing required key", key="power.server.device")
    spec = ServerSpec(name=str(server.get("name", server["device"])),
                      device=load_device(str(server["device"])).name,
                      gpus=int(server.get("gpus", 8)),
                      host_idle_w=float(server.get("host_idle_w", 900.0)),
                      host_dynamic_w=float(server.get("host_dynamic_w", 750.0)))
    if spec.gpus < 1 or spec.host_idle_w < 0 or spec.host_dynamic_w < 0:
        raise ConfigError("gpus >= 1 and host powers >= 0 required", key="power.server")
    return spec


@dataclass(frozen=True, slots=True, kw_only=True)
class CappingPolicy:
    """POLCA-like two-threshold controller (fractions of the row budget)."""

    t1: float = 0.80  # cap low-priority servers above this
    t2: float = 0.89  # cap every server above this (POLCA's "power brake" threshold)
    low_freq: tuple[float, float] = (0.75, MIN_FREQ_SCALE)  # low-priority clock at t1, t2
    high_freq: float = 0.8  # high-priority clock above t2
    hysteresis: float = 0.05  # release a level below (threshold - hysteresis)
    latency_s: float = 2.0  # decision -> clocks changed (POLCA: seconds via out-of-band mgmt)

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 <= 1.0:
            raise ConfigError(f"need 0 < t1 <= t2 <= 1, got t1={self.t1}, t2={self.t2}",
                              key="power.policy.t1")
        for f in (*self.low_freq, self.high_freq):
            if not MIN_FREQ_SCALE <= f <= 1.0:
                raise ConfigError(f"frequency levels must be in [{MIN_FREQ_SCALE}, 1], got {f}",
                                  key="power.policy.low_freq")
        if self.hysteresis < 0 or self.latency_s < 0:
            raise ConfigError("hysteresis and latency_s must be >= 0", key="power.policy")

    def controller(self, budget_w: float) -> CapController:
        """The serving engine's CapController with this policy's two-level ladder (levels
        1 and 2 entered above t1 and t2, released below each minus the hysteresis)."""
        return CapController(budget_w=budget_w, enter=(self.t1, self.t2),
                             release=(self.t1 - self.hysteresis, self.t2 - self.hysteresis))


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpactLimits:
    """Allowed degradation vs uncapped (fractions)."""

    high_p50: float = 0.01
    high_p99: float = 0.05
    low_throughput: float = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class RowResult:
    """One simulated row: power and controller state per bin, impact per priority class."""

    servers: int
    time_s: np.ndarray
    power_w: np.ndarray
    level: np.ndarray  # controller level in force per bin (0 none, 1 low capped, 2 all)
    budget_w: float
    max_over_budget_s: float  # longest run of bins above budget
    capped_fraction: float  # share of time with any cap in force
    cap_events: int  # times the controller left level 0
    mean_cap_s: float  # mean length of a capped episode
    impact: pd.DataFrame  # priority, metric, uncapped, capped, change


class _PowerTable:
    """Vectorized hwmodels.power.power_w on a utilization grid, one table per clock level."""

    def __init__(self, device: DeviceSpec, freqs: list[float]) -> None:
        self.tables = {f: np.array([[power_w(device, compute_util=c, memory_util=m,
                                             freq_scale=f) for m in _GRID] for c in _GRID])
                       for f in freqs}

    def __call__(self, f: float, cu: np.ndarray, mu: np.ndarray) -> np.ndarray:
        t = self.tables[f]
        n = len(_GRID) - 1
        x, y = np.clip(cu, 0, 1) * n, np.clip(mu, 0, 1) * n
        i, j = np.minimum(x.astype(int), n - 1), np.minimum(y.astype(int), n - 1)
        fx, fy = x - i, y - j
        return (t[i, j] * (1 - fx) * (1 - fy) + t[i + 1, j] * fx * (1 - fy)
                + t[i, j + 1] * (1 - fx) * fy + t[i + 1, j + 1] * fx * fy)


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def simulate_row(server: ServerSpec, profiles: list[LoadProfile], priorities: list[str],
                 budget_w: float, policy: CappingPolicy, *, shifts: list[int] | None = None
                 ) -> RowResult:
    """Row power over time for len(profiles) servers under the capping policy."""
    dev = server.device_spec()
    n = len(profiles)
    bin_s = profiles[0].bin_s
    t_bins = min(len(p.busy) for p in profiles)
    shifts = shifts or [0] * n
    roll = [lambda a, s=s: np.roll(a[:t_bins], -s) for s in shifts]  # noqa: E731
    busy = np.array([roll[k](p.busy) for k, p in enumerate(profiles)])
    cu = np.array([roll[k](p.compute_util) for k, p in enumerate(profiles)])
    mu = np.array([roll[k](p.memory_util) for k, p in enumerate(profiles)])
    cf = np.array([roll[k](p.compute_fraction) for k, p in enumerate(profiles)])
    low = np.array([pr == "low" for pr in priorities])
    freq_by_level = np.array([np.ones(n),
                              np.where(low, policy.low_freq[0], 1.0),
                              np.where(low, policy.low_freq[1], policy.high_freq)])
    table = _PowerTable(dev, sorted({1.0, *policy.low_freq, policy.high_freq}))
    delay = int(math.ceil(policy.latency_s / bin_s - 1e-9))
    backlog = np.zeros(n)
    controller = policy.controller(budget_w)
    decided = [0] * (delay + 1)  # decisions in flight
    power = np.zeros(t_bins)
    levels = np.zeros(t_bins, dtype=int)
    stretch_hist = np.ones((n, t_bins))
    done_work = np.zeros((n, t_bins))
    for t in range(t_bins):
        applied = decided[0]
        freq = freq_by_level[applied]
        stretch = cf[:, t] / freq + (1.0 - cf[:, t])  # == hwmodels.power.capped_time_s
        demand = backlog + busy[:, t] * bin_s  # uncapped busy seconds waiting
        served = np.minimum(demand, bin_s / stretch)
        backlog = demand - served
        busy_now = served * stretch / bin_s
        gpu_p = np.zeros(n)
        for f in np.unique(freq):
            sel = freq == f
            gpu_p[sel] = table(float(f), cu[sel, t], mu[sel, t])
        per_gpu = busy_now * gpu_p + (1.0 - busy_now) * dev.idle_w
        power[t] = float(np.sum(server.power_w(per_gpu)))
        levels[t] = applied
        stretch_hist[:, t] = np.where(busy_now > 0, stretch, 1.0)
        done_work[:, t] = served
        # controller: reads this bin's row power, decides the next level
        nxt = controller.step(float(power[t]))
        decided = decided[1:] + [nxt] if delay > 0 else [nxt]
    over = _runs(power > budget_w)
    capped = _runs(levels > 0)
    impact = _impact(profiles, priorities, shifts, busy, done_work, stretch_hist, bin_s,
                     t_bins)
    return RowResult(servers=n, time_s=np.arange(t_bins) * bin_s, power_w=power,
                     level=levels, budget_w=budget_w,
                     max_over_budget_s=float(max(over, default=0) * bin_s),
                     capped_fraction=float(np.mean(levels > 0)), cap_events=len(capped),
                     mean_cap_s=float(np.mean(capped) * bin_s) if capped else 0.0,
                     impact=impact)


def _impact(profiles: list[LoadProfile], priorities: list[str], shifts: list[int],
            busy: np.ndarray, done: np.ndarray, stretch: np.ndarray, bin_s: float,
            t_bins: int) -> pd.DataFrame:
    """Latency percentiles (inference) and throughput (all) per priority, uncapped vs capped."""
    rows = []
    horizon = t_bins * bin_s
    for prio in ("high", "low"):
        ks = [k for k, p in enumerate(priorities) if p == prio]
        if not ks:
            continue
        arrived = float(sum(busy[k].sum() * bin_s for k in ks))
        served = float(sum(done[k].sum() for k in ks))
        rows.append({"priority": prio, "metric": "throughput", "uncapped": 1.0,
                     "capped": served / arrived if arrived > 0 else 1.0})
        base, capd = [], []
        for k in ks:
            rec = profiles[k].records
            if rec is None:
                continue
            rec = rec[rec["status"] == "completed"]
            arr = rec["arrival_s"].to_numpy()
            fin = rec["finish_s"].to_numpy()
            # circular shift: the server replays the trace from offset shifts[k]
            a = np.mod(arr - shifts[k] * bin_s, horizon)
            f = a + (fin - arr)
            keep = f < horizon
            a, f = a[keep], f[keep]
            # wall time = cumulative stretch; plus backlog at arrival (uncapped seconds x stretch)
            edges = np.concatenate([[0.0], np.cumsum(stretch[k] * bin_s)])
            wall = np.interp([a, f], np.arange(t_bins + 1) * bin_s, edges)
            lag = np.concatenate([[0.0], np.cumsum(busy[k] * bin_s - done[k])])
            wait = np.interp(a, np.arange(t_bins + 1) * bin_s, lag)
            base.append(f - a)
            capd.append(wall[1] - wall[0] + wait)
        if base:
            b, c = np.concatenate(base), np.concatenate(capd)
            for q in (50, 99):
                rows.append({"priority": prio, "metric": f"latency_p{q}_s",
                             "uncapped": float(np.percentile(b, q)),
                             "capped": float(np.percentile(c, q))})
    out = pd.DataFrame(rows, columns=["priority", "metric", "uncapped", "capped"])
    out["change"] = out["capped"] / out["uncapped"] - 1.0
    return out


def within_limits(row: RowResult, limits: ImpactLimits, policy: CappingPolicy,
                  bin_s: float) -> bool:
    """Budget held (beyond the control latency) and every impact inside its limit."""
    return not limit_violations(row, limits, policy, bin_s)


def limit_violations(row: RowResult, limits: ImpactLimits, policy: CappingPolicy,
                     bin_s: float) -> list[str]:
    """Why a row is rejected: 'budget' (over it beyond the control latency) and/or each
    impact limit exceeded (e.g. 'high latency_p99_s'); empty when the row is within limits."""
    out = []
    if row.max_over_budget_s > policy.latency_s + bin_s + 1e-9:
        out.append(f"budget (over it for {row.max_over_budget_s:.0f} s > control latency "
                   f"{policy.latency_s:g} s)")
    imp = row.impact.set_index(["priority", "metric"])["change"]
    checks = ((("high", "latency_p50_s"), limits.high_p50),
              (("high", "latency_p99_s"), limits.high_p99),
              (("high", "throughput"), -limits.low_throughput),
              (("low", "throughput"), -limits.low_throughput))
    for key, lim in checks:
        if key not in imp.index:
            continue
        value = float(imp[key])
        if (lim >= 0 and value > lim + 1e-12) or (lim < 0 and value < lim - 1e-12):
            out.append(f"{key[0]} {key[1]} {value:+.1%} (limit {lim:+.1%})")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerPlan:
    """Servers deployable under the budget, vs the nameplate baseline, with the evidence."""

    server: ServerSpec
    budget_w: float
    workload: str  # inference | training
    nameplate_servers: int
    servers: int
    gain: float  # servers / nameplate_servers - 1
    row: RowResult  # the simulation at `servers`
    evaluated: dict[int, bool]  # server count -> within limits
    policy: CappingPolicy
    limits: ImpactLimits
    notes: dict[str, str] = field(default_factory=dict)
    probe_violations: dict[int, tuple[str, ...]] = field(default_factory=dict)  # rejected probes

    def impact_table(self) -> pd.DataFrame:
        return self.row.impact

    @property
    def feasible(self) -> bool:
        """At least one server fits the budget within the limits."""
        return self.servers >= 1

    def rejections(self) -> dict[str, int]:
        """Server counts probed and rejected, per reason (budget or an impact limit)."""
        out: dict[str, int] = {}
        for n, ok in self.evaluated.items():
            if ok or n not in self.probe_violations:
                continue
            for why in self.probe_violations[n]:
                key = why.split(" (", 1)[0] if why.startswith("budget") \
                    else " ".join(why.split()[:2])
                out[key] = out.get(key, 0) + 1
        return out

    def infeasible_error(self) -> InfeasibleError:
        why = "; ".join(self.probe_violations.get(1, ())) or "over the limits"
        return InfeasibleError(
            f"not even one {self.server.name} server fits {self.budget_w / 1e3:g} kW: {why}",
            hint="a larger --budget-kw, a smaller server or looser limits")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what `fleetsim plan power --json` prints)."""
        r = self.row
        return {
            "server": {"name": self.server.name, "device": self.server.device,
                       "gpus": self.server.gpus, "nameplate_w": self.server.nameplate_w,
                       "idle_w": self.server.idle_w, "host_idle_w": self.server.host_idle_w,
                       "host_dynamic_w": self.server.host_dynamic_w},
            "budget_kw": self.budget_w / 1e3, "workload": self.workload,
            "nameplate_servers": self.nameplate_servers, "servers": self.servers,
            "gain": self.gain,
            "peak_power_kw": float(r.power_w.max() / 1e3),
            "mean_power_kw": float(r.power_w.mean() / 1e3),
            "max_over_budget_s": r.max_over_budget_s,
            "capping": {"fraction_of_time": r.capped_fraction, "events": r.cap_events,
                        "mean_duration_s": r.mean_cap_s},
            "impact": r.impact.to_dict(orient="records"),
            "evaluated": {str(k): v for k, v in sorted(self.evaluated.items())},
            "policy": {"t1": self.policy.t1, "t2": self.policy.t2,
                       "low_freq": list(self.policy.low_freq),
                       "high_freq": self.policy.high_freq,
                       "hysteresis": self.policy.hysteresis,
                       "latency_s": self.policy.latency_s},
            "limits": {"high_p50": self.limits.high_p50, "high_p99": self.limits.high_p99,
                       "low_throughput": self.limits.low_throughput},
            "notes": self.notes,
        }


# The most servers one row plan simulates (each gets its own shifted load profile).
MAX_SERVERS = 20_000

# Server counts evaluated ahead of the search at once (the gallop's next points; the bisection
# evaluates its probe and both possible next probes).
SPECULATIVE_PROBES = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class RowTask:
    """One row evaluation of the server-count search (picklable for the executor)."""

    server: ServerSpec
    profile: LoadProfile
    servers: int
    high: int  # high-priority servers (the first ones)
    budget_w: float
    policy: CappingPolicy
    limits: ImpactLimits
    bin_s: float
    shifts: tuple[int, ...]


def evaluate_row(task: RowTask) -> tuple[bool, RowResult]:
    """Simulate the row of task.servers servers; (within limits, the row)."""
    prios = ["high"] * task.high + ["low"] * (task.servers - task.high)
    row = simulate_row(task.server, [task.profile] * task.servers, prios, task.budget_w,
                       task.policy, shifts=list(task.shifts))
    return within_limits(row, task.limits, task.policy, task.bin_s), row


def plan_power(budget_kw: float, server: str | ServerSpec | Mapping[str, Any] = "dgx-a100", *,
               model: str | ModelSpec | None = None, inference_df: pd.DataFrame | None = None,
               training: bool | LoadProfile = False, tp: int = 1,
               high_priority_fraction: float = 0.5, policy: CappingPolicy | None = None,
               limits: ImpactLimits | None = None, bin_s: float = 1.0, seed: int = 0,
               max_servers: int | None = None,
               serving: Mapping[str, Any] | None = None,
               load: LoadProfile | None = None, executor: Executor | None = None,
               profiles: ProfileChoice | None = None) -> PowerPlan:
    """Largest number of servers under `budget_kw` (row) whose simulated power stays within
    budget beyond the control latency and whose impact stays within `limits`; `executor`
    evaluates the search's next probes in parallel (the probes visited, and so the plan, are
    the same as a serial search); `profiles` (--profile / --no-profile) times the inference
    load's steps."""
    if not (budget_kw > 0 and math.isfinite(budget_kw)):
        raise ConfigError(f"must be > 0, got {budget_kw!r}", key="power.budget_kw")
    if not 0 <= high_priority_fraction <= 1:
        raise ConfigError(f"must be in [0, 1], got {high_priority_fraction!r}",
                          key="power.high_priority_fraction")
    spec = load_server(server)
    policy = policy or CappingPolicy()
    limits = limits or ImpactLimits()
    budget_w = budget_kw * 1e3
    if load is not None:  # a precomputed profile (reuse across budgets / policies)
        profile, kind = load, load.kind
    elif isinstance(training, LoadProfile):
        profile, kind = training, "training"
    elif training:
        dur = (float(inference_df["arrival_time_s"].max()) if inference_df is not None
               else 3600.0)
        profile, kind = training_profile(duration_s=max(dur, 600.0), bin_s=bin_s), "training"
    else:
        if inference_df is None or model is None:
            raise ConfigError("give model and inference_df, or training=True",
                              key="power.workload")
        profile = inference_profile(model, spec.device, inference_df, gpus_per_server=spec.gpus,
                                    tp=tp, bin_s=bin_s, seed=seed, serving=serving,
                                    profiles=profiles)
        kind = "inference"
    nameplate = int(budget_w // spec.nameplate_w)
    upper = max_servers or int(budget_w // spec.idle_w)
    if upper > MAX_SERVERS:  # one load profile per server: memory grows with the count
        raise ConfigError(f"a {budget_kw:g} kW budget holds up to {upper:,} idle "
                          f"{spec.name} servers, more than a row of {MAX_SERVERS:,}",
                          key="power.budget_kw",
                          allowed=f"<= {MAX_SERVERS * spec.idle_w / 1e3:g} kW, or max_servers")
    rng = np.random.default_rng(seed)
    t_bins = len(profile.busy)
    shift_pool = rng.integers(0, t_bins, size=max(upper, 1))
    probed: dict[int, tuple[bool, RowResult]] = {}

    def prefetch(counts: list[int]) -> None:
        """Evaluate the server counts not probed yet, in parallel through the executor."""
        todo = [n for n in dict.fromkeys(counts) if n not in probed and n >= 1]
        if not todo:
            return
        n_high = [int(round(high_priority_fraction * n)) for n in todo]
        tasks = [RowTask(server=spec, profile=profile, servers=n, high=h, budget_w=budget_w,
                         policy=policy, limits=limits, bin_s=bin_s,
                         shifts=(0,) * n if kind == "training"
                         else tuple(int(x) for x in shift_pool[:n]))
                 for n, h in zip(todo, n_high, strict=True)]
        if executor is None:
            results = [evaluate_row(t) for t in tasks]
        else:
            results = map_values(executor, evaluate_row, tasks)
        probed.update(zip(todo, results, strict=True))

    evaluated: dict[int, bool] = {}
    rows: dict[int, RowResult] = {}

    def visit(n: int) -> bool:
        """The search's probe of n servers (speculative prefetches are not recorded)."""
        prefetch([n])
        evaluated[n], rows[n] = probed[n]
        return evaluated[n]

    lo = max(1, nameplate)
    floor_why: tuple[str, ...] = ()
    if not visit(lo) and nameplate >= 1:  # capping at nameplate broke a limit: the floor
        floor_why = tuple(limit_violations(rows[lo], limits, policy, bin_s))
        evaluated[lo], rows[lo] = _nameplate_row(spec, profile, lo, high_priority_fraction,
                                                 budget_w, bin_s, limits,
                                                 (0,) * lo if kind == "training"
                                                 else tuple(int(x) for x in shift_pool[:lo]))
        hi = lo + 1  # the capped search above nameplate already failed at nameplate
    elif not evaluated[lo]:  # not even one server (nameplate 0): search downwards
        hi, lo = lo, 0
    else:
        step, hi = 1, lo + 1
        while hi <= upper:  # gallop up: +1, +2, +4, ... until infeasible
            ahead, h, st = [], hi, step
            while h <= upper and len(ahead) < SPECULATIVE_PROBES:
                ahead.append(h)
                st *= 2
                h = min(upper + 1, h + st)
            prefetch(ahead)
            if not visit(hi):
                break
            step *= 2
            lo, hi = hi, min(upper + 1, hi + step)
    while hi - lo > 1:  # invariant: lo feasible (or 0), hi infeasible
        mid = (lo + hi) // 2
        prefetch([mid, (lo + mid) // 2, (mid + hi) // 2])  # this probe and both next ones
        lo, hi = (mid, hi) if visit(mid) else (lo, mid)
    best = lo
    if best not in rows:
        prefetch([max(best, 1)])
    row = rows.get(best) or probed[max(best, 1)][1]
    return PowerPlan(server=spec, budget_w=budget_w, workload=kind,
                     nameplate_servers=nameplate, servers=best,
                     gain=best / nameplate - 1.0 if nameplate else float("inf"), row=row,
                     evaluated=evaluated, policy=policy, limits=limits,
                     probe_violations={n: tuple(limit_violations(r, limits, policy, bin_s))
                                       for n, r in rows.items() if not evaluated[n]},
                     notes={"impact_model": "fluid backlog + stretch dilation of the uncapped "
                                            "simulation (first order; engine queueing under "
                                            "the cap is not re-simulated)",
                            "servers_load": "inference: one trace replay per server shape, "
                                            "circularly shifted per server; training: lockstep",
                            **_floor_note(nameplate, floor_why)})


# Nameplate provisioning (servers x nameplate_w <= budget) is deployable without any capping,
# so it is the floor of "servers deployable": capping only ever adds servers above it.
UNCAPPED = CappingPolicy(t1=1.0, t2=1.0, low_freq=(1.0, 1.0), high_freq=1.0, hysteresis=0.0,
                         latency_s=0.0)


def _nameplate_row(spec: ServerSpec, profile: LoadProfile, n: int, high_fraction: float,
                   budget_w: float, bin_s: float, limits: ImpactLimits,
                   shifts: tuple[int, ...]) -> tuple[bool, RowResult]:
    """The nameplate row run with capping off: (within limits, the row) — its summed
    nameplate fits the budget, so the row never needs a cap."""
    return evaluate_row(RowTask(server=spec, profile=profile, servers=n,
                                high=int(round(high_fraction * n)), budget_w=budget_w,
                                policy=UNCAPPED, limits=limits, bin_s=bin_s, shifts=shifts))


def _floor_note(nameplate: int, why: tuple[str, ...]) -> dict[str, str]:
    """The plan's note when the nameplate floor replaced a capped row that broke a limit."""
    if not why:
        return {}
    return {"nameplate_floor": f"capping {nameplate} servers broke {'; '.join(why)}; the "
                               f"nameplate count runs uncapped instead (its nameplate sum fits "
                               f"the budget), so no fewer servers than nameplate are planned"}


def plot_power(plan: PowerPlan, *, ax: Any = None) -> Any:
    """Row power over time with the budget, thresholds and capped periods shaded."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.4))
    else:
        fig = ax.figure
    r = plan.row
    t_min = r.time_s / 60.0
    ax.plot(t_min, r.power_w / 1e3, lw=0.8, label=f"row power ({r.servers} servers)")
    ax.axhline(r.budget_w / 1e3, color="k", label="budget")
    for thr, style in ((plan.policy.t1, ":"), (plan.policy.t2, "--")):
        ax.axhline(thr * r.budget_w / 1e3, color="C3", ls=style, lw=0.8,
                   label=f"{thr:.0%} threshold")
    ax.fill_between(t_min, 0, r.power_w.max() / 1e3 * 1.05, where=r.level > 0, color="C1",
                    alpha=0.15, step="post", label="capping in force")
    ax.set_ylim(min(r.power_w.min() / 1e3 * 0.9, r.budget_w / 1e3 * 0.5),
                max(r.power_w.max(), r.budget_w) / 1e3 * 1.05)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("kW")
    ax.set_title(f"{plan.workload}: {plan.servers} x {plan.server.name} "
                 f"(nameplate {plan.nameplate_servers}) under {r.budget_w / 1e3:.0f} kW",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
