"""Capacity under SLO and throughput-latency sweeps: probes of a serving scenario at several
loads, each `probe_s` of simulated arrivals (900 s by default: a 300 s probe can pass an
overloaded system whose queue has not grown past the SLO yet).

Load is the workload's rate_scale (trace or synthetic arrivals; the trace is tiled to cover
the probe) or, for closed-loop clients, the client count. A probe passes when the SLO
percentile (p90 by default) of TTFT and of TPOT over every request that arrived in the probe
is within slo.ttft_s / slo.tpot_s (dropped requests count as missing both), and the queue is
not growing: the mean TTFT of the last third of arrivals must stay below
OVERLOAD_RATIO x the first third's + OVERLOAD_FLOOR_FRACTION x slo.ttft_s (TTFT stands in for
queueing delay: prefill is the same in every third of a stationary workload). Overloaded
fails even when the percentiles pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.errors import ConfigError, InfeasibleError
from simulator.serving.metrics import latency_columns
from simulator.serving.request import Status
from simulator.serving.scenario import ServingScenario, load_workload
from simulator.serving.simulate import simulate_serving
from traces.closed_loop import ClientsSpec
from traces.stats import scale_trace, tile_trace

DEFAULT_PROBE_S = 900.0
# overload: last third's mean TTFT above 2x the first third's plus a quarter of the TTFT SLO
# (engineering choice, not fitted: a stable queue's thirds differ by burstiness only)
OVERLOAD_RATIO = 2.0
OVERLOAD_FLOOR_FRACTION = 0.25
OVERLOAD_FLOOR_S = 0.25  # when the scenario has no TTFT SLO
MAX_BRACKET_STEPS = 12  # doublings / halvings looking for a passing and a failing load


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One simulated load: its latency, throughput and verdict."""

    load: float
    requests: int
    offered_rps: float
    completed_rps: float
    throughput_tokens_per_s: float
    ttft_s: dict[str, float | None]
    tpot_s: dict[str, float | None]
    slo_attainment: float
    ttft_first_third_s: float | None
    ttft_last_third_s: float | None
    overloaded: bool
    meets_slo: bool

    @property
    def passed(self) -> bool:
        return self.meets_slo and not self.overloaded

    def to_dict(self) -> dict[str, Any]:
        return {"load": self.load, "requests": self.requests, "offered_rps": self.offered_rps,
                "completed_rps": self.completed_rps,
                "throughput_tokens_per_s": self.throughput_tokens_per_s,
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s,
                "slo_attainment": self.slo_attainment,
                "ttft_first_third_s": self.ttft_first_third_s,
                "ttft_last_third_s": self.ttft_last_third_s, "overloaded": self.overloaded,
                "meets_slo": self.meets_slo, "passed": self.passed}


def load_kind(scenario: ServingScenario, trace: str | Path | None = None) -> str:
    """'clients' for a closed-loop workload (without a --trace), else 'rate_scale'."""
    return "clients" if trace is None and scenario.workload.clients is not None else "rate_scale"


def base_load(scenario: ServingScenario, trace: str | Path | None = None) -> float:
    """The scenario's own load: its client count or its rate_scale (1 when unset)."""
    wl = scenario.workload
    if load_kind(scenario, trace) == "clients":
        return float(wl.clients_spec(scenario.file).count)
    return float(wl.rate_scale or 1.0)


def probe_workload(scenario: ServingScenario, load: float, probe_s: float, *,
                   trace: str | Path | None = None, seed: int | None = None
                   ) -> pd.DataFrame | ClientsSpec:
    """The scenario's workload at `load` covering `probe_s` seconds of arrivals."""
    wl = scenario.workload
    if load_kind(scenario, trace) == "clients":
        spec = wl.clients_spec(scenario.file)
        return spec.with_count(max(1, int(round(load)))).with_stop(duration_s=probe_s)
    span = probe_s * load  # seconds of the unscaled workload that load x compresses to probe_s
    if trace is None and wl.synthetic is not None:
        synth = {k: v for k, v in wl.synthetic.items() if k not in ("num_requests",
                                                                      "duration_s")}
        synth["duration_s"] = span
        sc = replace(scenario, workload=replace(wl, synthetic=synth, rate_scale=None,
                                                window=None))
        df = load_workload(sc, seed=seed)
    else:
        sc = replace(scenario, workload=replace(wl, rate_scale=None))
        df = tile_trace(load_workload(sc, trace=trace, seed=seed), span)
    return scale_trace(df, load)


def _third_means(arrival: np.ndarray, ttft: np.ndarray, probe_s: float
                 ) -> tuple[float | None, float | None]:
    def mean(lo: float, hi: float) -> float | None:
        sel = (arrival >= lo) & (arrival < hi) & np.isfinite(ttft)  # completed ones
        return float(ttft[sel].mean()) if sel.any() else None
    return mean(0.0, probe_s / 3), mean(2 * probe_s / 3, probe_s)


def _pct(values: np.ndarray, p: int) -> float | None:
    """Nearest-rank (upper) percentile: a request's own latency, never an interpolation
    towards the +inf of a dropped one."""
    return float(np.percentile(values, p, method="higher")) if len(values) else None


def run_probe(scenario: ServingScenario, load: float, *, probe_s: float = DEFAULT_PROBE_S,
              percentile: int = 90, trace: str | Path | None = None,
              seed: int | None = None) -> Probe:
    """Simulate one load and judge it against the scenario's SLO (see the module docstring)."""
    work = probe_workload(scenario, load, probe_s, trace=trace, seed=seed)
    result = simulate_serving(scenario, work, seed=seed)
    rec = result.records
    summary = result.summary()
    n = len(rec)
    done = rec["status"] == Status.COMPLETED
    lat = latency_columns(rec).reindex(rec.index)
    # dropped / unfinished requests missed both SLOs: +inf in the percentiles
    ttft = lat["ttft_s"].where(done, np.inf).to_numpy(dtype=float)
    tpot = lat["tpot_s"].fillna(0.0).where(done, np.inf).to_numpy(dtype=float)
    ps = (50, percentile, 99) if percentile not in (50, 99) else (50, 99)
    ttft_p = {f"p{p}": _pct(ttft, p) for p in ps}
    tpot_p = {f"p{p}": _pct(tpot, p) for p in ps}
    key = f"p{percentile}"
    meets = n > 0
    if scenario.slo_ttft_s is not None:
        meets &= ttft_p[key] is not None and ttft_p[key] <= scenario.slo_ttft_s
    if scenario.slo_tpot_s is not None:
        meets &= tpot_p[key] is not None and tpot_p[key] <= scenario.slo_tpot_s
    arrival = rec["arrival_s"].to_numpy(dtype=float)
    first, last = _third_means(arrival, ttft, probe_s)
    floor = (OVERLOAD_FLOOR_FRACTION * scenario.slo_ttft_s if scenario.slo_ttft_s is not None
             else OVERLOAD_FLOOR_S)
    overloaded = (first is not None and last is not None
                  and last > OVERLOAD_RATIO * first + floor)
    span = max(float(arrival.max()) if n else 0.0, 1e-9)
    return Probe(load=float(load), requests=n, offered_rps=n / span,
                 completed_rps=int(done.sum()) / max(result.duration_s, 1e-9),
                 throughput_tokens_per_s=summary["throughput_tokens_per_s"],
                 ttft_s={k: _finite(v) for k, v in ttft_p.items()},
                 tpot_s={k: _finite(v) for k, v in tpot_p.items()},
                 slo_attainment=summary["slo_attainment"],
                 ttft_first_third_s=_finite(first), ttft_last_third_s=_finite(last),
                 overloaded=bool(overloaded), meets_slo=bool(meets))


def _finite(v: float | None) -> float | None:
    return v if v is None or np.isfinite(v) else None


def sweep_loads(scenario: ServingScenario, loads: Sequence[float], *,
                probe_s: float = DEFAULT_PROBE_S, percentile: int = 90,
                trace: str | Path | None = None, seed: int | None = None,
                progress: Callable[[Probe], None] | None = None) -> list[Probe]:
    """The throughput-latency curve: one probe per load."""
    _check(scenario, loads, probe_s, percentile, trace, need_slo=False)
    out = []
    for load in loads:
        out.append(run_probe(scenario, load, probe_s=probe_s, percentile=percentile,
                             trace=trace, seed=seed))
        if progress is not None:
            progress(out[-1])
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """The largest passing load found and every probe on the way."""

    load_kind: str
    capacity: float
    best: Probe
    first_failing: float | None
    probes: tuple[Probe, ...]
    probe_s: float
    percentile: int

    def to_dict(self) -> dict[str, Any]:
        return {"load_kind": self.load_kind, "capacity": self.capacity,
                "capacity_rps": self.best.offered_rps,
                "capacity_throughput_tokens_per_s": self.best.throughput_tokens_per_s,
                "first_failing_load": self.first_failing, "probe_s": self.probe_s,
                "slo_percentile": self.percentile,
                "probes": [p.to_dict() for p in self.probes]}


def find_capacity(scenario: ServingScenario, *, probe_s: float = DEFAULT_PROBE_S,
                  percentile: int = 90, rel_tol: float = 0.05,
                  trace: str | Path | None = None, seed: int | None = None,
                  progress: Callable[[Probe], None] | None = None) -> Capacity:
    """Bisection on rate_scale (or the client count) for the largest load whose probe
    passes; starts at the scenario's own load, doubles / halves to bracket, then bisects to
    `rel_tol` (clients: to one client). InfeasibleError when even the smallest load fails."""
    kind = load_kind(scenario, trace)
    start = base_load(scenario, trace)
    _check(scenario, [start], probe_s, percentile, trace, need_slo=True)
    if not 0 < rel_tol < 1:
        raise ConfigError(f"must be in (0, 1), got {rel_tol}", key="rel_tol")
    probes: list[Probe] = []

    def probe(load: float) -> Probe:
        p = run_probe(scenario, load, probe_s=probe_s, percentile=percentile, trace=trace,
                      seed=seed)
        probes.append(p)
        if progress is not None:
            progress(p)
        return p

    integer = kind == "clients"
    step = (lambda x: x * 2) if not integer else (lambda x: float(int(x) * 2))
    lo = hi = None  # lo: passing probe; hi: failing load
    p = probe(start)
    if p.passed:
        lo = p
        for _ in range(MAX_BRACKET_STEPS):
            q = probe(step(lo.load))
            if not q.passed:
                hi = q.load
                break
            lo = q
    else:
        hi = start
        for _ in range(MAX_BRACKET_STEPS):
            load = hi / 2 if not integer else float(int(hi) // 2)
            if load < (1 if integer else 1e-9) or load == hi:
                break
            q = probe(load)
            if q.passed:
                lo = q
                break
            hi = load
    if lo is None:
        raise InfeasibleError(f"no load meets the SLO: even {kind} {probes[-1].load:g} "
                              f"fails (p{percentile} TTFT {probes[-1].ttft_s.get(f'p{percentile}')}"
                              f" s, overloaded {probes[-1].overloaded})",
                              hint="more replicas, a faster device, or a looser slo")
    while hi is not None:
        if integer and hi - lo.load <= 1:
            break
        if not integer and (hi - lo.load) <= rel_tol * lo.load:
            break
        mid = (lo.load + hi) / 2 if not integer else float((int(lo.load) + int(hi)) // 2)
        q = probe(mid)
        if q.passed:
            lo = q
        else:
            hi = mid
    return Capacity(load_kind=kind, capacity=lo.load, best=lo, first_failing=hi,
                    probes=tuple(probes), probe_s=probe_s, percentile=percentile)


def _check(scenario: ServingScenario, loads: Sequence[float], probe_s: float,
           percentile: int, trace: str | Path | None, *, need_slo: bool) -> None:
    if need_slo and scenario.slo_ttft_s is None and scenario.slo_tpot_s is None:
        raise ConfigError("capacity under SLO needs an SLO", file=scenario.file, key="slo",
                          allowed=["slo.ttft_s", "slo.tpot_s"])
    if not (isinstance(probe_s, (int, float)) and np.isfinite(probe_s) and probe_s > 0):
        raise ConfigError(f"must be > 0 s, got {probe_s!r}", key="--probe-s")
    if percentile not in (50, 90, 95, 99):
        raise ConfigError(f"unsupported percentile {percentile!r}", key="--slo-percentile",
                          allowed=["50", "90", "95", "99"])
    integer = load_kind(scenario, trace) == "clients"
    for load in loads:
        ok = isinstance(load, (int, float)) and np.isfinite(load) and load > 0
        if not ok or (integer and (load < 1 or load != int(load))):
            raise ConfigError(f"bad load {load!r}", key="--sweep-rates",
                              allowed="client counts >= 1" if integer
                              else "rate_scale multipliers > 0")
    if not loads:
        raise ConfigError("no loads given", key="--sweep-rates")
