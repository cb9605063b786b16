"""Compute time of one transformer layer (and the embedding/logits ends) on one rank of a TP group.

Times are compute only: the training simulator adds the TP/SP/CP/EP collectives from
hwmodels.collectives. A layer is a list of GEMMs (shapes per rank), flash attention on
heads/tp, and memory-bound kernels (norms, bias-dropout-add, rotary, activation, MoE permutes),
each tagged with its ElementwiseKind so a profile's per-kind curve times it (hwmodels.ops).
Backward: every GEMM becomes a dgrad and a wgrad GEMM of the same FLOPs (2x), flash attention
backward does 2.5x the forward FLOPs, memory kernels move ~2x bytes (same kinds).
`LayerCost.flops` counts the FLOPs actually executed on the rank (causal attention halved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwmodels import attention_impl as attn_impl
from hwmodels import ops, sac
from hwmodels.dtypes import DType, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.kernel_stack import host_wait_s, kernels_per_op
from hwmodels.parallel import AttentionImpl, CPMode, KernelStack, LossImpl
from hwmodels.profile import DeviceProfile, ElementwiseKind
from hwmodels.specs import AttentionKind, DeviceSpec, ModelSpec

ProfileArg = DeviceProfile | str | Path | None
# One memory-bound kernel: (kernel family, bytes moved).
Kernel = tuple[ElementwiseKind, float]
NORM, ROPE, ACT = ElementwiseKind.NORM, ElementwiseKind.ROPE, ElementwiseKind.ACTIVATION
RESIDUAL, EMBED = ElementwiseKind.RESIDUAL, ElementwiseKind.EMBEDDING
SOFTMAX, COPY = ElementwiseKind.SOFTMAX, ElementwiseKind.COPY

# Dropout masks are stored as 1 byte per element (Megatron's fused bias-dropout-add).
DROPOUT_MASK_BYTES = 1.0
# Backward of a memory-bound kernel reads the saved input and the output grad and writes the input
# grad (LayerNorm backward also reduces weight grads): ~2x the forward traffic (Korthikanti et al.
# 2022, Sec. 4; Megatron fused kernels).
ELEMENTWISE_BACKWARD_RATIO = 2.0
# Vocab-parallel cross entropy (Megatron): read bf16 logits, write and re-read the fp32 softmax.
CROSS_ENTROPY_BYTES_PER_LOGIT = 2.0 + 4.0 + 4.0
# Backward of cross entropy: read the fp32 softmax, write the bf16 logit grad.
CROSS_ENTROPY_BWD_BYTES_PER_LOGIT = 4.0 + 2.0
# PyTorch eager F.cross_entropy(logits.float(), labels) (LossImpl.EAGER_FP32), one kernel each:
# forward: the fp32 cast (read 2, write 4), log_softmax (read 4, write 4); nll_loss reads one
# logit per token (negligible). Backward: nll_loss_backward zero-fills a dense fp32 grad (write
# 4; its scatter is one value per token), log_softmax_backward (read grad 4 + saved output 4,
# write 4), the cast back to bf16 (read 4, write 2).
EAGER_CE_FWD_BYTES_PER_LOGIT = ((2.0 + 4.0), (4.0 + 4.0))
EAGER_CE_BWD_BYTES_PER_LOGIT = (4.0, (4.0 + 4.0 + 4.0), (4.0 + 2.0))
# Position embeddings: models with these types use ALiBi biases instead of rotary embeddings.
ALIBI_MODEL_TYPES = frozenset({"bloom", "mpt"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerCost:
    """Seconds of one layer's pass on one rank, by kind; flops are those executed on the rank."""

    gemm_s: float
    attention_s: float
    elementwise_s: float
    total_s: float
    flops: float
    weight_grad_s: float = 0.0  # backward only: the wgrad GEMMs inside gemm_s (zero-bubble W)
    # kernels launched per part; each one's fixed per-kernel overhead (launch gap and tail,
    # ops.kernel_overhead_s) is inside gemm_s / attention_s / elementwise_s
    gemm_kernels: int = 0
    attention_kernels: int = 0
    elementwise_kernels: int = 0
    kernel_overhead_s: float = 0.0
    # GPU idle while the host issues the pass's launches (kernel_stack.host_wait_s), in total_s
    host_wait_s: float = 0.0

    @property
    def input_grad_s(self) -> float:
        """Backward only: everything but the weight-gradient GEMMs (zero-bubble B pass)."""
        return self.total_s - self.weight_grad_s

    @property
    def kernels(self) -> int:
        """Kernels this pass launches."""
        return self.gemm_kernels + self.attention_kernels + self.elementwise_kernels

    def terms(self) -> dict[str, float]:
        """total_s split into GEMM, attention and memory-bound work net of the per-kernel
        overhead, and that overhead plus any host-bound wait (launch_s); they sum to total_s."""
        o = self.kernel_overhead_s
        return {"gemm_s": self.gemm_s - o * self.gemm_kernels,
                "attention_s": self.attention_s - o * self.attention_kernels,
                "elementwise_s": self.elementwise_s - o * self.elementwise_kernels,
                "launch_s": o * self.kernels + self.host_wait_s}


@dataclass(frozen=True, slots=True)
class Gemm:
    """One matmul of a layer on one rank: `groups` x [m, k] @ [k, n] (groups > 1: MoE experts)."""

    m: float
    n: float
    k: float
    groups: float = 1.0

    @property
    def flops(self) -> float:
        return 2.0 * self.groups * self.m * self.n * self.k


def gemm_kernels(gemms: list[Gemm]) -> int:
    """Kernels a GEMM list launches (ops charges no kernel for an empty GEMM)."""
    return sum(1 for g in gemms if g.m and g.n and g.k and g.groups)


def elementwise_kernels(kernels: list[Kernel]) -> int:
    """Kernels a memory-bound list launches (ops charges none for zero bytes)."""
    return sum(1 for _, b in kernels if b > 0)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


def _int(value: object, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=key)
    return value


def check_tp(model: ModelSpec, tp: int) -> None:
    """ConfigError unless tp splits the heads (and the KV heads, or replicates them)."""
    _int(tp, "tp")
    if model.num_heads % tp:
        raise ConfigError(f"num_heads {model.num_heads} of '{model.name}' not divisible by "
                          f"tp {tp}", key="tp",
                          allowed=[d for d in range(1, model.num_heads + 1)
                                   if model.num_heads % d == 0])
    if model.attention is AttentionKind.MHA and model.num_kv_heads % tp and \
            tp % model.num_kv_heads:
        raise ConfigError(f"num_kv_heads {model.num_kv_heads} and tp {tp}: one must divide "
                          "the other", key="tp")


def kv_heads_per_rank(model: ModelSpec, tp: int) -> float:
    """KV heads a TP rank holds: kv_heads/tp, at least one (replicated when tp > kv_heads)."""
    return max(model.num_kv_heads / tp, 1.0)


def uses_rope(model: ModelSpec) -> bool:
    """Rotary embeddings unless the model has learned absolute positions or ALiBi."""
    return not model.learned_pos_emb and model.model_type not in ALIBI_MODEL_TYPES


def attention_gemms(model: ModelSpec, tokens: float, tp: int) -> list[Gemm]:
    """Projection GEMMs of one attention block on one TP rank (GQA fused QKV, or MLA)."""
    h, heads = model.hidden_size, model.num_heads / tp
    if model.attention is AttentionKind.MLA:
        out: list[Gemm] = []
        if model.q_lora_rank:
            out.append(Gemm(tokens, model.q_lora_rank, h))  # q down (replicated)
            out.append(Gemm(tokens, heads * model.head_dim, model.q_lora_rank))
        else:
            out.append(Gemm(tokens, heads * model.head_dim, h))
        out.append(Gemm(tokens, model.kv_lora_rank + model.qk_rope_head_dim, h))  # kv down
        # kv up; in decode vLLM absorbs it into q/o, which reads the same weights, same FLOPs
        out.append(Gemm(tokens, heads * (model.qk_nope_head_dim + model.value_head_dim),
                        model.kv_lora_rank))
        out.append(Gemm(tokens, h, heads * model.value_head_dim))
        return out
    qkv = (heads + 2 * kv_heads_per_rank(model, tp)) * model.head_dim
    return [Gemm(tokens, qkv, h), Gemm(tokens, h, heads * model.head_dim)]


def mlp_gemms(model: ModelSpec, tokens: float, ffn: float, tp: int, groups: float = 1.0
              ) -> list[Gemm]:
    """Up(+gate, fused) and down GEMMs of an MLP of width ffn split over tp."""
    if tokens == 0 or ffn == 0 or groups == 0:
        return []
    width = ffn / tp
    up = 2 * width if model.gated_mlp else width
    return [Gemm(tokens, up, model.hidden_size, groups),
            Gemm(tokens, model.hidden_size, width, groups)]


def moe_routing(model: ModelSpec, tokens: float, *, ep: int = 1,
                imbalance: float = 1.0) -> tuple[float, float]:
    """(local experts that receive tokens, rows per such expert on the busiest rank).

    Each EP rank brings `tokens`; their tokens*ep*top_k assignments spread uniformly over the
    experts, so a rank's num_experts/ep experts see tokens*top_k rows, times `imbalance` (the
    busiest EP rank's load over the mean, >= 1; hwmodels.training.moe.moe_load) on the busiest
    rank, which every rank of the EP group waits for at the combine. With few tokens not every
    expert is hit: the expected number of distinct experts chosen is E*(1 - (1 - k/E)^(tokens*ep))
    (each token picks k of E), which is what makes small-batch MoE decode read fewer expert
    weights.
    """
    if not imbalance >= 1.0:
        raise ConfigError(f"must be >= 1, got {imbalance!r}", key="moe_imbalance")
    e, k = model.num_experts, model.experts_per_token
    local = e / ep
    if tokens <= 0:
        return 0.0, 0.0
    active = local * (1.0 - (1.0 - k / e) ** (tokens * ep))
    rows = tokens * k / active * imbalance
    return active, rows


def moe_gemms(model: ModelSpec, tokens: float, tp: int, *, ep: int = 1,
              imbalance: float = 1.0, expert_tp: int | None = None) -> list[Gemm]:
    """Router, routed experts (one grouped GEMM per matrix) and shared experts on one rank.

    `tokens` reach the routed experts, split over `expert_tp` (None: tp; Megatron
    --expert-tensor-parallel-size); the router and shared experts stay on the attention's tp.
    """
    out = [Gemm(tokens, model.num_experts, model.hidden_size)]
    active, rows = moe_routing(model, tokens, ep=ep, imbalance=imbalance)
    out += mlp_gemms(model, rows, model.moe_ffn_hidden_size,
                     tp if expert_tp is None else expert_tp, groups=active)
    if model.num_shared_experts:
        out += mlp_gemms(model, tokens, model.num_shared_experts * model.shared_ffn, tp)
    return out


def layer_gemms(model: ModelSpec, tokens: float, tp: int, *, moe: bool, ep: int = 1,
                imbalance: float = 1.0) -> list[Gemm]:
    """All GEMMs of one layer's forward on one rank for `tokens` tokens."""
    gemms = attention_gemms(model, tokens, tp)
    if moe:
        gemms += moe_gemms(model, tokens, tp, ep=ep, imbalance=imbalance)
    else:
        gemms += mlp_gemms(model, tokens, model.ffn_hidden_size, tp)
    return gemms


def gemms_time(device: DeviceSpec, gemms: list[Gemm], dtype: DType,
               profile: DeviceProfile) -> float:
    """Forward time of a list of GEMMs (grouped ones as one launch)."""
    total = 0.0
    for g in gemms:
        if g.groups == 1.0:
            total += ops.gemm_time(device, g.m, g.n, g.k, dtype, profile)
        else:
            total += ops.grouped_gemm_time(device, g.groups, g.m, g.n, g.k, dtype, profile)
    return total


def _gemms_backward(device: DeviceSpec, gemms: list[Gemm], dtype: DType,
                    profile: DeviceProfile) -> tuple[float, float]:
    """(dgrad seconds, wgrad seconds): dX[m,k] = dY[m,n] W^T, dW[k,n] = X^T[k,m] dY[m,n]."""
    dgrad = gemms_time(device, [Gemm(g.m, g.k, g.n, g.groups) for g in gemms], dtype, profile)
    wgrad = gemms_time(device, [Gemm(g.k, g.n, g.m, g.groups) for g in gemms], dtype, profile)
    return dgrad, wgrad


def activation_elt_bytes(dtype: DType) -> float:
    """Bytes of one activation element: fp32 for fp32/tf32 runs, else 16-bit."""
    return 4.0 if dtype in (DType.FP32, DType.TF32) else 2.0


def layer_elementwise(model: ModelSpec, tokens: float, tp: int, *, moe: bool,
                      sequence_parallel: bool, dropout: bool, dtype: DType,
                      ep: int = 1, imbalance: float = 1.0,
                      kernels: KernelStack | str | None = None) -> list[Kernel]:
    """(kind, bytes moved) of each memory-bound forward kernel of one layer on one rank.

    Norms and bias-dropout-add act on the full hidden state, replicated on every TP rank unless
    sequence parallel splits them by tp; rotary and the activation act on tp-split tensors;
    MoE dispatch/combine permutes are gathers (copies). kernels=eager splits each fused op into
    the kernels PyTorch eager launches for it (hwmodels.kernel_stack), each streaming the op's
    tensor; None / fused / compiled: one kernel per op.
    """
    out = _fused_elementwise(model, tokens, tp, moe=moe, sequence_parallel=sequence_parallel,
                             dropout=dropout, dtype=dtype, imbalance=imbalance)
    if kernels is None or KernelStack(str(kernels)) is not KernelStack.EAGER:
        return out
    return [k for kind, b in out for k in [(kind, b)] * kernels_per_op(
        kernels, kind, gated_mlp=model.gated_mlp, dropout=dropout)]


def _fused_elementwise(model: ModelSpec, tokens: float, tp: int, *, moe: bool,
                       sequence_parallel: bool, dropout: bool, dtype: DType,
                       imbalance: float) -> list[Kernel]:
    """One kernel per memory-bound op (Megatron / TE fused kernels)."""
    elt = activation_elt_bytes(dtype)
    hidden = tokens * model.hidden_size * elt / (tp if sequence_parallel else 1)
    residual = (3.0 + (DROPOUT_MASK_BYTES / elt if dropout else 0.0)) * hidden
    act_rw = 3.0 if model.gated_mlp else 2.0  # gated: read gate and up, write product
    out = [(NORM, 2.0 * hidden), (RESIDUAL, residual), (NORM, 2.0 * hidden),
           (RESIDUAL, residual)]  # norm, bda, norm, bda
    if uses_rope(model):
        heads = model.num_heads / tp
        if model.attention is AttentionKind.MLA:
            width = (heads + 1) * model.qk_rope_head_dim
        else:
            width = (heads + kv_heads_per_rank(model, tp)) * model.head_dim
        out.append((ROPE, 2.0 * tokens * width * elt))
    if moe:
        routed = tokens * model.experts_per_token * imbalance
        act = act_rw * routed * model.moe_ffn_hidden_size / tp * elt
        if model.num_shared_experts:
            act += act_rw * tokens * model.num_shared_experts * model.shared_ffn / tp * elt
        out.append((ACT, act))
        permute = 2.0 * routed * model.hidden_size * elt
        out += [(COPY, permute), (COPY, permute)]  # dispatch permute and combine un-permute
    else:
        out.append((ACT, act_rw * tokens * model.ffn_hidden_size / tp * elt))
    return out


def layer_elementwise_bytes(model: ModelSpec, tokens: float, tp: int, *, moe: bool,
                            sequence_parallel: bool, dropout: bool, dtype: DType,
                            ep: int = 1, imbalance: float = 1.0) -> list[float]:
    """Bytes of each kernel of layer_elementwise (same order), without the kinds."""
    return [b for _, b in layer_elementwise(
        model, tokens, tp, moe=moe, sequence_parallel=sequence_parallel, dropout=dropout,
        dtype=dtype, ep=ep, imbalance=imbalance)]


def elementwise_time(device: DeviceSpec, kernels: list[Kernel], profile: DeviceProfile,
                     scale: float = 1.0) -> float:
    """Seconds of memory-bound kernels on a resolved profile, each on its kind's curve;
    scale multiplies every kernel's bytes (ELEMENTWISE_BACKWARD_RATIO for backward)."""
    return sum(ops._memory(device, profile, b * scale, kind) for kind, b in kernels if b > 0)


# ---------------------------------------------------------------------------------------------
# Layer forward / backward
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Setup:
    tokens: float
    seq_q: int
    gemms: list[Gemm]
    elementwise: list[Kernel]
    profile: DeviceProfile
    dtype: DType


def _setup(model: ModelSpec, device: DeviceSpec, *, micro_batch: int, seq_len: int, tp: int,
           cp: int, sequence_parallel: bool, dtype: DType | str, moe: bool, ep: int,
           moe_imbalance: float, profile: ProfileArg, dropout: bool | None,
           cp_mode: CPMode | str, kernels: KernelStack | str | None = None) -> _Setup:
    _int(micro_batch, "micro_batch")
    _int(seq_len, "seq_len")
    _int(cp, "cp")
    _int(ep, "ep")
    check_tp(model, tp)
    dt = parse_dtype(dtype)
    if moe and not model.is_moe:
        raise ConfigError(f"model '{model.name}' has no MoE layers", key="moe", allowed=[False])
    if ep > 1 and not moe:
        raise ConfigError("ep > 1 applies to MoE layers only", key="ep")
    if moe and model.num_experts % ep:
        raise ConfigError(f"ep {ep} does not divide num_experts {model.num_experts}", key="ep")
    if not (isinstance(moe_imbalance, (int, float)) and moe_imbalance >= 1.0):
        raise ConfigError(f"must be >= 1, got {moe_imbalance!r}", key="moe_imbalance")
    mode = _cp_mode(cp_mode)
    if seq_len % cp:
        raise ConfigError(f"seq_len {seq_len} not divisible by cp {cp}", key="cp")
    if mode is CPMode.ULYSSES and model.num_heads % (tp * cp):
        raise ConfigError(f"ulysses needs num_heads divisible by tp*cp = {tp * cp}", key="cp")
    tokens = float(micro_batch * seq_len // cp)
    prof = ops.resolve_profile(device, profile)
    return _Setup(
        tokens=tokens,
        seq_q=seq_len // cp,
        gemms=layer_gemms(model, tokens, tp, moe=moe, ep=ep, imbalance=moe_imbalance),
        elementwise=layer_elementwise(
            model, tokens, tp, moe=moe, sequence_parallel=sequence_parallel,
            dropout=model.uses_dropout(dropout), dtype=dt, ep=ep, imbalance=moe_imbalance,
            kernels=kernels),
        profile=prof,
        dtype=dt,
    )


def _cp_mode(value: CPMode | str) -> CPMode:
    try:
        return CPMode(str(value))
    except ValueError:
        raise ConfigError(f"unknown cp_mode '{value}'", key="cp_mode",
                          allowed=[m.value for m in CPMode]) from None


def _attention(model: ModelSpec, device: DeviceSpec, s: _Setup, *, micro_batch: int,
               seq_len: int, tp: int, cp: int, cp_mode: CPMode | str, backward: bool,
               flash: bool, dropout: bool,
               impl: AttentionImpl | None = None) -> tuple[float, float, int]:
    """(seconds, flops, kernels) of causal attention on one rank.

    Flash: ring CP runs cp kernel calls per pass, each a causal-sized block of seq_len/cp queries
    and keys (load-balanced zig-zag split: every rank does 1/cp of the causal work); Ulysses runs
    heads/(tp*cp) over the full sequence. Unfused (flash=False or impl unfused, Megatron before
    FlashAttention): two batched GEMMs over the full s x s square plus softmax and dropout on the
    score tensor. impl None: the profile's attention curve (as before issue 15); a resolved
    kernel (hwmodels.attention_impl) with a published table: that kernel's efficiency.
    """
    mode = _cp_mode(cp_mode)
    heads_div = tp * cp if (mode is CPMode.ULYSSES and cp > 1) else tp
    calls, q = (1, seq_len) if heads_div != tp or cp == 1 else (cp, seq_len // cp)
    heads = model.num_heads // heads_div
    dqk, dv = model.head_dim, model.value_head_dim
    if not flash or impl is AttentionImpl.UNFUSED:
        return _unfused_attention(device, s, batch=micro_batch * heads * calls, q=q, dqk=dqk,
                                  dv=dv, backward=backward, dropout=dropout)
    kv_heads = (heads if model.attention is AttentionKind.MLA
                else max(model.num_kv_heads // heads_div, 1))
    pairs = micro_batch * ops.causal_pairs(q, q) * calls
    flops = 2.0 * pairs * heads * (dqk + dv)
    if backward:
        flops *= ops.ATTN_BACKWARD_FLOPS_RATIO
    # a measured attention curve measured FA2 (hwmodels.attention_impl): it wins for FA2
    profile_wins = impl is AttentionImpl.FA2 and "attention_prefill" in s.profile.measured
    if impl is not None and attn_impl.has_table(impl, device.name) and not profile_wins:
        one = ops.attention_kernel_time(
            device, s.profile, impl=impl, batch=micro_batch, q_len=q, num_heads=heads,
            num_kv_heads=kv_heads, head_dim=dqk, v_head_dim=dv, dtype=s.dtype,
            backward=backward)
    else:
        one = ops.attention_prefill_time(
            device, batch=micro_batch, q_len=q, kv_len=q, num_heads=heads,
            num_kv_heads=kv_heads, head_dim=dqk, v_head_dim=dv, dtype=s.dtype, causal=True,
            backward=backward, profile=s.profile)
    return calls * one, flops, calls if one > 0 else 0


def _unfused_attention(device: DeviceSpec, s: _Setup, *, batch: float, q: int, dqk: int, dv: int,
                       backward: bool, dropout: bool) -> tuple[float, float, int]:
    """Megatron's pre-flash attention: baddbmm QK^T, fused scale-mask-softmax, dropout, bmm PV.

    Scores are materialized (batch x q x q, 16-bit): softmax reads and writes them, dropout reads
    them and writes probs plus a 1-byte mask (Korthikanti et al. 2022, Sec. 4.1 accounting).
    """
    gemms = [Gemm(q, q, dqk, batch), Gemm(q, dv, q, batch)]
    scores = batch * q * q * activation_elt_bytes(s.dtype)
    mask = batch * q * q * DROPOUT_MASK_BYTES
    if backward:
        dgrad, wgrad = _gemms_backward(device, gemms, s.dtype, s.profile)
        sizes = [(SOFTMAX, 3.0 * scores)] + ([(SOFTMAX, 2.0 * scores + mask)] if dropout else [])
        elt = elementwise_time(device, sizes, s.profile)
        n = 2 * gemm_kernels(gemms) + elementwise_kernels(sizes)
        return dgrad + wgrad + elt, 2.0 * sum(g.flops for g in gemms), n
    sizes = [(SOFTMAX, 2.0 * scores)] + ([(SOFTMAX, 2.0 * scores + mask)] if dropout else [])
    t = gemms_time(device, gemms, s.dtype, s.profile) + elementwise_time(device, sizes, s.profile)
    return t, sum(g.flops for g in gemms), gemm_kernels(gemms) + elementwise_kernels(sizes)


def _impl(model: ModelSpec, device: DeviceSpec, attention_impl: AttentionImpl | str | None,
          kernels: KernelStack | str | None, flash: bool) -> AttentionImpl | None:
    """The attention kernel of a layer call (None: the legacy profile-curve path)."""
    if attention_impl is None:
        return None
    return attn_impl.resolve(attention_impl, device.name,
                             KernelStack.FUSED if kernels is None else kernels, flash)


def layer_forward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int, seq_len: int,
                       tp: int, cp: int = 1, sequence_parallel: bool = False,
                       dtype: DType | str = DType.BF16, moe: bool = False, ep: int = 1,
                       moe_imbalance: float = 1.0, profile: ProfileArg = None,
                       dropout: bool | None = None, cp_mode: CPMode | str = CPMode.RING,
                       flash: bool = True, attention_impl: AttentionImpl | str | None = None,
                       kernels: KernelStack | str | None = None) -> LayerCost:
    """Forward compute of one transformer layer on one rank (no communication).

    attention_impl / kernels (TrainingConfig fields): the attention kernel and the kernel stack;
    None keeps the profile's attention curve and one kernel per memory-bound op."""
    s = _setup(model, device, micro_batch=micro_batch, seq_len=seq_len, tp=tp, cp=cp,
               sequence_parallel=sequence_parallel, dtype=dtype, moe=moe, ep=ep,
               moe_imbalance=moe_imbalance, profile=profile, dropout=dropout, cp_mode=cp_mode,
               kernels=kernels)
    impl = _impl(model, device, attention_impl, kernels, flash)
    gemm_s = gemms_time(device, s.gemms, s.dtype, s.profile)
    attn_s, attn_flops, attn_k = _attention(
        model, device, s, micro_batch=micro_batch, seq_len=seq_len, tp=tp, cp=cp,
        cp_mode=cp_mode, backward=False, flash=flash, dropout=model.uses_dropout(dropout),
        impl=impl)
    elt_s = elementwise_time(device, s.elementwise, s.profile)
    n = gemm_kernels(s.gemms) + attn_k + elementwise_kernels(s.elementwise)
    wait = host_wait_s(n, gemm_s + attn_s + elt_s) if kernels is not None else 0.0
    return LayerCost(gemm_s=gemm_s, attention_s=attn_s, elementwise_s=elt_s,
                     total_s=gemm_s + attn_s + elt_s + wait,
                     flops=sum(g.flops for g in s.gemms) + attn_flops,
                     gemm_kernels=gemm_kernels(s.gemms), attention_kernels=attn_k,
                     elementwise_kernels=elementwise_kernels(s.elementwise),
                     kernel_overhead_s=s.profile.kernel_overhead_s or 0.0, host_wait_s=wait)


def layer_backward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int, seq_len: int,
                        tp: int, cp: int = 1, sequence_parallel: bool = False,
                        dtype: DType | str = DType.BF16, moe: bool = False, ep: int = 1,
                        moe_imbalance: float = 1.0, profile: ProfileArg = None,
                        dropout: bool | None = None, cp_mode: CPMode | str = CPMode.RING,
                        flash: bool = True, attention_impl: AttentionImpl | str | None = None,
                        kernels: KernelStack | str | None = None) -> LayerCost:
    """Backward compute of one layer on one rank: dgrad + wgrad GEMMs, flash-attention backward,
    ~2x elementwise traffic. weight_grad_s is the wgrad part (deferrable in zero-bubble)."""
    s = _setup(model, device, micro_batch=micro_batch, seq_len=seq_len, tp=tp, cp=cp,
               sequence_parallel=sequence_parallel, dtype=dtype, moe=moe, ep=ep,
               moe_imbalance=moe_imbalance, profile=profile, dropout=dropout, cp_mode=cp_mode,
               kernels=kernels)
    impl = _impl(model, device, attention_impl, kernels, flash)
    dgrad_s, wgrad_s = _gemms_backward(device, s.gemms, s.dtype, s.profile)
    attn_s, attn_flops, attn_k = _attention(
        model, device, s, micro_batch=micro_batch, seq_len=seq_len, tp=tp, cp=cp,
        cp_mode=cp_mode, backward=True, flash=flash, dropout=model.uses_dropout(dropout),
        impl=impl)
    elt_s = elementwise_time(device, s.elementwise, s.profile, ELEMENTWISE_BACKWARD_RATIO)
    gemm_s = dgrad_s + wgrad_s
    n = 2 * gemm_kernels(s.gemms) + attn_k + elementwise_kernels(s.elementwise)
    wait = host_wait_s(n, gemm_s + attn_s + elt_s) if kernels is not None else 0.0
    return LayerCost(gemm_s=gemm_s, attention_s=attn_s, elementwise_s=elt_s,
                     total_s=gemm_s + attn_s + elt_s + wait,
                     flops=2.0 * sum(g.flops for g in s.gemms) + attn_flops,
                     weight_grad_s=wgrad_s, gemm_kernels=2 * gemm_kernels(s.gemms),
                     attention_kernels=attn_k,
                     elementwise_kernels=elementwise_kernels(s.elementwise),
                     kernel_overhead_s=s.profile.kernel_overhead_s or 0.0, host_wait_s=wait)


def layer_weight_grad_time(model: ModelSpec, device: DeviceSpec, **kwargs: object) -> float:
    """Seconds of the weight-gradient GEMMs alone (zero-bubble schedules' W pass)."""
    return layer_backward_time(model, device, **kwargs).weight_grad_s  # type: ignore[arg-type]


def layer_op_sac_recompute_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int,
                                seq_len: int, tp: int, cp: int = 1,
                                sequence_parallel: bool = False,
                                dtype: DType | str = DType.BF16, moe: bool = False, ep: int = 1,
                                moe_imbalance: float = 1.0, profile: ProfileArg = None,
                                dropout: bool | None = None,
                                cp_mode: CPMode | str = CPMode.RING, flash: bool = True,
                                attention_impl: AttentionImpl | str | None = None,
                                kernels: KernelStack | str | None = None) -> LayerCost:
    """Forward work backward re-runs under per-op selective AC (hwmodels.sac): the recomputed
    matmuls and every memory-bound op of the forward; the attention kernel's output is saved.
    (attention_impl and flash do not enter: no attention kernel is re-run.)"""
    del attention_impl, flash
    s = _setup(model, device, micro_batch=micro_batch, seq_len=seq_len, tp=tp, cp=cp,
               sequence_parallel=sequence_parallel, dtype=dtype, moe=moe, ep=ep,
               moe_imbalance=moe_imbalance, profile=profile, dropout=dropout, cp_mode=cp_mode,
               kernels=kernels)
    gemms = [Gemm(s.tokens, m.n, m.k) for m in sac.recomputed_matmuls(model, tp)]
    gemm_s = gemms_time(device, gemms, s.dtype, s.profile)
    elt_s = elementwise_time(device, s.elementwise, s.profile)
    n = gemm_kernels(gemms) + elementwise_kernels(s.elementwise)
    wait = host_wait_s(n, gemm_s + elt_s) if kernels is not None else 0.0
    return LayerCost(gemm_s=gemm_s, attention_s=0.0, elementwise_s=elt_s,
                     total_s=gemm_s + elt_s + wait, flops=sum(g.flops for g in gemms),
                     gemm_kernels=gemm_kernels(gemms),
                     elementwise_kernels=elementwise_kernels(s.elementwise),
                     kernel_overhead_s=s.profile.kernel_overhead_s or 0.0, host_wait_s=wait)


# ---------------------------------------------------------------------------------------------
# Embedding and logits
# ---------------------------------------------------------------------------------------------


def _end_setup(model: ModelSpec, device: DeviceSpec, micro_batch: int, seq_len: int, tp: int,
               cp: int, dtype: DType | str, profile: ProfileArg
               ) -> tuple[float, DType, DeviceProfile]:
    _int(micro_batch, "micro_batch")
    _int(seq_len, "seq_len")
    _int(tp, "tp")
    _int(cp, "cp")
    if seq_len % cp:
        raise ConfigError(f"seq_len {seq_len} not divisible by cp {cp}", key="cp")
    return float(micro_batch * seq_len // cp), parse_dtype(dtype), \
        ops.resolve_profile(device, profile)


def _cost(gemm_s: float, elt_s: float, flops: float, wgrad_s: float = 0.0, *,
          gemm_k: int = 0, elt_k: int = 0, overhead_s: float = 0.0) -> LayerCost:
    return LayerCost(gemm_s=gemm_s, attention_s=0.0, elementwise_s=elt_s,
                     total_s=gemm_s + elt_s, flops=flops, weight_grad_s=wgrad_s,
                     gemm_kernels=gemm_k, elementwise_kernels=elt_k,
                     kernel_overhead_s=overhead_s)


def _embedding_dropout(model: ModelSpec, tokens: float, tp: int, dt: DType,
                       sequence_parallel: bool, dropout: bool | None) -> list[Kernel]:
    """Megatron's embedding dropout (GPT-style models): read the embedding output, write it and
    a 1-byte mask; on the sequence-parallel shard with SP. Its backward reads the grad and the
    mask and writes the grad: the same bytes."""
    if not model.uses_dropout(dropout):
        return []
    elt = activation_elt_bytes(dt)
    hidden = tokens * model.hidden_size * elt / (tp if sequence_parallel else 1)
    return [(RESIDUAL, (2.0 + DROPOUT_MASK_BYTES / elt) * hidden)]


def embedding_forward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int,
                           seq_len: int, tp: int, cp: int = 1,
                           sequence_parallel: bool = False, dtype: DType | str = DType.BF16,
                           profile: ProfileArg = None, dropout: bool | None = None) -> LayerCost:
    """Vocab-parallel embedding lookup (+ learned positions): gather rows, write the output;
    then the embedding dropout where the model trains with dropout."""
    tokens, dt, prof = _end_setup(model, device, micro_batch, seq_len, tp, cp, dtype, profile)
    nbytes = 2.0 * tokens * model.hidden_size * activation_elt_bytes(dt)
    sizes = [(EMBED, nbytes), (EMBED, nbytes)] if model.learned_pos_emb else [(EMBED, nbytes)]
    sizes += _embedding_dropout(model, tokens, tp, dt, sequence_parallel, dropout)
    return _cost(0.0, elementwise_time(device, sizes, prof), 0.0,
                 elt_k=elementwise_kernels(sizes), overhead_s=prof.kernel_overhead_s or 0.0)


def embedding_backward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int,
                            seq_len: int, tp: int, cp: int = 1,
                            sequence_parallel: bool = False, dtype: DType | str = DType.BF16,
                            profile: ProfileArg = None, dropout: bool | None = None
                            ) -> LayerCost:
    """Dropout backward, then the scatter-add of the output grad into this rank's vocab shard:
    the scatter-add is all weight gradient (weight_grad_s: a zero-bubble W op)."""
    tokens, dt, prof = _end_setup(model, device, micro_batch, seq_len, tp, cp, dtype, profile)
    nbytes = 2.0 * tokens * model.hidden_size * activation_elt_bytes(dt)
    wgrad_s = elementwise_time(device, [(EMBED, nbytes)], prof, ELEMENTWISE_BACKWARD_RATIO)
    drop = _embedding_dropout(model, tokens, tp, dt, sequence_parallel, dropout)
    elt_s = wgrad_s + elementwise_time(device, drop, prof)
    return _cost(0.0, elt_s, 0.0, wgrad_s,
                 elt_k=(1 if nbytes > 0 else 0) + elementwise_kernels(drop),
                 overhead_s=prof.kernel_overhead_s or 0.0)


def _logits_parts(model: ModelSpec, tokens: float, tp: int, dt: DType,
                  sequence_parallel: bool) -> tuple[Gemm, float, float]:
    vocab = model.vocab_size / tp
    hidden = tokens * model.hidden_size * activation_elt_bytes(dt) / \
        (tp if sequence_parallel else 1)
    return Gemm(tokens, vocab, model.hidden_size), 2.0 * hidden, tokens * vocab


def _loss_kernels(logits: float, loss_impl: LossImpl | str, *, backward: bool) -> list[Kernel]:
    """The cross-entropy kernels over `logits` values of one rank, by LossImpl."""
    if LossImpl(str(loss_impl)) is LossImpl.EAGER_FP32:
        per = EAGER_CE_BWD_BYTES_PER_LOGIT if backward else EAGER_CE_FWD_BYTES_PER_LOGIT
        return [(SOFTMAX, logits * b) for b in per]
    per_logit = CROSS_ENTROPY_BWD_BYTES_PER_LOGIT if backward else CROSS_ENTROPY_BYTES_PER_LOGIT
    return [(SOFTMAX, logits * per_logit)]


def logits_forward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int, seq_len: int,
                        tp: int, cp: int = 1, sequence_parallel: bool = False,
                        dtype: DType | str = DType.BF16, profile: ProfileArg = None,
                        loss_impl: LossImpl | str = LossImpl.FUSED) -> LayerCost:
    """Final norm, logits GEMM over vocab/tp, softmax cross entropy (vocab-parallel fused, or
    PyTorch's eager fp32 one)."""
    tokens, dt, prof = _end_setup(model, device, micro_batch, seq_len, tp, cp, dtype, profile)
    gemm, norm_bytes, logits = _logits_parts(model, tokens, tp, dt, sequence_parallel)
    gemm_s = gemms_time(device, [gemm], dt, prof)
    sizes = [(NORM, norm_bytes), *_loss_kernels(logits, loss_impl, backward=False)]
    elt_s = elementwise_time(device, sizes, prof)
    return _cost(gemm_s, elt_s, gemm.flops, gemm_k=gemm_kernels([gemm]),
                 elt_k=elementwise_kernels(sizes), overhead_s=prof.kernel_overhead_s or 0.0)


def logits_backward_time(model: ModelSpec, device: DeviceSpec, *, micro_batch: int,
                         seq_len: int, tp: int, cp: int = 1, sequence_parallel: bool = False,
                         dtype: DType | str = DType.BF16,
                         profile: ProfileArg = None,
                         loss_impl: LossImpl | str = LossImpl.FUSED) -> LayerCost:
    """Cross-entropy grad, logits dgrad + wgrad GEMMs, final-norm backward."""
    tokens, dt, prof = _end_setup(model, device, micro_batch, seq_len, tp, cp, dtype, profile)
    gemm, norm_bytes, logits = _logits_parts(model, tokens, tp, dt, sequence_parallel)
    dgrad_s, wgrad_s = _gemms_backward(device, [gemm], dt, prof)
    sizes = _loss_kernels(logits, loss_impl, backward=True)
    elt_s = elementwise_time(device, sizes, prof)
    elt_s += elementwise_time(device, [(NORM, norm_bytes)], prof, ELEMENTWISE_BACKWARD_RATIO)
    return _cost(dgrad_s + wgrad_s, elt_s, 2.0 * gemm.flops, wgrad_s,
                 gemm_k=2 * gemm_kernels([gemm]),
                 elt_k=elementwise_kernels(sizes + [(NORM, norm_bytes)]),
                 overhead_s=prof.kernel_overhead_s or 0.0)
