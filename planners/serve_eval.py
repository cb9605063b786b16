"""Evaluating one serving unit: the SLO test of a simulation, a closed-form capacity estimate
that brackets the search, and the bisection for the largest request rate within the SLO.

The bisection runs on the trace's rate scale (traces.stats.scale_trace: inter-arrival gaps
divided by the scale) over a short window of the workload. Tolerance: the returned rate was
simulated and met the SLO, and a rate at most (1 + rel_tol) times higher was simulated and
missed it, so (if SLO attainment falls with load) the true limit lies in [rate, rate x (1 +
rel_tol)). Each simulation is cached by (candidate, window, SLO, seed, scale).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_cache_capacity
from hwmodels.specs import ModelSpec
from hwmodels.step import StepCostModel
from planners.serve_pd_mix import pair_link
from planners.serve_space import ServeCandidate
from simulator.profiles import NO_CHOICE, ProfileChoice
from simulator.serving import (
    ServingPlan,
    ServingResult,
    parse_serving_section,
    simulate_serving,
)
from simulator.serving.kinds import enum_value
from simulator.serving.metrics import latency_columns
from traces.stats import scale_trace


class SloMode(StrEnum):
    """How an SLO is judged (see SLO)."""

    ATTAINMENT = "attainment"
    PERCENTILE = "percentile"

# Bracketing: step the rate from the estimate in growing steps (factor, factor^2, ...) until
# the SLO flips; give up (rate 0: the SLO cannot be met even nearly unloaded) below
# MIN_RATE_FRACTION of the estimate (the closed form is never off by 100x in our checks;
# it costs at most 4 probes down) or after MAX_EXPANSIONS steps.
BRACKET_FACTOR = 1.6
MAX_EXPANSIONS = 8
MIN_RATE_FRACTION = 0.01
DEFAULT_REL_TOL = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class SLO:
    """Latency targets and how they are judged.

    mode "attainment": at least `target` of all requests complete within both TTFT and TPOT
    (DistServe's SLO attainment; dropped requests count as missed). mode "percentile": the
    `target` quantile of TTFT and of TPOT are within their limits and nothing is dropped
    (Vidur-Search's P90 TTFT / TBT constraints)."""

    ttft_s: float | None
    tpot_s: float | None
    target: float = 0.9
    mode: SloMode = SloMode.ATTAINMENT

    def __post_init__(self) -> None:
        for key in ("ttft_s", "tpot_s"):
            v = getattr(self, key)
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise ConfigError(f"must be > 0, got {v!r}", key=f"slo_{key}")
        if self.ttft_s is None and self.tpot_s is None:
            raise ConfigError("needs a TTFT or a TPOT target", key="slo_ttft_s")
        if not 0 < self.target < 1:
            raise ConfigError(f"must be in (0, 1), got {self.target!r}", key="slo_percentile",
                              allowed="e.g. 0.9 or 'p90'")
        object.__setattr__(self, "mode", enum_value(SloMode, self.mode, "slo_mode"))


def parse_percentile(value: float | str) -> float:
    """0.9, 90 or "p90" -> 0.9."""
    text = str(value).strip().lower()
    try:
        q = float(text[1:] if text.startswith("p") else text)
    except ValueError:
        raise ConfigError(f"expected a percentile like p90 or 0.9, got {value!r}",
                          key="slo_percentile") from None
    q = q / 100.0 if q >= 1 else q
    if not 0 < q < 1:
        raise ConfigError(f"must be in (0, 1) or (1, 100), got {value!r}", key="slo_percentile")
    return q


def outstanding_at_last_arrival(records: pd.DataFrame) -> int:
    """Requests arrived but not finished (nor dropped) when the last request arrives."""
    if records.empty:
        return 0
    last = float(records["arrival_s"].max())
    finished = (records["status"] == "completed") & (records["finish_s"] <= last)
    return int(len(records) - finished.sum() - (records["status"] == "dropped").sum())


def slo_check(result: ServingResult, slo: SLO, *, max_outstanding: float | None = None
              ) -> tuple[bool, dict[str, float]]:
    """Whether a simulation meets the SLO, with the figures that decided it.

    max_outstanding (the stability guard of a short window): the backlog when the last request
    arrives must not exceed it. A probe whose whole window fits in the batch slots can meet
    the SLO without a steady state (the burst is absorbed, TPOT averages the wait away);
    a sustainable rate keeps about rate x latency <= the slots in flight (Little's law).
    """
    rec = result.records
    n = len(rec)
    lat = latency_columns(rec)
    attainment = float(result.slo_met().sum()) / n if n else 0.0
    q = 100.0 * slo.target
    ttft = float(np.percentile(lat["ttft_s"], q)) if len(lat) else math.inf
    tpots = lat["tpot_s"].dropna()
    tpot = float(np.percentile(tpots, q)) if len(tpots) else 0.0
    completed = len(lat)
    if slo.mode is SloMode.ATTAINMENT:
        ok = attainment >= slo.target
    else:
        ok = (completed == n and (slo.ttft_s is None or ttft <= slo.ttft_s)
              and (slo.tpot_s is None or tpot <= slo.tpot_s))
    backlog = outstanding_at_last_arrival(rec)
    if max_outstanding is not None and backlog > max_outstanding:
        ok = False
    return ok, {"attainment": attainment, "ttft_q_s": ttft, "tpot_q_s": tpot,
                "completed_fraction": completed / n if n else 0.0,
                "outstanding_at_last_arrival": float(backlog)}


# ---------------------------------------------------------------------------------------------
# Scenario of one unit
# ---------------------------------------------------------------------------------------------


def unit_mapping(model_ref: Any, cand: ServeCandidate, slo: SLO, *, units: int = 1,
                 dtype: str = "bf16", gpu_memory_utilization: float = 0.9,
                 router: str = "least_loaded") -> dict[str, Any]:
    """The serving-scenario mapping of `units` copies of a candidate unit (YAML keys of
    ARCHITECTURE.md), so a plan can be written out and re-run with `fleetsim simulate serve`."""
    serving: dict[str, Any] = {**cand.serving_section(), "router": router, "dtype": dtype,
                               "gpu_memory_utilization": gpu_memory_utilization}
    if cand.disaggregated:  # the short form: both pools of cluster.device with serving.tp/pp
        serving["disaggregation"] = {"prefill_replicas": cand.prefill_replicas * units,
                                     "decode_replicas": cand.decode_replicas * units}
        if cand.mixed:  # the long form: each pool its device and tp, KV over the slower NIC
            serving["disaggregation"].update(
                prefill={"device": cand.device, "tp": cand.tp},
                decode={"device": cand.decode_device_name, "tp": cand.decode_tp_degree},
                link=pair_link(cand.device, cand.decode_device_name))
    else:
        serving["replicas"] = units
    out: dict[str, Any] = {
        "model": model_ref, "cluster": {"device": cand.device, "num_devices": cand.gpus * units},
        "serving": serving, "workload": {"trace": "inline"}, "slo": {}}
    if slo.ttft_s is not None:
        out["slo"]["ttft_s"] = slo.ttft_s
    if slo.tpot_s is not None:
        out["slo"]["tpot_s"] = slo.tpot_s
    return out


def unit_plan(model: ModelSpec, cand: ServeCandidate, slo: SLO, *, units: int = 1,
              dtype: str = "bf16", gpu_memory_utilization: float = 0.9,
              profiles: ProfileChoice | None = None) -> ServingPlan:
    """The typed plan of `units` copies of a candidate: the serving keys of unit_mapping (so
    a written-out plan re-runs the same), with the model spec itself; `profiles` picks the
    device's efficiency profile (None: bundled, else catalog defaults)."""
    serving = unit_mapping(model.name, cand, slo, units=units, dtype=dtype,
                           gpu_memory_utilization=gpu_memory_utilization)["serving"]
    device = load_device(cand.device)
    cfg, groups = parse_serving_section(serving, device=device,
                                           num_devices=cand.gpus * units, profiles=profiles)
    link = None if cfg.disaggregation is None else cfg.disaggregation.link
    return ServingPlan(model=model, device=device, serving=cfg, groups=groups,
                       slo_ttft_s=slo.ttft_s, slo_tpot_s=slo.tpot_s, disagg_link=link,
                       profile=(profiles or NO_CHOICE).for_device(device))


def simulate_unit(model: ModelSpec, cand: ServeCandidate, requests: pd.DataFrame, slo: SLO, *,
                  units: int = 1, seed: int = 0, dtype: str = "bf16",
                  gpu_memory_utilization: float = 0.9,
                  profiles: ProfileChoice | None = None) -> ServingResult:
    """Simulate `units` copies of a candidate on `requests` (already at the rate to test)."""
    plan = unit_plan(model, cand, slo, units=units, dtype=dtype,
                     gpu_memory_utilization=gpu_memory_utilization, profiles=profiles)
    return simulate_serving(plan, requests, seed=seed)


# ---------------------------------------------------------------------------------------------
# Closed-form capacity estimate (brackets the bisection)
# ---------------------------------------------------------------------------------------------


def estimate_unit_rate(model: ModelSpec, cand: ServeCandidate, *, input_mean: float,
                       output_mean: float, tpot_s: float | None, dtype: str = "bf16",
                       gpu_memory_utilization: float = 0.9,
                       profiles: ProfileChoice | None = None) -> float:
    """Requests/s one unit serves at saturation, from hwmodels.step: decode runs B sequences
    per step (B limited by max_num_seqs, the KV cache at mean context, and the TPOT target);
    each request costs its prefill plus output_mean / B decode steps. Disaggregated: the lesser
    of the prefill pool's and the decode pool's rates (a mixed pair: each on its own device and
    TP). Used only to bracket the search."""
    device = load_device(cand.device)
    cost = StepCostModel(model, device, tp=cand.tp, pp=cand.pp, dtype=dtype,
                         profile=(profiles or NO_CHOICE).for_device(device))
    prefill_cost = cost
    if cand.mixed:
        device = load_device(cand.decode_device_name)
        cost = StepCostModel(model, device, tp=cand.decode_tp_degree, pp=cand.pp, dtype=dtype,
                             profile=(profiles or NO_CHOICE).for_device(device))
    kv = kv_cache_capacity(model, device, tp=cand.decode_tp_degree, pp=cand.pp, dtype=dtype,
                           gpu_memory_utilization=gpu_memory_utilization)
    ctx = input_mean + output_mean / 2.0
    batch = max(1.0, min(float(cand.max_num_seqs), kv.tokens / (input_mean + output_mean)))

    def decode_step(b: float) -> float:
        return cost.time_s(0.0, 0.0, b, b * ctx)

    while tpot_s is not None and batch > 1.0 and decode_step(batch) > tpot_s:
        batch = max(1.0, batch * 0.8)
    t_dec = decode_step(batch)
    prefill_units = input_mean * input_mean / 2.0
    if cand.disaggregated:
        prefill_rate = cand.prefill_replicas / prefill_cost.time_s(input_mean, prefill_units,
                                                                   0.0, 0.0)
        decode_rate = cand.decode_replicas * batch / (max(output_mean - 1.0, 1.0) * t_dec)
        return min(prefill_rate, decode_rate)
    marginal_prefill = cost.time_s(input_mean, prefill_units, batch, batch * ctx) - t_dec
    return 1.0 / (marginal_prefill + output_mean * t_dec / batch)


# ---------------------------------------------------------------------------------------------
# Bisection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Bisection:
    """The largest rate found to meet the SLO and every probe on the way (rate -> met)."""

    rate: float  # 0.0: the SLO was missed even at the lowest probe
    probes: dict[float, bool] = field(default_factory=dict)


def find_max_rate(meets: Callable[[float], bool], estimate: float, *,
                  rel_tol: float = DEFAULT_REL_TOL, factor: float = BRACKET_FACTOR,
                  max_expansions: int = MAX_EXPANSIONS,
                  min_fraction: float = MIN_RATE_FRACTION) -> Bisection:
    """Largest rate r with meets(r), to within rel_tol: bracket from `estimate` in growing
    geometric steps (x factor, x factor^2, ... up while met; the same down while missed;
    factor^(n(n+1)/2) after n steps), then bisect geometrically until hi / lo <= 1 + rel_tol;
    returns lo (a rate that was seen to meet), or 0 when even min_fraction x estimate misses."""
    if not (estimate > 0 and math.isfinite(estimate)):
        raise ConfigError(f"estimate must be a finite rate > 0, got {estimate!r}", key="estimate")
    if not 0 < rel_tol < 1:
        raise ConfigError(f"must be in (0, 1), got {rel_tol!r}", key="rate_tolerance")
    probes: dict[float, bool] = {}

    def probe(rate: float) -> bool:
        if rate not in probes:
            probes[rate] = bool(meets(rate))
        return probes[rate]

    lo, hi = 0.0, math.inf
    rate = estimate
    if probe(rate):
        lo = rate
        for k in range(max_expansions):
            rate *= factor ** (k + 1)  # growing steps: a far-off estimate costs few probes
            if not probe(rate):
                hi = rate
                break
            lo = rate
        else:
            return Bisection(rate=lo, probes=probes)  # never saturated within the bracket
    else:
        hi = rate
        for k in range(max_expansions):
            rate /= factor ** (k + 1)
            if rate < estimate * min_fraction:
                return Bisection(rate=0.0, probes=probes)
            if probe(rate):
                lo = rate
                break
            hi = rate
        else:
            return Bisection(rate=0.0, probes=probes)
    while hi / lo > 1.0 + rel_tol:
        mid = math.sqrt(lo * hi)
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return Bisection(rate=lo, probes=probes)


def unit_slots(model: ModelSpec, cand: ServeCandidate, *, input_mean: float,
               output_mean: float, max_batch_tokens: int = 8192, dtype: str = "bf16",
               gpu_memory_utilization: float = 0.9) -> float:
    """Requests a unit holds at once: per decoding replica min(max_num_seqs, KV tokens /
    tokens per request, on the decode pool's device); a disaggregated unit adds a prefill
    batch (max_batch_tokens of prompts) per prefill replica."""
    kv = kv_cache_capacity(model, load_device(cand.decode_device_name),
                           tp=cand.decode_tp_degree, pp=cand.pp, dtype=dtype,
                           gpu_memory_utilization=gpu_memory_utilization)
    per_replica = min(float(cand.max_num_seqs), kv.tokens / max(input_mean + output_mean, 1.0))
    if not cand.disaggregated:
        return max(per_replica, 1.0)
    prefill = cand.prefill_replicas * max(1.0, max_batch_tokens / max(input_mean, 1.0))
    return cand.decode_replicas * max(per_replica, 1.0) + prefill


def tile_window(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first n requests of df, repeating it end to end (next copy one mean gap after the
    last arrival) when it holds fewer."""
    if len(df) >= n:
        return df.iloc[:n].reset_index(drop=True)
    t = df["arrival_time_s"].to_numpy(dtype=float)
    period = float(t[-1] - t[0]) + (float(t[-1] - t[0]) / max(len(t) - 1, 1))
    copies = []
    for k in range(math.ceil(n / len(df))):
        part = df.copy()
        part["arrival_time_s"] = (t - t[0]) + k * period
        copies.append(part)
    return pd.concat(copies, ignore_index=True).iloc[:n].reset_index(drop=True)


def window_digest(df: pd.DataFrame) -> str:
    """A short content hash of a request window (cache key part)."""
    h = hashlib.blake2b(digest_size=8)
    for col in ("arrival_time_s", "input_tokens", "output_tokens"):
        h.update(np.ascontiguousarray(df[col].to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def base_rate_rps(df: pd.DataFrame) -> float:
    """Mean arrival rate of a request frame: (n - 1) / span."""
    t = df["arrival_time_s"].to_numpy(dtype=float)
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    if span <= 0:
        raise ConfigError("the workload needs at least two requests at distinct times",
                          key="workload")
    return (len(t) - 1) / span


@dataclass(frozen=True, slots=True, kw_only=True)
class BisectTask:
    """Everything one unit's rate search needs (picklable: goes through the executor)."""

    model: ModelSpec
    candidate: ServeCandidate
    window: pd.DataFrame
    slo: SLO
    estimate_rps: float
    rel_tol: float = DEFAULT_REL_TOL
    seed: int = 0
    dtype: str = "bf16"
    gpu_memory_utilization: float = 0.9
    max_outstanding: float | None = None  # stability guard, see slo_check
    profiles: ProfileChoice | None = None  # the user's --profile / --no-profile
    cached: Mapping[float, tuple[bool, dict[str, float]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BisectOutcome:
    """The unit's maximum rate, its SLO figures there, and the new simulations (for the cache)."""

    rate_rps: float
    metrics: dict[str, float]
    simulations: int
    cache_hits: int
    new_entries: dict[float, tuple[bool, dict[str, float]]]


def bisect_task(task: BisectTask) -> BisectOutcome:
    """Run one unit's rate search (module-level: executors pickle it)."""
    base = base_rate_rps(task.window)
    entries: dict[float, tuple[bool, dict[str, float]]] = {}
    hits = 0

    def evaluate(rate: float) -> bool:
        nonlocal hits
        scale = round(rate / base, 12)
        if scale in task.cached or scale in entries:
            hits += 1
            return (task.cached.get(scale) or entries[scale])[0]
        result = simulate_unit(task.model, task.candidate, scale_trace(task.window, scale),
                               task.slo, seed=task.seed, dtype=task.dtype,
                               gpu_memory_utilization=task.gpu_memory_utilization,
                               profiles=task.profiles)
        entries[scale] = slo_check(result, task.slo, max_outstanding=task.max_outstanding)
        return entries[scale][0]

    found = find_max_rate(evaluate, task.estimate_rps, rel_tol=task.rel_tol)
    metrics: dict[str, float] = {}
    if found.rate > 0:
        key = round(found.rate / base, 12)
        metrics = dict((task.cached.get(key) or entries[key])[1])
    return BisectOutcome(rate_rps=found.rate, metrics=metrics, simulations=len(entries),
                         cache_hits=hits, new_entries=entries)
