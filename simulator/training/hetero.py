"""One training iteration of a pipeline whose stages run on unlike device pools.

Each stage's chunk costs, DP gradient sync and optimizer step use its own pool's device,
profile and fabric (hwmodels.training.hetero.job_cluster: the pool's links over the job's rank
numbering); a p2p send between stages on two pools crosses nodes and is priced on both pools'
NICs, the slower one winning; the SimPy pipeline (engine.run_pipeline) paces the iteration by
the slowest stage. Memory is checked per stage against its own device. On pools of one kind the
run is the homogeneous simulate_iteration's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hwmodels import flops
from hwmodels.attention_impl import flash_memory
from hwmodels.attention_impl import resolve as resolve_attention
from hwmodels.errors import ConfigError
from hwmodels.memory import training_memory
from hwmodels.ops import resolve_profile
from hwmodels.parallel import (
    ParallelConfig,
    PoolSplit,
    TrainingConfig,
    check_plan,
    num_microbatches,
    stage_layer_counts,
)
from hwmodels.profile import DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import ChunkCost, ChunkCostModel, p2p_activation_bytes
from hwmodels.training.gradsync import finish_stage, stage_params
from hwmodels.training.hetero import (
    PoolSpec,
    balanced_split,
    job_cluster,
    layer_caps,
    memory_capacity_bytes,
    resolve_stage_pools,
)
from hwmodels.training.placement import pipeline_groups
from hwmodels.units import GiB
from simulator.training.engine import TraceEvent, run_pipeline
from simulator.training.invariants import check_training_result
from simulator.training.results import Breakdown, TrainingResult
from simulator.training.schedules import Op, OpKind, build_schedule, splits_backward
from simulator.training.simulate import (
    _compute_terms,
    _end_events,
    _op_table,
    _stage_records,
    simulate_iteration,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolCosts:
    """One pool's cost path over the job's ranks: its cluster, profile and collective model."""

    cluster: ClusterSpec
    profile: DeviceProfile
    comm: CommModel


def pool_costs(pools: Sequence[PoolSpec], total_devices: int) -> tuple[PoolCosts, ...]:
    """Per-pool cost paths (profile resolved once per pool)."""
    out = []
    for pool in pools:
        cluster = job_cluster(pool, total_devices)
        prof = resolve_profile(cluster.device, pool.profile)
        out.append(PoolCosts(cluster=cluster, profile=prof, comm=CommModel(cluster, prof)))
    return tuple(out)


def uniform(pools: Sequence[PoolSpec], stage_pools: Sequence[int]) -> bool:
    """Whether every stage's pool has the same hardware as stage 0's (a homogeneous job)."""
    first = pools[stage_pools[0]]
    return all(pools[i].same_hardware(first) for i in stage_pools)


def split_layers(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                 pools: Sequence[PoolSpec], stage_pools: Sequence[int], costs: Sequence[PoolCosts],
                 *, flash_attention: bool = True) -> ParallelConfig:
    """The plan with its layers split over the stages' pools: an explicit split, an even one
    (pool_split: even) or pools of one kind keep the plan's; otherwise balanced_split of each
    stage's per-layer time on its device within its device's memory."""
    p = parallel
    if (p.stage_layers or p.first_stage_layers is not None or p.last_stage_layers is not None
            or PoolSplit(str(p.pool_split)) is PoolSplit.EVEN or uniform(pools, stage_pools)):
        return p
    groups = pipeline_groups(p)
    counts = stage_layer_counts(model.num_layers, p)
    per_layer, fixed = [], []
    for s, k in enumerate(stage_pools):
        c = costs[k]
        cm = ChunkCostModel(model, training, p, c.comm, groups, profile=c.profile,
                            flash_attention=flash_attention)
        f, b = cm.layer(s, model.is_moe)
        t = f.compute_s + f.exposed_s + b.compute_s + b.exposed_s
        ch = cm.chunk(s)
        whole = (ch.forward.compute_s + ch.forward.exposed_comm_s + ch.backward.compute_s
                 + ch.backward.exposed_comm_s)
        per_layer.append(t)
        fixed.append(max(0.0, whole - counts[s] * t))
    caps = layer_caps(model, training, p, [memory_capacity_bytes(pools[k].cluster)
                                           for k in stage_pools],
                      flash_attention=flash_attention)
    split = balanced_split(model.num_layers, per_layer, fixed, caps)
    return replace(p, stage_layers=split)


def simulate_hetero(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                    pools: Sequence[PoolSpec], *, timeline: bool = False,
                    flash_attention: bool = True, scenario: str | None = None) -> TrainingResult:
    """Simulate one optimizer step of `model` with pipeline stages placed on `pools`; on pools
    of one kind this is simulate_iteration on their union (the homogeneous job, bit for bit)."""
    pools = tuple(pools)
    total = sum(pool.num_devices for pool in pools)
    stage_pools = resolve_stage_pools(parallel, pools)
    if uniform(pools, stage_pools):
        union = replace(pools[0].cluster, num_devices=total)
        return simulate_iteration(model, union, training, parallel, profile=pools[0].profile,
                                  timeline=timeline, flash_attention=flash_attention,
                                  scenario=scenario)
    return simulate_pools(model, training, parallel, pools, stage_pools, timeline=timeline,
                          flash_attention=flash_attention, scenario=scenario)


def simulate_pools(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                   pools: Sequence[PoolSpec], stage_pools: Sequence[int], *,
                   timeline: bool = False, flash_attention: bool = True,
                   scenario: str | None = None) -> TrainingResult:
    """The per-pool cost path itself (simulate_hetero's, also on pools of one kind)."""
    total = sum(pool.num_devices for pool in pools)
    for i, pool in enumerate(pools):
        if not pool.cluster.device.supports(training.dtype):
            raise ConfigError(f"device '{pool.cluster.device.name}' has no {training.dtype} "
                              f"support", key=f"cluster.pools[{i}].device")
    costs = pool_costs(pools, total)
    check_plan(model, replace(pools[0].cluster, num_devices=total), training, parallel)
    p = split_layers(model, training, parallel, pools, stage_pools, costs,
                     flash_attention=flash_attention)
    groups = pipeline_groups(p)
    m = num_microbatches(training, p)
    ops = build_schedule(p.schedule, p.pp, m, p.vpp)
    split = splits_backward(ops)
    models = {k: ChunkCostModel(model, training, p, costs[k].comm, groups,
                                profile=costs[k].profile, flash_attention=flash_attention)
              for k in sorted(set(stage_pools))}
    chunk_costs: list[ChunkCost] = [models[k].chunk(s) for s, k in enumerate(stage_pools)]
    table = _op_table(chunk_costs, split)

    def op_time(stage: int, op: Op) -> tuple[float, float]:
        return table[(op.kind, op.chunk * p.pp + stage)]

    p2p_bytes = p2p_activation_bytes(model, training, p)

    def p2p_time(src: int, dst: int, kind: OpKind) -> float:
        a, b = groups[src].rank, groups[dst].rank
        ka, kb = stage_pools[src], stage_pools[dst]
        if ka == kb:
            return costs[ka].comm.send_recv(a, b, p2p_bytes)
        return max(_cross_node_send(costs[k], a, b, p2p_bytes) for k in (ka, kb))

    run = run_pipeline(ops, pp=p.pp, vpp=p.vpp, op_time=op_time, p2p_time=p2p_time,
                       record=timeline)
    ends = [finish_stage(stage=s, params=stage_params(model, p, s), groups=groups[s],
                         comm=costs[k].comm, training=training, parallel=p,
                         compute_end_s=run.stages[s].end_s,
                         last_grad_window=run.stages[s].last_grad_window,
                         profile=costs[k].profile)
            for s, k in enumerate(stage_pools)]
    iteration_s = max(e.end_s for e in ends)

    flash_mem = flash_memory(training.attention_impl, flash_attention)
    memories = [training_memory(model, training, p, stage=s, flash_attention=flash_mem)
                .total_bytes for s in range(p.pp)]
    capacities = [memory_capacity_bytes(costs[k].cluster) for k in stage_pools]
    tight = max(range(p.pp), key=lambda s: (memories[s] / capacities[s], -s))
    fits = all(x <= c for x, c in zip(memories, capacities, strict=True))
    counts = stage_layer_counts(model.num_layers, p)
    records = _stage_records(run, ends, iteration_s, memories, ops, p, counts)  # vpp is 1
    crit = min(records, key=lambda r: (r.bubble_s, r.stage))
    breakdown = Breakdown(compute_s=crit.compute_s, exposed_comm_s=crit.exposed_comm_s,
                          bubble_s=crit.bubble_s, optimizer_s=crit.optimizer_s,
                          compute_terms=_compute_terms(chunk_costs, crit.stage, p.pp,
                                                       crit.compute_s))
    peak_flops = sum(pool.num_devices * pool.cluster.device.peak(training.dtype)
                     for pool in pools)
    model_flops = flops.model_flops_per_iteration(model, batch=training.global_batch,
                                                  seq_len=training.seq_len)
    hw_flops = flops.hardware_flops_per_iteration(model, batch=training.global_batch,
                                                  seq_len=training.seq_len,
                                                  recompute=p.recompute)
    tight_dev = costs[stage_pools[tight]].cluster.device.name
    message = "" if fits else (f"does not fit: stage {tight} needs {memories[tight] / GiB:.1f} "
                               f"GiB of {capacities[tight] / GiB:.1f} GiB per {tight_dev}")
    events: tuple[TraceEvent, ...] | None = None
    if timeline:
        events = run.events + _end_events(ends, run.stages)
    crit_dev = costs[stage_pools[crit.stage]].cluster.device.name
    result = TrainingResult(
        iteration_time_s=iteration_s,
        tokens_per_s=training.global_batch * training.seq_len / iteration_s,
        tflops_per_gpu=model_flops / iteration_s / total / 1e12,
        hardware_tflops_per_gpu=hw_flops / iteration_s / total / 1e12,
        mfu=model_flops / (iteration_s * peak_flops),
        hfu=hw_flops / (iteration_s * peak_flops),
        peak_memory_gib=memories[tight] / GiB,
        memory_per_stage=tuple(x / GiB for x in memories),
        fits_memory=fits,
        memory_needed_gib=memories[tight] / GiB,
        memory_capacity_gib=capacities[tight] / GiB,
        breakdown=breakdown,
        num_microbatches=m,
        critical_stage=crit.stage,
        message=message,
        stages=tuple(records),
        timeline=events,
        pipeline_split=describe_pools(counts, stage_pools, pools),
        moe=None,
        attention_kernel=resolve_attention(training.attention_impl, crit_dev,
                                           training.kernels, flash_attention).value,
        kernel_stack=str(training.kernels),
    )
    check_training_result(result, scenario=scenario)
    return result


def _cross_node_send(c: PoolCosts, src: int, dst: int, nbytes: float) -> float:
    """A send between two pools always leaves the node: priced on this pool's NIC between
    `src` and `dst`, or `src` and its peer on the next node where both share a node here."""
    cl = c.cluster
    if cl.node_of(src) == cl.node_of(dst):
        dst = (src + cl.devices_per_node) % cl.num_devices
    return c.comm.send_recv(src, dst, nbytes)


def describe_pools(counts: Sequence[int], stage_pools: Sequence[int],
                   pools: Sequence[PoolSpec]) -> str:
    """'a100-80gb: 8+8+8+8 | h100-sxm: 12+12+12+12': layers per stage, grouped by pool runs."""
    runs: list[tuple[int, list[int]]] = []
    for n, k in zip(counts, stage_pools, strict=True):
        if runs and runs[-1][0] == k:
            runs[-1][1].append(n)
        else:
            runs.append((k, [n]))
    return " | ".join(f"{pools[k].cluster.device.name}: {'+'.join(map(str, ns))}"
                      for k, ns in runs)


__all__ = ["PoolCosts", "describe_pools", "pool_costs", "simulate_hetero", "simulate_pools",
           "split_layers", "uniform"]
