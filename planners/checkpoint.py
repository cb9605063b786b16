"""plan_checkpoint: the checkpoint interval that maximizes simulated ETTR, beside Young and Daly.

Every candidate interval is simulated with the same seeds (common random numbers: the same
failure times hit every candidate), so differences between rows are not sampling noise.
Candidates fan out through an executor (`--executor local|ray`), one task per interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError, InfeasibleError
from planners.executors import Executor, map_values
from simulator.longrun.closed_form import (
    daly_interval_s,
    exact_ettr,
    kokolis_ettr,
    young_interval_s,
)
from simulator.longrun.config import JobShape, RunConfig
from simulator.longrun.engine import IterationTimeFn
from simulator.longrun.simulate import default_iteration_time_fn, run_config, simulate_many


class CandidateRule(StrEnum):
    """Where a candidate interval came from (the `rule` column)."""

    GRID = "grid"
    YOUNG = "young"
    DALY = "daly"


# Default grid: multiples of Daly's interval (log-spaced, a factor ~1.4 apart).
GRID_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointPlan:
    """The searched intervals with simulated and closed-form ETTR, and the chosen one."""

    best_interval_s: float
    best_ettr: float
    young_interval_s: float
    daly_interval_s: float
    mttf_s: float
    stall_s: float
    restart_s: float
    rows: tuple[dict[str, float | str], ...]

    @property
    def feasible(self) -> bool:
        """Some interval makes progress (ETTR > 0): a run that never completes an
        iteration between failures has no best interval."""
        return self.best_ettr > 0

    def infeasible_error(self) -> InfeasibleError:
        return InfeasibleError(
            f"no checkpoint interval makes progress: all {len(self.rows)} candidate intervals "
            f"have simulated ETTR 0 (job MTTF {self.mttf_s:.0f} s, restart {self.restart_s:.0f} s"
            f", checkpoint stall {self.stall_s:.0f} s)",
            hint="more spares, a lower failure rate, a faster restart or a smaller job")

    def to_df(self) -> pd.DataFrame:
        """One row per interval: rule, interval_s, ettr_mean/p5/p95, closed forms."""
        return pd.DataFrame(list(self.rows))

    def to_dict(self) -> dict[str, Any]:
        return {"best_interval_s": self.best_interval_s, "best_ettr": self.best_ettr,
                "young_interval_s": self.young_interval_s,
                "daly_interval_s": self.daly_interval_s, "mttf_s": self.mttf_s,
                "stall_s": self.stall_s, "restart_s": self.restart_s,
                "table": [dict(r) for r in self.rows]}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Candidate:
    """One executor task: the run under one checkpoint interval, over `seeds` seeded runs."""

    cfg: RunConfig
    job: JobShape
    iteration_time_s: IterationTimeFn  # picklable when the executor uses other processes
    seeds: int
    seed: int


def _simulate_candidate(task: _Candidate) -> tuple[list[float], float]:
    """(ETTR of every seeded run, simulated checkpoint cycle in s) of one candidate."""
    summary = simulate_many(task.cfg, task.job, task.iteration_time_s, seeds=task.seeds,
                            seed=task.seed)
    return [r.ettr for r in summary.runs], summary.runs[0].checkpoint_interval_s


def _run_candidates(tasks: list[_Candidate], executor: Executor | None
                    ) -> list[tuple[list[float], float]]:
    if executor is None:  # in-process: errors propagate as raised
        return [_simulate_candidate(t) for t in tasks]
    return map_values(executor, _simulate_candidate, tasks)


def plan_checkpoint(cfg: RunConfig, job: JobShape, iteration_time_s: IterationTimeFn, *,
                    intervals_s: tuple[float, ...] | None = None, seeds: int = 4,
                    seed: int = 0, executor: Executor | None = None,
                    mttf_s: float | None = None) -> CheckpointPlan:
    """Simulate each candidate interval over `seeds` runs; best = highest mean ETTR.

    With an executor the candidates run as its tasks (iteration_time_s must then pickle);
    without one they run here, in order. mttf_s replaces the failure model's job MTTF for
    Young/Daly (plan spot: failures and preemptions together)."""
    if cfg.failures is None and mttf_s is None:
        raise ConfigError("nothing fails, so any interval is optimal", key="run.failures")
    if seeds < 1:
        raise ConfigError(f"must be >= 1, got {seeds}", key="seeds")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"must be an integer >= 0, got {seed!r}", key="seed")
    mttf = mttf_s if mttf_s is not None else 1.0 / cfg.failures.job_rate_per_s(
        num_gpus=job.num_gpus, gpus_per_node=job.gpus_per_node,
        nodes_per_leaf=job.nodes_per_leaf)
    stall = max(cfg.checkpoint.stall_s, 1e-3)
    restart = cfg.detection_s + cfg.restart_s + cfg.checkpoint.read_s
    young = young_interval_s(stall_s=stall, mttf_s=mttf)
    daly = daly_interval_s(stall_s=stall, mttf_s=mttf)
    candidates: dict[float, CandidateRule] = {}
    for x in intervals_s or tuple(f * daly for f in GRID_FACTORS):
        if not (x > 0 and math.isfinite(x)):
            raise ConfigError(f"intervals must be > 0, got {x!r}", key="intervals_s")
        candidates.setdefault(float(x), CandidateRule.GRID)
    candidates[young] = CandidateRule.YOUNG
    candidates[daly] = CandidateRule.DALY
    ordered = sorted(candidates.items())
    tasks = [_Candidate(cfg=replace(cfg, checkpoint=replace(cfg.checkpoint, interval_s=interval)),
                        job=job, iteration_time_s=iteration_time_s, seeds=seeds, seed=seed)
             for interval, _ in ordered]
    rows = []
    for (interval, rule), (ettr_list, cycle) in zip(ordered, _run_candidates(tasks, executor),
                                                    strict=True):
        ettrs = np.array(ettr_list)  # cycle: the interval rounded to whole iterations
        rows.append({"rule": rule, "interval_s": interval, "simulated_interval_s": cycle,
                     "ettr_mean": float(ettrs.mean()),
                     "ettr_p5": float(np.percentile(ettrs, 5)),
                     "ettr_p95": float(np.percentile(ettrs, 95)),
                     "kokolis_ettr": kokolis_ettr(mttf_s=mttf, interval_s=cycle, stall_s=stall,
                                                  restart_s=restart),
                     "exact_ettr": exact_ettr(mttf_s=mttf, interval_s=cycle, stall_s=stall,
                                              restart_s=restart)})
    best = max(rows, key=lambda r: r["ettr_mean"])
    return CheckpointPlan(best_interval_s=float(best["interval_s"]),
                          best_ettr=float(best["ettr_mean"]), young_interval_s=young,
                          daly_interval_s=daly, mttf_s=mttf, stall_s=stall, restart_s=restart,
                          rows=tuple(rows))


def plan_checkpoint_for_scenario(scenario: Any, *, seeds: int = 4, seed: int = 0,
                                 iteration_time_fn: IterationTimeFn | None = None,
                                 intervals_s: tuple[float, ...] | None = None,
                                 executor: Executor | None = None) -> CheckpointPlan:
    """plan_checkpoint for a TrainingScenario (iteration time from the iteration simulator)."""
    cfg, job = run_config(scenario)
    fn = iteration_time_fn or default_iteration_time_fn(scenario)
    if executor is not None:
        fn(job.dp)  # simulate the healthy iteration once here; the cache ships to every task
    return plan_checkpoint(cfg, job, fn, intervals_s=intervals_s, seeds=seeds, seed=seed,
                           executor=executor)
