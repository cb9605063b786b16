"""plan_checkpoint_choice: the checkpoint mode x storage tier x interval with the best ETTR.

Each (mode, tier) pair reruns plan_checkpoint (same seeds: common random numbers across every
pair) on the scenario with `run.checkpoint.mode` and the tier's bandwidths; a tier that does
not survive a node loss is rejected with its reason. Ties in ETTR go to the cheaper tier.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hwmodels.errors import InfeasibleError
from planners.checkpoint import CheckpointPlan, plan_checkpoint_for_scenario
from planners.checkpoint_tiers import STORAGE_TIERS, StorageTier
from planners.executors import Executor
from simulator.longrun.checkpoint import CheckpointMode
from simulator.longrun.engine import IterationTimeFn
from simulator.longrun.simulate import run_config


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointChoice:
    """Every (mode, tier) pair's best interval, the chosen pair and the rejected tiers."""

    rows: tuple[dict[str, Any], ...]  # one per (mode, tier), best ETTR first
    rejected: tuple[dict[str, str], ...]
    plans: dict[tuple[str, str], CheckpointPlan]

    @property
    def feasible(self) -> bool:
        """Some pair makes progress (ETTR > 0)."""
        return bool(self.rows) and self.rows[0]["ettr"] > 0

    @property
    def best(self) -> dict[str, Any]:
        return self.rows[0]

    def infeasible_error(self) -> InfeasibleError:
        why = "; ".join(f"{r['tier']}: {r['reason']}" for r in self.rejected)
        return InfeasibleError(
            f"no checkpoint mode x storage tier makes progress: {len(self.rows)} pair(s) "
            f"simulated with ETTR 0" + (f", rejected {why}" if why else ""),
            hint="more spares, a faster restart, another tier or mode")

    def runner_ups(self) -> dict[str, dict[str, Any]]:
        """The best row of each mode and of each tier other than the chosen one's."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows[1:]:  # rows are ranked: the first of each is its best
            if r["mode"] != self.best["mode"]:
                out.setdefault(f"mode={r['mode']}", dict(r))
            if r["tier"] != self.best["tier"]:
                out.setdefault(f"tier={r['tier']}", dict(r))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"choice": dict(self.best), "candidates": [dict(r) for r in self.rows],
                "runner_up": self.runner_ups(), "rejected_tiers": list(self.rejected)}


def _with_checkpoint(scenario: Any, **changes: Any) -> Any:
    """The scenario with run.checkpoint fields replaced (write_s/read_s re-derived)."""
    ck = dataclasses.replace(scenario.run.checkpoint, **changes)
    return dataclasses.replace(scenario, run=dataclasses.replace(scenario.run, checkpoint=ck))


def plan_checkpoint_choice(scenario: Any, *, modes: tuple[CheckpointMode, ...],
                           tiers: tuple[StorageTier, ...], seeds: int = 4, seed: int = 0,
                           iteration_time_fn: IterationTimeFn,
                           executor: Executor | None = None) -> CheckpointChoice:
    """plan_checkpoint for every (mode, tier); rows ranked by ETTR, then storage $/h."""
    _, job = run_config(scenario)
    nodes = max(1, job.num_gpus // job.gpus_per_node)
    keep = scenario.run.checkpoint.keep
    stored = job.state_bytes * keep
    healthy_tokens_per_s = job.tokens_per_iteration / iteration_time_fn(job.dp)
    rows, rejected, plans = [], [], {}
    for tier in tiers:
        changes: dict[str, Any] = {}
        usd_h, write_bps, read_bps = None, None, None
        if tier is not StorageTier.SCENARIO:
            spec = STORAGE_TIERS.get(tier)
            if not spec.durable:
                rejected.append({"tier": str(tier), "reason": "not durable: a failed node "
                                 "loses its shard, and every restart here follows a node loss"})
                continue
            write_bps, read_bps = spec.bandwidths_Bps(nodes=nodes, stored_bytes=stored)
            usd_h = spec.usd_per_hour(stored)
            changes = {"storage_write_bandwidth": write_bps, "storage_read_bandwidth": read_bps,
                       "write_s": None, "read_s": None}
        for mode in modes:
            sc = _with_checkpoint(scenario, mode=mode, **changes)
            plan = plan_checkpoint_for_scenario(sc, seeds=seeds, seed=seed, executor=executor,
                                                iteration_time_fn=iteration_time_fn)
            cfg, _ = run_config(sc)
            plans[(str(mode), str(tier))] = plan
            rows.append({"mode": str(mode), "tier": str(tier),
                         "interval_s": plan.best_interval_s, "ettr": plan.best_ettr,
                         "goodput_tokens_per_s": plan.best_ettr * healthy_tokens_per_s,
                         "stall_s": plan.stall_s, "write_s": cfg.checkpoint.write_s,
                         "read_s": cfg.checkpoint.read_s,
                         "storage_write_Bps": write_bps
                         if write_bps is not None else sc.run.checkpoint.storage_write_bandwidth,
                         "storage_usd_per_hour": usd_h})
    rows.sort(key=lambda r: (-r["ettr"], r["storage_usd_per_hour"] or 0.0))
    return CheckpointChoice(rows=tuple(rows), rejected=tuple(rejected), plans=plans)
