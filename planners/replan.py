"""Elastic re-planning for long runs: on k healthy nodes, the faster of the scenario's plan
with fewer data-parallel replicas and the best pipeline layout that fits the k nodes.

Elastic training systems re-configure pipelines after losing nodes instead of only dropping
whole data-parallel replicas (Oobleck, SOSP'23: pipeline templates; Bamboo, NSDI'23). Here the
re-plan keeps the scenario's TP, ZeRO stage, schedule and micro-batch (the kernels the job was
built with; its kernel stack, attention and loss are costed as the scenario runs them) and
re-chooses PP, DP and recompute: candidates from the planner's own space and
closed-form estimate, the best one confirmed by the iteration simulator. The long-run engine
sees the job in node units (one "replica" per node), so a missing node costs its own GPUs
rather than a whole replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, PipelineSchedule, Recompute
from hwmodels.training.placement import node_shard_size
from planners.train import TrainEstimator
from planners.train_space import TrainConstraints, UnevenPolicy, enumerate_candidates
from simulator.longrun.config import JobShape, RunConfig, ShortagePolicy
from simulator.longrun.simulate import SimulatedIterationTime
from simulator.training import simulate_iteration


@dataclass(slots=True)
class ReplannedIterationTime:
    """iteration_time_s(k healthy nodes), cached; `chosen[k]` says which plan ran there."""

    base: SimulatedIterationTime  # the scenario's plan (dp shrink) and its specs
    cache: dict[int, float] = field(default_factory=dict)
    chosen: dict[int, str] = field(default_factory=dict)

    @property
    def gpus_per_node(self) -> int:
        return self.base.cluster.devices_per_node

    def __call__(self, nodes: int) -> float:
        if nodes not in self.cache:
            self.cache[nodes], self.chosen[nodes] = self._best(nodes)
        return self.cache[nodes]

    def _best(self, nodes: int) -> tuple[float, str]:
        b, p = self.base, self.base.parallel
        gpn = self.gpus_per_node
        full = b.cluster.num_devices // gpn
        per_replica = p.tp * p.pp * p.cp
        if nodes >= full:
            return b(p.dp), f"scenario plan dp{p.dp}"
        best, label = math.inf, ""
        dp_k = nodes * gpn // per_replica
        if dp_k >= 1:
            best, label = b(dp_k), f"scenario plan dp{dp_k}"
        cluster = replace(b.cluster, num_devices=nodes * gpn)
        space = TrainConstraints(
            tp=(p.tp,), cp=(p.cp,), zero=(p.zero,), vpp=(1,),
            schedules=(PipelineSchedule(str(p.schedule)),) if p.vpp == 1 else
            (PipelineSchedule.ONE_F_ONE_B,),
            recompute=tuple(dict.fromkeys((Recompute(str(p.recompute)), Recompute.FULL))),
            micro_batches=(b.training.micro_batch,), uneven=UnevenPolicy.MEGATRON,
            sequence_parallel=(p.sequence_parallel,),
            # everything else as the scenario runs it: only PP, DP and recompute move
            ep=(p.ep,), fsdp_impl=(p.fsdp_impl,) if p.zero == 3 else None,
            fsdp_shard=_shard_policy(p, gpn),
            offload_optimizer=(p.offload_optimizer,), offload_params=(p.offload_params,),
            cp_mode=p.cp_mode, rank_order=p.rank_order,
            overlap_grad_reduce=p.overlap_grad_reduce,
            overlap_param_gather=p.overlap_param_gather, overlap_tp_comm=p.overlap_tp_comm,
            tp_comm_overlap_impl=p.tp_comm_overlap_impl, kernels=b.training.kernels,
            attention_impl=b.training.attention_impl, loss_impl=b.training.loss_impl,
            grad_reduce_dtype=p.grad_reduce_dtype)
        cands, _ = enumerate_candidates(b.model, cluster, seq_len=b.training.seq_len,
                                        global_batch=b.training.global_batch,
                                        constraints=space, dtype=b.training.dtype)
        if cands:
            est = TrainEstimator(b.model, cluster, profile=b.profile).estimate(
                cands, seq_len=b.training.seq_len, global_batch=b.training.global_batch,
                dtype=b.training.dtype, space=space)
            top = cands[int(est.est_iteration_time_s.to_numpy().argmin())]
            par = top.parallel
            r = simulate_iteration(b.model, cluster, b.training, par, profile=b.profile)
            if r.fits_memory and r.iteration_time_s < best:
                best = r.iteration_time_s
                label = f"re-planned tp{par.tp} pp{par.pp} dp{par.dp} recompute={par.recompute}"
        if not math.isfinite(best):
            raise ConfigError(f"no plan runs on {nodes} nodes (the scenario's needs "
                              f"{per_replica} GPUs a replica; no re-plan fits)",
                              key="run.min_dp")
        return best, label


def _shard_policy(parallel: ParallelConfig, devices_per_node: int) -> tuple[str | int, ...]:
    """The scenario's ZeRO-3 shard groups as a search constraint: all of DP, one node (when
    that is what it runs), else its size."""
    k = parallel.fsdp_shard_size
    if k is None:
        return ("all",)
    return ("node",) if k == node_shard_size(parallel, devices_per_node) else (k,)


def replanned(cfg: RunConfig, job: JobShape, fn: SimulatedIterationTime
              ) -> tuple[RunConfig, JobShape, ReplannedIterationTime]:
    """The run in node units with re-planning: one replica per node, min_dp converted to the
    same number of GPUs (rounded up to nodes), elastic on shortage."""
    gpn = job.gpus_per_node
    nodes = job.num_gpus // gpn
    if nodes * gpn != job.num_gpus:
        raise ConfigError("re-planning needs whole nodes", key="cluster.num_devices")
    node_job = replace(job, dp=nodes, gpus_per_replica=gpn)
    min_nodes = max(1, math.ceil(cfg.min_dp * job.gpus_per_replica / gpn))
    return (replace(cfg, shortage=ShortagePolicy.ELASTIC, min_dp=min(min_nodes, nodes)),
            node_job, ReplannedIterationTime(base=fn))
