"""`plan_serve`: the cheapest serving configurations that carry a workload within its SLO.

Four steps. (1) serve_space enumerates units (device, TP x PP, scheduler + token budget,
max_num_seqs, co-located or prefill:decode disaggregated) and prunes those that cannot run
(head divisibility, TP within a node, weights + the longest request's KV in memory). (2) For
each unit a closed-form hwmodels.step estimate of its saturation rate brackets a bisection on
the rate scale of a short window of the workload (serve_eval.find_max_rate; every probe is a
serving simulation, cached by (unit, window, SLO, seed, scale)); units fan out over the
executor, most promising first (by that estimate); units that cannot win even at 3x their
estimate are skipped. The window holds >= window_requests and >= 3x the unit's batch slots, and a probe
also fails when its backlog at the last arrival exceeds 1.5x the slots, so a burst that fits
in one batch cannot pass for a sustained rate. (3) The workload's rate / the unit's rate gives the units to deploy (capped by
max_gpus / budget_usd_per_hour), hence GPUs, cost per hour, goodput and goodput per dollar
(or per GPU) to rank by. (4) Optionally the best `confirm_top` deployments are simulated whole
on the full workload (units added until they meet the SLO, at most `confirm_extra_units`).

Returns a ServePlanResult: the ranked table, the Pareto front of cost vs goodput, the pruned
candidates with reasons, search counts, `plot()` and `to_dict()` (for --json).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.specs import ModelSpec
from planners.executors import Executor, LocalExecutor
from planners.serve_eval import (
    DEFAULT_REL_TOL,
    SLO,
    BisectOutcome,
    BisectTask,
    SloMode,
    base_rate_rps,
    bisect_task,
    estimate_unit_rate,
    parse_percentile,
    simulate_unit,
    slo_check,
    tile_window,
    unit_mapping,
    unit_plan,
    unit_slots,
    window_digest,
)
from planners.serve_pd_mix import PoolMix, enumerate_mixed
from planners.serve_space import (
    DEFAULT_CHUNK_SIZES,
    DEFAULT_DEVICES,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    DEFAULT_PP,
    DEFAULT_SCHEDULERS,
    DEFAULT_TP,
    ServeCandidate,
    enumerate_candidates,
    parse_ratios,
)
from planners.sweep import _atomic
from simulator.profiles import ProfileChoice
from simulator.serving.kinds import enum_value
from simulator.serving.plan import ServingPlan
from traces.stats import scale_trace


class RankBy(StrEnum):
    """What plan serve ranks deployments by: goodput per dollar or per GPU."""

    USD = "usd"
    GPU = "gpu"

    @property
    def metric(self) -> str:
        """The plans column ranked on."""
        return "requests_per_usd" if self is RankBy.USD else "goodput_rps_per_gpu"

# Requests in the bisection window: enough to reach a steady batch on a 70B replica (hundreds
# of concurrent decodes take ~100 requests to build up), few enough for ~50 ms simulations.
DEFAULT_WINDOW_REQUESTS = 400
# ... and at least this many times the unit's concurrent sequences (decode slots, limited by
# max_num_seqs and the KV cache): otherwise a high-rate probe's whole window fits in one batch
# and "meets" the SLO without any steady state. At a sustainable rate, Little's law makes the
# window's arrival span >= this many request lifetimes.
WINDOW_SLOTS_FACTOR = 3.0
# A probe fails when more than this many times the unit's slots are still outstanding as the
# last request of the window arrives (serve_eval.slo_check): with the window at 3x the slots,
# that rejects rates over ~2x what the unit completes, whatever the SLO's slack.
MAX_BACKLOG_SLOTS = 1.5
# Pruning by estimate: simulated/estimated unit rate ranged 0.38-2.0 over 180 Llama-2-70B units
# (A100/H100/H200, TP2-8, PP1-2, co-located and 1:1/1:3 disaggregated, Azure conv 2023); a unit
# is skipped only if ESTIMATE_OPTIMISM x its estimate still ranks below the best simulated one.
ESTIMATE_OPTIMISM = 3.0
PHASE1_FRACTION = 0.1  # share of units (most promising first) simulated before pruning
PHASE1_MIN = 8
CANDIDATE_COLUMNS = ("device", "tp", "pp", "placement", "pd_ratio", "scheduler",
                     "token_budget", "max_num_seqs")
# the decode pool of a mixed pair ("device"/"tp" are then the prefill pool's); these columns
# appear only in searches given --prefill-devices / --decode-devices
MIX_COLUMNS = ("decode_device", "decode_tp")
DEPLOYMENT_COLUMNS = ("unit_gpus", "unit_rate_rps", "unit_cost_usd_per_hour",
                "unit_requests_per_usd", "units", "gpus", "cost_usd_per_hour",
                "target_rate_rps", "goodput_rps", "meets_workload", "requests_per_usd",
                "goodput_rps_per_gpu", "attainment_at_unit_rate", "ttft_q_s", "tpot_q_s",
                "confirmed", "confirmed_attainment")
PLAN_COLUMNS = (*CANDIDATE_COLUMNS, *DEPLOYMENT_COLUMNS)


class SimCache:
    """Simulated probes keyed by (unit, window digest, SLO, seed, dtype) then rate scale;
    pass one to several plan_serve calls (e.g. a budget sweep) to skip repeated simulations."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], dict[float, tuple[bool, dict[str, float]]]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class ServePlanResult:
    """Ranked deployments (best first), the cost-vs-goodput Pareto front, and the search."""

    plans: pd.DataFrame
    pareto: pd.DataFrame
    pruned: pd.DataFrame  # candidate columns + reason
    candidates: tuple[ServeCandidate, ...]  # aligned with plans rows
    workload: dict[str, float]
    slo: SLO
    rank_by: RankBy
    considered: int
    simulations: int
    cache_hits: int
    failed: int
    elapsed_s: float
    failures: tuple[str, ...] = field(default=())
    model_name: str = ""

    @property
    def best(self) -> pd.Series:
        if self.plans.empty:
            raise self.infeasible_error()
        return self.plans.iloc[0]

    @property
    def feasible(self) -> bool:
        return not self.plans.empty

    def rejections(self) -> dict[str, int]:
        """Candidates rejected, per reason (divisibility, topology, memory, limits, SLO,
        estimate, simulation_failed)."""
        out: dict[str, int] = {}
        for reason in self.pruned["reason"] if "reason" in self.pruned else ():
            key = reason_category(str(reason))
            out[key] = out.get(key, 0) + 1
        if self.failed:
            out["simulation_failed"] = self.failed
        return out

    def describe_rejections(self) -> str:
        parts = [f"{n} by {k}" for k, n in self.rejections().items()]
        return (f"{self.considered} candidates considered, rejected "
                + (", ".join(parts) if parts else "none"))

    def infeasible_error(self) -> InfeasibleError:
        """The error for a search where no configuration meets the SLO (exit 3 in the CLI)."""
        first = f"; first failure: {self.failures[0]}" if self.failures else ""
        return InfeasibleError("no serving configuration meets the SLO within the limits: "
                               f"{self.describe_rejections()}{first}",
                               hint="looser SLOs, more devices or budget, other device types "
                                    "or TP degrees")

    def scenario(self, rank: int = 0, *, model_ref: Any = None) -> dict[str, Any]:
        """The serving-scenario mapping of the plan at `rank` (for `fleetsim simulate serve`)."""
        row = self.plans.iloc[rank]
        return unit_mapping(model_ref or self.model_name, self.candidates[rank], self.slo,
                            units=int(row["units"]))

    def serving_plan(self, model: ModelSpec, rank: int = 0, *, dtype: str = "bf16",
                     gpu_memory_utilization: float = 0.9,
                     profiles: ProfileChoice | None = None) -> ServingPlan:
        """The typed plan of the deployment at `rank` (its units of the candidate), as
        `scenario(rank)` would re-run it: what launch exporters turn into commands."""
        if self.plans.empty:
            raise self.infeasible_error()
        row = self.plans.iloc[rank]
        return unit_plan(model, self.candidates[rank], self.slo, units=int(row["units"]),
                         dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                         profiles=profiles)

    def counts(self) -> dict[str, int | float]:
        return {"considered": self.considered, "pruned": len(self.pruned),
                "searched": self.considered - len(self.pruned), "simulations": self.simulations,
                "cache_hits": self.cache_hits, "failed": self.failed,
                "elapsed_s": self.elapsed_s}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `fleetsim plan serve --json` prints."""
        return {"model": self.model_name, "workload": self.workload,
                "slo": {"ttft_s": self.slo.ttft_s, "tpot_s": self.slo.tpot_s,
                        "target": self.slo.target, "mode": self.slo.mode},
                "rank_by": self.rank_by, "plans": _records(self.plans),
                "pareto": _records(self.pareto),
                "pruned": _records(self.pruned), **self.counts(),
                "failures": list(self.failures)}

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Cost per hour vs goodput of every searched deployment size (1..units of each unit),
        coloured by device, with the Pareto front; saved atomically when path is given."""
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

        fig = Figure(figsize=(7.0, 4.4))
        ax = fig.subplots()
        points = deployment_points(self.plans)
        markers = {"colocated": "o", "disaggregated": "^"}
        for (dev, place), part in points.groupby(["device", "placement"], sort=True):
            ax.scatter(part["cost_usd_per_hour"], part["goodput_rps"], s=14, alpha=0.45,
                       marker=markers.get(str(place), "o"), label=f"{dev} {place}")
        if not self.pareto.empty:
            ax.step(self.pareto["cost_usd_per_hour"], self.pareto["goodput_rps"], where="post",
                    color="black", lw=1.5, label="Pareto front")
        ax.axhline(self.workload["target_rate_rps"], color="grey", ls=":", lw=1,
                   label="workload rate")
        ax.set_xlabel("cost (USD per hour)")
        ax.set_ylabel("goodput (requests/s within SLO)")
        ax.set_title(title or f"plan serve: {self.model_name}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        if path is not None:
            target = Path(path)
            _atomic(target, lambda p: fig.savefig(p, format=target.suffix.lstrip(".") or "png"))
        return fig


def reason_category(reason: str) -> str:
    """The kind of a pruning reason: the prefix before ':' where it has one."""
    head = reason.split(":", 1)[0].strip()
    if head in ("divisibility", "memory", "estimate"):
        return head
    if "exceeds" in reason and ("devices per node" in reason or "num_layers" in reason):
        return "topology"
    if "max_gpus" in reason or "budget" in reason:
        return "limits"
    if "SLO" in reason:
        return "slo"
    return "other"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else
                        (None if isinstance(v, float) and not math.isfinite(v) else v))
                    for k, v in row.items()})
    return out


def _cand_row(c: ServeCandidate) -> dict[str, Any]:
    return {"device": c.device, "tp": c.tp, "pp": c.pp, "placement": str(c.placement),
            "pd_ratio": c.pd_ratio, "scheduler": c.scheduler, "token_budget": c.token_budget,
            "max_num_seqs": c.max_num_seqs, "decode_device": c.decode_device_name,
            "decode_tp": c.decode_tp_degree}


def deployment_points(plans: pd.DataFrame) -> pd.DataFrame:
    """(cost, goodput) of deploying 1..units of each planned unit: the trade-off curve."""
    rows = []
    cand_cols = [c for c in (*CANDIDATE_COLUMNS, *MIX_COLUMNS) if c in plans.columns]
    for _, r in plans.iterrows():
        for k in range(1, int(r["units"]) + 1):
            rows.append({**{c: r[c] for c in cand_cols}, "units": k,
                         "gpus": k * int(r["unit_gpus"]),
                         "cost_usd_per_hour": k * float(r["unit_cost_usd_per_hour"]),
                         "goodput_rps": min(float(r["target_rate_rps"]),
                                            k * float(r["unit_rate_rps"]))})
    cols = [*cand_cols, "units", "gpus", "cost_usd_per_hour", "goodput_rps"]
    return pd.DataFrame(rows, columns=cols)


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Points no other point beats on both lower cost and higher goodput (cheapest first)."""
    if points.empty:
        return points
    order = points.sort_values(["cost_usd_per_hour", "goodput_rps"], ascending=[True, False],
                               kind="stable")
    keep, best = [], -math.inf
    for idx, g in zip(order.index, order["goodput_rps"], strict=True):
        if g > best + 1e-12:
            keep.append(idx)
            best = g
    return order.loc[keep].reset_index(drop=True)


def _limit(value: float | int | None, key: str) -> float:
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"must be a number > 0, got {value!r}", key=key)
    return float(value)


def _prices(devices: Sequence[str], prices: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for name in devices:
        dev = load_device(name)
        price = (prices or {}).get(name, (prices or {}).get(dev.name, dev.price_usd_per_hour))
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not price > 0:
            raise ConfigError(f"price must be > 0 USD per device-hour, got {price!r}",
                              key=f"prices.{name}")
        out[dev.name] = float(price)
    return out


def plan_serve(model: ModelSpec | str | Mapping[str, Any], workload_df: pd.DataFrame, *,
               slo_ttft_s: float | None, slo_tpot_s: float | None,
               slo_percentile: float | str = 0.9, slo_mode: SloMode | str = SloMode.ATTAINMENT,
               devices: Sequence[str] = DEFAULT_DEVICES,
               prices: Mapping[str, float] | None = None, max_gpus: int | None = None,
               budget_usd_per_hour: float | None = None,
               tp: Sequence[int] = DEFAULT_TP, pp: Sequence[int] = DEFAULT_PP,
               schedulers: Sequence[str] = DEFAULT_SCHEDULERS,
               chunk_sizes: Sequence[int] = DEFAULT_CHUNK_SIZES,
               max_num_seqs: Sequence[int] = DEFAULT_MAX_NUM_SEQS,
               max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
               disaggregation: Sequence[tuple[int, int] | str] | None = None,
               colocated: bool = True, target_rate_rps: float | None = None,
               rank_by: RankBy | str = RankBy.USD, window_requests: int = DEFAULT_WINDOW_REQUESTS,
               rate_tolerance: float = DEFAULT_REL_TOL, confirm_top: int = 0,
               confirm_extra_units: int = 2, dtype: str = "bf16",
               gpu_memory_utilization: float = 0.9, prune_by_estimate: bool = True,
               executor: Executor | None = None,
               cache: SimCache | None = None, seed: int = 0,
               profiles: ProfileChoice | None = None,
               pool_mix: PoolMix | None = None) -> ServePlanResult:
    """Plan serving `model` for the requests in `workload_df` (traces.read_trace frame).

    The workload's rate is its mean arrival rate unless target_rate_rps is given; prompts of
    max_seq_len tokens or more are left out (no configuration serves them). SLO: TTFT
    and/or TPOT limits judged at slo_percentile (0.9 or "p90") by slo_mode ("attainment": that
    fraction of requests meet both; "percentile": each metric's quantile meets its limit).
    disaggregation: prefill:decode ratios ("1:1", (1, 2), ...) to search besides co-location.
    rank_by "usd" ranks by goodput per dollar, "gpu" by goodput per GPU; deployments that
    carry the whole workload come first. prune_by_estimate: simulate the most promising 10%
    of units first, then skip units that could not beat the best even at ESTIMATE_OPTIMISM x
    their closed-form rate (listed in `pruned`). cache: a SimCache shared across calls.
    profiles: the user's --profile / --no-profile (every estimate and simulation of a device
    uses its profile; None: bundled, else catalog defaults). pool_mix: also search mixed
    prefill/decode pairs of its devices and TP (None: same-device pairs only, as before).
    """
    start = time.perf_counter()
    for key, value in (("confirm_top", confirm_top), ("confirm_extra_units", confirm_extra_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"must be an integer >= 0, got {value!r}", key=key)
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    rank_by = enum_value(RankBy, rank_by, "rank_by")
    slo = SLO(ttft_s=slo_ttft_s, tpot_s=slo_tpot_s, target=parse_percentile(slo_percentile),
              mode=slo_mode)
    for col in ("arrival_time_s", "input_tokens", "output_tokens"):
        if col not in workload_df.columns:
            raise ConfigError(f"workload frame lacks column '{col}'", key="workload",
                              allowed=["arrival_time_s", "input_tokens", "output_tokens"])
    if isinstance(window_requests, bool) or not isinstance(window_requests, int) \
            or window_requests < 10:
        raise ConfigError(f"must be an integer >= 10, got {window_requests!r}",
                          key="window_requests")
    gpu_cap = _limit(max_gpus, "max_gpus")
    usd_cap = _limit(budget_usd_per_hour, "budget_usd_per_hour")
    mix = pool_mix if pool_mix is not None else PoolMix()
    same = _prices(devices, prices)
    price = {**same, **_prices(mix.devices(), prices)}
    workload = workload_df.sort_values("arrival_time_s", kind="stable").reset_index(drop=True)
    too_long = workload["input_tokens"] >= spec.max_seq_len  # every engine drops these
    workload = workload.loc[~too_long].reset_index(drop=True)
    trace_rate = base_rate_rps(workload)
    target = _limit(target_rate_rps, "target_rate_rps") if target_rate_rps else trace_rate
    window = workload.iloc[:window_requests].reset_index(drop=True)
    longest = int((workload["input_tokens"] + workload["output_tokens"]).max())
    keep, pruned = enumerate_candidates(
        spec, devices=list(same), tp=tp, pp=pp, schedulers=schedulers, chunk_sizes=chunk_sizes,
        max_num_seqs=max_num_seqs, max_batch_tokens=max_batch_tokens,
        disaggregation=disaggregation, colocated=colocated, dtype=dtype,
        min_kv_tokens=min(longest, spec.max_seq_len),
        gpu_memory_utilization=gpu_memory_utilization)
    mixed_keep, mixed_pruned = enumerate_mixed(
        spec, mix, tp=tp, pp=pp, ratios=parse_ratios(disaggregation),
        max_num_seqs=max_num_seqs, max_batch_tokens=max_batch_tokens, dtype=dtype,
        min_kv_tokens=min(longest, spec.max_seq_len),
        gpu_memory_utilization=gpu_memory_utilization)
    keep, pruned = keep + mixed_keep, pruned + mixed_pruned
    cand_cols = [*CANDIDATE_COLUMNS, *(MIX_COLUMNS if mix.enabled else ())]
    # A unit whose smallest deployment is over the limits is never worth simulating.
    affordable = [c for c in keep if c.gpus <= gpu_cap
                  and c.unit_cost_usd_per_hour(price) <= usd_cap]
    over = [c for c in keep if c not in set(affordable)]
    pruned_rows = [{**_cand_row(p.candidate), "reason": p.reason} for p in pruned]
    pruned_rows += [{**_cand_row(c), "reason": "one unit exceeds max_gpus / budget"}
                    for c in over]
    in_mean = float(window["input_tokens"].mean())
    out_mean = float(window["output_tokens"].mean())
    cache = cache if cache is not None else SimCache()
    windows: dict[int, tuple[pd.DataFrame, str]] = {}
    tasks, keys = [], []
    for c in affordable:
        slots = unit_slots(spec, c, input_mean=in_mean, output_mean=out_mean,
                           max_batch_tokens=max_batch_tokens, dtype=dtype,
                           gpu_memory_utilization=gpu_memory_utilization)
        n = max(window_requests, math.ceil(WINDOW_SLOTS_FACTOR * slots))
        if n not in windows:
            w = tile_window(workload, n)
            windows[n] = (w, window_digest(w))
        w, digest = windows[n]
        keys.append((c, digest, slo, seed, dtype, gpu_memory_utilization, spec, slots,
                     profiles))
        tasks.append(BisectTask(
            model=spec, candidate=c, window=w, slo=slo,
            estimate_rps=estimate_unit_rate(spec, c, input_mean=in_mean, output_mean=out_mean,
                                            tpot_s=slo.tpot_s, dtype=dtype,
                                            gpu_memory_utilization=gpu_memory_utilization,
                                            profiles=profiles),
            rel_tol=rate_tolerance, seed=seed, dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization, profiles=profiles,
            max_outstanding=MAX_BACKLOG_SLOTS * slots, cached=dict(cache.entries.get(keys[-1], {}))))
    metric = rank_by.metric

    def score(i: int, rate: float) -> float:
        """The ranking key of unit i at `rate` (deployments meeting the workload first)."""
        c = affordable[i]
        d = _deployment(c, rate, {}, target, c.unit_cost_usd_per_hour(price), gpu_cap,
                        usd_cap)
        return float(d[metric]) + (1e6 if d["meets_workload"] else 0.0)

    # Phase 1: the most promising units by estimate; phase 2: the rest unless even an
    # optimistic estimate cannot beat the best simulated so far (skipped, reported).
    bound = [score(i, t.estimate_rps * ESTIMATE_OPTIMISM) for i, t in enumerate(tasks)]
    by_promise = sorted(range(len(tasks)), key=lambda i: -bound[i])
    first = by_promise[:max(PHASE1_MIN, math.ceil(PHASE1_FRACTION * len(tasks)))] \
        if prune_by_estimate else by_promise
    own = executor is None
    ex = LocalExecutor() if own else executor
    results: dict[int, Any] = {}
    try:
        results.update(_run(ex, tasks, first))
        rest = by_promise[len(first):]
        if rest:
            best = max((score(i, r.value.rate_rps) for i, r in results.items()
                        if r.ok and r.value.rate_rps > 0), default=-math.inf)
            hopeful = [i for i in rest if bound[i] >= best]
            for i in rest:
                if bound[i] < best:
                    pruned_rows.append({**_cand_row(affordable[i]), "reason": (
                        f"estimate: even {ESTIMATE_OPTIMISM:g}x its closed-form rate ranks "
                        "below the best simulated unit")})
            results.update(_run(ex, tasks, hopeful))
    finally:
        if own:
            ex.close()
    rows, cands, failures = [], [], []
    sims = hits = 0
    for i in sorted(results):
        c, k, res = affordable[i], keys[i], results[i]
        if not res.ok:
            failures.append(f"{c.label()}: {res.error.splitlines()[0]}")
            continue
        out: BisectOutcome = res.value
        cache.entries.setdefault(k, {}).update(out.new_entries)
        sims += out.simulations
        hits += out.cache_hits
        if out.rate_rps <= 0:
            pruned_rows.append({**_cand_row(c), "reason": "misses the SLO even nearly unloaded"})
            continue
        rows.append({**_deployment(c, out.rate_rps, out.metrics, target,
                                   c.unit_cost_usd_per_hour(price), gpu_cap, usd_cap),
                     "_index": len(cands)})
        cands.append(c)
    plans = _rank(pd.DataFrame(rows, columns=[*cand_cols, *DEPLOYMENT_COLUMNS, "_index"]),
                  rank_by)
    if confirm_top > 0 and not plans.empty:
        requests = (scale_trace(workload, target / trace_rate)
                    if abs(target / trace_rate - 1.0) > 1e-12 else workload)
        plans, confirm_sims = _confirm(plans, cands, spec, requests, slo, seed, dtype,
                                       gpu_memory_utilization, confirm_top,
                                       confirm_extra_units, gpu_cap, usd_cap, rank_by,
                                       profiles)
        sims += confirm_sims
    cands = [cands[int(i)] for i in plans.pop("_index")]
    return ServePlanResult(
        plans=plans, pareto=pareto_front(deployment_points(plans)),
        pruned=pd.DataFrame(pruned_rows, columns=[*cand_cols, "reason"]),
        candidates=tuple(cands),
        workload={"requests": float(len(workload)), "trace_rate_rps": trace_rate,
                  "excluded_prompt_too_long": float(too_long.sum()),
                  "target_rate_rps": target, "window_requests": float(len(window)),
                  "input_tokens_mean": float(workload["input_tokens"].mean()),
                  "output_tokens_mean": float(workload["output_tokens"].mean())},
        slo=slo, rank_by=rank_by, considered=len(keep) + len(pruned), simulations=sims,
        cache_hits=hits, failed=len(failures), elapsed_s=time.perf_counter() - start,
        failures=tuple(failures), model_name=spec.name)


def _run(ex: Executor, tasks: list[BisectTask], which: list[int]) -> dict[int, Any]:
    """Bisect the units `which` on the executor, shuffled (fixed seed) so each batch mixes
    cheap and costly units (neighbours in the enumeration share a shape, hence a cost)."""
    if not which:
        return {}
    order = [which[j] for j in np.random.default_rng(0).permutation(len(which))]
    return dict(zip(order, ex.map(bisect_task, [tasks[i] for i in order]), strict=True))


def _fits(cap: float, per_unit: float) -> int | float:
    """Whole units within a cap (inf without one); 1e-9 forgives float round-off."""
    return math.inf if math.isinf(cap) else math.floor(cap / per_unit + 1e-9)


def _deployment(c: ServeCandidate, rate_rps: float, metrics: Mapping[str, float],
                target: float, unit_cost: float, gpu_cap: float, usd_cap: float,
                units: int | None = None) -> dict[str, Any]:
    """Units to carry `target` req/s (capped by the limits, or as given) and what they cost
    (unit_cost: USD per hour of one unit, every pool priced by its device) and deliver."""
    needed = math.ceil(target / rate_rps - 1e-9)
    if units is None:
        units = min(needed, _fits(gpu_cap, c.gpus), _fits(usd_cap, unit_cost))
    goodput = min(target, units * rate_rps)
    cost = units * unit_cost
    return {**_cand_row(c), "unit_gpus": c.gpus, "unit_rate_rps": rate_rps,
            "unit_cost_usd_per_hour": unit_cost,
            "unit_requests_per_usd": rate_rps * 3600.0 / unit_cost,
            "units": units, "gpus": units * c.gpus, "cost_usd_per_hour": cost,
            "target_rate_rps": target, "goodput_rps": goodput,
            "meets_workload": units >= needed,
            "requests_per_usd": goodput * 3600.0 / cost,
            "goodput_rps_per_gpu": goodput / (units * c.gpus),
            "attainment_at_unit_rate": metrics.get("attainment", float("nan")),
            "ttft_q_s": metrics.get("ttft_q_s", float("nan")),
            "tpot_q_s": metrics.get("tpot_q_s", float("nan")),
            "confirmed": False, "confirmed_attainment": float("nan")}


def _rank(df: pd.DataFrame, rank_by: RankBy) -> pd.DataFrame:
    """Deployments that carry the workload first, then goodput per dollar (or per GPU), then
    the unit's own rate per dollar (head-room), then fewer GPUs."""
    if df.empty:
        return df
    metric = rank_by.metric
    return df.sort_values(["meets_workload", metric, "unit_requests_per_usd", "gpus"],
                          ascending=[False, False, False, True], kind="stable"
                          ).reset_index(drop=True)


def _confirm(plans: pd.DataFrame, cands: list[ServeCandidate], model: ModelSpec,
             requests: pd.DataFrame, slo: SLO, seed: int, dtype: str, util: float, top: int,
             extra: int, gpu_cap: float, usd_cap: float, rank_by: RankBy,
             profiles: ProfileChoice | None = None) -> tuple[pd.DataFrame, int]:
    """Simulate the top deployments whole on the full workload, adding units (within the
    limits, at most `extra`) until the SLO holds; re-rank and repeat until the top `top` are
    all confirmed. A unit that needed more units is derated to target / units; a deployment
    that still misses the SLO no longer counts as meeting it."""
    sims = 0
    for _ in range(len(plans)):
        head = plans.iloc[:top]
        todo = [i for i in head.index if not head.at[i, "confirmed"]]
        if not todo:
            break
        for i in todo:
            row, c = plans.loc[i], cands[int(plans.at[i, "_index"])]
            units, target = int(row["units"]), float(row["target_rate_rps"])
            for _ in range(extra + 1):
                ok, metrics = slo_check(simulate_unit(model, c, requests, slo, units=units,
                                                      seed=seed, dtype=dtype,
                                                      gpu_memory_utilization=util,
                                                      profiles=profiles), slo)
                sims += 1
                if ok or (units + 1) * c.gpus > gpu_cap \
                        or (units + 1) * float(row["unit_cost_usd_per_hour"]) > usd_cap:
                    break
                units += 1
            unit_cost = float(row["unit_cost_usd_per_hour"])
            if not c.mixed:  # per-device price and back, bit for bit as before mixed pairs
                unit_cost = c.gpus * (unit_cost / c.gpus)
            rate = float(row["unit_rate_rps"])
            if ok and units > int(row["units"]):  # the window over-rated the unit: derate it
                rate = target / units  # to what the full workload showed units of it carry
            new = _deployment(c, rate, {
                "attainment": row["attainment_at_unit_rate"], "ttft_q_s": row["ttft_q_s"],
                "tpot_q_s": row["tpot_q_s"]}, target, unit_cost, gpu_cap, usd_cap, units=units)
            new.update(confirmed=True, confirmed_attainment=metrics["attainment"],
                       meets_workload=bool(ok), _index=row["_index"])
            if not ok:  # what the simulated deployment actually delivered within the SLO
                new["goodput_rps"] = min(target, metrics["attainment"] * target)
                new["requests_per_usd"] = new["goodput_rps"] * 3600.0 / new["cost_usd_per_hour"]
                new["goodput_rps_per_gpu"] = new["goodput_rps"] / new["gpus"]
            new = {k: v for k, v in new.items() if k in plans.columns}  # mix columns if searched
            plans.loc[i, list(new)] = pd.Series(new)
        plans = _rank(plans, rank_by)
    return plans, sims
