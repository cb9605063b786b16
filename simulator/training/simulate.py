"""One training iteration of a parallel plan, as a SimPy simulation.

simulate_training(plan) is the typed seam planners call; simulate_iteration is the same run
with the plan's fields as arguments (what the scenario loader and the CLI hold).

Symmetry: one pipeline (pp stages, the one holding rank 0) stands for every DP/CP/EP replica;
its collectives are costed on the real groups that pipeline's ranks belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwmodels import flops
from hwmodels.attention_impl import flash_memory
from hwmodels.attention_impl import resolve as resolve_attention
from hwmodels.errors import ConfigError
from hwmodels.layers import ProfileArg
from hwmodels.memory import DEFAULT_HEADROOM, training_memory
from hwmodels.ops import resolve_profile
from hwmodels.parallel import (
    ParallelConfig,
    TrainingConfig,
    check_plan,
    describe_split,
    num_microbatches,
    stage_layer_counts,
)
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training import offload
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import (
    COMPUTE_TERMS,
    ChunkCost,
    ChunkCostModel,
    p2p_activation_bytes,
)
from hwmodels.training.estimate import offload_traffic
from hwmodels.training.gradsync import StageEnd, finish_stage, stage_params
from hwmodels.training.placement import pipeline_groups
from hwmodels.units import GiB
from simulator.training.engine import TraceEvent, run_pipeline
from simulator.training.invariants import check_training_result
from simulator.training.plan import TrainingPlan
from simulator.training.results import Breakdown, StageRecord, TrainingResult
from simulator.training.schedules import Op, OpKind, build_schedule, max_inflight, splits_backward

# Headroom kept free when judging fit (allocator spikes, NCCL growth): hwmodels.memory default.
MEMORY_HEADROOM = DEFAULT_HEADROOM


def simulate_training(plan: TrainingPlan) -> TrainingResult:
    """Simulate one optimizer step of a typed plan (on its pools, if it has any)."""
    if plan.pools:
        from simulator.training.hetero import simulate_hetero

        return simulate_hetero(plan.model, plan.training, plan.parallel, plan.pools,
                               timeline=plan.timeline, flash_attention=plan.flash_attention,
                               scenario=plan.name)
    return simulate_iteration(plan.model, plan.cluster, plan.training, plan.parallel,
                              profile=plan.profile, timeline=plan.timeline,
                              flash_attention=plan.flash_attention, scenario=plan.name)


def simulate_iteration(model: ModelSpec, cluster: ClusterSpec, training: TrainingConfig,
                       parallel: ParallelConfig, *, profile: ProfileArg = None,
                       timeline: bool = False, flash_attention: bool = True,
                       scenario: str | None = None) -> TrainingResult:
    """Simulate one optimizer step of `model` on `cluster` with plan `parallel`.

    flash_attention=False models Megatron's pre-FlashAttention fused softmax kernels (the
    SC'21 / MLSys'23 runs). The result's invariants (simulator.training.invariants) are
    checked before it is returned: a violation is an InvariantError naming `scenario`.
    """
    check_plan(model, cluster, training, parallel)
    p = parallel
    device = cluster.device
    if not device.supports(training.dtype):
        raise ConfigError(f"device '{device.name}' has no {training.dtype} support",
                          key="training.dtype", allowed=[d.value for d in device.peak_flops])
    prof = resolve_profile(device, profile)
    groups = pipeline_groups(p)
    comm = CommModel(cluster, prof)
    m = num_microbatches(training, p)
    ops = build_schedule(p.schedule, p.pp, m, p.vpp)
    split = splits_backward(ops)
    costs = ChunkCostModel(model, training, p, comm, groups, profile=prof,
                           flash_attention=flash_attention)
    chunk_costs: list[ChunkCost] = [costs.chunk(v) for v in range(p.pp * p.vpp)]
    table = _op_table(chunk_costs, split)

    def op_time(stage: int, op: Op) -> tuple[float, float]:
        return table[(op.kind, op.chunk * p.pp + stage)]

    p2p_bytes = p2p_activation_bytes(model, training, p)

    def p2p_time(src: int, dst: int, kind: OpKind) -> float:
        return comm.send_recv(groups[src].rank, groups[dst].rank, p2p_bytes)

    run = run_pipeline(ops, pp=p.pp, vpp=p.vpp, op_time=op_time, p2p_time=p2p_time,
                       record=timeline)

    ends = []
    for s, stage_run in enumerate(run.stages):
        ends.append(finish_stage(
            stage=s, params=stage_params(model, p, s), groups=groups[s], comm=comm,
            training=training, parallel=p, compute_end_s=stage_run.end_s,
            last_grad_window=stage_run.last_grad_window, profile=prof))
    iteration_s = max(e.end_s for e in ends)

    # attention_impl=unfused materializes the scores like flash_attention=False
    flash_mem = flash_memory(training.attention_impl, flash_attention)
    memories = [training_memory(model, training, p, stage=s, flash_attention=flash_mem)
                .total_bytes for s in range(p.pp)]
    capacity = device.memory_bytes * (1.0 - MEMORY_HEADROOM)
    needed = max(memories)
    fits = needed <= capacity
    host = _host_memory(model, cluster, p, ends)
    host_reason = "" if host is None or host.fits else host.reason()
    counts = stage_layer_counts(model.num_layers, p)
    records = _stage_records(run, ends, iteration_s, memories, ops, p, counts)
    # the critical stage: the busiest one (least idle); ties -> the lowest index
    crit = min(records, key=lambda r: (r.bubble_s, r.stage))
    breakdown = Breakdown(compute_s=crit.compute_s, exposed_comm_s=crit.exposed_comm_s,
                          bubble_s=crit.bubble_s, optimizer_s=crit.optimizer_s,
                          compute_terms=_compute_terms(chunk_costs, crit.stage, p.pp,
                                                       crit.compute_s),
                          offload=offload_traffic(costs, p, crit.stage, m, ends[crit.stage]))

    n = cluster.num_devices
    peak = device.peak(training.dtype)
    model_flops = flops.model_flops_per_iteration(model, batch=training.global_batch,
                                                  seq_len=training.seq_len)
    hw_flops = flops.hardware_flops_per_iteration(model, batch=training.global_batch,
                                                  seq_len=training.seq_len,
                                                  recompute=p.recompute)
    message = "" if fits else (f"does not fit: needs {needed / GiB:.1f} GiB of "
                               f"{capacity / GiB:.1f} GiB per device")
    if host_reason:
        message = "; ".join(x for x in (message, f"does not fit: {host_reason}") if x)
        fits = False
    events: tuple[TraceEvent, ...] | None = None
    if timeline:
        events = run.events + _end_events(ends, run.stages)
    result = TrainingResult(
        iteration_time_s=iteration_s,
        tokens_per_s=training.global_batch * training.seq_len / iteration_s,
        tflops_per_gpu=model_flops / iteration_s / n / 1e12,
        hardware_tflops_per_gpu=hw_flops / iteration_s / n / 1e12,
        mfu=model_flops / (iteration_s * n * peak),
        hfu=hw_flops / (iteration_s * n * peak),
        peak_memory_gib=needed / GiB,
        memory_per_stage=tuple(x / GiB for x in memories),
        fits_memory=fits,
        memory_needed_gib=needed / GiB,
        memory_capacity_gib=capacity / GiB,
        breakdown=breakdown,
        num_microbatches=m,
        critical_stage=crit.stage,
        message=message,
        stages=tuple(records),
        timeline=events,
        pipeline_split=describe_split(counts, p),
        moe=None if costs.moe_load is None else {
            "imbalance": costs.moe_load.imbalance,
            "routed_imbalance": costs.moe_load.routed_imbalance,
            "capacity_factor": costs.moe_load.capacity_factor,
            "dropped_fraction": costs.moe_load.dropped_fraction,
            "imbalance_source": costs.moe_load.source},
        attention_kernel=resolve_attention(training.attention_impl, device.name,
                                           training.kernels, flash_attention).value,
        kernel_stack=str(training.kernels),
        host_memory=None if host is None else host.to_dict(),
    )
    check_training_result(result, scenario=scenario)  # InvariantError: a simulator bug
    return result


def _host_memory(model: ModelSpec, cluster: ClusterSpec, p: ParallelConfig,
                 ends: list[StageEnd]) -> offload.HostMemory | None:
    """Host DRAM / NVMe of the fullest node's ranks (None without offload): every stage's
    optimizer shard and, with parameter offload, its 16-bit weight shard (ZeRO-3: 1/dp)."""
    if not offload.active(p):
        return None
    worst = None
    for s, end in enumerate(ends):
        params = stage_params(model, p, s)
        weights = (params.dense + params.expert) / p.dp / p.cp
        mem = offload.host_memory(cluster, p, end.optimizer_shard, weights)
        if worst is None or mem.dram_bytes + mem.nvme_bytes > worst.dram_bytes + worst.nvme_bytes:
            worst = mem
    return worst


def _compute_terms(chunk_costs: list[ChunkCost], stage: int, pp: int,
                   compute_s: float) -> dict[str, float]:
    """The critical stage's compute_s split by part (COMPUTE_TERMS): every op of the stage
    runs once per microbatch, so its parts are in the proportion of its chunks' parts."""
    parts = {k: 0.0 for k in COMPUTE_TERMS}
    for v in range(stage, len(chunk_costs), pp):
        for phase in (chunk_costs[v].forward, chunk_costs[v].backward):
            for k, x in phase.terms().items():
                parts[k] += x
    total = sum(parts.values())
    if total <= 0:
        return {k: 0.0 for k in COMPUTE_TERMS}
    return {k: x * compute_s / total for k, x in parts.items()}


def _op_table(chunk_costs: list[ChunkCost], split: bool
              ) -> dict[tuple[OpKind, int], tuple[float, float]]:
    """(kind, virtual stage) -> (compute_s, exposed_comm_s); W holds the weight-grad GEMMs."""
    table: dict[tuple[OpKind, int], tuple[float, float]] = {}
    for v, c in enumerate(chunk_costs):
        table[(OpKind.F, v)] = (c.forward.compute_s, c.forward.exposed_comm_s)
        if split:
            table[(OpKind.B, v)] = (c.backward.compute_s - c.backward.wgrad_s,
                                    c.backward.exposed_comm_s)
            table[(OpKind.W, v)] = (c.backward.wgrad_s, 0.0)
        else:
            table[(OpKind.B, v)] = (c.backward.compute_s, c.backward.exposed_comm_s)
    return table


def _end_events(ends: list, stages: tuple) -> tuple[TraceEvent, ...]:  # type: ignore[type-arg]
    """Timeline intervals for the DP reduction tail and the optimizer step of each stage."""
    out = []
    for s, end in enumerate(ends):
        t = stages[s].end_s
        if end.exposed_comm_s > 0:
            out.append(TraceEvent(track=f"stage {s}", name="grad sync", start_s=t,
                                  duration_s=end.exposed_comm_s, category="dp"))
            t += end.exposed_comm_s
        if end.optimizer_s > 0:
            out.append(TraceEvent(track=f"stage {s}", name="optimizer", start_s=t,
                                  duration_s=end.optimizer_s, category="optimizer"))
    return tuple(out)


def _stage_records(run: Any, ends: Sequence[StageEnd], iteration_s: float,
                   memories: Sequence[float], ops: Sequence[Sequence[Op]], p: ParallelConfig,
                   counts: Sequence[int]) -> list[StageRecord]:
    """One StageRecord per pipeline stage (compute, exposed comm, idle, optimizer, memory,
    layers summed over its virtual stages); shared with the heterogeneous simulation."""
    records = []
    for s, (stage_run, end) in enumerate(zip(run.stages, ends, strict=True)):
        exposed = stage_run.exposed_comm_s + end.exposed_comm_s
        busy = stage_run.compute_s + exposed + end.optimizer_s
        records.append(StageRecord(
            stage=s, compute_s=stage_run.compute_s, exposed_comm_s=exposed,
            bubble_s=max(0.0, iteration_s - busy), optimizer_s=end.optimizer_s,
            end_s=end.end_s, memory_gib=memories[s] / GiB,
            max_inflight_microbatches=max_inflight(ops[s]),
            layers=sum(counts[c * p.pp + s] for c in range(p.vpp))))
    return records
