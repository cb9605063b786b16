"""torchtitan's per-op selective activation checkpointing (Recompute.SELECTIVE_OP) on one block.

The policy (pytorch/torchtitan torchtitan/distributed/activation_checkpoint.py _apply_op_sac,
v0.2.2; the same in torchtitan/parallelisms/parallelize_llama.py at 9dec370, the version of its
docs/performance.md benchmarks): inside each transformer block, the outputs of aten.mm are
saved except every second one (a per-block counter, forward order), the outputs of the SDPA
kernels and of TP's reduce-scatters are saved; every other op is recomputed in backward, where
torch's selective checkpoint re-runs the block's forward and replays the saved outputs.
On torchtitan's llama3 block the matmuls run wq, wk, wv, wo, w1, w3, w2 (Attention.forward
calls wq/wk/wv in that order; FeedForward is w2(silu(w1(x)) * w3(x))), so wk, wo and w3 are
recomputed and wq, wv, w1, w2 saved; a non-gated MLP (fc1, fc2) recomputes wk, wo, fc2.
Dense GQA/MHA blocks only (hwmodels.parallel.check_plan refuses MoE and MLA models).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.errors import ConfigError
from hwmodels.specs import AttentionKind, ModelSpec


@dataclass(frozen=True, slots=True)
class BlockMatmul:
    """One matmul of the block on one TP rank: per token, `n` outputs from `k` inputs."""

    name: str
    n: float
    k: float


def supports(model: ModelSpec) -> bool:
    """Whether per-op SAC is modelled for this model: dense GQA/MHA blocks only."""
    return not model.is_moe and model.attention is not AttentionKind.MLA


def block_matmuls(model: ModelSpec, tp: int) -> list[BlockMatmul]:
    """The block's matmuls in forward order on one TP rank (column-parallel outputs and
    row-parallel inputs split over tp; a row-parallel output is the full-width partial sum)."""
    if not supports(model):
        raise ConfigError(f"recompute selective-op is modelled for dense GQA/MHA models only; "
                          f"'{model.name}' is not one", key="parallelism.recompute",
                          allowed=["none", "selective", "full"])
    h = model.hidden_size
    q = model.num_heads * model.head_dim / tp
    kv = max(model.num_kv_heads, tp) * model.head_dim / tp  # KV heads replicated past tp
    out = [BlockMatmul("wq", q, h), BlockMatmul("wk", kv, h), BlockMatmul("wv", kv, h),
           BlockMatmul("wo", h, model.num_heads * model.value_head_dim / tp)]
    f = model.ffn_hidden_size / tp
    if model.gated_mlp:
        out += [BlockMatmul("w1", f, h), BlockMatmul("w3", f, h), BlockMatmul("w2", h, f)]
    else:
        out += [BlockMatmul("fc1", f, h), BlockMatmul("fc2", h, f)]
    return out


def saved_matmuls(model: ModelSpec, tp: int) -> list[BlockMatmul]:
    """The matmuls whose outputs the policy saves (the 1st, 3rd, 5th, ... of the block)."""
    return block_matmuls(model, tp)[0::2]


def recomputed_matmuls(model: ModelSpec, tp: int) -> list[BlockMatmul]:
    """The matmuls backward re-runs (the 2nd, 4th, ... of the block)."""
    return block_matmuls(model, tp)[1::2]


def saved_bytes_per_token(model: ModelSpec, *, tp: int, sequence_parallel: bool) -> float:
    """16-bit bytes one block keeps per token on one rank: the block input (sequence-sharded
    with SP), the saved matmul outputs, the attention output and its fp32 log-sum-exp, and with
    tp > 1 the outputs of the two reduce-scatters."""
    h = model.hidden_size
    heads = model.num_heads / tp
    sp_div = tp if sequence_parallel else 1
    kept = 2.0 * h / sp_div
    kept += 2.0 * sum(m.n for m in saved_matmuls(model, tp))
    kept += 2.0 * heads * model.value_head_dim + 4.0 * heads
    if tp > 1:
        kept += 2.0 * 2.0 * h / tp
    return kept
