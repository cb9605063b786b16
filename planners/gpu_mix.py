"""`plan_gpu_mix`: the cheapest mix of GPU types (and TP degrees) serving a workload within its
latency SLO, solved as an integer program and confirmed by simulating the mix on the trace.

Steps (Mélange, Griggs et al. 2024, "Mélange: Cost Efficient LLM Serving by Exploiting GPU
Heterogeneity", done with our simulator instead of offline GPU runs):
1. Bucket the workload by (input, output) length (planners.buckets) -> per-bucket rates.
2. Profile each instance type (device x TP) per bucket by simulation: the highest Poisson rate
   one replica sustains with >= `slo_target` of requests inside both SLOs (bisection on the
   rate, bucket-resampled lengths; planners.mix_profile; cached, fanned out on the executor).
3. Solve the integer program of planners.mix_ilp (integer instances, buckets sliceable across
   types) for the minimum $/h; compare with the cheapest single type.
4. Close the loop: replay the real trace on the chosen mix. The router sends each request to
   an instance type by the ILP's split of its bucket (a deterministic low-discrepancy draw, so
   a bucket split 70/30 sends exactly every ~10th request the minority way), then to the least
   loaded replica of that type. Types never share requests after that split, so the mix is
   simulated as one homogeneous pool per type (identical to a single engine with that
   two-level router). A type whose pool misses `slo_target` has its profiled capacities derated
   by DERATE_STEP and the ILP is re-solved; `iterations` counts the
   simulate/re-solve rounds.
5. Time-varying load: the trace is cut into windows (default 10 minutes for traces up to 6 h,
   else 1 hour; one window when the trace is shorter). The mix above is the one fleet that
   serves every window's rates (ILP over all windows at once: provisioning for the peak), and
   the loop routes window w's requests by window w's split. Following the load = one ILP per
   window on the loop-corrected capacities (not simulated window by window); the plan reports
   both costs over the trace's hours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.specs import ModelSpec
from planners.buckets import (
    BucketGrid,
    bucket_rates,
    bucketize,
    buckets_frame,
    parse_grid,
    workload_span_s,
)
from planners.mix_ilp import MixSolution, Solver, single_type_costs, solve_mix
from planners.mix_profile import (
    ProfileTask,
    build_plan,
    check_slo,
    profile_capacity,
    slo_met,
)
from simulator.profiles import ProfileChoice
from simulator.serving import ServingPlan, parse_serving_section, simulate_serving
from simulator.serving.routers import ROUTERS

# Capacity cut per loop round for a type whose pool missed the SLO target: small steps add
# capacity gradually (the ILP may answer with a cheap extra instance of another type).
DERATE_STEP = 0.1
# Window lengths for the time-varying plan: 10 min up to 6 h of trace, 1 h beyond.
SHORT_WINDOW_S = 600.0
LONG_WINDOW_S = 3600.0
LONG_TRACE_S = 6 * 3600.0
# Closed-loop router: the ILP's per-bucket split, then least-loaded within a type. Any other
# name is a simulator RouterKind used over the whole heterogeneous mix (capacity_weighted, ...).
ILP_SPLIT = "ilp_split"
# Golden-ratio sequence: evenly spread split draws (request k -> frac(k * phi)).
_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceType:
    """A rentable serving instance: `tp` devices of one type running one replica."""

    device: str
    tp: int
    price_usd_per_hour: float  # whole instance (tp devices)

    @property
    def name(self) -> str:
        return f"{self.device}x{self.tp}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuMixPlan:
    """The chosen mix, its cost against single types, and what simulation made of it."""

    model: str
    types: tuple[InstanceType, ...]
    counts: dict[str, int]  # the fleet serving every window (peak provisioning)
    cost_usd_per_hour: float
    best_single_type: str | None
    best_single_cost_usd_per_hour: float | None
    single_type_cost_usd_per_hour: dict[str, float | None]  # simulated (see notes)
    single_type_profiled_cost_usd_per_hour: dict[str, float | None]
    utilization: dict[str, float]  # ILP load / instances, per type used
    slo_ttft_s: float | None  # None: a TPOT-only SLO (planners.mix_profile.slo_met)
    slo_tpot_s: float | None
    slo_target: float
    slo_attainment: float  # simulated on the trace
    slo_attainment_by_type: dict[str, float]
    meets_slo: bool
    iterations: int
    solve_time_s: float
    profile_time_s: float
    solver: str
    buckets: pd.DataFrame  # bucket, requests, rate, mean lengths, share per type
    capacity: pd.DataFrame  # rps per instance: rows buckets, columns types (as profiled)
    windows: pd.DataFrame | None = None  # start_s, end_s, rate_rps, cost, counts per type
    follow_cost_usd: float | None = None  # sum over windows of window cost x hours
    peak_cost_usd: float | None = None  # one fleet for every window x the same hours
    window_s: float | None = None
    # per loop round: counts, cost, attainment (+ single_type when a verified single type
    # beat the mix loop and was adopted; `iterations` counts the mix loop's rounds only)
    history: tuple[dict[str, Any], ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    refused_requests: int = 0  # prompt + output > max_model_len: no engine admits them

    @property
    def savings_vs_best_single(self) -> float | None:
        """1 - mix cost / cheapest single-type cost."""
        best = self.best_single_cost_usd_per_hour
        return None if not best else 1.0 - self.cost_usd_per_hour / best

    def table(self) -> pd.DataFrame:
        """One row per instance type: price, count, utilization, single-type cost."""
        return pd.DataFrame([{
            "type": t.name, "price_usd_per_hour": t.price_usd_per_hour,
            "count": self.counts.get(t.name, 0),
            "utilization": self.utilization.get(t.name, 0.0),
            "slo_attainment": self.slo_attainment_by_type.get(t.name),
            "single_type_cost_usd_per_hour": self.single_type_cost_usd_per_hour.get(t.name),
        } for t in self.types])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what `fleetsim plan gpu-mix --json` prints)."""
        out: dict[str, Any] = {
            "model": self.model,
            "mix": {k: v for k, v in self.counts.items() if v},
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "best_single_type": self.best_single_type,
            "best_single_cost_usd_per_hour": self.best_single_cost_usd_per_hour,
            "savings_vs_best_single": self.savings_vs_best_single,
            "single_type_cost_usd_per_hour": self.single_type_cost_usd_per_hour,
            "single_type_profiled_cost_usd_per_hour":
                self.single_type_profiled_cost_usd_per_hour,
            "utilization": self.utilization,
            "slo": {"ttft_s": self.slo_ttft_s, "tpot_s": self.slo_tpot_s,
                    "target": self.slo_target},
            "slo_attainment": self.slo_attainment,
            "slo_attainment_by_type": self.slo_attainment_by_type,
            "meets_slo": self.meets_slo,
            "iterations": self.iterations,
            "solve_time_s": self.solve_time_s,
            "profile_time_s": self.profile_time_s,
            "solver": self.solver,
            "types": [{"type": t.name, "device": t.device, "tp": t.tp,
                       "price_usd_per_hour": t.price_usd_per_hour} for t in self.types],
            "buckets": self.buckets.to_dict(orient="records"),
            "capacity_rps": {str(k): v for k, v in
                             self.capacity.to_dict(orient="index").items()},
            "history": list(self.history),
            "notes": self.notes,
            **({"refused_requests": self.refused_requests} if self.refused_requests else {}),
        }
        if self.windows is not None:
            out["time_varying"] = {
                "follow_cost_usd": self.follow_cost_usd, "peak_cost_usd": self.peak_cost_usd,
                "window_s": self.window_s,
                "savings_following_load": (None if not self.peak_cost_usd else
                                           1.0 - (self.follow_cost_usd or 0.0)
                                           / self.peak_cost_usd),
                "windows": self.windows.to_dict(orient="records"),
            }
        return out


def instance_types(devices: Sequence[str], tp_options: Sequence[int],
                   prices: Mapping[str, float] | None = None) -> list[InstanceType]:
    """Every (device, tp) pair, priced from the catalog unless `prices` overrides a device."""
    if not devices:
        raise ConfigError("give at least one device", key="gpu_mix.devices")
    prices = dict(prices or {})
    out = []
    for dev in devices:
        spec = load_device(dev)  # unknown names list the valid ones
        price = float(prices.get(dev, spec.price_usd_per_hour))
        if not price > 0:
            raise ConfigError(f"price must be > 0, got {price!r}", key=f"prices.{dev}")
        for tp in tp_options:
            if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
                raise ConfigError(f"expected integers >= 1, got {tp!r}", key="gpu_mix.tp_options")
            out.append(InstanceType(device=spec.name, tp=tp, price_usd_per_hour=price * tp))
    return out


def split_requests(bucket_of: np.ndarray, fractions: np.ndarray,
                   window_of: np.ndarray | None = None) -> np.ndarray:
    """Type index per request: requests of bucket b (in window w) follow fractions[w, b, :]
    ([B, T] for one window) by a golden-ratio sequence (deterministic, evenly spread)."""
    frac = fractions if fractions.ndim == 3 else fractions[None]
    win = np.zeros(len(bucket_of), dtype=np.int64) if window_of is None else window_of
    out = np.full(len(bucket_of), -1, dtype=np.int64)
    key = win * frac.shape[1] + bucket_of
    for k in np.unique(key):
        w, b = divmod(int(k), frac.shape[1])
        rows = np.flatnonzero(key == k)
        cum = np.cumsum(frac[w, b])
        if cum[-1] <= 0:
            continue
        cum /= cum[-1]
        draws = np.mod(np.arange(1, len(rows) + 1) * _PHI, 1.0)
        out[rows] = np.minimum(np.searchsorted(cum, draws, side="right"), len(cum) - 1)
    return out


def simulate_mix(model: str | ModelSpec, df: pd.DataFrame, types: Sequence[InstanceType],
                 counts: Sequence[int], type_of: np.ndarray, *, slo_ttft_s: float | None,
                 slo_tpot_s: float | None, serving: Mapping[str, Any] | None = None,
                 seed: int = 0, profiles: ProfileChoice | None = None
                 ) -> tuple[float, dict[str, float]]:
    """Replay `df` on the mix (request i on type type_of[i], least-loaded within the type):
    overall SLO attainment and per type."""
    met_total = 0
    by_type: dict[str, float] = {}
    for t, (itype, n) in enumerate(zip(types, counts, strict=True)):
        rows = np.flatnonzero(type_of == t)
        if len(rows) == 0:
            continue
        if n <= 0:
            by_type[itype.name] = 0.0
            continue
        sub = df.iloc[rows].reset_index(drop=True)
        plan = build_plan(model, itype.device, itype.tp, replicas=n, slo_ttft_s=slo_ttft_s,
                          slo_tpot_s=slo_tpot_s, serving=serving, profiles=profiles)
        met = slo_met(simulate_serving(plan, sub, seed=seed), slo_ttft_s, slo_tpot_s)
        met_total += int(met.sum())
        by_type[itype.name] = float(met.mean())
    return met_total / max(1, len(df)), by_type


def simulate_mix_shared(model: str | ModelSpec, df: pd.DataFrame,
                        types: Sequence[InstanceType], counts: Sequence[int], *,
                        router: str, slo_ttft_s: float | None,
                        slo_tpot_s: float | None,
                        serving: Mapping[str, Any] | None = None,
                        seed: int = 0, profiles: ProfileChoice | None = None
                        ) -> tuple[float, dict[str, float]]:
    """Replay `df` on the mix as one heterogeneous cluster (simulator replica groups) behind
    one `router` (e.g. capacity_weighted, least_loaded): overall and per-type attainment."""
    groups = [{"name": it.name, "device": it.device, "count": int(n), "tp": it.tp,
               "price_usd_per_hour": it.price_usd_per_hour}
              for it, n in zip(types, counts, strict=True) if n > 0]
    if not groups:
        raise ConfigError("the mix has no instances", key="gpu_mix.counts")
    device = load_device(groups[0]["device"])
    cfg, typed_groups = parse_serving_section(
        {**dict(serving or {}), "replica_groups": groups, "router": router}, device=device,
        profiles=profiles)
    plan = ServingPlan(model=model if isinstance(model, ModelSpec) else load_model(model),
                       device=device, serving=cfg, groups=typed_groups,
                       slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s)
    res = simulate_serving(plan, df, seed=seed)
    met = slo_met(res, slo_ttft_s, slo_tpot_s)
    group_of = res.replicas.set_index("replica")["group"]
    rep = res.records["replica"]
    by_type = {}
    for name in (g["name"] for g in groups):
        sel = rep.map(group_of) == name
        if sel.any():
            by_type[name] = float(met[sel].mean())
    return float(met.mean()), by_type


def _window_s(span_s: float, window_s: float | None) -> float:
    if window_s is None:
        return SHORT_WINDOW_S if span_s <= LONG_TRACE_S else LONG_WINDOW_S
    if not window_s > 0:
        raise ConfigError(f"must be > 0, got {window_s!r}", key="gpu_mix.window_s")
    return float(window_s)


def window_rates(df: pd.DataFrame, grid: BucketGrid, indices: Sequence[int],
                 window_s: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per-window bucket rates [W, B], each request's window, and the windows' spans."""
    t = df["arrival_time_s"].to_numpy(dtype=float)
    t0, t1 = float(t.min()), float(t.max())
    n_win = max(1, math.ceil((t1 - t0) / window_s - 1e-9))
    window_of = np.minimum(((t - t0) // window_s).astype(np.int64), n_win - 1)
    rows, rates = [], []
    for w in range(n_win):
        lo, hi = t0 + w * window_s, min(t1, t0 + (w + 1) * window_s)
        length = max(hi - lo, 1.0)
        sub = df[window_of == w]
        rates.append(bucket_rates(sub, grid, indices, span_s=length))
        rows.append({"start_s": lo - t0, "end_s": hi - t0, "hours": length / 3600.0,
                     "requests": len(sub), "rate_rps": len(sub) / length})
    return np.vstack(rates), window_of, pd.DataFrame(rows)


def _follow_load(rates: np.ndarray, spans: pd.DataFrame, capacity: np.ndarray,
                 prices: np.ndarray, types: Sequence[InstanceType], solver: str,
                 max_util: float) -> tuple[pd.DataFrame, float]:
    """One ILP per window (the fleet follows the load): per-window counts and total $."""
    rows = []
    for w in range(rates.shape[0]):
        sol = solve_mix(rates[w], capacity, prices, solver=solver, max_util=max_util)
        rows.append({**spans.iloc[w].to_dict(), "cost_usd_per_hour": sol.cost_usd_per_hour,
                     **{it.name: c for it, c in zip(types, sol.counts, strict=True)}})
    frame = pd.DataFrame(rows)
    return frame, float(np.dot(frame["cost_usd_per_hour"], frame["hours"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class _LoopArgs:
    """What the simulate/re-solve loop needs besides the types and their capacities."""

    model: str | ModelSpec
    df: pd.DataFrame
    bucket_of: np.ndarray
    window_of: np.ndarray
    rates: np.ndarray  # [W, B]
    solver: str
    max_util: float
    slo_ttft_s: float | None
    slo_tpot_s: float | None
    slo_target: float
    max_iterations: int
    serving: Mapping[str, Any] | None
    seed: int
    router: str = "ilp_split"
    profiles: ProfileChoice | None = None


def _close_loop(a: _LoopArgs, types: Sequence[InstanceType], capacity: np.ndarray
                ) -> tuple[MixSolution, float, dict[str, float], list[dict[str, Any]],
                           np.ndarray]:
    """Solve, simulate on the trace, derate the types that missed, repeat."""
    prices = np.array([it.price_usd_per_hour for it in types])
    derated = capacity.copy()
    history: list[dict[str, Any]] = []
    sol: MixSolution | None = None
    attained, by_type = 0.0, {}
    for _ in range(a.max_iterations):
        sol = solve_mix(a.rates, derated, prices, solver=a.solver, max_util=a.max_util)
        if a.router == ILP_SPLIT or len(types) == 1:
            type_of = split_requests(a.bucket_of, sol.fractions, a.window_of)
            attained, by_type = simulate_mix(a.model, a.df, types, sol.counts, type_of,
                                             slo_ttft_s=a.slo_ttft_s,
                                             slo_tpot_s=a.slo_tpot_s, serving=a.serving,
                                             seed=a.seed, profiles=a.profiles)
        else:
            attained, by_type = simulate_mix_shared(a.model, a.df, types, sol.counts,
                                                    router=a.router, slo_ttft_s=a.slo_ttft_s,
                                                    slo_tpot_s=a.slo_tpot_s,
                                                    serving=a.serving, seed=a.seed,
                                                    profiles=a.profiles)
        history.append({"counts": {it.name: c for it, c in zip(types, sol.counts, strict=True)
                                   if c},
                        "cost_usd_per_hour": sol.cost_usd_per_hour,
                        "slo_attainment": attained, "by_type": by_type,
                        "solve_time_s": sol.solve_time_s})
        if attained >= a.slo_target:
            break
        for t, it in enumerate(types):
            att = by_type.get(it.name)
            if att is not None and att < a.slo_target:
                derated[:, t] *= 1.0 - max(DERATE_STEP, (a.slo_target - att) / 2.0)
    if sol is None:  # unreachable: max_iterations >= 1 is checked by the caller
        raise RuntimeError("no ILP solved")
    return sol, attained, by_type, history, derated


def _embed(single: MixSolution, t: int, n_types: int) -> MixSolution:
    """A one-type solution as a solution over all n_types (type t)."""
    counts = [0] * n_types
    counts[t] = single.counts[0]
    frac = np.zeros(single.fractions.shape[:2] + (n_types,))
    frac[:, :, t] = single.fractions[:, :, 0]
    load = np.zeros((single.load.shape[0], n_types))
    load[:, t] = single.load[:, 0]
    return MixSolution(counts=tuple(counts), fractions=frac, load=load,
                       cost_usd_per_hour=single.cost_usd_per_hour,
                       solve_time_s=single.solve_time_s, solver=single.solver)


def plan_gpu_mix(model: str | ModelSpec, workload_df: pd.DataFrame, *,
                 devices: Sequence[str], tp_options: Sequence[int] = (1,),
                 slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                 buckets: BucketGrid | Sequence[Sequence[int]] | None = None,
                 solver: str = "cbc", executor: Any = None, seed: int = 0,
                 prices: Mapping[str, float] | None = None, slo_target: float = 0.95,
                 max_util: float = 1.0, max_iterations: int = 5,
                 window_s: float | None = None, time_varying: bool = True,
                 serving: Mapping[str, Any] | None = None, profile_requests: int = 200,
                 cache: MutableMapping[ProfileTask, float] | None = None,
                 verify_single_types: bool = True, router: str = "ilp_split",
                 profiles: ProfileChoice | None = None) -> GpuMixPlan:
    """The cheapest GPU mix for `workload_df` (arrival_time_s, input_tokens, output_tokens)
    within (slo_ttft_s, slo_tpot_s) for >= slo_target of requests, confirmed by simulation;
    either SLO may be left out (TPOT-only is Mélange's setting), not both;
    `profiles` (--profile / --no-profile) picks each device's efficiency profile."""
    check_slo(slo_ttft_s, slo_tpot_s)
    if not 0 < slo_target <= 1:
        raise ConfigError(f"must be in (0, 1], got {slo_target!r}", key="gpu_mix.slo_target")
    if max_iterations < 1:
        raise ConfigError(f"must be >= 1, got {max_iterations!r}", key="gpu_mix.max_iterations")
    routers = (ILP_SPLIT, *ROUTERS.names())
    if router not in routers:  # a single type never reaches the router: check it up front
        raise ConfigError(f"unknown router '{router}'", key="gpu_mix.router", allowed=routers)
    if str(solver) not in {s.value for s in Solver}:  # before any profiling simulation runs
        raise ConfigError(f"unknown solver '{solver}'", key="gpu_mix.solver",
                          allowed=[s.value for s in Solver])
    if window_s is not None:
        _window_s(0.0, window_s)  # a bad --window-s fails before profiling, too
    missing = {"arrival_time_s", "input_tokens", "output_tokens"} - set(workload_df.columns)
    if missing:
        raise ConfigError(f"workload frame lacks columns {sorted(missing)}", key="workload")
    df = workload_df.sort_values("arrival_time_s", kind="stable").reset_index(drop=True)
    df, refused, max_len = _refuse_too_long(df, model, serving)
    grid = parse_grid(buckets)
    types = instance_types(devices, tp_options, prices)
    bks = bucketize(df, grid, seed=seed)
    serving_items = tuple(sorted((serving or {}).items()))
    tasks = [ProfileTask(model=model, device=it.device, tp=it.tp, inputs=b.inputs,
                         outputs=b.outputs, slo_ttft_s=_opt(slo_ttft_s),
                         slo_tpot_s=_opt(slo_tpot_s), target=slo_target,
                         num_requests=profile_requests, seed=seed, serving=serving_items,
                         profiles=profiles)
             for b in bks for it in types]
    start = time.perf_counter()
    caps = profile_capacity(tasks, executor=executor, cache=cache)
    profile_time = time.perf_counter() - start
    capacity = np.asarray(caps, dtype=float).reshape(len(bks), len(types))
    prices_t = np.array([it.price_usd_per_hour for it in types])
    win = _window_s(workload_span_s(df), window_s)
    rates, window_of, spans = window_rates(df, grid, [b.index for b in bks], win)
    singles = single_type_costs(rates, capacity, prices_t, max_util=max_util)
    bucket_of = np.searchsorted([b.index for b in bks], grid.index(
        df["input_tokens"].to_numpy(dtype=np.int64),
        np.maximum(df["output_tokens"].to_numpy(dtype=np.int64), 1)))
    loop = _LoopArgs(model=model, df=df, bucket_of=bucket_of, window_of=window_of,
                     rates=rates, solver=solver,
                     max_util=max_util, slo_ttft_s=_opt(slo_ttft_s),
                     slo_tpot_s=_opt(slo_tpot_s), slo_target=slo_target,
                     max_iterations=max_iterations, serving=serving, seed=seed,
                     router=router, profiles=profiles)
    sol, attained, by_type, history, derated = _close_loop(loop, types, capacity)
    solve_time = sum(h["solve_time_s"] for h in history)
    iterations = len(history)
    verified: dict[str, float | None] = {}
    if verify_single_types:  # same loop for each type alone: an honest baseline
        for t, it in enumerate(types):
            if not np.isfinite(singles[t]):
                verified[it.name] = None
                continue
            s_sol, s_att, s_by, s_hist, _ = _close_loop(loop, [it], capacity[:, [t]])
            verified[it.name] = s_sol.cost_usd_per_hour if s_att >= slo_target else None
            if s_att >= slo_target and (attained < slo_target or s_sol.cost_usd_per_hour
                                        < sol.cost_usd_per_hour - 1e-9):
                # a single type is a mix too: the loop's greedy derating ended above it
                sol = _embed(s_sol, t, len(types))
                attained, by_type = s_att, s_by
                history = history + [{**h, "single_type": it.name} for h in s_hist]
    names = [it.name for it in types]
    util = sol.utilization()
    weights = rates / np.maximum(rates.sum(axis=0, keepdims=True), 1e-300)  # [W, B]
    share = np.einsum("wb,wbt->bt", weights, sol.fractions)  # request-weighted over windows
    bframe = buckets_frame(bks)
    for t, name in enumerate(names):
        bframe[f"share_{name}"] = share[:, t]
    baseline = (np.array([np.inf if verified.get(n) is None else verified[n] for n in names])
                if verify_single_types else singles)
    finite = np.isfinite(baseline)
    best = int(np.argmin(np.where(finite, baseline, np.inf))) if finite.any() else None
    plan_kwargs: dict[str, Any] = {}
    if time_varying:
        frame, follow = _follow_load(rates, spans, derated, prices_t, types, solver, max_util)
        plan_kwargs = {"windows": frame, "follow_cost_usd": follow, "window_s": win,
                       "peak_cost_usd": sol.cost_usd_per_hour * float(spans["hours"].sum())}
    return GpuMixPlan(
        model=model.name if isinstance(model, ModelSpec) else str(model), types=tuple(types),
        counts=dict(zip(names, sol.counts, strict=True)),
        cost_usd_per_hour=sol.cost_usd_per_hour,
        best_single_type=None if best is None else names[best],
        best_single_cost_usd_per_hour=None if best is None else float(baseline[best]),
        single_type_cost_usd_per_hour={n: (float(c) if np.isfinite(c) else None)
                                       for n, c in zip(names, baseline, strict=True)},
        single_type_profiled_cost_usd_per_hour={
            n: (float(c) if np.isfinite(c) else None) for n, c in zip(names, singles,
                                                                     strict=True)},
        utilization={n: float(u) for n, u, c in zip(names, util, sol.counts, strict=True)
                     if c},
        slo_ttft_s=_opt(slo_ttft_s), slo_tpot_s=_opt(slo_tpot_s), slo_target=slo_target,
        slo_attainment=attained, slo_attainment_by_type=by_type,
        meets_slo=attained >= slo_target, iterations=iterations, solve_time_s=solve_time,
        profile_time_s=profile_time, solver=sol.solver, buckets=bframe,
        capacity=pd.DataFrame(capacity, index=[b.label for b in bks], columns=names),
        history=tuple(history),
        notes={"closed_loop": ("one homogeneous pool per type, requests split by the ILP's "
                               "bucket shares then least-loaded within the type"
                               if router == ILP_SPLIT else
                               f"one heterogeneous cluster behind the simulator's {router} "
                               "router"),
               "single_type_costs": ("each type alone through the same simulate/derate "
                                     "loop (None: cannot serve a bucket or never met the "
                                     "target)" if verify_single_types else
                                     "profiled capacities, not simulated"),
               **({"refused": f"{refused:,} of {refused + len(df):,} requests have prompt + "
                              f"output > max_model_len {max_len:,} and are refused by every "
                              "engine (as vLLM does); the mix serves the rest"}
                  if refused else {})},
        refused_requests=refused,
        **plan_kwargs)


def _opt(value: float | None) -> float | None:
    """A checked SLO as float, None kept (that SLO not set)."""
    return None if value is None else float(value)


def _refuse_too_long(df: pd.DataFrame, model: str | ModelSpec,
                     serving: Mapping[str, Any] | None) -> tuple[pd.DataFrame, int, int]:
    """Requests no instance type can serve (prompt + output > max_model_len, the engine's
    admission rule) leave the workload up front and are counted, instead of leaving a
    request-size bucket with zero capacity on every type; all of them refused is infeasible."""
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    max_len = int((serving or {}).get("max_model_len") or spec.max_seq_len)
    total = df["input_tokens"].to_numpy(dtype=np.int64) \
        + df["output_tokens"].to_numpy(dtype=np.int64)
    keep = total <= max_len
    refused = int((~keep).sum())
    if refused == len(df):
        raise InfeasibleError(f"every one of the {len(df):,} requests has prompt + output > "
                              f"max_model_len {max_len:,} of {spec.name}",
                              hint="a model with a longer context or serving.max_model_len")
    return (df[keep].reset_index(drop=True) if refused else df), refused, max_len


def plot_gpu_mix(plan: GpuMixPlan, *, ax: Any = None) -> Any:
    """Bar chart: mix cost vs every single type; with windows, a second panel of the cost of
    following the load vs the peak fleet. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    panels = 2 if plan.windows is not None else 1
    if ax is None:
        fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if panels == 1 else list(ax)
        fig = axes[0].figure
    labels = ["mix"] + [n for n, c in plan.single_type_cost_usd_per_hour.items() if c]
    costs = [plan.cost_usd_per_hour] + [c for c in plan.single_type_cost_usd_per_hour.values()
                                        if c]
    axes[0].bar(labels, costs, color=["C2"] + ["C0"] * (len(labels) - 1))
    axes[0].set_ylabel("$/hour")
    axes[0].set_title(f"{plan.model}: mix {', '.join(f'{c}x {n}' for n, c in plan.counts.items() if c)}",
                      fontsize=9)
    axes[0].tick_params(axis="x", rotation=30)
    if plan.windows is not None and panels == 2:
        w = plan.windows
        peak_rate = plan.peak_cost_usd / max(w["hours"].sum(), 1e-12)
        axes[1].step(w["start_s"] / 60.0, w["cost_usd_per_hour"], where="post",
                     label=f"follow load (${plan.follow_cost_usd:.2f})")
        axes[1].axhline(peak_rate, color="C3", ls="--",
                        label=f"peak fleet (${plan.peak_cost_usd:.2f})")
        axes[1].set_xlabel("window start (min)")
        axes[1].set_ylabel("$/hour")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
