"""Glue from a training scenario to the long-run engine: job shape, iteration-time callable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from hwmodels.errors import ConfigError
from hwmodels.flops import param_count
from hwmodels.parallel import ParallelConfig, TrainingConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec
from simulator.longrun.checkpoint import CHECKPOINT_BYTES_PER_PARAM, checkpoint_state_bytes
from simulator.longrun.config import JobShape, RunConfig
from simulator.longrun.engine import IterationTimeFn, simulate_longrun
from simulator.longrun.results import RunResult, RunSummary

if TYPE_CHECKING:
    from simulator.training.scenario import TrainingScenario


def job_shape(model: ModelSpec, cluster: ClusterSpec, training: TrainingConfig,
              parallel: ParallelConfig, *,
              bytes_per_param: float = CHECKPOINT_BYTES_PER_PARAM) -> JobShape:
    """The long-run view of a training job: sizes, replicas, tokens per step, state bytes."""
    return JobShape(
        num_gpus=cluster.num_devices,
        gpus_per_node=cluster.devices_per_node,
        dp=parallel.dp,
        gpus_per_replica=parallel.tp * parallel.pp * parallel.cp,
        tokens_per_iteration=float(training.global_batch * training.seq_len),
        state_bytes=checkpoint_state_bytes(param_count(model), bytes_per_param=bytes_per_param),
        nodes_per_leaf=cluster.nodes_per_leaf,
    )


class SimulatedIterationTime:
    """iteration_time_s(dp) from the iteration simulator, cached per DP size; picklable, so
    executors can ship it to worker processes (the cache travels with it).

    Fewer replicas keep the global batch (each does more microbatches) on fewer devices; when
    the batch does not divide over the smaller dp, the time scales as dp_full / dp. With
    hybrid sharding (fsdp_shard_size) only whole shard groups run.
    """

    __slots__ = ("cache", "cluster", "model", "parallel", "profile", "training")

    def __init__(self, model: ModelSpec, cluster: ClusterSpec, training: TrainingConfig,
                 parallel: ParallelConfig, *, profile: DeviceProfile | None = None) -> None:
        self.model, self.cluster, self.training, self.parallel = model, cluster, training, parallel
        self.profile = profile  # the scenario's resolved profile (None: bundled/defaults)
        self.cache: dict[int, float] = {}

    def __call__(self, dp: int) -> float:
        from dataclasses import replace

        from simulator.training import simulate_iteration  # lazy: lives in another package part

        cache, parallel = self.cache, self.parallel
        if dp not in cache:
            if dp == parallel.dp:
                cache[dp] = simulate_iteration(self.model, self.cluster, self.training,
                                               parallel, profile=self.profile
                                               ).iteration_time_s
            elif (shard := parallel.fsdp_shard_size) is not None and dp % shard and dp > shard:
                # hybrid sharding: a shard group missing a rank cannot run; the job goes on
                # with its whole shard groups (replicas), the same global batch
                cache[dp] = self(dp // shard * shard)
            else:
                per_replica = parallel.tp * parallel.pp * parallel.cp
                # fewer ranks than one shard group: they shard over what is left
                shrunk = replace(parallel, dp=dp, fsdp_shard_size=None) if (
                    parallel.fsdp_shard_size is not None and dp < parallel.fsdp_shard_size) \
                    else replace(parallel, dp=dp)
                try:
                    c = replace(self.cluster, num_devices=dp * per_replica)
                    cache[dp] = simulate_iteration(self.model, c, self.training, shrunk,
                                                   profile=self.profile).iteration_time_s
                except ConfigError:
                    # the batch does not split over dp replicas: same work on fewer replicas
                    cache[dp] = self(parallel.dp) * parallel.dp / dp
        return cache[dp]


def run_config(scenario: TrainingScenario) -> tuple[RunConfig, JobShape]:
    """The scenario's `run:` section resolved for its job."""
    if scenario.run is None:
        raise ConfigError("needs a run: section (duration, failures, checkpoint)",
                          file=scenario.file, key="run")
    job = job_shape(scenario.model, scenario.cluster, scenario.training, scenario.parallel)
    return scenario.run.resolve(job, file=scenario.file), job


def simulate_run(scenario: TrainingScenario, *, seed: int | None = None,
                 iteration_time_fn: Callable[[int], float] | None = None) -> RunResult:
    """One seeded long run of a TrainingScenario (its .model .cluster .training .parallel .run)."""
    cfg, job = run_config(scenario)
    fn = iteration_time_fn or default_iteration_time_fn(scenario)
    return simulate_longrun(cfg, job, fn, seed=cfg.seed if seed is None else seed,
                            scenario=scenario_name(scenario))


def simulate_run_seeds(scenario: TrainingScenario, *, seeds: int | None = None,
                       seed: int | None = None,
                       iteration_time_fn: Callable[[int], float] | None = None) -> RunSummary:
    """`seeds` independent runs (default: run.seeds), seeds spawned from one SeedSequence."""
    cfg, job = run_config(scenario)
    fn = iteration_time_fn or default_iteration_time_fn(scenario)
    return simulate_many(cfg, job, fn, seeds=seeds or cfg.seeds,
                         seed=cfg.seed if seed is None else seed,
                         scenario=scenario_name(scenario))


def simulate_many(cfg: RunConfig, job: JobShape, fn: IterationTimeFn, *, seeds: int,
                  seed: int = 0, scenario: str | None = None) -> RunSummary:
    """Independent runs with child seeds of SeedSequence(seed) (run i uses child i)."""
    children = np.random.SeedSequence(seed).generate_state(seeds)
    return RunSummary(runs=tuple(
        replace(simulate_longrun(cfg, job, fn, seed=int(s), scenario=scenario), seed_index=i)
        for i, s in enumerate(children)))


def scenario_name(scenario: TrainingScenario) -> str | None:
    """What an InvariantError calls the scenario: its name, else its file."""
    return scenario.name or (str(scenario.file) if scenario.file else None)


def default_iteration_time_fn(scenario: TrainingScenario) -> IterationTimeFn:
    """The iteration simulator on a scenario's specs, cached per DP."""
    return SimulatedIterationTime(scenario.model, scenario.cluster, scenario.training,
                                  scenario.parallel, profile=getattr(scenario, "profile", None))
