"""Per-bucket capacity of one instance type, measured by simulation: the highest Poisson
request rate one (device, TP) replica sustains within the SLO when it serves requests drawn
from one request-size bucket (Mélange's offline profiling step, done with our simulator)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError
from hwmodels.specs import ModelSpec
from planners.executors import map_values
from simulator.profiles import ProfileChoice
from simulator.serving import (
    ServingPlan,
    build_replica_setup,
    parse_serving_section,
    simulate_serving,
)

# Rate at which requests barely overlap: checks the SLO is reachable at all.
PROBE_RATE_RPS = 1e-3
# Doublings tried above the serial rate before giving up (2^12 x serial is far past any
# batching gain we model).
MAX_DOUBLINGS = 12
# A profiling run spans at least this long at its rate (up to MAX_PROFILE_REQUESTS requests),
# so an overloaded replica shows a growing queue instead of absorbing one burst.
MIN_PROFILE_DURATION_S = 20.0
MAX_PROFILE_REQUESTS = 1500


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileTask:
    """One (instance type, bucket) capacity measurement; hashable so results can be cached."""

    model: str | ModelSpec
    device: str
    tp: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    slo_ttft_s: float | None  # None: a TPOT-only SLO (see slo_met)
    slo_tpot_s: float | None
    target: float = 0.95  # fraction of requests that must meet both SLOs
    num_requests: int = 200
    rel_tol: float = 0.05  # bisection stops when hi / lo < 1 + rel_tol
    seed: int = 0
    serving: tuple[tuple[str, Any], ...] = ()  # extra serving: keys (max_num_seqs, ...)
    profiles: ProfileChoice | None = None  # the user's --profile / --no-profile


def build_plan(model: str | ModelSpec | Mapping[str, Any], device: str, tp: int, *,
               replicas: int = 1, slo_ttft_s: float | None, slo_tpot_s: float | None,
               serving: Mapping[str, Any] | None = None,
               router: str = "least_loaded",
               profiles: ProfileChoice | None = None) -> ServingPlan:
    """A homogeneous serving plan of `replicas` (device, tp) replicas; `serving` holds extra
    serving: keys (max_num_seqs, dtype, ...); `profiles` picks the device's efficiency profile
    (None: bundled, else catalog defaults)."""
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    dev = load_device(device)
    cfg, groups = parse_serving_section(
        {**dict(serving or {}), "replicas": replicas, "tp": tp, "router": router},
        device=dev, num_devices=replicas * tp, profiles=profiles)
    return ServingPlan(model=spec, device=dev, serving=cfg, groups=groups,
                       slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s,
                       profile=groups[0].profile if groups else None)


def check_slo(slo_ttft_s: float | None, slo_tpot_s: float | None) -> None:
    """At least one latency SLO, each given one > 0: without any, every rate meets "the SLO"
    and capacity has no bound."""
    if slo_ttft_s is None and slo_tpot_s is None:
        raise ConfigError("give a latency SLO: a TTFT SLO, a TPOT SLO or both (without one "
                          "every request rate meets it and capacity is unbounded)",
                          key="gpu_mix.slo", allowed=["slo_ttft_s", "slo_tpot_s"])
    for key, value in (("slo_ttft_s", slo_ttft_s), ("slo_tpot_s", slo_tpot_s)):
        if value is None:
            continue
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"must be > 0, got {value!r}", key=f"gpu_mix.{key}")


def slo_met(res: Any, slo_ttft_s: float | None, slo_tpot_s: float | None) -> pd.Series:
    """Per request: within the SLO. With a TTFT SLO this is the simulator's rule. TPOT-only
    (Mélange's setting, Griggs et al. 2024): a request also needs e2e latency / output tokens
    <= the TPOT SLO, so queueing counts and an overloaded replica, whose queue grows while
    its decode steps stay fast, cannot pass as having unbounded capacity."""
    met = res.slo_met()
    if slo_ttft_s is not None or slo_tpot_s is None:
        return met
    rec = res.records
    per_token = (rec["finish_s"] - rec["arrival_s"]) / rec["output_tokens"].clip(lower=1)
    return met & (per_token <= slo_tpot_s).fillna(False)


def bucket_workload(inputs: Sequence[int], outputs: Sequence[int], rate_rps: float,
                    num_requests: int, seed: int) -> pd.DataFrame:
    """Poisson arrivals at rate_rps with (input, output) pairs resampled from the bucket."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate_rps, num_requests)
    pick = rng.integers(0, len(inputs), num_requests)
    return pd.DataFrame({"arrival_time_s": np.cumsum(gaps) - gaps[0],
                         "input_tokens": np.asarray(inputs, dtype=np.int64)[pick],
                         "output_tokens": np.asarray(outputs, dtype=np.int64)[pick]})


def _attainment(plan: ServingPlan, setup: Any, task: ProfileTask,
                rate: float) -> tuple[float, float]:
    """(SLO attainment, mean e2e latency) of one replica at `rate`."""
    n = int(min(MAX_PROFILE_REQUESTS, max(task.num_requests, rate * MIN_PROFILE_DURATION_S)))
    df = bucket_workload(task.inputs, task.outputs, rate, n, task.seed)
    res = simulate_serving(plan, df, seed=task.seed, setup=setup)
    met = slo_met(res, task.slo_ttft_s, task.slo_tpot_s)
    rec = res.records
    done = rec["status"] == "completed"
    e2e = float((rec.loc[done, "finish_s"] - rec.loc[done, "arrival_s"]).mean()) \
        if done.any() else float("inf")
    return float(met.mean()), e2e


def max_rate_within_slo(task: ProfileTask) -> float:
    """Highest rate (1/s) one replica sustains with >= target of requests within the SLO; 0
    when the model does not fit or even isolated requests miss the SLO."""
    try:
        plan = build_plan(task.model, task.device, task.tp, slo_ttft_s=task.slo_ttft_s,
                          slo_tpot_s=task.slo_tpot_s, serving=dict(task.serving),
                          profiles=task.profiles)
        setup = build_replica_setup(plan)
    except ConfigError:
        return 0.0  # weights (plus one KV block) do not fit this TP degree
    if setup.lane.total_blocks <= 0:
        return 0.0
    ok, e2e = _attainment(plan, setup, task, PROBE_RATE_RPS)
    if ok < task.target or not np.isfinite(e2e) or e2e <= 0:
        return 0.0
    lo, hi = 0.0, 1.0 / e2e  # serial service rate: one request at a time
    for _ in range(MAX_DOUBLINGS):
        if _attainment(plan, setup, task, hi)[0] < task.target:
            break
        lo, hi = hi, hi * 2.0
    else:
        return lo
    if lo == 0.0:  # even the serial rate fails: bisect below it
        lo = PROBE_RATE_RPS
    while hi / lo > 1.0 + task.rel_tol:
        mid = (lo * hi) ** 0.5
        if _attainment(plan, setup, task, mid)[0] >= task.target:
            lo = mid
        else:
            hi = mid
    return lo


def profile_capacity(tasks: Sequence[ProfileTask], *, executor: Any = None,
                     cache: MutableMapping[ProfileTask, float] | None = None) -> list[float]:
    """max_rate_within_slo for each task (through the executor; cached by task)."""
    cache = {} if cache is None else cache
    todo = [t for t in dict.fromkeys(tasks) if t not in cache]
    if executor is None:
        values = [max_rate_within_slo(t) for t in todo]
    else:
        values = map_values(executor, max_rate_within_slo, todo)
    cache.update(zip(todo, values, strict=True))
    return [cache[t] for t in tasks]
