"""End of the iteration on one stage: data-parallel gradient reduction and the optimizer step.

Gradients are reduced in buckets (Megatron-core DDP: bucket_size = max(40M, 1M x dp) params,
megatron/core/distributed/distributed_data_parallel.py). With overlap_grad_reduce, a chunk's
buckets become ready while the backward of its last microbatch runs (layers finish in reverse
order, uniformly over that op) and go out one at a time on the stage's DP channel; without it
they all start after the stage's last backward. ZeRO-0 all-reduces, ZeRO-1/2 (Megatron's
distributed optimizer) reduce-scatter and all-gather the updated 16-bit weights after the step,
ZeRO-3 reduces per microbatch inside the ops (hwmodels.training.costs), so nothing is left here
but, with hybrid sharding (fsdp_shard_size), the all-reduce of the grad shards across replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels import flops
from hwmodels.dtypes import DType
from hwmodels.layers import ProfileArg
from hwmodels.ops import memory_time, resolve_profile
from hwmodels.parallel import (
    OffloadTarget,
    ParallelConfig,
    TrainingConfig,
    num_microbatches,
    stage_layer_counts,
    virtual_stage_layers,
)
from hwmodels.profile import ElementwiseKind
from hwmodels.specs import DeviceSpec, ModelSpec
from hwmodels.training import offload
from hwmodels.training.comm import CommModel
from hwmodels.training.fsdp import grad_wire_bytes
from hwmodels.training.fsdp import traits as fsdp_traits
from hwmodels.training.placement import StageGroups

# Megatron-core DDP default bucket: max(40,000,000, 1,000,000 * dp) parameters.
BUCKET_MIN_PARAMS = 40_000_000
BUCKET_PARAMS_PER_DP_RANK = 1_000_000
# Adam step, memory-bound over the rank's shard of fp32 state (apex/TE FusedAdam,
# multi_tensor_apply): read fp32 grad, master weight, m, v (16 B), write master, m, v (12 B),
# write the 16-bit model copy (2 B), plus the grad-norm pass re-reading fp32 grads (4 B).
ADAM_BYTES_PER_PARAM = 34.0
# Launches of that step: apex/TE multi_tensor_apply processes at most 320 blocks of 65,536
# (2048 x 32) elements per launch (apex csrc/multi_tensor_apply.cuh depth_to_max_blocks;
# apex.multi_tensor_apply.multi_tensor_applier chunk_size 2048*32), and the grad-norm pass
# (multi_tensor_l2norm) launches as many again; each launch pays the per-kernel overhead.
ADAM_ELEMENTS_PER_LAUNCH = 320 * 2048 * 32
ADAM_PASSES = 2
# 16-bit model weights all-gathered after a distributed-optimizer step.
PARAM_GATHER_BYTES = 2.0


def grad_reduce_bytes(dtype: DType, parallel: ParallelConfig | None = None) -> float:
    """Bytes per gradient element of the DDP / distributed-optimizer reduction:
    parallel.grad_reduce_dtype when set (--grad-reduce-in-bf16; fsdp.grad_wire_bytes), else
    Megatron's: fp32 main grads for bf16 (arguments.py forces
    accumulate_allreduce_grads_in_fp32 with --bf16) and fp32 training; fp16 runs (SC'21)
    reduce the fp16 grad buffer."""
    megatron = 2.0 if dtype is DType.FP16 else 4.0
    return megatron if parallel is None else grad_wire_bytes(parallel, megatron)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageParams:
    """Parameters one rank of a stage holds, per chunk (dense and expert)."""

    dense_per_chunk: tuple[float, ...]
    expert_per_chunk: tuple[float, ...]
    tied_embedding: float  # word-embedding params synchronized between first and last stage

    @property
    def dense(self) -> float:
        return sum(self.dense_per_chunk)

    @property
    def expert(self) -> float:
        return sum(self.expert_per_chunk)


def stage_params(model: ModelSpec, parallel: ParallelConfig, stage: int) -> StageParams:
    """Per-rank parameter counts of `stage` (TP-split; experts expert_tp- and EP-split)."""
    p = parallel
    counts = stage_layer_counts(model.num_layers, p)
    dense_layer = flops.layer_param_count(model, moe=False) / p.tp
    non_expert = _non_expert_moe_params(model) if model.is_moe else 0.0
    experts = flops.layer_param_count(model, moe=True) - non_expert if model.is_moe else 0.0
    vocab = model.vocab_size * model.hidden_size / p.tp
    dense_c, expert_c = [], []
    for c in range(p.vpp):
        v = c * p.pp + stage
        layers = virtual_stage_layers(counts, v)
        n_moe = (max(0, layers.stop - max(layers.start, model.first_dense_layers))
                 if model.is_moe else 0)
        dense = (len(layers) - n_moe) * dense_layer + n_moe * non_expert / p.tp
        if v == 0:
            dense += vocab
        if v == p.pp * p.vpp - 1 and (not model.tie_embeddings or p.pp > 1):
            dense += vocab
        dense_c.append(dense)
        # routed experts split over expert_tp (None = tp) x ep (Megatron's expert grid)
        etp = p.tp if p.expert_tp is None else p.expert_tp
        expert_c.append(n_moe * experts / (etp * p.ep))
    tied = 0.0
    if model.tie_embeddings and p.pp > 1 and stage in (0, p.pp - 1):
        tied = model.vocab_size * model.hidden_size / p.tp
    return StageParams(dense_per_chunk=tuple(dense_c), expert_per_chunk=tuple(expert_c),
                       tied_embedding=tied)


def _non_expert_moe_params(model: ModelSpec) -> float:
    """Parameters of an MoE layer that are not routed experts (attention, router, shared)."""
    f = model.moe_ffn_hidden_size
    per_expert = (3 if model.gated_mlp else 2) * model.hidden_size * f
    return flops.layer_param_count(model, moe=True) - model.num_experts * per_expert


@dataclass(frozen=True, slots=True, kw_only=True)
class StageEnd:
    """How the end of the iteration went on one stage."""

    compute_end_s: float
    grad_sync_end_s: float
    exposed_comm_s: float  # DP reduction + embedding sync + param gather not hidden
    optimizer_s: float
    end_s: float
    offload_step: offload.OffloadStep | None = None  # the host step, when offloaded
    optimizer_shard: float = 0.0  # parameters of this rank's optimizer shard


def finish_stage(*, stage: int, params: StageParams, groups: StageGroups, comm: CommModel,
                 training: TrainingConfig, parallel: ParallelConfig, compute_end_s: float,
                 last_grad_window: dict[int, tuple[float, float]],
                 profile: ProfileArg = None) -> StageEnd:
    """Grad reduction (bucketed, overlapped or not), embedding sync, optimizer, param gather."""
    p = parallel
    device = comm.cluster.device
    gbytes = grad_reduce_bytes(training.dtype, p)
    dp_size = len(groups.dp_cp_group)
    bucket_params = max(BUCKET_MIN_PARAMS, BUCKET_PARAMS_PER_DP_RANK * dp_size)
    contention = overlap_contention(p)
    channel_free = 0.0
    sync_end = compute_end_s
    overlapped_s = 0.0  # bucket seconds that ran beside the backward's compute
    if p.zero < 3:
        for chunk in sorted(last_grad_window, key=lambda c: last_grad_window[c][0]):
            start, end = last_grad_window[chunk]
            jobs = (
                (groups.dp_cp_group, params.dense_per_chunk[chunk]),
                (groups.expert_dp_group, params.expert_per_chunk[chunk]),
            )
            for ranks, nparams in jobs:
                if len(ranks) <= 1 or nparams <= 0:
                    continue
                n_buckets = max(1, math.ceil(nparams / bucket_params))
                size = nparams / n_buckets * gbytes
                t_bucket = (comm.reduce_scatter(ranks, size) if p.zero >= 1
                            else comm.all_reduce(ranks, size))
                channel_free, overlapped_s = _drain_buckets(
                    channel_free, overlapped_s, (start, end), n_buckets, t_bucket,
                    p.overlap_grad_reduce, compute_end_s)
            sync_end = max(sync_end, channel_free)
    elif len(groups.replica_group) > 1:
        channel_free, overlapped_s = _replica_all_reduce(
            comm, groups, params, training, p, last_grad_window, compute_end_s)
        sync_end = max(sync_end, channel_free)
    # the backward's kernels ran slower beside those buckets (SM/HBM contention)
    exposed = sync_end - compute_end_s + contention * overlapped_s
    # tied word embeddings: first and last stage all-reduce their copies' grads (Megatron
    # _allreduce_word_embedding_grads), after the DP reduction.
    if params.tied_embedding:
        exposed += comm.all_reduce(_embedding_peer(groups, p), params.tied_embedding * gbytes)
    dp_shard = dp_size if p.zero >= 1 else 1
    edp_shard = len(groups.expert_dp_group) if p.zero >= 1 else 1
    shard = params.dense / dp_shard + params.expert / edp_shard
    optimizer_s = adam_step_time(device, shard, profile)
    step = None
    if p.offload_optimizer is not OffloadTarget.NONE and shard:
        # ZeRO-Offload / -Infinity: the step runs on the host (hwmodels.training.offload):
        # PCIe copies exposed, then CPU-Adam on the node's shared CPUs (NVMe swap pipelined)
        step = offload.offload_step(comm.cluster, p, shard)
        optimizer_s = step.optimizer_s
        exposed += step.host_transfer_s
    if p.zero in (1, 2):
        if not p.overlap_param_gather:
            # updated weights all-gathered before the next forward
            exposed += comm.all_gather(groups.dp_cp_group, params.dense * PARAM_GATHER_BYTES)
            exposed += comm.all_gather(groups.expert_dp_group,
                                       params.expert * PARAM_GATHER_BYTES)
        else:
            # Megatron --overlap-param-gather: bucket k's gather is waited on by the forward
            # pre-hook of its first layer; the later buckets hide behind the forward, the
            # first one cannot (nothing runs before it)
            first = (_first_bucket_gather_s(comm, groups.dp_cp_group, params.dense,
                                            bucket_params)
                     + _first_bucket_gather_s(comm, groups.expert_dp_group, params.expert,
                                              bucket_params))
            whole = (comm.all_gather(groups.dp_cp_group, params.dense * PARAM_GATHER_BYTES)
                     + comm.all_gather(groups.expert_dp_group,
                                       params.expert * PARAM_GATHER_BYTES))
            # the later buckets run beside the next forward, slowing it (at most by the
            # forward's own length: the stage's compute up to here bounds it)
            exposed += first + contention * min(max(0.0, whole - first), compute_end_s)
    end = compute_end_s + exposed + optimizer_s
    return StageEnd(compute_end_s=compute_end_s, grad_sync_end_s=sync_end,
                    exposed_comm_s=exposed, optimizer_s=optimizer_s, end_s=end,
                    offload_step=step, optimizer_shard=shard)


def replica_all_reduce_s(comm: CommModel, groups: StageGroups, params: StageParams,
                        parallel: ParallelConfig, chunk: int) -> float:
    """Seconds of one chunk's cross-replica all-reduce of the grad shard (hybrid sharding;
    0 without replicas), all its buckets back to back."""
    n_buckets, t_bucket = _replica_buckets(comm, groups, params, parallel, chunk)
    return n_buckets * t_bucket


def _replica_buckets(comm: CommModel, groups: StageGroups, params: StageParams,
                     parallel: ParallelConfig, chunk: int) -> tuple[int, float]:
    """(buckets, seconds per bucket) of one chunk's cross-replica all-reduce."""
    nparams = params.dense_per_chunk[chunk] + params.expert_per_chunk[chunk]
    if len(groups.replica_group) <= 1 or nparams <= 0:
        return 0, 0.0
    t = fsdp_traits(parallel)
    n_buckets = max(1, math.ceil(nparams / (t.reduce_bucket_params or BUCKET_MIN_PARAMS)))
    size = nparams / n_buckets / len(groups.dp_cp_group) * grad_wire_bytes(parallel)
    return n_buckets, comm.all_reduce(groups.replica_group, size)


def _replica_all_reduce(comm: CommModel, groups: StageGroups, params: StageParams,
                        training: TrainingConfig, parallel: ParallelConfig,
                        last_grad_window: dict[int, tuple[float, float]],
                        compute_end_s: float) -> tuple[float, float]:
    """Hybrid sharding: each rank's reduce-scattered grad shard (1/len(shard group) of the
    chunk) all-reduced across the replica group, the last microbatch's buckets as its
    backward frees them (overlap_grad_reduce), on the stage's DP channel.
    Returns (when the channel is free, seconds of it beside the backward's compute).

    Once per step for stacks that all-reduce at the accumulation boundary (DeepSpeed MiCS);
    stacks that all-reduce after every microbatch (FSDPTraits.replica_reduce_per_microbatch:
    PyTorch FSDP1/FSDP2 as torchtitan runs them) also carry the earlier microbatches'
    all-reduces, queued on the channel from the iteration's start (assumption: they hide
    behind the compute before the last backward when the channel keeps up).
    Buckets: the stack's reduce bucket (DeepSpeed 5e8) or Megatron's 40M parameters of the
    unsharded chunk (assumption: FSDP2 all-reduces per unit; buckets only move alpha terms)."""
    t = fsdp_traits(parallel)
    channel_free = overlapped_s = 0.0
    if t.replica_reduce_per_microbatch:
        per_mb = sum(replica_all_reduce_s(comm, groups, params, parallel, c)
                     for c in range(len(params.dense_per_chunk)))
        channel_free = (max(1, num_microbatches(training, parallel)) - 1) * per_mb
        overlapped_s = min(channel_free, compute_end_s)
    for chunk in sorted(last_grad_window, key=lambda c: last_grad_window[c][0]):
        start, end = last_grad_window[chunk]
        n_buckets, t_bucket = _replica_buckets(comm, groups, params, parallel, chunk)
        channel_free, overlapped_s = _drain_buckets(
            channel_free, overlapped_s, (start, end), n_buckets, t_bucket,
            parallel.overlap_grad_reduce, compute_end_s)
    return channel_free, overlapped_s


def _drain_buckets(channel_free: float, overlapped_s: float, window: tuple[float, float],
                   n_buckets: int, t_bucket_s: float, overlap: bool, compute_end_s: float
                   ) -> tuple[float, float]:
    """Queue one chunk's gradient buckets on the DP channel: bucket k is ready k+1/n of the
    way through the chunk's backward window (or at compute end without overlap) and runs when
    the channel is free; returns (channel free time, seconds hidden behind compute)."""
    start, end = window
    for k in range(n_buckets):
        ready = start + (end - start) * (k + 1) / n_buckets if overlap else compute_end_s
        begin = max(channel_free, ready)
        channel_free = begin + t_bucket_s
        overlapped_s += max(0.0, min(channel_free, compute_end_s) - begin)
    return channel_free, overlapped_s


def overlap_contention(parallel: ParallelConfig) -> float:
    """Compute slowdown charged while an overlapped DP collective runs beside it: the stack's
    own FSDPTraits.contention (hwmodels.training.fsdp: OVERLAP_COMPUTE_SLOWDOWN, Lee et al.
    2025; 0 for the explicit ideal and the v0.1 closed-form stacks pinned by the SC'21 rows)."""
    return fsdp_traits(parallel).contention


def adam_launches(params: float) -> int:
    """Kernel launches of one fused Adam step (with its grad-norm pass) over `params`."""
    return ADAM_PASSES * max(1, math.ceil(params / ADAM_ELEMENTS_PER_LAUNCH)) if params else 0


def adam_step_time(device: DeviceSpec, params: float, profile: ProfileArg = None) -> float:
    """Memory-bound Adam over a rank's shard (ADAM_BYTES_PER_PARAM on the optimizer curve, one
    kernel overhead inside memory_time) plus the overhead of its other launches."""
    if not params:
        return 0.0
    stream = memory_time(device, params * ADAM_BYTES_PER_PARAM, profile,
                         kind=ElementwiseKind.OPTIMIZER)
    overhead = resolve_profile(device, profile).kernel_overhead_s or 0.0
    return stream + (adam_launches(params) - 1) * overhead


def _first_bucket_gather_s(comm: CommModel, ranks: tuple[int, ...], nparams: float,
                           bucket_params: float) -> float:
    """All-gather of the first of the gradient-sized buckets of `nparams` 16-bit weights."""
    if len(ranks) <= 1 or nparams <= 0:
        return 0.0
    n_buckets = max(1, math.ceil(nparams / bucket_params))
    return comm.all_gather(ranks, nparams / n_buckets * PARAM_GATHER_BYTES)


def _embedding_peer(groups: StageGroups, parallel: ParallelConfig) -> tuple[int, ...]:
    """The first-stage and last-stage ranks holding the same embedding shard."""
    stride = groups.next_rank - groups.rank if groups.next_rank is not None else \
        groups.rank - groups.prev_rank  # type: ignore[operator]
    first = groups.rank - groups.stage * stride
    return (first, first + (parallel.pp - 1) * stride)
