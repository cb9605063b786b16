"""Preemptible (spot) capacity for long runs: the `run.spot` section, its preemption source
and the spot bill.

```yaml
run:
  spot:
    preemptions_per_node_hour: 0.002   # or trace: preemptions.csv (time_s,node or time_s,count)
    warning_s: 120s                    # AWS 120 s, GCP 30 s
    replacement_s: 20m                 # or never
    price_usd_per_gpu_hour: 1.90
    on_demand_price_usd_per_gpu_hour: 6.88
    fraction: 1.0                      # share of the job's node slots on spot capacity
```

A preemption is announced `warning_s` before the node goes; the engine takes an emergency
checkpoint in that window when the persistent write fits in it, else rolls back to the last
checkpoint. The node's slot comes back `warning_s + replacement_s` after the notice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hwmodels.errors import ConfigError
from simulator.schema import Seconds

SPOT = "run.spot"
PREEMPTION = "preemption"  # the interruption cause (RunResult.interruptions key)

# AWS EC2 Spot: "a Spot Instance interruption notice ... two minutes before Amazon EC2 stops or
# terminates your instance" (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
# spot-instance-termination-notices.html, read 2026-12). GCP Spot VMs get a 30 s preemption
# notice (cloud.google.com/compute/docs/instances/spot, "Preemption process", read 2026-12).
AWS_WARNING_S = 120.0
GCP_WARNING_S = 30.0
# assumption: a preempted slot is refilled (new spot capacity found, node booted, joined) in
# 20 minutes; spot capacity availability is not published as a number, so this is a knob.
DEFAULT_REPLACEMENT_S = 1200.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotSpec:
    """`run.spot` as written: a preemption rate or trace, the warning, the replacement delay,
    prices per GPU-hour and the share of node slots on spot capacity."""

    preemptions_per_node_hour: float | None = None
    trace: str | None = None
    warning_s: Seconds = AWS_WARNING_S
    replacement_s: Literal["never"] | Seconds = DEFAULT_REPLACEMENT_S
    price_usd_per_gpu_hour: float | None = None
    on_demand_price_usd_per_gpu_hour: float | None = None
    fraction: float = 1.0

    def __post_init__(self) -> None:
        rate, trace = self.preemptions_per_node_hour, self.trace
        if (rate is None) == (trace is None):
            raise ConfigError("give exactly one of preemptions_per_node_hour and trace",
                              key=f"{SPOT}.preemptions_per_node_hour",
                              allowed="a rate >= 0 per node-hour, or trace: FILE.csv")
        if rate is not None and not (rate >= 0 and math.isfinite(rate)):
            raise ConfigError(f"must be >= 0, got {rate!r}", key=f"{SPOT}.preemptions_per_node_hour")
        if not (self.warning_s >= 0 and math.isfinite(self.warning_s)):
            raise ConfigError(f"must be >= 0, got {self.warning_s!r}", key=f"{SPOT}.warning_s")
        if self.replacement_s != "never" and not (self.replacement_s >= 0
                                                  and math.isfinite(self.replacement_s)):
            raise ConfigError(f"must be >= 0, got {self.replacement_s!r}",
                              key=f"{SPOT}.replacement_s", allowed="a duration >= 0, never")
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {self.fraction!r}", key=f"{SPOT}.fraction")
        for name in ("price_usd_per_gpu_hour", "on_demand_price_usd_per_gpu_hour"):
            value = getattr(self, name)
            if value is None:
                raise ConfigError("missing: no catalog price is cited, so give it",
                                  key=f"{SPOT}.{name}", allowed="USD per GPU-hour > 0")
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"must be > 0, got {value!r}", key=f"{SPOT}.{name}")

    def resolve(self, *, file: str | None = None) -> SpotConfig:
        """The SpotConfig the engine runs (a trace file read relative to the scenario)."""
        events: tuple[tuple[float, int, int], ...] = ()
        if self.trace is not None:
            events = read_preemption_trace(_relative(self.trace, file), file=file)
        return SpotConfig(
            rate_per_node_s=(self.preemptions_per_node_hour or 0.0) / 3600.0,
            events=events, warning_s=self.warning_s,
            replacement_s=math.inf if self.replacement_s == "never" else self.replacement_s,
            price_usd_per_gpu_hour=float(self.price_usd_per_gpu_hour or 0.0),
            on_demand_price_usd_per_gpu_hour=float(self.on_demand_price_usd_per_gpu_hour or 0.0),
            fraction=self.fraction)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotConfig:
    """The resolved spot settings: events are (time_s, spot node or -1, count)."""

    rate_per_node_s: float
    events: tuple[tuple[float, int, int], ...]
    warning_s: float
    replacement_s: float  # inf: a preempted slot never comes back
    price_usd_per_gpu_hour: float
    on_demand_price_usd_per_gpu_hour: float
    fraction: float

    def spot_nodes(self, num_nodes: int) -> int:
        """Node slots on spot capacity (the last ones of the job)."""
        return round(self.fraction * num_nodes)

    def mean_rate_per_node_s(self) -> float:
        """Preemptions per spot node-second: the rate, or a trace's nodes over its span."""
        if not self.events:
            return self.rate_per_node_s
        span = max(t for t, _, _ in self.events)
        return sum(c for _, _, c in self.events) / span if span > 0 else math.inf


def lossy_rate_per_s(spot: SpotConfig, num_nodes: int, *, save_s: float) -> float:
    """Preemptions per second of the job that lose work: all of them when the warning is
    shorter than the emergency save, none otherwise (Young/Daly's failure rate share)."""
    if spot.warning_s >= save_s:
        return 0.0
    return spot.mean_rate_per_node_s() * spot.spot_nodes(num_nodes)


def _relative(path: str, file: str | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or file is None else Path(file).parent / p


def read_preemption_trace(path: Path, *, file: str | None = None
                          ) -> tuple[tuple[float, int, int], ...]:
    """A csv of `time_s,node` (that spot node) or `time_s,count` (that many random ones)."""
    key = f"{SPOT}.trace"
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}", file=file, key=key) from None
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    if header not in (["time_s", "node"], ["time_s", "count"]):
        raise ConfigError(f"{path}: header {','.join(header) or '(empty)'}", file=file, key=key,
                          allowed="time_s,node or time_s,count")
    events = []
    for i, line in enumerate(lines[1:], start=2):
        try:
            t_text, v_text = line.split(",")
            t, v = float(t_text), int(v_text)
        except ValueError:
            raise ConfigError(f"{path} line {i}: expected <seconds>,<integer>, got {line!r}",
                              file=file, key=key) from None
        if not (t >= 0 and math.isfinite(t)) or v < (0 if header[1] == "node" else 1):
            raise ConfigError(f"{path} line {i}: time_s >= 0 and {header[1]} "
                              f">= {0 if header[1] == 'node' else 1} expected, got {line!r}",
                              file=file, key=key)
        events.append((t, v, 1) if header[1] == "node" else (t, -1, v))
    return tuple(sorted(events))


class PreemptionSource:
    """When the next preemption comes and which spot nodes it takes, from the run's own
    generator. Rate mode: a Poisson process over the present spot nodes, one standard
    exponential draw per event scaled by the current hazard (so a higher rate, same seed,
    brings every event earlier)."""

    def __init__(self, spot: SpotConfig, *, spot_slots: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.spot, self.slots, self.rng = spot, spot_slots, rng
        self._pos = 0  # next trace event
        self._budget = rng.exponential() if spot.rate_per_node_s > 0 else math.inf
        self._since = 0.0

    def next_time(self, present: np.ndarray) -> float:
        """Time of the next preemption with the spot nodes present now (inf: none due)."""
        if self.spot.events:
            return self.spot.events[self._pos][0] if self._pos < len(self.spot.events) else math.inf
        hazard = self.spot.rate_per_node_s * int(present[self.slots].sum())
        return self._since + self._budget / hazard if hazard > 0 else math.inf

    def spend(self, now: float, present: np.ndarray) -> None:
        """Call before the present set changes at `now`: use up the draw elapsed since."""
        if not self.spot.events and math.isfinite(self._budget):
            used = (now - self._since) * self.spot.rate_per_node_s * int(present[self.slots].sum())
            self._budget = max(self._budget - used, 0.0)
        self._since = now

    def take(self, now: float, present: np.ndarray) -> np.ndarray:
        """The event is due: the spot nodes it takes (present ones only), and draw the next."""
        self._since = now
        live = self.slots[present[self.slots]]
        if self.spot.events:
            _, node, count = self.spot.events[self._pos]
            self._pos += 1
            if node >= 0:
                if node >= self.slots.size:
                    raise ConfigError(f"node {node} is not one of the job's {self.slots.size} "
                                      "spot nodes", key=f"{SPOT}.trace",
                                      allowed=f"0..{self.slots.size - 1}")
                slot = self.slots[node]
                return np.array([slot] if present[slot] else [], dtype=np.int64)
            count = min(count, live.size)
            return np.sort(self.rng.choice(live, size=count, replace=False)).astype(np.int64)
        self._budget = self.rng.exponential()
        return np.array([live[self.rng.integers(live.size)]], dtype=np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotOutcome:
    """The spot part of a run's result: preemptions, emergency saves and the bill."""

    preemptions: int  # nodes preempted
    emergency_checkpoints: int
    lost_work_s: float  # compute rolled back by preemptions
    spot_gpu_hours: float
    on_demand_gpu_hours: float
    cost_usd: float
    cost_per_million_tokens_usd: float | None  # None: no token trained
    on_demand_cost_usd: float  # the same GPU-hours at the on-demand price
    time_to_train_s: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in self.__slots__}


def spot_outcome(spot: SpotConfig, *, preemptions: int, emergency_checkpoints: int,
                 lost_work_s: float, spot_node_s: float, on_demand_node_s: float,
                 gpus_per_node: int, tokens: float, time_to_train_s: float | None
                 ) -> SpotOutcome:
    """The bill: GPU-hours held on each kind of capacity times its price."""
    spot_h = spot_node_s * gpus_per_node / 3600.0
    od_h = on_demand_node_s * gpus_per_node / 3600.0
    cost = spot_h * spot.price_usd_per_gpu_hour + od_h * spot.on_demand_price_usd_per_gpu_hour
    return SpotOutcome(
        preemptions=preemptions, emergency_checkpoints=emergency_checkpoints,
        lost_work_s=lost_work_s, spot_gpu_hours=spot_h, on_demand_gpu_hours=od_h,
        cost_usd=cost, cost_per_million_tokens_usd=cost / (tokens / 1e6) if tokens > 0 else None,
        on_demand_cost_usd=(spot_h + od_h) * spot.on_demand_price_usd_per_gpu_hour,
        time_to_train_s=time_to_train_s)
