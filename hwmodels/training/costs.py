"""Per-op costs of one pipeline chunk: layer compute from hwmodels.layers plus the exposed part
of TP / CP / EP / ZeRO-3 communication, each collective costed on the stage's real rank group.

A chunk (virtual stage v) holds its share of consecutive layers (hwmodels.parallel
.stage_layer_counts: even, balanced or explicit); v == 0 adds the
embedding, the last virtual stage adds the logits and loss. Costs are computed once per
(virtual stage, op kind) and looked up by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwmodels import layers
from hwmodels.dtypes import DType
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.parallel import (
    CPMode,
    FSDPImpl,
    ParallelConfig,
    Recompute,
    TrainingConfig,
    stage_layer_counts,
    virtual_stage_layers,
)
from hwmodels.specs import ModelSpec
from hwmodels.training import moe as moe_terms
from hwmodels.training.comm import CommModel
from hwmodels.training.placement import StageGroups, stage_groups

# Gradients reduced by ZeRO-3/FSDP every microbatch travel in the 16-bit compute dtype
# (DeepSpeed's communication_data_type defaults to the fp16/bf16 model dtype; llm-foundry's
# FSDP `mixed_precision: PURE` reduces in bf16).
ZERO3_GRAD_BYTES = 2.0
# Weights all-gathered by ZeRO-3/FSDP are the 16-bit model copy.
ZERO3_PARAM_BYTES = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPTraits:
    """Framework constants of one ZeRO-3/FSDP implementation (ParallelConfig.fsdp_impl)."""

    channels: int | None  # NCCL channels (rings) across nodes; None = NCCL's one per NIC
    gathers_per_layer: int  # all-gathers one layer's weights are split into (latency count)
    regather_on_recompute: bool  # full recompute gathers the weights again before backward


FSDP_TRAITS: dict[FSDPImpl, FSDPTraits] = {
    # PyTorch FSDP (FULL_SHARD, one flat parameter per transformer block) and Megatron: NCCL
    # picks its channels (one ring per NIC); activation checkpointing runs inside the FSDP
    # unit, so the backward's single gather also serves the recompute.
    FSDPImpl.NCCL: FSDPTraits(channels=None, gathers_per_layer=1,
                              regather_on_recompute=False),
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
                                        regather_on_recompute=True),
}
# PROVISIONAL (seam commit of issue 15): the named stacks behave as NCCL until their traits
# are modelled in the FSDP work of the same issue.
for _impl in FSDPImpl:
    FSDP_TRAITS.setdefault(_impl, FSDP_TRAITS[FSDPImpl.NCCL])


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
    # (tp, cp, dp, pp, ep, rank_order, stage) -> that stage's rank groups
    groups: dict[tuple[Any, ...], StageGroups] = field(default_factory=dict)

    def stage_groups(self, parallel: ParallelConfig, stage: int) -> StageGroups:
        """placement.stage_groups, memoized (plans of a search share a few shapes)."""
        p = parallel
        key = (p.tp, p.cp, p.dp, p.pp, p.ep, p.expert_tp, p.rank_order, stage)
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
        """(all-gather of one layer's weights, reduce-scatter of its grads) for ZeRO-3."""
        from hwmodels import flops

        p = self.parallel
        if p.zero < 3 or len(g.dp_cp_group) == 1:
            return 0.0, 0.0
        traits = FSDP_TRAITS[FSDPImpl(p.fsdp_impl)]
        params = flops.layer_param_count(self.model, moe=moe) / p.tp
        k = traits.gathers_per_layer
        ag = k * self.comm.all_gather(g.dp_cp_group, params * ZERO3_PARAM_BYTES / k,
                                      traits.channels)
        rs = self.comm.reduce_scatter(g.dp_cp_group, params * ZERO3_GRAD_BYTES,
                                      traits.channels)
        return ag, rs

    def layer(self, stage: int, moe: bool) -> tuple[_LayerPhase, _LayerPhase]:
        """(forward, backward) of one layer on the representative rank of `stage`."""
        p, t = self.parallel, self.training
        g = self.groups[stage]
        key = (g.tp_group, g.cp_group, g.ep_group if moe else (), t.micro_batch, t.seq_len,
               t.dtype, p.tp, p.cp, p.ep if moe else 1, p.sequence_parallel, p.recompute,
               p.overlap_tp_comm, p.cp_mode, moe, t.attention_impl, t.kernels,
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
            return max(0.0, tp_s - gemm_s) if p.overlap_tp_comm else tp_s

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
        """ZeRO-3/FSDP weight gathers prefetched one layer ahead (FSDP forward/backward prefetch,
        DeepSpeed prefetch bucket): exposed = the first layer's gather + per layer the part
        of the gather(s) (and, backward, the grad reduce-scatter) longer than its compute.

        `overlap_param_gather` is the prefetch switch under ZeRO-3 (Megatron's
        --overlap-param-gather overlaps the distributed optimizer's ZeRO-1/2 gather with the
        next forward; for ZeRO-3/FSDP the analogue is prefetching the next layer's gather,
        FSDP forward_prefetch/backward_prefetch): False gathers each layer's weights only when
        it runs, so every gather is exposed; the grad reduce-scatter stays asynchronous
        (hidden behind the next layer's backward, the last one exposed)."""
        p = self.parallel
        n = dense + moe
        if p.zero < 3 or n == 0:
            return 0.0, 0.0
        traits = FSDP_TRAITS[FSDPImpl(p.fsdp_impl)]
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
               virtual_stage == 0, virtual_stage == last)
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
            l_f = layers.logits_forward_time(self.model, self.device, **common)
            l_b = layers.logits_backward_time(self.model, self.device, **common)
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
