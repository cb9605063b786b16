"""Device memory of training and serving: weights, gradients, optimizer states, activations, KV.

Training follows Megatron-LM's accounting:
- Activations: Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
  Models", MLSys'23, Sec. 4 and Table 2 (16-bit activations, 1-byte dropout masks). The
  paper's formulas are this module's `flash_attention=False, dropout=True` case; GQA (smaller
  K/V), gated MLPs (SwiGLU stores the 2f-wide fc1 output and the f-wide product), MoE (top-k
  copies of the expert activations), MLA and flash attention (no s^2 scores, only the fp32
  log-sum-exp per head) generalize the same per-tensor bookkeeping.
- States: mixed-precision Adam, bf16 weights (2 B/param), fp32 main gradients (4 B/param,
  Megatron's `accumulate_allreduce_grads_in_fp32`) and fp32 master weights + Adam m, v
  (12 B/param); Rajbhandari et al., "ZeRO", SC'20, Sec. 3/5 for the sharding stages.
- Pipelines: in-flight microbatches per stage from the schedules in Narayanan et al., SC'21
  (1F1B, interleaved) and Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24 (ZB-H1 has
  1F1B's peak memory).

Serving follows vLLM's `determine_num_available_blocks` / `determine_available_memory`:
KV = utilization x device memory - weights - peak activations of a profiling run - non-torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels import flops
from hwmodels.dtypes import DType, bytes_per_element, kv_cache_dtype, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.parallel import (
    GradReduceDType,
    LossImpl,
    OffloadTarget,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
    num_microbatches,
    shard_group_size,
    stage_layer_counts,
    virtual_stage_layers,
)
from hwmodels.specs import AttentionKind, DeviceSpec, ModelSpec
from hwmodels.units import GiB

# CUDA context (~0.5 GiB on H100 with CUDA 12 lazy loading), NCCL communicator buffers for the
# TP/PP/DP groups (~0.5-1 GiB at NCCL_BUFFSIZE=4 MiB x channels x peers) and cuBLAS/TE
# workspaces: PyTorch's memory notes and NCCL env docs; Megatron runs typically show 1-3 GiB of
# nvidia-smi usage beyond torch.cuda.max_memory_reserved. We take the middle of that range.
# Loss memory at its peak, bytes per logit of the last stage (on top of the final norm and the
# logits input). Fused (Megatron vocab-parallel CE): the fp32 softmax it keeps for backward.
# PyTorch eager F.cross_entropy(logits.float()) (torchtitan train.py at 9dec370): log_softmax's
# fp32 output is saved, and its backward holds it with nll_loss_backward's dense fp32 grad and
# its own fp32 output: 3 x 4 bytes (the bf16 logits are freed before backward, `del pred`; the
# forward's bf16 + fp32 copy + fp32 log_softmax, 10 bytes, is lower).
LOSS_PEAK_BYTES_PER_LOGIT = {LossImpl.FUSED: 4.0, LossImpl.EAGER_FP32: 12.0}
FRAMEWORK_OVERHEAD_BYTES = 1.5 * GiB
# PyTorch caching-allocator fragmentation on activations (reserved/allocated ~1.05-1.15 in
# Megatron memory reports); weights and grads live in contiguous buffers and do not fragment.
FRAGMENTATION_FRACTION = 0.10
# Default head-room for `fits`: keep 5% of device memory free (allocator spikes, NCCL growth).
DEFAULT_HEADROOM = 0.05

# int4 weight-only formats (AWQ/GPTQ checkpoints, group size 128): one fp16 scale and one fp16
# (AWQ) or packed (GPTQ) zero point per group of 128 weights; we count 4 B per group, i.e.
# 0.25 extra bits per weight (AWQ, Lin et al. MLSys'24; AutoGPTQ/AutoAWQ default q_group_size=128).
INT4_GROUP_SIZE = 128
INT4_GROUP_OVERHEAD_BYTES = 4.0
# fp8/int8 (vLLM dynamic/static per-tensor or per-channel scales): negligible, not counted.

# vLLM profiling run: max_num_batched_tokens (V1 default for the OpenAI server on data-center
# GPUs: 8192) dummy tokens and max_num_seqs (256) sampled sequences; vllm/engine/arg_utils.py.
VLLM_PROFILE_TOKENS = 8192
VLLM_PROFILE_SEQS = 256
# Memory outside torch's allocator that vLLM subtracts (NCCL buffers, cuBLAS workspaces,
# custom all-reduce IPC buffers): vLLM logs report ~0.1 GiB on one GPU, 1-3 GiB with TP.
VLLM_NON_TORCH_BYTES_TP1 = 0.2 * GiB
VLLM_NON_TORCH_BYTES_TP = 1.5 * GiB


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


def _activation_scale(dtype: DType) -> float:
    """Bytes per 16-bit activation element relative to bf16 (fp8 training keeps bf16 copies)."""
    if dtype in (DType.BF16, DType.FP16, DType.FP8):
        return 1.0
    if dtype in (DType.FP32, DType.TF32):
        return 2.0
    raise ConfigError(f"cannot train in {dtype}", key="training.dtype",
                      allowed=["bf16", "fp16", "fp8", "fp32"])


@dataclass(frozen=True, slots=True, kw_only=True)
class _LayerActivations:
    """Per-token bytes of one layer on one TP rank, split by how they shard."""

    replicated: float  # replicated over TP ranks unless sequence parallel (norm inputs, masks)
    tp_split: float  # divided by tp (head- or ffn-sharded tensors)
    unsplit: float  # never divided by tp (MoE tokens gathered across the TP group)
    scores: float  # attention-score tensors, tp-split; dropped by selective recompute


def _layer_activations(model: ModelSpec, *, seq_len: int, moe: bool, flash: bool,
                       dropout: bool, tp: int) -> _LayerActivations:
    """Korthikanti Sec. 4.1 bookkeeping per token (16-bit = 2 B, masks 1 B, fp32 LSE 4 B)."""
    h, a = model.hidden_size, model.num_heads
    mask = 1.0 if dropout else 0.0
    # K/V are replicated once tp exceeds the KV heads (vLLM/Megatron replicate KV heads).
    kv_heads_per_rank_x_tp = max(model.num_kv_heads, tp)
    if model.attention is AttentionKind.MLA:
        q = a * model.head_dim
        k = a * model.head_dim
        v = a * model.value_head_dim
        # the compressed latents (input of the up-projections) are stored too, not TP-split
        latents = 2.0 * (model.kv_lora_rank + model.qk_rope_head_dim + model.q_lora_rank)
    else:
        q = model.q_dim
        k = v = kv_heads_per_rank_x_tp * model.head_dim
        latents = 0.0
    attn_out = a * model.value_head_dim
    # Attention block: LN input 2h, QKV input 2h, output dropout mask h (replicated);
    # Q 2q, K 2k, V 2v, output-projection input 2*attn_out (head-split).
    replicated = 2.0 * h + 2.0 * h + mask * h + latents
    tp_split = 2.0 * q + 2.0 * k + 2.0 * v + 2.0 * attn_out
    if flash:
        scores = 4.0 * a  # fp32 log-sum-exp per head; probabilities are recomputed in backward
    else:
        # softmax output 2as, dropout mask as, dropout output 2as (per query token)
        scores = (2.0 + 3.0 * mask) * a * seq_len
    # MLP block: LN input 2h, fc1 input 2h, output dropout mask h (replicated).
    replicated += 2.0 * h + 2.0 * h + mask * h
    unsplit = 0.0
    mlp_width = 6.0 if model.gated_mlp else 4.0  # SwiGLU: fc1 out 2*2f + product 2f; GELU: 2f+2f
    if not moe:
        tp_split += mlp_width * model.ffn_hidden_size
    else:
        k_top = model.experts_per_token
        replicated += 4.0 * model.num_experts  # fp32 router probabilities
        # each of the top-k copies: permuted input 2h and expert output 2h (for the weighted
        # combine's backward), gathered over the TP group; the intermediate is ffn-split
        unsplit += k_top * 4.0 * h
        tp_split += k_top * mlp_width * model.moe_ffn_hidden_size
        tp_split += model.num_shared_experts * mlp_width * model.shared_ffn
    return _LayerActivations(replicated=replicated, tp_split=tp_split, unsplit=unsplit,
                             scores=scores)


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"must be an integer >= 1, got {value!r}", key=key)


def _parse_recompute(recompute: Recompute | str) -> Recompute:
    try:
        return Recompute(str(recompute))
    except ValueError:
        raise ConfigError(f"unknown recompute mode '{recompute}'", key="parallelism.recompute",
                          allowed=[r.value for r in Recompute]) from None


def activation_bytes_per_layer(model: ModelSpec, *, seq_len: int, micro_batch: int, tp: int,
                               sequence_parallel: bool, recompute: Recompute | str, cp: int = 1,
                               dtype: DType = DType.BF16, flash_attention: bool = True,
                               dropout: bool | None = None, moe: bool | None = None) -> float:
    """Activation bytes one layer stores for backward, for one microbatch on one rank.

    With flash_attention=False and dropout=True this is Korthikanti et al. Table 2 exactly:
    sbh(34 + 5as/h) at tp=1; sbh(10 + 24/t + 5as/(ht)) with TP; sbh(34/t + 5as/(ht)) with
    TP+SP; selective recompute drops the 5as/(ht) term; full recompute keeps 2sbh (/t with SP);
    selective-op keeps what torchtitan's per-op policy saves (hwmodels.sac).
    `moe` picks the layer kind (default: MoE for MoE models). cp divides the sequence.
    """
    _check_positive(seq_len=seq_len, micro_batch=micro_batch, tp=tp, cp=cp)
    mode = _parse_recompute(recompute)
    dtype = parse_dtype(dtype)
    scale = _activation_scale(dtype)
    tokens = micro_batch * seq_len / cp
    sp_div = tp if sequence_parallel else 1
    if mode is Recompute.FULL:
        return 2.0 * model.hidden_size * tokens * scale / sp_div
    if mode is Recompute.SELECTIVE_OP:  # torchtitan per-op SAC (hwmodels.sac)
        from hwmodels import sac

        return sac.saved_bytes_per_token(model, tp=tp, sequence_parallel=sequence_parallel) \
            * tokens * scale
    is_moe = model.is_moe if moe is None else moe
    if is_moe and not model.is_moe:
        raise ConfigError(f"model '{model.name}' has no MoE layers", key="moe", allowed=[False])
    acts = _layer_activations(model, seq_len=seq_len, moe=is_moe, flash=flash_attention,
                              dropout=model.uses_dropout(dropout), tp=tp)
    per_token = acts.replicated / sp_div + acts.tp_split / tp + acts.unsplit
    if mode is Recompute.NONE:
        per_token += acts.scores / tp
    return per_token * tokens * scale


# ---------------------------------------------------------------------------------------------
# Training memory
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingMemory:
    """Peak memory of one GPU of the chosen pipeline stage, bytes."""

    weights_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    other_bytes: float
    total_bytes: float
    stage: int = 0

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GiB


@dataclass(frozen=True, slots=True, kw_only=True)
class FitResult:
    """Whether a memory footprint fits a device, and by how much it misses or clears."""

    fits: bool
    needed_bytes: float
    available_bytes: float  # device memory less the head-room

    @property
    def margin_bytes(self) -> float:
        """Free bytes left (negative: the shortfall)."""
        return self.available_bytes - self.needed_bytes

    @property
    def shortfall_bytes(self) -> float:
        return max(0.0, -self.margin_bytes)

    def __bool__(self) -> bool:
        return self.fits

    def describe(self) -> str:
        need, have = self.needed_bytes / GiB, self.available_bytes / GiB
        if self.fits:
            return f"fits: needs {need:.1f} GiB of {have:.1f} GiB"
        return (f"does not fit: needs {need:.1f} GiB of {have:.1f} GiB "
                f"(short by {self.shortfall_bytes / GiB:.1f} GiB)")


def fits(memory: TrainingMemory | float, device: DeviceSpec, *,
         headroom: float = DEFAULT_HEADROOM) -> FitResult:
    """Does `memory` (a TrainingMemory or bytes) fit `device` keeping `headroom` of it free?"""
    if not 0 <= headroom < 1:
        raise ConfigError(f"headroom must be in [0, 1), got {headroom}", key="headroom")
    needed = memory.total_bytes if isinstance(memory, TrainingMemory) else float(memory)
    available = device.memory_bytes * (1.0 - headroom)
    return FitResult(fits=needed <= available, needed_bytes=needed, available_bytes=available)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Params:
    """Parameters held by one rank of one stage, by how they shard."""

    dense: float  # non-expert parameters on this rank (after TP split)
    expert: float  # expert parameters on this rank (after EP and TP split)
    largest_layer: float  # the biggest layer on this rank (ZeRO-3 gather buffer)


def _norm_params(model: ModelSpec) -> int:
    return model.hidden_size * (2 if model.norm_bias else 1)


def _replicated_layer_params(model: ModelSpec, *, moe: bool) -> float:
    """Per-layer parameters every TP rank holds in full: norms, router, row-parallel biases."""
    n = 2 * _norm_params(model)
    if model.attention is AttentionKind.MLA:
        n += model.q_lora_rank + model.kv_lora_rank
    if model.qk_norm:
        n += 2 * model.head_dim
    if model.linear_bias:
        n += 2 * model.hidden_size  # attention-output and fc2 biases
    if moe:
        n += model.hidden_size * model.num_experts
    return float(n)


def _expert_layer_params(model: ModelSpec) -> float:
    """Routed-expert parameters of one MoE layer (all experts; same formula as flops.py)."""
    f = model.moe_ffn_hidden_size
    w = (3 if model.gated_mlp else 2) * model.hidden_size * f
    if model.linear_bias:
        w += (2 if model.gated_mlp else 1) * f + model.hidden_size
    return float(model.num_experts * w)


def _plan_stage_layers(model: ModelSpec, parallel: ParallelConfig, stage: int) -> list[int]:
    """Layer indices a training plan's stage holds (hwmodels.parallel.stage_layer_counts:
    even, balanced or explicit split; interleaved: vpp chunks round-robin)."""
    counts = stage_layer_counts(model.num_layers, parallel)
    out: list[int] = []
    for c in range(parallel.vpp):
        out.extend(virtual_stage_layers(counts, c * parallel.pp + stage))
    return out


def _stage_layers(model: ModelSpec, pp: int, vpp: int, stage: int) -> list[int]:
    """Layer indices held by pipeline stage `stage` of a serving split (rounded even split)."""
    chunks = pp * vpp
    per_chunk = model.num_layers / chunks
    out: list[int] = []
    for c in range(vpp):
        chunk = c * pp + stage
        out.extend(range(round(chunk * per_chunk), round((chunk + 1) * per_chunk)))
    return out


def _expert_tp(parallel: ParallelConfig) -> int:
    """Tensor-parallel degree of the routed experts (expert_tp; unset = tp, Megatron's default)."""
    return parallel.tp if parallel.expert_tp is None else parallel.expert_tp


def _stage_params(model: ModelSpec, parallel: ParallelConfig, stage: int) -> _Params:
    p = parallel
    layers = _plan_stage_layers(model, p, stage)
    dense = expert = largest = 0.0
    for idx in layers:
        moe = model.is_moe and idx >= model.first_dense_layers
        replicated = _replicated_layer_params(model, moe=moe)
        total = float(flops.layer_param_count(model, moe=moe))
        routed = _expert_layer_params(model) if moe else 0.0
        layer_dense = replicated + (total - routed - replicated) / p.tp
        layer_expert = routed / (_expert_tp(p) * p.ep)
        dense += layer_dense
        expert += layer_expert
        largest = max(largest, layer_dense + layer_expert)
    h, v = model.hidden_size, model.vocab_size
    if stage == 0:
        dense += v * h / p.tp  # vocab-parallel input embedding
        if model.learned_pos_emb:
            dense += model.max_seq_len * h
    if stage == p.pp - 1:
        dense += _norm_params(model)  # final norm
        # Megatron keeps an output-layer copy on the last stage even when tied (pp > 1)
        if not model.tie_embeddings or p.pp > 1:
            dense += v * h / p.tp
    return _Params(dense=dense, expert=expert, largest_layer=largest)


def _inflight_microbatches(parallel: ParallelConfig, stage: int, m: int) -> float:
    """Microbatches whose activations stage `stage` holds at its peak (in layer-stack units)."""
    p = parallel
    if p.pp == 1:
        return 1.0
    schedule = p.schedule
    if schedule is PipelineSchedule.GPIPE:
        return float(m)
    if schedule is PipelineSchedule.INTERLEAVED:
        # Megatron's interleaved warm-up: 2(pp - i - 1) + (vpp - 1) pp chunk-microbatches, +1
        # in flight; each chunk is 1/vpp of the stage's layers. For i = 0 this is Korthikanti/
        # Narayanan's pp * (1 + (pp - 1)/(pp vpp)).
        chunks = 2 * (p.pp - stage - 1) + (p.vpp - 1) * p.pp + 1
        return min(chunks, m * p.vpp) / p.vpp
    # 1F1B and ZB-H1: stage i holds pp - i microbatches
    return float(min(p.pp - stage, m))


def _training_param_bytes(dtype: DType) -> tuple[float, float, float]:
    """(weight, gradient, optimizer) bytes per parameter for Adam at `dtype`."""
    if dtype in (DType.FP32, DType.TF32):
        return 4.0, 4.0, 8.0  # fp32 weights and grads, Adam m and v
    _activation_scale(dtype)  # rejects int formats
    return 2.0, 4.0, 12.0  # bf16 weights, fp32 main grads, fp32 master + m + v


def _stage_memory(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig,
                  stage: int, flash_attention: bool, dropout: bool | None) -> TrainingMemory:
    p, t = parallel, training
    params = _stage_params(model, p, stage)
    w_b, g_b, o_b = _training_param_bytes(t.dtype)
    if p.zero < 3 and p.grad_reduce_dtype is GradReduceDType.BF16 and w_b == 2.0:
        g_b = 2.0  # Megatron --grad-reduce-in-bf16: the DDP grad buffer is bf16, not fp32
    # Megatron shards over the DP x CP group (same weights); hybrid sharding (zero 3,
    # fsdp_shard_size) over one shard group of it, the other groups holding replicas
    shard_dp = shard_group_size(p)
    dense_shard = shard_dp * p.cp
    # expert-data-parallel group: the stage's tp*cp*dp ranks over expert_tp * ep (Megatron)
    expert_shard = max(1, p.tp * shard_dp * p.cp // (_expert_tp(p) * p.ep))
    shard = (params.dense / dense_shard + params.expert / expert_shard)
    full = params.dense + params.expert
    weights = (shard if p.zero >= 3 else full) * w_b
    grads = (shard if p.zero >= 2 else full) * g_b
    weights_live = grads_live = 0.0
    if p.zero >= 3:
        weights_live, grads_live = _zero3_unsharded_bytes(
            model, p, len(_plan_stage_layers(model, p, stage)), params.largest_layer, w_b)
        weights += weights_live
        grads += grads_live
    optimizer = (shard if p.zero >= 1 else full) * o_b
    if p.offload_optimizer is not OffloadTarget.NONE:
        # ZeRO-Offload (Ren et al., ATC'21, Sec. 4): fp32 master weights, Adam m and v and the
        # fp32 grads live on the host; the GPU keeps its 16-bit grad partition until copied
        optimizer = 0.0
        grads = (shard if p.zero >= 2 else full) * 2.0
    if p.offload_params is not OffloadTarget.NONE and p.zero >= 3:
        # ZeRO-Infinity (SC'21 Sec. 5): the weight and grad partitions live on the host / NVMe;
        # HBM keeps only the gathered working set (computing + prefetched units, live grads)
        weights, grads = weights_live, grads_live

    m = max(1, num_microbatches(t, p))
    inflight = _inflight_microbatches(p, stage, m)
    layers = _plan_stage_layers(model, p, stage)
    common = dict(seq_len=t.seq_len, micro_batch=t.micro_batch, tp=p.tp,
                  sequence_parallel=p.sequence_parallel, cp=p.cp, dtype=t.dtype,
                  flash_attention=flash_attention, dropout=dropout)
    per_kind: dict[bool, float] = {}
    act = 0.0
    for idx in layers:
        moe = model.is_moe and idx >= model.first_dense_layers
        if moe not in per_kind:
            per_kind[moe] = activation_bytes_per_layer(model, recompute=p.recompute, moe=moe,
                                                       **common)
        act += per_kind[moe]
    act *= inflight
    if p.recompute is Recompute.FULL and layers:
        # backward rematerializes one layer's full activations at a time
        act += max(activation_bytes_per_layer(model, recompute=Recompute.NONE, moe=moe, **common)
                   for moe in per_kind)
    elif p.recompute is Recompute.SELECTIVE_OP and layers:
        # backward re-runs one block at a time: its recomputed tensors beside the saved ones
        act += max(activation_bytes_per_layer(model, recompute=Recompute.NONE, moe=moe, **common)
                   - per_kind[moe] for moe in per_kind)
    act += _boundary_activations(model, t, p, stage, inflight, dropout)
    other = FRAMEWORK_OVERHEAD_BYTES + FRAGMENTATION_FRACTION * act
    total = weights + grads + optimizer + act + other
    return TrainingMemory(weights_bytes=weights, grads_bytes=grads, optimizer_bytes=optimizer,
                          activations_bytes=act, other_bytes=other, total_bytes=total, stage=stage)


def _zero3_unsharded_bytes(model: ModelSpec, p: ParallelConfig, n_layers: int,
                           largest_layer: float, w_b: float) -> tuple[float, float]:
    """(gathered 16-bit weights, unsharded grads) a ZeRO-3/FSDP rank holds at its peak.

    v0.1 stacks (nccl, deepspeed-2021) and ideal: the layer computing plus the prefetched next
    one. Scheduled stacks: the unit computing plus `depth` prefetched ones (each a gather unit,
    hwmodels.training.fsdp.unit_plan; FSDP2 one more: the all-gather buffer kept until the next
    copy-out), and in backward the unsharded grads of the units a
    reduce-scatter carries (a DeepSpeed reduce bucket, an FSDP block).
    """
    from hwmodels.training import fsdp

    t = fsdp.traits(p)
    if t.closed_form or t.ideal:
        return min(2, n_layers) * largest_layer * w_b, 0.0
    plan = fsdp.unit_plan(t, p, largest_layer, p.recompute is Recompute.FULL)
    unit = largest_layer * plan.layers_per_unit / plan.units_per_layer
    units = n_layers * plan.units_per_layer / plan.layers_per_unit
    live = min(plan.depth + 1 + (1 if t.copy_out else 0), max(1.0, units))
    return (live * unit * w_b,
            min(plan.reduce_every, max(1.0, units)) * unit * fsdp.grad_wire_bytes(p))


def _boundary_activations(model: ModelSpec, t: TrainingConfig, p: ParallelConfig, stage: int,
                          inflight: float, dropout: bool | None) -> float:
    """Embedding dropout mask on the first stage; final norm, logits input and fp32 logits on
    the last (Korthikanti Sec. 4.3: sbhp/t and 4sbh/t (1 + v/h))."""
    tokens = t.micro_batch * t.seq_len / p.cp
    h, v = model.hidden_size, model.vocab_size
    sp_div = p.tp if p.sequence_parallel else 1
    scale = _activation_scale(t.dtype)
    out = 0.0
    if stage == 0 and model.uses_dropout(dropout):
        out += tokens * h / sp_div * inflight
    if stage == p.pp - 1:
        # the loss backward frees the logits at once, except in GPipe's all-forward phase
        last_inflight = inflight if p.schedule is PipelineSchedule.GPIPE else 1.0
        per_logit = LOSS_PEAK_BYTES_PER_LOGIT[LossImpl(str(t.loss_impl))]
        out += (4.0 * h * scale / sp_div + per_logit * v / p.tp) * tokens * last_inflight
    return out


def training_memory(model: ModelSpec, training: TrainingConfig, parallel: ParallelConfig, *,
                    stage: int | None = None, flash_attention: bool = True,
                    dropout: bool | None = None) -> TrainingMemory:
    """Per-GPU peak memory of `stage` (default: the worst stage) for a training plan."""
    p = parallel
    stage_layer_counts(model.num_layers, p)  # pp*vpp <= layers; an explicit split adds up
    if stage is not None:
        if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < p.pp:
            raise ConfigError(f"stage {stage!r} out of range", key="stage",
                              allowed=f"0..{p.pp - 1}")
        return _stage_memory(model, training, p, stage, flash_attention, dropout)
    stages = (_stage_memory(model, training, p, s, flash_attention, dropout) for s in range(p.pp))
    return max(stages, key=lambda mem: mem.total_bytes)


# ---------------------------------------------------------------------------------------------
# Serving memory
# ---------------------------------------------------------------------------------------------


def _kv_entries_per_layer(model: ModelSpec) -> int:
    """KV elements one token stores per layer (whole model, no TP split)."""
    if model.attention is AttentionKind.MLA:
        return model.kv_lora_rank + model.qk_rope_head_dim  # vLLM's MLA latent cache
    return 2 * model.num_kv_heads * model.head_dim


def kv_bytes_per_token(model: ModelSpec, kv_dtype: DType | str = DType.BF16) -> float:
    """KV-cache bytes one token occupies over all layers of the whole model."""
    return float(model.num_layers * _kv_entries_per_layer(model)
                 * bytes_per_element(parse_dtype(kv_dtype, key="kv_dtype")))


def _kv_bytes_per_token_per_device(model: ModelSpec, kv_dtype: DType, *, tp: int,
                                   pp: int) -> float:
    """KV bytes per token on one device of the most loaded stage (vLLM's per-rank layout)."""
    layers = math.ceil(model.num_layers / pp)
    if model.attention is AttentionKind.MLA:
        entries = _kv_entries_per_layer(model)  # the latent is replicated on every TP rank
    else:
        # vLLM: num_kv_heads per rank = max(1, total // tp) (heads replicated past tp)
        entries = 2 * max(1, model.num_kv_heads // tp) * model.head_dim
    return float(layers * entries * bytes_per_element(kv_dtype))


def _weight_bytes_per_param(dtype: DType) -> float:
    if dtype is DType.INT4:
        return 0.5 + INT4_GROUP_OVERHEAD_BYTES / INT4_GROUP_SIZE
    return bytes_per_element(dtype)


def serving_weight_bytes(model: ModelSpec, dtype: DType | str = DType.BF16, *, tp: int = 1,
                         pp: int = 1, dp_attention: bool = False) -> float:
    """Weight bytes on one device of the most loaded stage; embeddings/norms/router stay bf16,
    int4 includes group-128 scales/zeros (AWQ/GPTQ layout). dp_attention (MoE): everything but
    the routed experts is replicated on each of the tp devices (hwmodels.serving_moe); the
    experts stay split tp ways (E/ep experts x 1/expert_tp, ep x expert_tp = tp), so EP itself
    does not move the weight bytes."""
    _check_positive(tp=tp, pp=pp)
    dtype = parse_dtype(dtype)
    if pp > model.num_layers:
        raise ConfigError(f"pp {pp} exceeds num_layers {model.num_layers}", key="pp")
    linear_b = _weight_bytes_per_param(dtype)
    high_b = 2.0 if dtype is not DType.FP32 else 4.0
    h, v = model.hidden_size, model.vocab_size
    atp = 1 if dp_attention else tp  # TP of everything but the routed experts
    worst = 0.0
    for stage in range(pp):
        total = 0.0
        for idx in _stage_layers(model, pp, 1, stage):
            moe = model.is_moe and idx >= model.first_dense_layers
            replicated = _replicated_layer_params(model, moe=moe)
            linear = float(flops.layer_param_count(model, moe=moe)) - replicated
            if atp == tp:
                total += replicated * high_b + linear / tp * linear_b
            else:
                expert = _expert_layer_params(model) if moe else 0.0
                total += (replicated * high_b + (linear - expert) / atp * linear_b
                          + expert / tp * linear_b)
        if stage == 0:
            total += v * h / atp * high_b
            if model.learned_pos_emb:
                total += model.max_seq_len * h * high_b
        if stage == pp - 1:
            total += _norm_params(model) * high_b
            if not model.tie_embeddings or pp > 1:
                total += v * h / atp * high_b
        worst = max(worst, total)
    return worst


def _profile_activation_bytes(model: ModelSpec, *, tp: int) -> float:
    """Peak torch memory of vLLM's profiling forward beyond weights: the widest transient
    tensors of one layer for VLLM_PROFILE_TOKENS tokens plus fp32 logits for VLLM_PROFILE_SEQS."""
    h = model.hidden_size
    ffn = max(model.ffn_hidden_size,
              model.experts_per_token * model.moe_ffn_hidden_size + model.num_shared_experts
              * model.shared_ffn if model.is_moe else 0)
    width = 3 if model.gated_mlp else 2  # gate_up output (2f) + activation output (f)
    per_token = 2.0 * (4 * h + (model.q_dim + 2 * model.kv_dim) / tp + width * ffn / tp)
    # logits are all-gathered to the full vocabulary; sampler keeps logits + probs in fp32
    logits = VLLM_PROFILE_SEQS * model.vocab_size * 4.0 * 2
    return VLLM_PROFILE_TOKENS * per_token + logits


@dataclass(frozen=True, slots=True, kw_only=True)
class KVCapacity:
    """KV cache of one replica: bytes per device, tokens and blocks the replica holds."""

    bytes: float
    tokens: int
    blocks: int


def kv_cache_capacity(model: ModelSpec, device: DeviceSpec, *, tp: int = 1, pp: int = 1,
                      dtype: DType | str = DType.BF16, kv_dtype: DType | str | None = None,
                      gpu_memory_utilization: float = 0.9, block_size: int = 16,
                      activation_reserve_bytes: float | None = None,
                      non_torch_bytes: float | None = None,
                      dp_attention: bool = False) -> KVCapacity:
    """KV blocks vLLM would allocate: util x memory - weights - profile peak - non-torch.
    dp_attention (MoE, hwmodels.serving_moe): each of the tp devices keeps its own sequences'
    KV with every KV head (the layout of tp 1), so the replica holds tp x one device's blocks;
    bytes stay per device."""
    _check_positive(tp=tp, pp=pp, block_size=block_size)
    if not 0 < gpu_memory_utilization <= 1:
        raise ConfigError(f"must be in (0, 1], got {gpu_memory_utilization}",
                          key="gpu_memory_utilization")
    dtype = parse_dtype(dtype)
    kv = kv_cache_dtype(dtype, kv_dtype)
    if kv in (DType.INT4, DType.TF32):
        raise ConfigError(f"{kv} KV cache is not supported", key="kv_dtype",
                          allowed=["bf16", "fp16", "fp8", "int8", "fp32"])
    budget = gpu_memory_utilization * device.memory_bytes
    weights = serving_weight_bytes(model, dtype, tp=tp, pp=pp, dp_attention=dp_attention)
    atp, dp = (1, tp) if dp_attention else (tp, 1)
    if weights > budget:
        raise ConfigError(
            f"model '{model.name}' does not fit: needs {weights / GiB:.1f} GiB of weights per "
            f"device of {budget / GiB:.1f} GiB ({gpu_memory_utilization:g} x "
            f"{device.memory_bytes / GiB:.1f} GiB on {device.name}, tp={tp}, pp={pp})",
            key="tp", allowed="a larger tp/pp, a smaller dtype or a bigger device")
    activations = (_profile_activation_bytes(model, tp=atp) if activation_reserve_bytes is None
                   else float(activation_reserve_bytes))
    if non_torch_bytes is None:
        non_torch_bytes = VLLM_NON_TORCH_BYTES_TP1 if tp * pp == 1 else VLLM_NON_TORCH_BYTES_TP
    free = budget - weights - activations - non_torch_bytes
    per_block = block_size * _kv_bytes_per_token_per_device(model, kv, tp=atp, pp=pp)
    blocks = int(free // per_block) if free > 0 else 0
    if blocks < 1:
        raise ConfigError(
            f"model '{model.name}' does not fit: weights {weights / GiB:.1f} GiB + activations "
            f"{activations / GiB:.1f} GiB + non-torch {non_torch_bytes / GiB:.1f} GiB leave no "
            f"KV block of {budget / GiB:.1f} GiB on {device.name}", key="gpu_memory_utilization",
            allowed="a larger tp/pp, a smaller dtype or a bigger device")
    return KVCapacity(bytes=blocks * per_block, tokens=dp * blocks * block_size,
                      blocks=dp * blocks)


def serving_step_fit(model: ModelSpec, device: DeviceSpec, *, tp: int = 1, pp: int = 1,
                     dtype: DType | str = DType.BF16, kv_dtype: DType | str | None = None,
                     batch_tokens: int = 0, batch_seqs: int = 0, kv_tokens: int = 0,
                     headroom: float = 0.0) -> FitResult:
    """Does one serving batch step fit one device of the most loaded stage?

    needed = weights (serving_weight_bytes) + KV of the `kv_tokens` the batch holds (prompt
    tokens being prefilled + every decoding sequence's context) + transient activations of the
    `batch_tokens` processed this step (the per-token widths of vLLM's profiling forward) and
    the fp32 logits + probs of the `batch_seqs` sampled + vLLM's non-torch allowance. The minimum a
    step needs, so a step that does not fit here cannot run at all on this replica.
    """
    _check_positive(tp=tp, pp=pp)
    for key, value in (("batch_tokens", batch_tokens), ("batch_seqs", batch_seqs),
                       ("kv_tokens", kv_tokens)):
        if value < 0:
            raise ConfigError(f"must be >= 0, got {value}", key=key)
    dtype = parse_dtype(dtype)
    kv = kv_cache_dtype(dtype, kv_dtype)
    weights = serving_weight_bytes(model, dtype, tp=tp, pp=pp)
    kv_bytes = kv_tokens * _kv_bytes_per_token_per_device(model, kv, tp=tp, pp=pp)
    logits_per_seq = model.vocab_size * 4.0 * 2  # fp32 logits + probs, as in the profile run
    per_token = ((_profile_activation_bytes(model, tp=tp) - VLLM_PROFILE_SEQS * logits_per_seq)
                 / VLLM_PROFILE_TOKENS)
    activations = batch_tokens * per_token + batch_seqs * logits_per_seq
    non_torch = VLLM_NON_TORCH_BYTES_TP1 if tp * pp == 1 else VLLM_NON_TORCH_BYTES_TP
    return fits(weights + kv_bytes + activations + non_torch, device, headroom=headroom)
