"""Parameter and FLOP counts of a ModelSpec: pure arithmetic on the dimensions, no weights.

Conventions (Megatron-LM, Narayanan et al. SC'21 appendix; Korthikanti et al. MLSys'23):
- A matmul of an (m x k) by (k x n) matrix costs 2*m*n*k FLOPs; norms, biases, softmax,
  activations and the embedding lookup are not counted as FLOPs (they are in parameter counts).
- Model FLOPs of a training iteration = 3 x forward (backward = 2 x forward), attention
  scores over the full s x s square (no causal halving), plus the logits layer. For GPT shapes
  (MHA, 4h plain MLP, tied embeddings) this equals 72*B*L*s*h^2*(1 + s/(6h) + V/(12hL)).
- MoE layers count the router and only the active experts (top-k + shared) per token.
- MLA (DeepSeek) counts its low-rank projections as written, without weight absorption:
  q.k over head_dim = qk_nope + qk_rope, and A.V over v_head_dim.
"""

from __future__ import annotations

from hwmodels.errors import ConfigError
from hwmodels.parallel import Recompute
from hwmodels.specs import AttentionKind, ModelSpec


def _check_int(value: object, key: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=key)
    return value


def _attention_weights(m: ModelSpec) -> int:
    """Weights of the attention projections of one layer (no biases, no norms)."""
    h = m.hidden_size
    if m.attention is AttentionKind.MLA:
        q_out = m.num_heads * m.head_dim
        q = h * m.q_lora_rank + m.q_lora_rank * q_out if m.q_lora_rank else h * q_out
        kv_down = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_up = m.kv_lora_rank * m.num_heads * (m.qk_nope_head_dim + m.value_head_dim)
        out = m.num_heads * m.value_head_dim * h
        return q + kv_down + kv_up + out
    return h * m.q_dim + 2 * h * m.kv_dim + m.q_dim * h


def _attention_extras(m: ModelSpec) -> int:
    """Attention biases and inner norms of one layer (MLA's latent norms, Qwen3's q/k norms)."""
    n = 0
    if m.attention is AttentionKind.MLA:
        n += m.q_lora_rank + m.kv_lora_rank  # RMSNorms on the compressed q and kv
    elif m.qkv_bias or m.linear_bias:
        n += m.q_dim + 2 * m.kv_dim
    if m.linear_bias:
        n += m.hidden_size  # output projection bias
    if m.qk_norm:
        n += 2 * m.head_dim
    return n


def _mlp_weights(m: ModelSpec, ffn: int) -> int:
    return (3 if m.gated_mlp else 2) * m.hidden_size * ffn


def _mlp_biases(m: ModelSpec, ffn: int) -> int:
    if not m.linear_bias:
        return 0
    return (2 if m.gated_mlp else 1) * ffn + m.hidden_size


def _mlp_params(m: ModelSpec, ffn: int) -> int:
    return _mlp_weights(m, ffn) + _mlp_biases(m, ffn)


def _norm_params(m: ModelSpec) -> int:
    """One norm over hidden_size: weight (+ bias for LayerNorm)."""
    return m.hidden_size * (2 if m.norm_bias else 1)


def _check_moe(m: ModelSpec, moe: bool) -> None:
    if moe and not m.is_moe:
        raise ConfigError(f"model '{m.name}' has no MoE layers", key="moe", allowed=[False])


def _layer_params(m: ModelSpec, *, moe: bool, active: bool) -> int:
    _check_moe(m, moe)
    attn = _attention_weights(m) + _attention_extras(m) + 2 * _norm_params(m)
    if not moe:
        return attn + _mlp_params(m, m.ffn_hidden_size)
    routed = m.experts_per_token if active else m.num_experts
    return (attn + m.hidden_size * m.num_experts  # router
            + routed * _mlp_params(m, m.moe_ffn_hidden_size)
            + m.num_shared_experts * _mlp_params(m, m.shared_ffn))


def layer_param_count(model: ModelSpec, *, moe: bool) -> int:
    """Parameters of one transformer layer (dense or MoE with all experts), norms included."""
    return _layer_params(model, moe=moe, active=False)


def active_layer_param_count(model: ModelSpec, *, moe: bool) -> int:
    """Parameters of one layer that one token touches (router + top-k and shared experts)."""
    return _layer_params(model, moe=moe, active=True)


def lm_head_param_count(model: ModelSpec) -> int:
    """Output projection weights (0 when tied to the input embedding)."""
    return 0 if model.tie_embeddings else model.vocab_size * model.hidden_size


def embedding_param_count(model: ModelSpec) -> int:
    """Input embedding (+ learned positions) + untied output head: all vocabulary-side weights."""
    h = model.hidden_size
    positions = model.max_seq_len * h if model.learned_pos_emb else 0
    return model.vocab_size * h + positions + lm_head_param_count(model)


def _total(model: ModelSpec, *, active: bool) -> int:
    layers = model.num_dense_layers * _layer_params(model, moe=False, active=active)
    if model.num_moe_layers:
        layers += model.num_moe_layers * _layer_params(model, moe=True, active=active)
    return layers + embedding_param_count(model) + _norm_params(model)  # + final norm


def param_count(model: ModelSpec) -> int:
    """All parameters (every expert), as a checkpoint would hold them."""
    return _total(model, active=False)


def active_param_count(model: ModelSpec) -> int:
    """Parameters one token uses: dense parts plus router, top-k and shared experts."""
    return _total(model, active=True)


def _layer_matmul_weights(m: ModelSpec, *, moe: bool) -> int:
    """Weights one token multiplies by in one layer (active experts, router included)."""
    attn = _attention_weights(m)
    if not moe:
        return attn + _mlp_weights(m, m.ffn_hidden_size)
    return (attn + m.hidden_size * m.num_experts
            + m.experts_per_token * _mlp_weights(m, m.moe_ffn_hidden_size)
            + m.num_shared_experts * _mlp_weights(m, m.shared_ffn))


def _layers_matmul_flops_per_token(m: ModelSpec) -> float:
    """2 x weights summed over all layers: the linear-layer forward FLOPs of one token."""
    w = m.num_dense_layers * _layer_matmul_weights(m, moe=False)
    if m.num_moe_layers:
        w += m.num_moe_layers * _layer_matmul_weights(m, moe=True)
    return 2.0 * w


def attention_core_flops(model: ModelSpec, *, query_tokens: float, key_tokens: float) -> float:
    """Forward FLOPs of QK^T and AV in one layer for query_tokens x key_tokens score pairs."""
    per_pair = 2.0 * model.num_heads * (model.head_dim + model.value_head_dim)
    return per_pair * query_tokens * key_tokens


def _logits_flops_per_token(m: ModelSpec) -> float:
    return 2.0 * m.hidden_size * m.vocab_size


def _forward_layers_flops(m: ModelSpec, *, batch: int, seq_len: int) -> float:
    """Forward FLOPs of all transformer layers for `batch` sequences (full s x s attention)."""
    matmul = _layers_matmul_flops_per_token(m) * batch * seq_len
    attn = m.num_layers * batch * attention_core_flops(m, query_tokens=seq_len,
                                                       key_tokens=seq_len)
    return matmul + attn


def model_flops_per_iteration(model: ModelSpec, *, batch: int, seq_len: int) -> float:
    """Megatron model FLOPs of one fwd+bwd over `batch` sequences of `seq_len` (3 x forward)."""
    _check_int(batch, "batch")
    _check_int(seq_len, "seq_len")
    forward = (_forward_layers_flops(model, batch=batch, seq_len=seq_len)
               + _logits_flops_per_token(model) * batch * seq_len)
    return 3.0 * forward


def hardware_flops_per_iteration(model: ModelSpec, *, batch: int, seq_len: int,
                                 recompute: Recompute | str = Recompute.NONE) -> float:
    """Model FLOPs plus recomputed forward work: full = every layer's forward again (not the
    logits; Korthikanti's 96Bslh^2(1 + s/6h + V/16lh)), selective = one more QK^T/AV forward,
    selective-op = every second matmul of each block once more (hwmodels.sac).

    Korthikanti et al. (MLSys'23) report selective-recompute HFU with s/(3h) in place of
    s/(6h), i.e. twice the extra attention work counted here; our HFU for their Table 5 rows
    is therefore 1-3.5% (relative) below the paper's HFU column, while MFU matches.
    """
    try:
        mode = Recompute(str(recompute))
    except ValueError:
        raise ConfigError(f"unknown recompute mode '{recompute}'", key="parallelism.recompute",
                          allowed=[r.value for r in Recompute]) from None
    flops = model_flops_per_iteration(model, batch=batch, seq_len=seq_len)
    if mode is Recompute.FULL:
        flops += _forward_layers_flops(model, batch=batch, seq_len=seq_len)
    elif mode is Recompute.SELECTIVE:
        flops += model.num_layers * batch * attention_core_flops(
            model, query_tokens=seq_len, key_tokens=seq_len)
    elif mode is Recompute.SELECTIVE_OP:
        from hwmodels import sac  # every second matmul of each block once more

        flops += model.num_layers * batch * seq_len * sum(
            2.0 * m.n * m.k for m in sac.recomputed_matmuls(model, 1))
    return flops


def forward_flops_per_token(model: ModelSpec, *, context_len: int, logits: bool = True) -> float:
    """Serving: forward FLOPs of one token attending to `context_len` tokens (itself included):
    2 x active matmul weights (+ the logits layer) + QK^T/AV over the causal context."""
    _check_int(context_len, "context_len", minimum=0)
    flops = _layers_matmul_flops_per_token(model)
    flops += model.num_layers * attention_core_flops(model, query_tokens=1,
                                                     key_tokens=context_len)
    if logits:
        flops += _logits_flops_per_token(model)
    return flops
