"""plan_spot: the checkpoint interval for a spot run, spot vs on-demand cost and time to
train, and the break-even preemption rate where on-demand becomes cheaper.

The interval starts from Young/Daly on the combined failure + preemption rate and is chosen
by plan_checkpoint's simulated candidates (same seeds for every candidate). The on-demand
baseline is the same job with run.spot.fraction 0 (no preemptions, on-demand prices) at the
Daly interval of its failures alone. The sweep runs each rate at its own combined-rate Daly
interval (no inner search, to keep it cheap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hwmodels.errors import ConfigError
from planners.checkpoint import GRID_FACTORS, CheckpointPlan, plan_checkpoint
from planners.replan import ReplannedIterationTime, replanned
from simulator.longrun.closed_form import daly_interval_s
from simulator.longrun.config import JobShape, RunConfig, ShortagePolicy
from simulator.longrun.engine import IterationTimeFn
from simulator.longrun.simulate import SimulatedIterationTime, simulate_many

# Preemption rates of the break-even sweep, as multiples of the planned rate (x0 included).
SWEEP_FACTORS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
# The sweep stops after the first rate whose spot cost exceeds this multiple of on-demand's
# (or that never finishes): higher rates only cost more, and hopeless runs are the slow ones.
SWEEP_STOP_COST_RATIO = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotPlan:
    """The chosen interval, spot and on-demand figures, the sweep and the break-even rate."""

    preemptions_per_node_hour: float
    checkpoint: CheckpointPlan
    spot: dict[str, Any]
    on_demand: dict[str, Any]
    sweep: tuple[dict[str, Any], ...]
    break_even_preemptions_per_node_hour: float | None  # None: spot cheaper over the sweep
    shortage: str  # wait | elastic | replan: what the job does while slots are away
    by_shortage: dict[str, dict[str, Any]]  # spot figures per policy tried (or its error)

    def to_dict(self) -> dict[str, Any]:
        return {"preemptions_per_node_hour": self.preemptions_per_node_hour,
                "checkpoint_interval_s": self.checkpoint.best_interval_s,
                "young_interval_s": self.checkpoint.young_interval_s,
                "daly_interval_s": self.checkpoint.daly_interval_s,
                "combined_mttf_s": self.checkpoint.mttf_s,
                "spot": self.spot, "on_demand": self.on_demand, "sweep": list(self.sweep),
                "break_even_preemptions_per_node_hour":
                    self.break_even_preemptions_per_node_hour,
                "checkpoint_table": [dict(r) for r in self.checkpoint.rows],
                "shortage": self.shortage, "by_shortage": self.by_shortage}


def _rate_per_s(cfg: RunConfig, job: JobShape) -> float:
    """Failures plus preemptions per second of the whole job."""
    fail = (cfg.failures.job_rate_per_s(num_gpus=job.num_gpus, gpus_per_node=job.gpus_per_node,
                                        nodes_per_leaf=job.nodes_per_leaf)
            if cfg.failures is not None else 0.0)
    spot = cfg.spot
    return fail + (spot.mean_rate_per_node_s() * spot.spot_nodes(job.num_nodes)
                   if spot is not None else 0.0)


def _daly_s(cfg: RunConfig, job: JobShape) -> float:
    rate = _rate_per_s(cfg, job)
    if rate <= 0:
        return cfg.checkpoint.interval_s
    return daly_interval_s(stall_s=max(cfg.checkpoint.stall_s, 1e-3), mttf_s=1.0 / rate)


def _figures(cfg: RunConfig, job: JobShape, fn: IterationTimeFn, *, seeds: int,
             seed: int) -> dict[str, Any]:
    """Mean over seeds: time to train, cost, cost per million tokens, ETTR, interval."""
    runs = simulate_many(cfg, job, fn, seeds=seeds, seed=seed).runs
    ttt = [r.time_to_train_s for r in runs]
    spots = [r.spot for r in runs if r.spot is not None]
    per_mtok = [s.cost_per_million_tokens_usd for s in spots]
    return {"time_to_train_s": None if None in ttt else float(np.mean(ttt)),
            "cost_usd": float(np.mean([s.cost_usd for s in spots])),
            "cost_per_million_tokens_usd": None if None in per_mtok else float(np.mean(per_mtok)),
            "ettr": float(np.mean([r.ettr for r in runs])),
            "preemptions": float(np.mean([s.preemptions for s in spots])),
            "emergency_checkpoints": float(np.mean([s.emergency_checkpoints for s in spots])),
            "lost_work_s": float(np.mean([s.lost_work_s for s in spots])),
            "checkpoint_interval_s": runs[0].checkpoint_interval_s}


def _with(cfg: RunConfig, *, rate_per_node_s: float | None = None,
          fraction: float | None = None, interval_s: float | None = None) -> RunConfig:
    spot = cfg.spot
    assert spot is not None
    if rate_per_node_s is not None:
        spot = replace(spot, rate_per_node_s=rate_per_node_s, events=())
    if fraction is not None:
        spot = replace(spot, fraction=fraction)
    ck = cfg.checkpoint if interval_s is None else replace(cfg.checkpoint, interval_s=interval_s)
    return replace(cfg, spot=spot, checkpoint=ck)


def plan_spot(cfg: RunConfig, job: JobShape, fn: IterationTimeFn, *, seeds: int = 2,
              seed: int = 0, sweep_factors: tuple[float, ...] = SWEEP_FACTORS) -> SpotPlan:
    """Choose the interval for cfg's preemption rate, compare with on-demand, sweep rates."""
    if cfg.spot is None:
        raise ConfigError("needs a run.spot section", key="run.spot")
    if cfg.token_budget is None:
        raise ConfigError("time to train needs a token budget", key="run.token_budget")
    rate_s = _rate_per_s(cfg, job)
    daly = _daly_s(cfg, job)
    ck = plan_checkpoint(cfg, job, fn, intervals_s=tuple(f * daly for f in GRID_FACTORS),
                         seeds=seeds, seed=seed,
                         mttf_s=1.0 / rate_s if rate_s > 0 else cfg.checkpoint.interval_s * 1e6)
    od_cfg = _with(cfg, fraction=0.0)  # the scenario's own shortage policy
    options = _policies(_with(cfg, interval_s=ck.best_interval_s), job, fn)
    shortage, by_shortage = _choose_shortage(options, default=str(cfg.shortage), seeds=seeds,
                                             seed=seed)
    spot = by_shortage[shortage]
    run_cfg, run_job, run_fn = options[shortage]
    # nothing fails on demand: checkpointing less often than the spot plan cannot lose work
    od_interval = (_daly_s(od_cfg, job) if _rate_per_s(od_cfg, job) > 0
                   else max(cfg.checkpoint.interval_s, ck.best_interval_s))
    od = _figures(_with(od_cfg, interval_s=od_interval), job, fn, seeds=seeds, seed=seed)
    base = cfg.spot.mean_rate_per_node_s()
    rows = []
    for f in sweep_factors:  # under the chosen policy
        r_cfg = _with(run_cfg, rate_per_node_s=f * base)
        fig = _figures(_with(r_cfg, interval_s=_daly_s(r_cfg, run_job)), run_job, run_fn,
                       seeds=seeds, seed=seed)
        rows.append({"preemptions_per_node_hour": f * base * 3600.0, **fig})
        if fig["time_to_train_s"] is None or fig["cost_usd"] > SWEEP_STOP_COST_RATIO * od["cost_usd"]:
            break  # cost only grows with the rate: past this the break-even is already found
    return SpotPlan(preemptions_per_node_hour=base * 3600.0, checkpoint=ck, spot=spot,
                    on_demand=od, sweep=tuple(rows),
                    break_even_preemptions_per_node_hour=_break_even(rows, od["cost_usd"]),
                    shortage=shortage, by_shortage=by_shortage)


def _policies(cfg: RunConfig, job: JobShape, fn: IterationTimeFn
              ) -> dict[str, tuple[RunConfig, JobShape, IterationTimeFn]]:
    """What the job can do while preempted slots are away: wait for replacements, shrink
    data parallelism (elastic, down to min_dp), or re-plan its pipeline layout on the nodes
    left (planners/replan.py; needs the iteration simulator's specs, i.e. a scenario's fn)."""
    out: dict[str, tuple[RunConfig, JobShape, IterationTimeFn]] = {
        str(p): (replace(cfg, shortage=p), job, fn) for p in ShortagePolicy}
    if isinstance(fn, SimulatedIterationTime):
        out["replan"] = replanned(cfg, job, fn)
    return out


def _choose_shortage(options: dict[str, tuple[RunConfig, JobShape, IterationTimeFn]], *,
                     default: str, seeds: int, seed: int
                     ) -> tuple[str, dict[str, dict[str, Any]]]:
    """Every policy on the same seeds; the cheapest per trained token wins (ties: the
    scenario's own). A policy that cannot run says why instead of a figure."""
    figs: dict[str, dict[str, Any]] = {}
    for name, (c, j, f) in options.items():
        try:
            figs[name] = _figures(c, j, f, seeds=seeds, seed=seed)
        except ConfigError as err:  # e.g. a shrink that would run faster than the full job
            figs[name] = {"error": err.message}
        if isinstance(f, ReplannedIterationTime) and "error" not in figs[name]:
            figs[name]["plans_by_nodes"] = {str(k): v for k, v in sorted(f.chosen.items())}

    def key(name: str) -> tuple[float, int]:
        cost = figs[name].get("cost_per_million_tokens_usd")
        return (math.inf if cost is None else cost, 0 if name == default else 1)

    usable = [n for n in options if "error" not in figs[n]]
    if not usable:
        raise ConfigError(f"no shortage policy runs: {figs}", key="run.on_shortage")
    return min(usable, key=key), figs


def _break_even(rows: list[dict[str, Any]], od_cost: float) -> float | None:
    """First rate where spot costs as much as on-demand, interpolated between sweep rows."""
    for a, b in zip(rows, rows[1:], strict=False):
        if a["cost_usd"] < od_cost <= b["cost_usd"]:
            x0, x1 = a["preemptions_per_node_hour"], b["preemptions_per_node_hour"]
            w = (od_cost - a["cost_usd"]) / (b["cost_usd"] - a["cost_usd"])
            return x0 + w * (x1 - x0)
    if rows and rows[0]["cost_usd"] >= od_cost:
        return rows[0]["preemptions_per_node_hour"]
    return None if not rows or math.isfinite(rows[-1]["cost_usd"]) else None
