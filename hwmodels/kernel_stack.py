"""How many kernels a framework launches for each memory-bound op of a layer (TrainingConfig.kernels).

hwmodels.layers lists one kernel per memory-bound op (norm, bias-dropout-add, rotary, activation,
...), which is what Megatron-LM / Transformer Engine run (kernels=fused: fused LayerNorm/RMSNorm,
fused bias-dropout-add, fused rotary, fused bias-GeLU / SwiGLU) and what torch.compile produces
(kernels=compiled: Inductor fuses each pointwise chain into one Triton kernel; priced as fused,
no separate kernel-level source). PyTorch eager (kernels=eager) runs one kernel per tensor op;
the counts below are read off the reference module source (Hugging Face transformers
modeling_llama.py LlamaRMSNorm / apply_rotary_pos_emb / LlamaMLP, torch.nn.LayerNorm,
torch.nn.functional.dropout), each kernel assumed to stream the op's tensor once in and once out
(an accounting approximation: reductions such as the RMS mean read without writing a full tensor).

Every kernel, fused or not, also pays the profile's per-kernel overhead (ops.kernel_overhead_s:
launch gap and tail), which the layer breakdown reports as launch_s.
"""

from __future__ import annotations

from hwmodels.parallel import KernelStack
from hwmodels.profile import ElementwiseKind

# Eager kernels per fused op, by kind. RMSNorm (gated/Llama-style models): to(fp32), pow, mean,
# add eps, rsqrt, mul, to(bf16), mul weight = 8; nn.LayerNorm is one native_layer_norm kernel.
EAGER_RMSNORM_KERNELS = 8
EAGER_LAYERNORM_KERNELS = 1
# Rotary (apply_rotary_pos_emb on q and k): per tensor x*cos, neg + cat (rotate_half), *sin,
# add = 5 -> 10.
EAGER_ROPE_KERNELS = 10
# SwiGLU act_fn(gate) * up: silu, mul = 2; plain GELU MLP: one gelu kernel (bias in the GEMM).
EAGER_GATED_ACT_KERNELS = 2
EAGER_PLAIN_ACT_KERNELS = 1
# Bias-dropout-add: dropout (native_dropout, one kernel) + residual add; without dropout the add.
EAGER_DROPOUT_ADD_KERNELS = 2
EAGER_ADD_KERNELS = 1


# Host time to dispatch one op from Python to a CUDA launch: PyTorch's operator micro-benchmark
# (benchmarks/operator_benchmark, Eager mode, `split` of an 8x8 CUDA tensor: 3.3-3.4 us per
# forward; pytorch/pytorch PR #32194, 2020) - a lower bound (no autograd recording). When a
# pass's kernels finish faster than the host can issue them the GPU idles for the difference
# (LayerCost.host_wait_s); large training kernels hide it entirely.
HOST_DISPATCH_S = 3.4e-6


def host_wait_s(kernels: int, gpu_s: float) -> float:
    """Idle GPU time of a pass whose `kernels` launches take longer to issue than to run."""
    return max(0.0, kernels * HOST_DISPATCH_S - gpu_s)


def eager_kernels(kind: ElementwiseKind, *, gated_mlp: bool, dropout: bool) -> int:
    """Kernels PyTorch eager launches for one fused op of `kind` (1 for kinds not listed)."""
    if kind is ElementwiseKind.NORM:
        return EAGER_RMSNORM_KERNELS if gated_mlp else EAGER_LAYERNORM_KERNELS
    if kind is ElementwiseKind.ROPE:
        return EAGER_ROPE_KERNELS
    if kind is ElementwiseKind.ACTIVATION:
        return EAGER_GATED_ACT_KERNELS if gated_mlp else EAGER_PLAIN_ACT_KERNELS
    if kind is ElementwiseKind.RESIDUAL:
        return EAGER_DROPOUT_ADD_KERNELS if dropout else EAGER_ADD_KERNELS
    return 1


def kernels_per_op(stack: KernelStack | str | None, kind: ElementwiseKind, *, gated_mlp: bool,
                   dropout: bool) -> int:
    """Kernels one memory-bound op becomes under `stack` (None: fused, as before)."""
    if stack is None or KernelStack(str(stack)) is not KernelStack.EAGER:
        return 1
    return eager_kernels(kind, gated_mlp=gated_mlp, dropout=dropout)
