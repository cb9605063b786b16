"""ZeRO-3 / FSDP as the named stacks run it: gather units, prefetch depth, a shared DP channel.

A chunk's weights are all-gathered unit by unit (a DeepSpeed sub-module, an FSDP-wrapped block,
a Megatron-FSDP bucket). `schedule_forward` / `schedule_backward` replay one microbatch through
a chunk on two resources: the compute stream and the data-parallel channel (the node's NICs,
shared by the gathers and the gradient reduce-scatters: both ride the same rails). A unit's
gather can only be issued `depth` units ahead of the unit computing (its buffer is the one the
unit `depth + 1` back has released); a unit computes once its gather is in; in backward its
grads are reduce-scattered once its compute ends (or once a reduce bucket fills). Exposed
communication = the chunk's finish time minus its compute. These are pure functions of
per-unit seconds; hwmodels.training.costs prices the units with the plan's real rank groups,
so each unit's collective pays its own latency (alpha) term.

FSDP_TRAITS (the framework constants per stack) lives here; costs.py re-exports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hwmodels.parallel import FSDPImpl, GradReduceDType, ParallelConfig

# DeepSpeed ZeRO-3 defaults (deepspeed/runtime/zero/config.py, DeepSpeedZeroConfig, >= 0.10):
# stage3_prefetch_bucket_size = 5e7 elements fetched ahead of use, stage3_max_live_parameters
# = 1e9 resident before release, stage3_max_reuse_distance = 1e9 (a parameter reused within
# that many parameters is not released), reduce_bucket_size = 5e8 elements per reduction,
# stage3_param_persistence_threshold = 1e5 (smaller tensors stay unpartitioned: LayerNorm
# weights and biases, linear biases), overlap_comm defaults to True for stage 3.
DS_PREFETCH_BUCKET_PARAMS = 5e7
DS_MAX_LIVE_PARAMS = 1e9
DS_MAX_REUSE_DISTANCE_PARAMS = 1e9
DS_REDUCE_BUCKET_PARAMS = 5e8
# Megatron-core DDP/FSDP bucket (distributed_data_parallel_config.py bucket_size default
# max(40M, 1M x dp) parameters; the same constant hwmodels.training.gradsync uses).
MEGATRON_BUCKET_MIN_PARAMS = 40_000_000
# Compute slowed by a concurrent collective: Lee et al. 2025, "Characterizing Compute-
# Communication Overlap in GPU-Accelerated Distributed Deep Learning" (arXiv 2507.03114),
# abstract and Sec. 5: GEMM/attention kernels of GPT and LLaMA layers run 18.9% slower on
# average (max 40%) while NCCL collectives run beside them (4x A100 / H100, MI250, MI210),
# SM and memory-bandwidth contention. Measured with intra-node NVLink collectives; a
# collective that leaves the node occupies fewer SMs, so this may overstate inter-node
# FSDP. Charged on the part of each unit's compute that overlaps its neighbours' gathers /
# reduce-scatters; FSDPTraits.contention = 0 switches it off (ideal, v0.1 stacks).
OVERLAP_COMPUTE_SLOWDOWN = 0.189


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPTraits:
    """Framework constants of one ZeRO-3/FSDP implementation (ParallelConfig.fsdp_impl)."""

    channels: int | None  # NCCL channels (rings) across nodes; None = NCCL's one per NIC
    gathers_per_layer: int  # gather units one layer's weights are split into
    regather_on_recompute: bool  # full recompute gathers the weights again before backward
    # v0.1 closed forms (nccl, deepspeed-2021: pinned by the SC'21 rows) instead of the
    # scheduled replay below
    closed_form: bool = False
    ideal: bool = False  # every gather hidden unless longer than its own layer's compute
    prefetch: int = 1  # units whose gathers may be in flight ahead of the one computing
    # DeepSpeed: the prefetch depth follows from a parameter budget (None: `prefetch`)
    prefetch_params: float | None = None
    max_live_params: float | None = None
    # the recompute's gather is reused by the backward when the layer is at most this many
    # parameters (DeepSpeed max_reuse_distance); None: as regather_on_recompute says
    reuse_distance_params: float | None = None
    reduce_bucket_params: float | None = None  # grads accumulated per reduce-scatter; None: per unit
    grad_bytes: float = 2.0  # bytes per gradient element on the wire
    # units are buckets of this many parameters (None: gathers_per_layer per layer)
    bucket_params: float | None = None
    contention: float = OVERLAP_COMPUTE_SLOWDOWN  # compute slowdown under an overlapped collective
    # FSDP2: each gathered unit is copied out of the all-gather buffer into the per-parameter
    # tensors on the compute stream (read + write of the unit's bytes), and in forward the
    # previous unit's all-gather buffer is kept until the next copy-out (one more unit live)
    copy_out: bool = False
    # hybrid sharding (fsdp_shard_size): the cross-replica grad all-reduce runs after every
    # microbatch's reduce-scatter (True) or once, at the accumulation boundary (False)
    replica_reduce_per_microbatch: bool = False


FSDP_TRAITS: dict[FSDPImpl, FSDPTraits] = {
    # v0.1 behaviour, kept for reproducibility: NCCL multi-ring, one gather per layer
    # prefetched one layer ahead, the first layer's gather exposed.
    FSDPImpl.NCCL: FSDPTraits(channels=None, gathers_per_layer=1, regather_on_recompute=False,
                              closed_form=True, contention=0.0),
    # DeepSpeed ZeRO-3 as used for SC'21 Table 2 (Narayanan et al., 2021). Three documented
    # behaviours of stage3 in 2021: (1) parameters are fetched per sub-module by forward/
    # backward hooks, six sub-modules with weights in a Megatron GPT layer (2 LayerNorms, QKV,
    # attention projection, fc1, fc2), each its own all-gather of small per-rank shards on the
    # single data-parallel process group; (2) the hooks release a sub-module's weights after
    # its forward, so the checkpointed recompute and the backward each gather them again
    # (3 gathers + 1 reduce-scatter per layer per microbatch); (3) those collectives run at
    # one NCCL channel's bandwidth, one NIC per rank (~22 GB/s on HDR). (3) is not measured
    # independently: it is what SC'21 Table 2 implies (its 768/1536-GPU iterations take the
    # same ~67 s, i.e. a fixed ~1.4 TB of per-rank traffic at ~21 GB/s), the bandwidth of a
    # single ring whose slowest hop is one HDR NIC rather than NCCL's 8-NIC multi-ring ideal.
    FSDPImpl.DEEPSPEED_2021: FSDPTraits(channels=1, gathers_per_layer=6,
                                        regather_on_recompute=True, closed_form=True,
                                        contention=0.0),
    # DeepSpeed ZeRO-3 >= 0.10 (config defaults above): LayerNorms and biases persist
    # (below the 1e5 persistence threshold), so a Megatron/GPT layer fetches 4 sub-modules
    # (QKV, attention projection, fc1, fc2), each one all-gather; prefetch as many sub-modules
    # ahead as fit the 5e7-element prefetch bucket (at least the next one) within 1e9 live
    # parameters; the recompute's gather is kept for the backward when the layer is within
    # max_reuse_distance (1e9 parameters), else gathered again; grads reduced in 5e8-element
    # buckets in the 16-bit model dtype (communication_data_type default). Hybrid sharding is
    # MiCS (mics_shard_size): MiCS_Optimizer.allreduce_mics_shard_grads all-reduces the grad
    # shards across replication groups only at the accumulation boundary
    # (deepspeed/runtime/zero/mics.py), once per step.
    FSDPImpl.DEEPSPEED: FSDPTraits(
        channels=None, gathers_per_layer=4, regather_on_recompute=True, prefetch=1,
        prefetch_params=DS_PREFETCH_BUCKET_PARAMS, max_live_params=DS_MAX_LIVE_PARAMS,
        reuse_distance_params=DS_MAX_REUSE_DISTANCE_PARAMS,
        reduce_bucket_params=DS_REDUCE_BUCKET_PARAMS, grad_bytes=2.0),
    # PyTorch FSDP1 FULL_SHARD (torch.distributed.fsdp.FullyShardedDataParallel): one flat
    # parameter per wrapped transformer block, one all-gather per block; limit_all_gathers=True
    # (default) lets at most two blocks' gathers be in flight -> the computing block plus one
    # prefetched (forward_prefetch / backward_prefetch=BACKWARD_PRE); activation checkpointing
    # runs inside the FSDP unit, so the backward's one gather also serves the recompute; grads
    # reduce-scattered per block after its backward in the bf16 param dtype (MixedPrecision
    # reduce_dtype = bf16 in llm-foundry's PURE mixed precision).
    # HYBRID_SHARD / FSDP2 on a 2D (replicate, shard) mesh: reduce-scatter, then all-reduce
    # across replicas, in every backward unless the trainer opts out (FSDP2
    # set_requires_all_reduce(False), pytorch/pytorch#126166, 2024; FSDP1 no_sync skips
    # both); torchtitan v0.2.2 calls neither (git grep of its tree), so it all-reduces every
    # microbatch: replica_reduce_per_microbatch.
    FSDPImpl.FSDP1: FSDPTraits(channels=None, gathers_per_layer=1, regather_on_recompute=False,
                               prefetch=1, grad_bytes=2.0, replica_reduce_per_microbatch=True),
    # PyTorch FSDP2 (fully_shard, per-parameter DTensor sharding; docs "FSDP Prefetch
    # Nuances"): implicit forward prefetch of the next module (all-gathers on their own
    # stream), explicit backward prefetch of one module, reduce-scatter on a separate stream
    # per block after its backward, in fp32: torchtitan (the FSDP2 launcher fleetsim exports
    # to) builds MixedPrecisionPolicy(reduce_dtype=float32), its job_config
    # training.mixed_precision_reduce allowing only "float32" at v0.2.2 (73a0e697; pinned in
    # tests/data/launchers/torchtitan.json). PyTorch's own default with bf16 params would
    # reduce in bf16: grad_reduce_dtype bf16 says so.
    # FSDPParamGroup.wait_for_unshard (torch/distributed/fsdp/_fully_shard/
    # _fsdp_param_group.py) copies the all-gather output out into the
    # per-parameter tensors on the current (compute) stream and, in forward, frees the
    # previous all-gather result only after the next copy-out (copy_out). The copy-in of the
    # local shard runs on the all-gather stream and is small (1/dp of the unit): not charged.
    FSDPImpl.FSDP2: FSDPTraits(channels=None, gathers_per_layer=1, regather_on_recompute=False,
                               prefetch=1, grad_bytes=4.0, copy_out=True,
                               replica_reduce_per_microbatch=True),
    # Megatron-FSDP (megatron/core/distributed/fsdp; --use-megatron-fsdp, user guide): one
    # bucket per fsdp unit module (TransformerLayer), all-gathers overlapped with forward one
    # unit ahead (--fsdp-double-buffer: two buffers), grad reduce-scatter per unit overlapped
    # with backward, in fp32 main grads unless --grad-reduce-in-bf16 (the guide recommends
    # it; Megatron-LM's default accumulates and reduces fp32 grads with --bf16). Hybrid
    # sharding: --num-distributed-optimizer-instances with --outer-dp-sharding-strategy
    # no_shard; "outer data-parallel gradients are all-reduced during the last backward pass
    # before the optimization step" (Megatron-FSDP user guide, Data-Parallel Sharding
    # Strategies, Megatron-LM 2026): once per step.
    FSDPImpl.MEGATRON: FSDPTraits(channels=None, gathers_per_layer=1,
                                  regather_on_recompute=False, prefetch=1, grad_bytes=4.0),
    # Explicit ideal: NCCL multi-ring, every gather (and backward reduce-scatter) hidden behind
    # its own layer's compute unless longer, nothing exposed at the chunk's edges.
    FSDPImpl.IDEAL: FSDPTraits(channels=None, gathers_per_layer=1, regather_on_recompute=False,
                               ideal=True, contention=0.0),
}


def traits(parallel: ParallelConfig) -> FSDPTraits:
    """The FSDP traits of a plan's stack."""
    return FSDP_TRAITS[FSDPImpl(parallel.fsdp_impl)]


REDUCE_DTYPE_BYTES = {GradReduceDType.BF16: 2.0, GradReduceDType.FP32: 4.0}


def grad_wire_bytes(parallel: ParallelConfig, default: float | None = None) -> float:
    """Bytes per gradient element a plan reduces: parallel.grad_reduce_dtype when set, else
    `default` (None: the ZeRO-3 stack's FSDPTraits.grad_bytes)."""
    if parallel.grad_reduce_dtype is not None:
        return REDUCE_DTYPE_BYTES[parallel.grad_reduce_dtype]
    return traits(parallel).grad_bytes if default is None else default


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitPlan:
    """How one layer's gathers are cut and how far ahead they may run."""

    units_per_layer: int  # >= 1: units a layer is cut into
    layers_per_unit: int  # >= 1: layers coalesced into one unit (a bucket larger than a layer)
    depth: int  # units in flight ahead of the computing one
    regather: bool  # the backward gathers the unit twice (recompute + backward)
    reduce_every: int  # units whose grads one reduce-scatter carries


def unit_plan(t: FSDPTraits, parallel: ParallelConfig, layer_params: float,
              full_recompute: bool) -> UnitPlan:
    """Unit size, prefetch depth, re-gather and reduce bucketing for layers of `layer_params`
    parameters per rank (TP-split). fsdp_bucket_mb / fsdp_prefetch override the stack."""
    p = parallel
    k, per_unit_layers = t.gathers_per_layer, 1
    if p.fsdp_bucket_mb is not None or t.bucket_params is not None:
        bucket = (p.fsdp_bucket_mb * 1e6 / 2.0 if p.fsdp_bucket_mb is not None
                  else float(t.bucket_params))  # MB of 16-bit weights -> parameters
        ratio = layer_params / bucket if bucket > 0 else 1.0
        if ratio >= 1:
            k, per_unit_layers = max(1, round(ratio)), 1
        else:
            k, per_unit_layers = 1, max(1, round(1 / ratio))
    unit_params = layer_params * per_unit_layers / k
    depth = t.prefetch
    if t.prefetch_params is not None and unit_params > 0:
        depth = max(1, math.floor(t.prefetch_params / unit_params))
        if t.max_live_params is not None:
            depth = max(1, min(depth, math.floor(t.max_live_params / unit_params) - 1))
    if p.fsdp_prefetch is not None:
        depth = p.fsdp_prefetch
    regather = full_recompute and t.regather_on_recompute
    if regather and t.reuse_distance_params is not None:
        regather = layer_params > t.reuse_distance_params
    reduce_every = 1
    if t.reduce_bucket_params is not None and unit_params > 0:
        reduce_every = max(1, math.floor(t.reduce_bucket_params / unit_params))
    return UnitPlan(units_per_layer=k, layers_per_unit=per_unit_layers, depth=depth,
                    regather=regather, reduce_every=reduce_every)


def schedule_forward(compute_s: Sequence[float], gather_s: Sequence[float], depth: int) -> float:
    """Exposed seconds of one forward through units with these compute and gather times.

    Gather u is issued when unit u - depth starts computing (time 0 for the first `depth`),
    after the channel has finished the gathers before it; unit u computes after unit u - 1 and
    its own gather. depth 0 = no prefetch: gather u is issued when unit u - 1 ends."""
    if depth < 0:
        raise ValueError(f"prefetch depth must be >= 0, got {depth}")
    starts: list[float] = []
    channel = end = 0.0
    for u, (c, g) in enumerate(zip(compute_s, gather_s, strict=True)):
        issue = _issue(starts, end, u, depth)
        channel = max(channel, issue) + g
        start = max(end, channel)
        starts.append(start)
        end = start + c
    return max(0.0, end - sum(compute_s))


def schedule_backward(compute_s: Sequence[float], gather_s: Sequence[float],
                      reduce_s: Sequence[float], depth: int, reduce_every: int = 1) -> float:
    """Exposed seconds of one backward: gathers as in schedule_forward, and each unit's grads
    reduce-scattered on the same channel (first come, first served by issue time) once its
    compute ends — every `reduce_every` units as one bucket. The last reduce-scatter ends
    the chunk."""
    if depth < 0 or reduce_every < 1:
        raise ValueError(f"need depth >= 0 and reduce_every >= 1, got {depth}, {reduce_every}")
    starts: list[float] = []
    pending: list[tuple[float, float]] = []  # (issue time, seconds) of queued reduce-scatters
    channel = end = 0.0
    bucket_s = 0.0
    n = len(compute_s)
    for u, (c, g, r) in enumerate(zip(compute_s, gather_s, reduce_s, strict=True)):
        issue = _issue(starts, end, u, depth)
        while pending and pending[0][0] <= issue:
            at, dur = pending.pop(0)
            channel = max(channel, at) + dur
        channel = max(channel, issue) + g
        start = max(end, channel)
        starts.append(start)
        end = start + c
        bucket_s += r
        if (u + 1) % reduce_every == 0 or u == n - 1:
            pending.append((end, bucket_s))
            bucket_s = 0.0
    for at, dur in pending:
        channel = max(channel, at) + dur
    return max(0.0, max(end, channel) - sum(compute_s))


def contended(compute_s: Sequence[float], overlapped_s: Sequence[float],
              slowdown: float) -> list[float]:
    """Unit compute seconds slowed by `slowdown` on the part that runs beside communication
    (at most the whole unit): c + slowdown * min(c, overlapped)."""
    return [c + slowdown * min(c, m) for c, m in zip(compute_s, overlapped_s, strict=True)]


def _issue(starts: list[float], prev_end: float, u: int, depth: int) -> float:
    """When unit u's gather may be issued: as unit u - depth starts (depth 0: as u - 1 ends)."""
    if depth == 0:
        return prev_end
    return starts[u - depth] if u >= depth else 0.0


def ideal_exposed(compute_s: Sequence[float], comm_s: Sequence[float]) -> float:
    """`ideal`: per unit, only the communication longer than its own compute."""
    return sum(max(0.0, m - c) for c, m in zip(compute_s, comm_s, strict=True))
