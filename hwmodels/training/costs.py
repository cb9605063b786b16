"""Per-op costs of one pipeline chunk: layer compute from hwmodels.layers plus the exposed part
of TP / CP / EP / ZeRO-3 communication, each collective costed on the stage's real rank group.

A chunk (virtual stage v) holds its share of consecutive layers (hwmodels.parallel
.stage_layer_counts: even, balanced or explicit); v == 0 adds the
embedding, the last virtual stage adds the logits and loss. Costs are computed once per
(virtual stage, op kind) and looked up by the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwmodels import layers
from hwmodels.dtypes import DType
from hwmodels.layers import ProfileArg
from hwmodels.ops import memory_time, resolve_profile
from hwmodels.parallel import (
    CPMode,
    OffloadTarget,
    ParallelConfig,
    Recompute,
    TrainingConfig,
    stage_layer_counts,
    virtual_stage_layers,
)
from hwmodels.profile import ElementwiseKind
from hwmodels.specs import ModelSpec
from hwmodels.training import fsdp, offload, tp_overlap
from hwmodels.training import moe as moe_terms
from hwmodels.training.comm import CommModel
from hwmodels.training.fsdp import FSDP_TRAITS as FSDP_TRAITS  # re-exported
from hwmodels.training.fsdp import FSDPTraits as FSDPTraits  # re-exported
from hwmodels.training.placement import StageGroups, stage_groups

# Gradients reduced by ZeRO-3/FSDP every microbatch travel in the 16-bit compute dtype
# (DeepSpeed's communication_data_type defaults to the fp16/bf16 model dtype; llm-foundry's
# FSDP `mixed_precision: PURE` reduces in bf16).
ZERO3_GRAD_BYTES = 2.0
# Weights all-gathered by ZeRO-3/FSDP are the 16-bit model copy.
ZERO3_PARAM_BYTES = 2.0


def activation_bytes(dtype: DType) -> float:
    """Bytes of one activation element on the wire (fp8 training keeps bf16 activations)."""
    return 4.0 if dtype in (DType.FP32, DType.TF32) else 2.0


def p2p_activation_bytes(model: ModelSpec, training: TrainingConfig,
                         parallel: ParallelConfig) -> float:
    """Bytes one microbatch's activations (or their grads) carry between pipeline stages.

    Megatron's scatter-gather optimisation (and SP) sends 1/tp of the tensor from each rank.
    """
    return (training.micro_batch * training.seq_len / parallel.cp * model.hidden_size
            * activation_bytes(training.dtype) / parallel.tp)


# The parts compute_s is split into (PhaseCost / _LayerPhase fields; Breakdown.compute_terms).
COMPUTE_TERMS = ("gemm_s", "attention_s", "elementwise_s", "launch_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseCost:
    """One op's cost on one rank: compute seconds and communication seconds left exposed.

    compute_s = gemm_s + attention_s + elementwise_s + launch_s: GEMMs, attention kernels and
    memory-bound kernels net of their per-kernel overhead, and that overhead over every kernel
    launched (hwmodels.layers.LayerCost.terms)."""

    compute_s: float
    exposed_comm_s: float
    wgrad_s: float = 0.0  # weight-gradient GEMMs inside compute_s (backward only)
    flops: float = 0.0
    gemm_s: float = 0.0
    attention_s: float = 0.0
    elementwise_s: float = 0.0
    launch_s: float = 0.0

    def terms(self) -> dict[str, float]:
        """compute_s by part (COMPUTE_TERMS)."""
        return {k: getattr(self, k) for k in COMPUTE_TERMS}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkCost:
    """Costs of one microbatch through one virtual stage."""

    forward: PhaseCost
    backward: PhaseCost  # full backward (incl. recompute and weight gradients)


@dataclass(frozen=True, slots=True, kw_only=True)
class _LayerPhase:
    compute_s: float
    comm_s: float  # total communication issued
    exposed_s: float
    wgrad_s: float
    flops: float
    # compute_s by part (COMPUTE_TERMS); they sum to compute_s
    gemm_s: float = 0.0
    attention_s: float = 0.0
    elementwise_s: float = 0.0
    launch_s: float = 0.0


def _terms(cost: layers.LayerCost, scale: float = 1.0) -> dict[str, float]:
    return {k: v * scale for k, v in cost.terms().items()}


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a[k] + b[k] for k in COMPUTE_TERMS}


@dataclass(slots=True)
class CostCache:
    """Layer and embedding/logits costs (keyed by everything they depend on but the model,
    cluster, profile and flash flag) and stage rank groups: share one only between cost models
    that agree on those (the planner shares one across all plans of a search)."""

    layers: dict[tuple[Any, ...], tuple[_LayerPhase, _LayerPhase]] = field(default_factory=dict)
    ends: dict[tuple[Any, ...], tuple[_LayerPhase, _LayerPhase]] = field(default_factory=dict)
    # ZeRO-3 exposed (forward, backward) of one chunk shape under a scheduled FSDP stack
    zero3: dict[tuple[Any, ...], tuple[float, float]] = field(default_factory=dict)
    # (tp, cp, dp, pp, ep, expert_tp, fsdp_shard_size, rank_order, stage) -> that stage's
    # rank groups
    groups: dict[tuple[Any, ...], StageGroups] = field(default_factory=dict)

    def stage_groups(self, parallel: ParallelConfig, stage: int) -> StageGroups:
        """placement.stage_groups, memoized (plans of a search share a few shapes)."""
        p = parallel
        key = (p.tp, p.cp, p.dp, p.pp, p.ep, p.expert_tp, p.fsdp_shard_size, p.rank_order,
               stage)
        hit = self.groups.get(key)
        if hit is None:
            hit = self.groups[key] = stage_groups(p, stage)
        return hit


class ChunkCostModel:
    """Builds ChunkCost for every virtual stage of a plan (memoized per layer kind).

    groups maps a pipeline stage to its rank groups: all of them (pipeline_groups) for the
    simulator, or only the stages asked about (the planner's critical stage).
    """

    def __init__(self, model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                 comm: CommModel, groups: tuple[StageGroups, ...] | Mapping[int, StageGroups],
                 profile: ProfileArg = None, flash_attention: bool = True,
                 cache: CostCache | None = None) -> None:
        self.model, self.training, self.parallel = model, training, parallel
        self.flash_attention = flash_attention
        self.comm, self.groups = comm, groups
        self.device = comm.cluster.device
        # resolved once: a path is read once, not per layer call
        self.profile = resolve_profile(self.device, profile)
        self.cache = CostCache() if cache is None else cache
        self.layer_counts = stage_layer_counts(model.num_layers, parallel)
        # busiest-EP-rank load, capacity cap and dropped share of the MoE layers (one per plan)
        self.offload_on = True  # offload_chunk prices the chunk once without the copies
        self.moe_load = (moe_terms.moe_load(model, parallel, self._tokens()) if model.is_moe
                         else None)

    # -- per layer ---------------------------------------------------------------------------

    def _common(self) -> dict[str, object]:
        t, p = self.training, self.parallel
        return dict(micro_batch=t.micro_batch, seq_len=t.seq_len, tp=p.tp, cp=p.cp,
                    sequence_parallel=p.sequence_parallel and p.tp > 1, dtype=t.dtype,
                    profile=self.profile)

    def _tokens(self) -> float:
        return self.training.micro_batch * self.training.seq_len / self.parallel.cp

    def _tp_comm_s(self, g: StageGroups) -> float:
        """TP collectives of one layer's forward: 2 all-reduce, or 2 AG + 2 RS with SP."""
        p = self.parallel
        if p.tp == 1:
            return 0.0
        nbytes = self._tokens() * self.model.hidden_size * activation_bytes(self.training.dtype)
        if p.sequence_parallel:
            return 2 * (self.comm.all_gather(g.tp_group, nbytes)
                        + self.comm.reduce_scatter(g.tp_group, nbytes))
        return 2 * self.comm.all_reduce(g.tp_group, nbytes)

    def _cp_comm_s(self, g: StageGroups) -> tuple[float, bool]:
        """(forward CP comm of one layer, overlappable with attention?)."""
        p, m = self.parallel, self.model
        if p.cp == 1:
            return 0.0, False
        act = activation_bytes(self.training.dtype)
        tp_kv = max(1, m.num_kv_heads // p.tp) if p.tp <= m.num_kv_heads else 1
        kv_bytes = self._tokens() * 2 * tp_kv * m.head_dim * act
        if p.cp_mode is CPMode.RING:
            # KV block passed around the ring: cp-1 steps to the next rank, hidden behind the
            # attention of the block already held (Liu et al. Ring Attention; Megatron CP).
            nxt = g.cp_group[1 % len(g.cp_group)]
            return (p.cp - 1) * self.comm.send_recv(g.cp_group[0], nxt, kv_bytes), True
        # Ulysses: all-to-all of q, k, v before attention and of the output after.
        q_bytes = self._tokens() * m.q_dim / p.tp * act
        return (2 * self.comm.all_to_all(g.cp_group, q_bytes)
                + self.comm.all_to_all(g.cp_group, kv_bytes)), False

    def _ep_comm_s(self, g: StageGroups) -> float:
        """Dispatch + combine of one MoE layer's forward: the all-to-all over the EP group of
        the rank's local tokens x top-k (x the busiest rank's load, which every rank waits for),
        and, when the experts are tensor-parallel over a group of several ranks under sequence
        parallelism, the all-gather of the received rows over it and the reduce-scatter back
        (Megatron-core MoEAlltoAllTokenDispatcher)."""
        p, m = self.parallel, self.model
        load = self.moe_load.imbalance if self.moe_load is not None else 1.0
        act = activation_bytes(self.training.dtype)
        a2a = (moe_terms.local_tokens(self._tokens(), p) * m.experts_per_token * m.hidden_size
               * act * load)
        total = 2 * self.comm.all_to_all(g.ep_group, a2a) if p.ep > 1 else 0.0
        etp_group = g.expert_tp_group or g.tp_group
        if p.sequence_parallel and len(etp_group) > 1:
            rows = (moe_terms.expert_tokens(self._tokens(), p) * m.experts_per_token
                    * m.hidden_size * act * load)
            total += (self.comm.all_gather(etp_group, rows)
                      + self.comm.reduce_scatter(etp_group, rows))
        return total

    def _zero3_gather_s(self, g: StageGroups, moe: bool) -> tuple[float, float]:
        """(all-gather of one layer's weights, reduce-scatter of its grads) for ZeRO-3 (the
        v0.1 closed-form stacks: nccl, deepspeed-2021)."""
        from hwmodels import flops

        p = self.parallel
        if p.zero < 3 or (len(g.dp_cp_group) == 1 and not self._offload_params):
            return 0.0, 0.0
        traits = fsdp.traits(p)
        params = flops.layer_param_count(self.model, moe=moe) / p.tp
        k = traits.gathers_per_layer
        ag = k * self._all_gather(g, params * ZERO3_PARAM_BYTES / k, traits.channels)
        rs = self._reduce_scatter(g, params * fsdp.grad_wire_bytes(p, ZERO3_GRAD_BYTES),
                                  traits.channels)
        if self._offload_params:
            fetch, down = offload.unit_copy_s(self.comm.cluster, p, params / len(g.dp_cp_group))
            ag, rs = ag + fetch, rs + down
        return ag, rs

    @property
    def _offload_params(self) -> bool:
        return self.parallel.offload_params is not OffloadTarget.NONE and self.offload_on

    def _all_gather(self, g: StageGroups, nbytes: float, channels: int | None) -> float:
        if len(g.dp_cp_group) == 1:
            return 0.0
        return self.comm.all_gather(g.dp_cp_group, nbytes, channels)

    def _reduce_scatter(self, g: StageGroups, nbytes: float, channels: int | None) -> float:
        if len(g.dp_cp_group) == 1:
            return 0.0
        return self.comm.reduce_scatter(g.dp_cp_group, nbytes, channels)

    def offload_chunk(self, virtual_stage: int) -> tuple[float, float, float, float]:
        """ZeRO-Infinity per microbatch on one chunk: (weights copied in, forward + backward;
        grads copied out; forward and backward seconds those copies leave exposed beyond the
        same chunk without them), parameters per rank. Zeros without offload_params."""
        p = self.parallel
        if p.offload_params is OffloadTarget.NONE or p.zero < 3:
            return 0.0, 0.0, 0.0, 0.0
        from hwmodels import flops

        stage = virtual_stage % p.pp
        dense, moe = self.chunk_layers(virtual_stage)
        dp = len(self.groups[stage].dp_cp_group)
        shard = sum(n * flops.layer_param_count(self.model, moe=m) / p.tp / dp
                    for n, m in ((dense, False), (moe, True)) if n)
        with_f, with_b = self._zero3_exposed(stage, dense, moe)
        self.offload_on = False
        try:
            without_f, without_b = self._zero3_exposed(stage, dense, moe)
        finally:
            self.offload_on = True
        return 2 * shard, shard, with_f - without_f, with_b - without_b

    def layer(self, stage: int, moe: bool) -> tuple[_LayerPhase, _LayerPhase]:
        """(forward, backward) of one layer on the representative rank of `stage`."""
        p, t = self.parallel, self.training
        g = self.groups[stage]
        key = (g.tp_group, g.cp_group, g.ep_group if moe else (), t.micro_batch, t.seq_len,
               t.dtype, p.tp, p.cp, p.ep if moe else 1, p.sequence_parallel, p.recompute,
               p.tp_overlap, p.cp_mode, moe, t.attention_impl, t.kernels,
               (g.expert_tp_group, p.expert_tp, p.moe_imbalance, p.moe_capacity_factor,
                p.ep_overlap) if moe else ())
        hit = self.cache.layers.get(key)
        if hit is not None:
            return hit
        common = self._common()
        imbalance = self.moe_load.imbalance if (moe and self.moe_load is not None) else 1.0
        extra = dict(moe=moe, ep=p.ep if moe else 1, cp_mode=p.cp_mode,
                     flash=self.flash_attention, moe_imbalance=imbalance,
                     attention_impl=t.attention_impl, kernels=t.kernels)
        fwd = layers.layer_forward_time(self.model, self.device, **common, **extra)
        bwd = layers.layer_backward_time(self.model, self.device, **common, **extra)
        tp_s = self._tp_comm_s(g)
        cp_s, cp_overlap = self._cp_comm_s(g)
        ep_s = self._ep_comm_s(g) if moe else 0.0
        # routed experts at expert_tp instead of tp: correct the layer's GEMM time
        d_f = d_b = d_w = 0.0
        if moe:
            d_f, d_b, d_w = moe_terms.expert_tp_delta_s(
                self.model, self.device, tokens=self._tokens(), parallel=p, imbalance=imbalance,
                dtype=t.dtype, profile=self.profile)
        fwd_total, fwd_gemm = fwd.total_s + d_f, fwd.gemm_s + d_f
        bwd_total, bwd_gemm, bwd_wgrad = bwd.total_s + d_b, bwd.gemm_s + d_b, \
            bwd.weight_grad_s + d_w
        # EP all-to-all: exposed, or (dualpipe) the forward's hidden behind another
        # microbatch's backward of this layer and the backward's behind a forward; priced on
        # the pair (hwmodels.training.moe.ep_exposed_s), split in proportion to each side's.
        ep_f_exp = ep_b_exp = ep_s
        if ep_s:
            pair = moe_terms.ep_exposed_s(2 * ep_s, fwd_total + bwd_total, p.ep_overlap)
            ep_f_exp = ep_b_exp = pair / 2

        def exposed_tp(gemm_s: float) -> float:
            return tp_overlap.exposed_tp_s(tp_s, gemm_s, p.tp_overlap, p.tp)

        def exposed_cp(attn_s: float, comm_s: float) -> float:
            return max(0.0, comm_s - attn_s) if cp_overlap else comm_s

        f_comm = tp_s + cp_s + ep_s
        f_exposed = exposed_tp(fwd_gemm) + exposed_cp(fwd.attention_s, cp_s) + ep_f_exp
        f_terms = _terms(fwd)
        f_terms["gemm_s"] += d_f  # the expert-TP correction is GEMM time
        forward = _LayerPhase(compute_s=fwd_total, comm_s=f_comm, exposed_s=f_exposed,
                              wgrad_s=0.0, flops=fwd.flops, **f_terms)
        # backward: the same TP collectives (transposed), ring CP sends KV and dKV (2x), EP
        # all-to-all in reverse; recompute re-runs forward work first.
        b_compute = bwd_total
        b_comm = tp_s + 2 * cp_s + ep_s
        b_exposed = exposed_tp(bwd_gemm) + exposed_cp(bwd.attention_s, 2 * cp_s) + ep_b_exp
        b_flops = bwd.flops
        b_terms = _terms(bwd)
        b_terms["gemm_s"] += d_b
        if p.recompute is Recompute.FULL:
            b_compute += fwd_total
            b_comm += f_comm
            b_exposed += f_exposed
            b_flops += fwd.flops
            b_terms = _add(b_terms, f_terms)
        elif p.recompute is Recompute.SELECTIVE_OP:
            # torchtitan per-op SAC: every second matmul and all memory-bound ops re-run; the
            # forward's TP all-gathers too (only the reduce-scatter outputs are saved), taken
            # as half of the layer's forward TP traffic (two all-gathers of four collectives)
            rec = layers.layer_op_sac_recompute_time(self.model, self.device, **common,
                                                     **extra)
            b_compute += rec.total_s
            b_flops += rec.flops
            b_terms = _add(b_terms, rec.terms())
            b_comm += 0.5 * tp_s
            b_exposed += 0.5 * exposed_tp(fwd_gemm)
        elif p.recompute is Recompute.SELECTIVE:
            b_compute += fwd.attention_s  # softmax/QK^T/AV only, no communication
            launch = fwd.kernel_overhead_s * fwd.attention_kernels
            b_terms = _add(b_terms, {"gemm_s": 0.0, "attention_s": fwd.attention_s - launch,
                                     "elementwise_s": 0.0, "launch_s": launch})
        backward = _LayerPhase(compute_s=b_compute, comm_s=b_comm, exposed_s=b_exposed,
                               wgrad_s=bwd_wgrad, flops=b_flops, **b_terms)
        self.cache.layers[key] = (forward, backward)
        return forward, backward

    # -- per chunk ---------------------------------------------------------------------------

    def chunk_layers(self, virtual_stage: int) -> tuple[int, int]:
        """(dense layers, MoE layers) of a virtual stage."""
        m = self.model
        layers = virtual_stage_layers(self.layer_counts, virtual_stage)
        moe = 0
        if m.is_moe:
            moe = max(0, layers.stop - max(layers.start, m.first_dense_layers))
        return len(layers) - moe, moe

    def chunk(self, virtual_stage: int) -> ChunkCost:
        """Forward and backward cost of one microbatch through virtual stage `virtual_stage`."""
        p = self.parallel
        stage = virtual_stage % p.pp
        dense, moe = self.chunk_layers(virtual_stage)
        fwd = [_scale(self.layer(stage, False)[0], dense)]
        bwd = [_scale(self.layer(stage, False)[1], dense)]
        if moe:
            fwd.append(_scale(self.layer(stage, True)[0], moe))
            bwd.append(_scale(self.layer(stage, True)[1], moe))
        ends = self._ends(stage, virtual_stage)
        if ends is not None:
            fwd.append(ends[0])
            bwd.append(ends[1])
        f_phase = _sum(fwd)
        b_phase = _sum(bwd)
        f_exposed, b_exposed = f_phase.exposed_s, b_phase.exposed_s
        zero_f, zero_b = self._zero3_exposed(stage, dense, moe)
        return ChunkCost(
            forward=PhaseCost(compute_s=f_phase.compute_s, exposed_comm_s=f_exposed + zero_f,
                              flops=f_phase.flops, **_phase_terms(f_phase)),
            backward=PhaseCost(compute_s=b_phase.compute_s, exposed_comm_s=b_exposed + zero_b,
                               wgrad_s=b_phase.wgrad_s, flops=b_phase.flops,
                               **_phase_terms(b_phase)))

    def _zero3_exposed(self, stage: int, dense: int, moe: int) -> tuple[float, float]:
        """(forward, backward) ZeRO-3/FSDP communication left exposed on one chunk of `dense`
        + `moe` layers, per microbatch: the stack's closed form (nccl, deepspeed-2021), or its
        units replayed through hwmodels.training.fsdp's schedule (memoized per chunk shape)."""
        p = self.parallel
        if p.zero < 3 or dense + moe == 0:
            return 0.0, 0.0
        traits = fsdp.traits(p)
        if traits.closed_form:
            return self._zero3_closed_form(stage, dense, moe)
        g = self.groups[stage]
        if len(g.dp_cp_group) == 1 and not self._offload_params:
            return 0.0, 0.0
        t = self.training
        key = ("zero3", self._offload_params, p.offload_params, g.dp_cp_group, g.tp_group, g.cp_group, g.ep_group if moe else (),
               dense, moe, t.micro_batch, t.seq_len, t.dtype, p.tp, p.cp, p.ep,
               p.sequence_parallel, p.recompute, p.tp_overlap, p.cp_mode,
               p.overlap_param_gather, p.fsdp_impl, p.fsdp_prefetch, p.fsdp_bucket_mb,
               t.attention_impl, t.kernels, p.expert_tp, p.moe_imbalance,
               p.moe_capacity_factor, p.ep_overlap)
        hit = self.cache.zero3.get(key)
        if hit is None:
            hit = self.cache.zero3[key] = self._zero3_scheduled(stage, dense, moe, traits)
        return hit

    def _zero3_scheduled(self, stage: int, dense: int, moe: int,
                         traits: FSDPTraits) -> tuple[float, float]:
        """Cut the chunk's layers into the stack's gather units and replay one forward and one
        backward (hwmodels.training.fsdp): each unit's all-gather / reduce-scatter priced on
        the stage's DP x CP group (so each pays its own latency), prefetch limited to
        `depth` units, backward reduce-scatters sharing the gathers' channel."""
        from hwmodels import flops

        p, g = self.parallel, self.groups[stage]
        full = p.recompute is Recompute.FULL
        f_c: list[float] = []
        f_g: list[float] = []
        b_c: list[float] = []
        b_g: list[float] = []
        b_r: list[float] = []
        f_copy: list[float] = []
        b_copy: list[float] = []
        depths, reduce_every = [], []
        for count, is_moe in ((dense, False), (moe, True)):
            if not count:
                continue
            params = flops.layer_param_count(self.model, moe=is_moe) / p.tp
            plan = fsdp.unit_plan(traits, p, params, full)
            n_units = max(1, math.ceil(count * plan.units_per_layer / plan.layers_per_unit))
            share = count / n_units  # layers per unit
            f_layer, b_layer = self.layer(stage, is_moe)
            ag = self._all_gather(g, params * share * ZERO3_PARAM_BYTES, traits.channels)
            rs = self._reduce_scatter(g, params * share * fsdp.grad_wire_bytes(p),
                                      traits.channels)
            if self._offload_params:  # ZeRO-Infinity: host copies ride the unit's collectives
                fetch, down = offload.unit_copy_s(self.comm.cluster, p,
                                                  params * share / len(g.dp_cp_group))
                ag, rs = ag + fetch, rs + down
            f_c += [f_layer.compute_s * share] * n_units
            f_g += [ag] * n_units
            b_c += [b_layer.compute_s * share] * n_units
            b_g += [ag * (2 if plan.regather else 1)] * n_units
            b_r += [rs] * n_units
            # FSDP2 copy-out: read + write the unit's 16-bit weights on the compute stream
            copy = (memory_time(self.device, 2 * params * share * ZERO3_PARAM_BYTES,
                                self.profile, kind=ElementwiseKind.COPY)
                    if traits.copy_out else 0.0)
            f_copy += [copy] * n_units
            b_copy += [copy * (2 if plan.regather else 1)] * n_units
            depths.append(plan.depth if p.overlap_param_gather else 0)
            reduce_every.append(plan.reduce_every)
        if traits.ideal:
            return (fsdp.ideal_exposed(f_c, f_g),
                    fsdp.ideal_exposed(b_c, [a + r for a, r in zip(b_g, b_r, strict=True)]))
        depth, every = min(depths), min(reduce_every)
        # backward runs the layers in reverse (MoE layers, which follow the dense ones, first)
        b_c, b_g, b_r = b_c[::-1], b_g[::-1], b_r[::-1]
        f_run, b_run = f_c, b_c
        if traits.contention and depth:
            # while unit u computes, the gather `depth` units ahead (and, backward, the
            # previous unit's reduce-scatter) run beside it
            n = len(f_c)
            ahead_f = [f_g[u + depth] if u + depth < n else 0.0 for u in range(n)]
            ahead_b = [(b_g[u + depth] if u + depth < n else 0.0) + (b_r[u - 1] if u else 0.0)
                       for u in range(n)]
            f_run = fsdp.contended(f_c, ahead_f, traits.contention)
            b_run = fsdp.contended(b_c, ahead_b, traits.contention)
        if traits.copy_out:
            f_run = [c + x for c, x in zip(f_run, f_copy, strict=True)]
            b_copy = b_copy[::-1]
            b_run = [c + x for c, x in zip(b_run, b_copy, strict=True)]
        f_exp = fsdp.schedule_forward(f_run, f_g, depth) + sum(f_run) - sum(f_c)
        b_exp = fsdp.schedule_backward(b_run, b_g, b_r, depth, every) + sum(b_run) - sum(b_c)
        return f_exp, b_exp

    def _zero3_closed_form(self, stage: int, dense: int, moe: int) -> tuple[float, float]:
        """v0.1 closed form (fsdp_impl nccl, deepspeed-2021): weight gathers prefetched one layer ahead (FSDP forward/backward prefetch,
        DeepSpeed prefetch bucket): exposed = the first layer's gather + per layer the part
        of the gather(s) (and, backward, the grad reduce-scatter) longer than its compute.

        `overlap_param_gather` is the prefetch switch under ZeRO-3 (Megatron's
        --overlap-param-gather overlaps the distributed optimizer's ZeRO-1/2 gather with the
        next forward; for ZeRO-3/FSDP the analogue is prefetching the next layer's gather,
        FSDP forward_prefetch/backward_prefetch): False gathers each layer's weights only when
        it runs, so every gather is exposed; the grad reduce-scatter stays asynchronous
        (hidden behind the next layer's backward, the last one exposed)."""
        p = self.parallel
        traits = fsdp.traits(p)
        bwd_gathers = 2 if traits.regather_on_recompute and p.recompute is Recompute.FULL else 1
        g = self.groups[stage]
        f_exp = b_exp = 0.0
        for count, is_moe in ((dense, False), (moe, True)):
            if not count:
                continue
            ag, rs = self._zero3_gather_s(g, is_moe)
            f_layer, b_layer = self.layer(stage, is_moe)
            if p.overlap_param_gather:
                f_exp += count * max(0.0, ag - f_layer.compute_s)
                b_exp += count * max(0.0, bwd_gathers * ag + rs - b_layer.compute_s)
            else:  # no prefetch: each gather waits in front of its layer
                f_exp += count * ag
                b_exp += count * (bwd_gathers * ag + max(0.0, rs - b_layer.compute_s))
        ag0, rs0 = self._zero3_gather_s(g, moe > 0 and dense == 0)
        if not p.overlap_param_gather:
            return f_exp, b_exp + rs0
        return f_exp + ag0, b_exp + ag0 + rs0

    def _ends(self, stage: int, virtual_stage: int) -> tuple[_LayerPhase, _LayerPhase] | None:
        """Embedding (first virtual stage) and logits + loss (last) work, with TP collectives."""
        p, t = self.parallel, self.training
        last = p.pp * p.vpp - 1
        if virtual_stage not in (0, last):
            return None
        g = self.groups[stage]
        key = (g.tp_group, t.micro_batch, t.seq_len, t.dtype, p.tp, p.cp, p.sequence_parallel,
               virtual_stage == 0, virtual_stage == last, t.loss_impl)
        hit = self.cache.ends.get(key)
        if hit is not None:
            return hit
        common = self._common()
        nbytes = self._tokens() * self.model.hidden_size * activation_bytes(self.training.dtype)
        # vocab-parallel embedding output all-reduce (reduce-scatter with SP); logits input
        # all-gather with SP (its backward reduce-scatters), or the backward all-reduce.
        tp_coll = (self.comm.reduce_scatter(g.tp_group, nbytes) if p.sequence_parallel
                   else self.comm.all_reduce(g.tp_group, nbytes))
        f_c = b_c = b_w = f_comm = b_comm = f_fl = b_fl = 0.0
        zero = {k: 0.0 for k in COMPUTE_TERMS}
        f_t, b_t = dict(zero), dict(zero)
        if virtual_stage == 0:
            e_f = layers.embedding_forward_time(self.model, self.device, **common)
            e_b = layers.embedding_backward_time(self.model, self.device, **common)
            f_c += e_f.total_s
            b_c += e_b.total_s
            f_t, b_t = _add(f_t, _terms(e_f)), _add(b_t, _terms(e_b))
            b_w += e_b.weight_grad_s
            f_comm += tp_coll
            f_fl += e_f.flops
            b_fl += e_b.flops
        if virtual_stage == last:
            l_f = layers.logits_forward_time(self.model, self.device, **common,
                                             loss_impl=t.loss_impl)
            l_b = layers.logits_backward_time(self.model, self.device, **common,
                                              loss_impl=t.loss_impl)
            f_c += l_f.total_s
            b_c += l_b.total_s
            b_w += l_b.weight_grad_s
            f_t, b_t = _add(f_t, _terms(l_f)), _add(b_t, _terms(l_b))
            f_comm += (self.comm.all_gather(g.tp_group, nbytes) if p.sequence_parallel else 0.0)
            if p.tp > 1:
                # vocab-parallel cross entropy (Megatron _VocabParallelCrossEntropy.forward):
                # all-reduce of the logit max, the target logit and the exp sum, one fp32 value
                # per token each, over the TP group (latency-bound, on the critical path)
                f_comm += 3 * self.comm.all_reduce(g.tp_group, self._tokens() * 4.0)
            b_comm += tp_coll
            f_fl += l_f.flops
            b_fl += l_b.flops
        hit = self.cache.ends[key] = (
            _LayerPhase(compute_s=f_c, comm_s=f_comm, exposed_s=f_comm, wgrad_s=0.0, flops=f_fl,
                        **f_t),
            _LayerPhase(compute_s=b_c, comm_s=b_comm, exposed_s=b_comm, wgrad_s=b_w, flops=b_fl,
                        **b_t))
        return hit


def _phase_terms(phase: _LayerPhase) -> dict[str, float]:
    return {k: getattr(phase, k) for k in COMPUTE_TERMS}


def _scale(phase: _LayerPhase, n: int) -> _LayerPhase:
    return _LayerPhase(compute_s=phase.compute_s * n, comm_s=phase.comm_s * n,
                       exposed_s=phase.exposed_s * n, wgrad_s=phase.wgrad_s * n,
                       flops=phase.flops * n,
                       **{k: getattr(phase, k) * n for k in COMPUTE_TERMS})


def _sum(phases: list[_LayerPhase]) -> _LayerPhase:
    return _LayerPhase(compute_s=sum(x.compute_s for x in phases),
                       comm_s=sum(x.comm_s for x in phases),
                       exposed_s=sum(x.exposed_s for x in phases),
                       wgrad_s=sum(x.wgrad_s for x in phases),
                       flops=sum(x.flops for x in phases),
                       **{k: sum(getattr(x, k) for x in phases) for k in COMPUTE_TERMS})
