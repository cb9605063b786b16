"""Closed-form iteration time of one plan from the simulator's own costs (the planner's ranking).

The same ChunkCostModel chunks, p2p bytes and finish_stage tail the SimPy simulation uses, on
the critical stage: the slowest per microbatch (with an even split the last one, which carries
the logits; with an uneven split whichever stage holds the most work). What SimPy models and this does not: the exact bubble (here a per-schedule closed
form in microbatch-stage units), link contention between p2p sends, stages that wait on each
other, and the exact windows the gradient buckets overlap with (here the last backward of each
chunk, back to back at the end of the pipeline). Both agree exactly for pp = 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hwmodels.parallel import ParallelConfig, PipelineSchedule, TrainingConfig, num_microbatches
from hwmodels.specs import ModelSpec
from hwmodels.training import offload
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import ChunkCost, ChunkCostModel, CostCache, p2p_activation_bytes
from hwmodels.training.gradsync import StageEnd, finish_stage, stage_params
from hwmodels.training.offload import OffloadTraffic

# (pp, vpp, weight-gradient share of a microbatch) -> idle microbatch-stages of the critical stage
BubbleFn = Callable[[int, int, float], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleShape:
    """Closed-form facts of one pipeline schedule."""

    splits_backward: bool  # separate weight-gradient (W) ops: the last grads come from a W
    bubble_units: BubbleFn


def _flush_bubble(pp: int, vpp: int, wgrad_share: float) -> float:
    """1F1B and GPipe: (p-1) microbatch-stages; interleaved: (p-1)/v (Narayanan et al. SC'21)."""
    return (pp - 1) / vpp


def _zero_bubble_h1(pp: int, vpp: int, wgrad_share: float) -> float:
    """ZB-H1 (Qi et al. ICLR'24): bubble (p-1)(F + B - W) = (p-1)(1 - 2W/T) microbatch-stages."""
    return (pp - 1) * min(max(1 - 2 * wgrad_share, 0.0), 1.0)


SCHEDULE_SHAPES: dict[PipelineSchedule, ScheduleShape] = {
    PipelineSchedule.GPIPE: ScheduleShape(splits_backward=False, bubble_units=_flush_bubble),
    PipelineSchedule.ONE_F_ONE_B: ScheduleShape(splits_backward=False,
                                                bubble_units=_flush_bubble),
    PipelineSchedule.INTERLEAVED: ScheduleShape(splits_backward=False,
                                                bubble_units=_flush_bubble),
    PipelineSchedule.ZB_H1: ScheduleShape(splits_backward=True, bubble_units=_zero_bubble_h1),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class IterationEstimate:
    """Closed-form iteration time of the critical stage; the four parts sum to it."""

    iteration_time_s: float
    compute_s: float
    exposed_comm_s: float  # op-level exposed comm of every microbatch + the DP/optimizer tail
    bubble_s: float  # pipeline fill/drain idle time + p2p latency on that path
    optimizer_s: float
    offload: OffloadTraffic | None = None  # ZeRO-Offload / -Infinity traffic, when offloaded


def offload_traffic(costs: ChunkCostModel, parallel: ParallelConfig, stage: int,
                    microbatches: int, end: StageEnd) -> OffloadTraffic | None:
    """The critical stage's offload traffic over one iteration (None without offload): its
    chunks' per-microbatch copies x microbatches plus the host optimizer step; exposed = the
    chunks' extra exposed seconds + the step's PCIe copies + the NVMe swap beyond CPU-Adam."""
    p = parallel
    if not offload.active(p):
        return None
    fetch = grads = delta = 0.0
    for v in range(stage, p.pp * p.vpp, p.pp):
        f, g, d_f, d_b = costs.offload_chunk(v)
        fetch, grads, delta = fetch + f, grads + g, delta + d_f + d_b
    step = end.offload_step or offload.offload_step(costs.comm.cluster, p, 0.0)
    exposed = (microbatches * delta + step.host_transfer_s
               + max(0.0, step.optimizer_s - step.cpu_optimizer_s))
    return offload.iteration_traffic(costs.comm.cluster, p, fetch_params=fetch,
                                     grad_params=grads, microbatches=microbatches, step=step,
                                     exposed_s=exposed)


def estimate_iteration(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                       comm: CommModel, *, flash_attention: bool = True,
                       cache: CostCache | None = None) -> IterationEstimate:
    """Iteration time of `parallel` in closed form (cache: layer costs shared across plans).

    Every stage is costed (on the last stage's rank groups: stages differ only in their layers
    and ends); the critical stage is the slowest per microbatch (ties: the later one), and the
    fill/drain bubble is counted in the mean time of the other stages, so an uneven split
    (hwmodels.parallel.stage_layer_counts) is priced as its slowest stage.
    """
    p = parallel
    cache = CostCache() if cache is None else cache
    last = cache.stage_groups(p, p.pp - 1)
    costs = ChunkCostModel(model, training, p, comm, {s: last for s in range(p.pp)},
                           profile=comm.profile, flash_attention=flash_attention, cache=cache)
    per_stage: list[tuple[ChunkCost, ...]] = []
    seen: dict[tuple[object, ...], tuple[ChunkCost, ...]] = {}
    for s in range(p.pp):
        vs = [c * p.pp + s for c in range(p.vpp)]
        key = (tuple(costs.chunk_layers(v) for v in vs), 0 in vs, p.pp * p.vpp - 1 in vs)
        hit = seen.get(key)
        if hit is None:
            hit = seen[key] = tuple(costs.chunk(v) for v in vs)
        per_stage.append(hit)
    per_mb_stage = [sum(c.forward.compute_s + c.forward.exposed_comm_s + c.backward.compute_s
                        + c.backward.exposed_comm_s for c in chunks) for chunks in per_stage]
    stage = max(range(p.pp), key=lambda s: (per_mb_stage[s], s))
    chunks = per_stage[stage]
    groups = cache.stage_groups(p, stage)
    p2p_s = (comm.send_recv(last.prev_rank, last.rank,  # type: ignore[arg-type]
                            p2p_activation_bytes(model, training, p)) if p.pp > 1 else 0.0)
    shape = SCHEDULE_SHAPES[PipelineSchedule(p.schedule)]
    f_c = sum(c.forward.compute_s for c in chunks)
    f_e = sum(c.forward.exposed_comm_s for c in chunks)
    b_c = sum(c.backward.compute_s for c in chunks)
    b_e = sum(c.backward.exposed_comm_s for c in chunks)
    wgrad = sum(c.backward.wgrad_s for c in chunks)
    per_mb = f_c + f_e + b_c + b_e
    fill_mb = ((sum(per_mb_stage) - per_mb) / (p.pp - 1)) if p.pp > 1 else per_mb
    bubble = shape.bubble_units(p.pp, p.vpp, wgrad / per_mb) * fill_mb
    if p.pp > 1:
        bubble += 2 * (p.pp * p.vpp - 1) * p2p_s  # fill and drain each cross every stage
    m = num_microbatches(training, p)
    pipeline_end_s = m * per_mb + bubble
    end = finish_stage(stage=stage, params=stage_params(model, p, stage), groups=groups,
                       comm=comm, training=training, parallel=p, compute_end_s=pipeline_end_s,
                       last_grad_window=_last_grad_windows(chunks, pipeline_end_s,
                                                           shape.splits_backward),
                       profile=comm.profile)
    return IterationEstimate(iteration_time_s=end.end_s, compute_s=m * (f_c + b_c),
                             exposed_comm_s=m * (f_e + b_e) + end.exposed_comm_s,
                             bubble_s=bubble, optimizer_s=end.optimizer_s,
                             offload=offload_traffic(costs, p, stage, m, end))


def _last_grad_windows(chunks: Sequence[ChunkCost], end_s: float, splits_backward: bool
                       ) -> dict[int, tuple[float, float]]:
    """(start, end) of the op producing each chunk's last weight grads: chunk 0's ends the
    pipeline (every schedule drains the backward towards the first chunk), the others back to
    back before it."""
    windows: dict[int, tuple[float, float]] = {}
    t = end_s
    for c, cost in enumerate(chunks):
        b = cost.backward
        duration = b.wgrad_s if splits_backward else b.compute_s + b.exposed_comm_s
        windows[c] = (t - duration, t)
        t -= duration
    return windows
