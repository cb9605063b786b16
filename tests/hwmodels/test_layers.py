"""Transformer-layer compute costs: the Korthikanti et al. 22B layer, shapes, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import flops, layers
from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.profile import CATALOG_DEFAULTS

A100 = load_device("a100-80gb")
H100 = load_device("h100-sxm")
GPT22B = load_model("gpt-22b")  # h=6144, 64 heads, ffn 24576 (Korthikanti et al. Table 3)
LLAMA3_70B = load_model("llama3-70b")
MIXTRAL = load_model("mixtral-8x7b")
DEEPSEEK = load_model("deepseek-v3")

# Korthikanti et al. 2022 ("Reducing Activation Recomputation...", MLSys'23) Table 4: one 22B
# layer, s=2048, micro-batch 4, TP=8 on A100-80GB, times INCLUDING the TP communication:
# baseline forward 7.7 ms / backward 11.9 ms; with sequence parallelism 7.2 / 11.8 ms.
KORTH = dict(micro_batch=4, seq_len=2048, tp=8)
PUBLISHED_MS = {False: (7.7, 11.9), True: (7.2, 11.8)}  # sequence_parallel -> (fwd, bwd)


def test_korthikanti_22b_layer_forward_compute_below_published_with_comm() -> None:
    # Our flash-attention layer without TP communication (the simulator adds ~1.3-1.6 ms of
    # all-reduces here): 4.65 ms, i.e. 0.65 of the published 7.2 ms.
    fwd = layers.layer_forward_time(GPT22B, A100, **KORTH)
    assert 0.6 * 7.2e-3 <= fwd.total_s <= 1.0 * 7.2e-3, fwd


# The bundled A100 profile measured vLLM's inference RMSNorm (~0.34 of HBM bandwidth at its
# largest size); Megatron ran Apex's fused LayerNorm, which no profile here measured, so without
# sequence parallelism (full-size norms) the profile's layer is slower than the published one.
PROFILE_NORM_GAP = pytest.mark.xfail(strict=True, reason="bundled A100 profile: inference "
                                     "norm kernels, not Megatron's (README, validate)")


@pytest.mark.parametrize(("sp", "profile"), [
    (False, CATALOG_DEFAULTS), (True, CATALOG_DEFAULTS), (True, None),
    pytest.param(False, None, marks=PROFILE_NORM_GAP)])
def test_korthikanti_22b_layer_as_run_in_2022(sp: bool, profile: str | None) -> None:
    # The paper's runs predate FlashAttention in Megatron: unfused attention (materialized
    # scores, softmax, dropout). Compute-only must be 60-100% of the published times, the rest
    # being TP communication. Measured here: fwd 5.45/4.92 ms, bwd 10.3/9.3 ms (no SP / SP).
    fwd_ms, bwd_ms = PUBLISHED_MS[sp]
    fwd = layers.layer_forward_time(GPT22B, A100, sequence_parallel=sp, flash=False,
                                    profile=profile, **KORTH)
    bwd = layers.layer_backward_time(GPT22B, A100, sequence_parallel=sp, flash=False,
                                     profile=profile, **KORTH)
    assert 0.6 * fwd_ms <= fwd.total_s * 1e3 <= fwd_ms
    assert 0.6 * bwd_ms <= bwd.total_s * 1e3 <= bwd_ms
    flash = layers.layer_forward_time(GPT22B, A100, sequence_parallel=sp, profile=profile,
                                      **KORTH)
    assert flash.attention_s < fwd.attention_s  # flash attention is the faster kernel


def test_backward_is_about_twice_forward() -> None:
    kw = dict(micro_batch=2, seq_len=4096, tp=8, sequence_parallel=True)
    fwd = layers.layer_forward_time(LLAMA3_70B, H100, **kw)
    bwd = layers.layer_backward_time(LLAMA3_70B, H100, **kw)
    assert 1.8 <= bwd.gemm_s / fwd.gemm_s <= 2.3
    assert 2.5 <= bwd.attention_s / fwd.attention_s <= 3.2
    assert bwd.elementwise_s / fwd.elementwise_s == pytest.approx(2.0, rel=0.15)
    assert 0 < bwd.weight_grad_s < bwd.gemm_s
    assert bwd.input_grad_s + bwd.weight_grad_s == pytest.approx(bwd.total_s)
    assert layers.layer_weight_grad_time(LLAMA3_70B, H100, **kw) == bwd.weight_grad_s


def _linear_weights_per_rank(model, tp: int) -> float:  # type: ignore[no-untyped-def]
    return sum(g.n * g.k for g in layers.layer_gemms(model, 1.0, tp, moe=False))


def test_layer_flops_match_flops_module() -> None:
    # GEMM FLOPs of one layer at tp=1 = 2 x tokens x matmul weights of the layer (flops.py),
    # attention = causal half of flops.py's full-square count.
    tokens = 2 * 1024
    fwd = layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=2, seq_len=1024, tp=1)
    full = flops.attention_core_flops(LLAMA3_70B, query_tokens=1024, key_tokens=1024) * 2
    gemm = 2.0 * tokens * _linear_weights_per_rank(LLAMA3_70B, 1)
    assert fwd.flops == pytest.approx(gemm + full / 2, rel=1e-12)
    weights = flops.layer_param_count(LLAMA3_70B, moe=False) - 2 * LLAMA3_70B.hidden_size
    assert _linear_weights_per_rank(LLAMA3_70B, 1) == weights


def test_gqa_and_mla_shapes() -> None:
    qkv, out = layers.attention_gemms(LLAMA3_70B, 10.0, 8)
    assert (qkv.n, qkv.k) == ((64 // 8 + 2 * 1) * 128, 8192)  # 8 q heads + 1 k + 1 v per rank
    assert (out.n, out.k) == (8192, 1024)
    # tp=16 > 8 kv heads: kv heads are replicated, one per rank.
    assert layers.kv_heads_per_rank(LLAMA3_70B, 16) == 1.0
    mla = layers.attention_gemms(DEEPSEEK, 1.0, 1)
    total = sum(g.n * g.k for g in mla)
    assert total == flops.layer_param_count(DEEPSEEK, moe=False) - _mlp_and_norms(DEEPSEEK)


def _mlp_and_norms(model) -> int:  # type: ignore[no-untyped-def]
    h = model.hidden_size
    return 3 * h * model.ffn_hidden_size + 2 * h + model.q_lora_rank + model.kv_lora_rank


def test_sequence_parallel_divides_replicated_elementwise() -> None:
    base = layers.layer_forward_time(GPT22B, A100, **KORTH)
    sp = layers.layer_forward_time(GPT22B, A100, sequence_parallel=True, **KORTH)
    assert sp.gemm_s == base.gemm_s
    assert sp.elementwise_s < 0.5 * base.elementwise_s


def test_context_parallel_splits_causal_work() -> None:
    kw = dict(micro_batch=1, seq_len=32768, tp=8)
    one = layers.layer_forward_time(LLAMA3_70B, H100, **kw)
    two = layers.layer_forward_time(LLAMA3_70B, H100, cp=2, **kw)
    uly = layers.layer_forward_time(LLAMA3_70B, H100, cp=2, cp_mode="ulysses", **kw)
    assert two.flops == pytest.approx(one.flops / 2, rel=1e-9)
    assert 0.45 < two.attention_s / one.attention_s < 0.6
    assert uly.flops == pytest.approx(two.flops, rel=1e-9)


def test_moe_layer_ep_and_imbalance() -> None:
    kw = dict(micro_batch=1, seq_len=4096, tp=1, moe=True)
    base = layers.layer_forward_time(MIXTRAL, H100, **kw)
    ep2 = layers.layer_forward_time(MIXTRAL, H100, ep=2, **kw)
    skew = layers.layer_forward_time(MIXTRAL, H100, moe_imbalance=1.5, **kw)
    # Each EP rank runs 4 of 8 experts on the same number of routed rows (tokens*top_k).
    assert ep2.gemm_s == pytest.approx(base.gemm_s, rel=0.1)
    experts = base.gemm_s - _attn_gemm_s(MIXTRAL)
    assert (skew.gemm_s - _attn_gemm_s(MIXTRAL)) / experts == pytest.approx(1.5, rel=0.05)
    dense_equiv = layers.layer_forward_time(MIXTRAL, H100, micro_batch=1, seq_len=4096, tp=1)
    # top-2 of 8 experts of width 14336 = 2x the dense MLP of width 14336, plus the router.
    assert 1.6 < (base.gemm_s - _attn_gemm_s(MIXTRAL)) / \
        (dense_equiv.gemm_s - _attn_gemm_s(MIXTRAL)) < 2.4


def _attn_gemm_s(model) -> float:  # type: ignore[no-untyped-def]
    return layers.gemms_time(H100, layers.attention_gemms(model, 4096.0, 1), DType.BF16,
                             layers.ops.resolve_profile(H100))


def test_moe_routing_expected_active_experts() -> None:
    active, rows = layers.moe_routing(MIXTRAL, 1.0)
    assert active == pytest.approx(2.0) and rows == pytest.approx(1.0)
    active, rows = layers.moe_routing(MIXTRAL, 4096.0)
    assert active == pytest.approx(8.0) and rows == pytest.approx(1024.0)


@settings(max_examples=25, deadline=None)
@given(mb=st.integers(1, 8), s=st.sampled_from([256, 512, 1024, 2048, 4096]),
       tp=st.sampled_from([1, 2, 4, 8]))
def test_more_tokens_never_faster(mb: int, s: int, tp: int) -> None:
    a = layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=mb, seq_len=s, tp=tp)
    b = layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=mb + 1, seq_len=s, tp=tp)
    c = layers.layer_backward_time(LLAMA3_70B, H100, micro_batch=mb, seq_len=2 * s, tp=tp)
    assert b.total_s >= a.total_s
    assert c.total_s >= layers.layer_backward_time(LLAMA3_70B, H100, micro_batch=mb,
                                                   seq_len=s, tp=tp).total_s


def test_fp8_layer_not_slower_than_bf16() -> None:
    kw = dict(micro_batch=1, seq_len=8192, tp=4)
    assert layers.layer_forward_time(LLAMA3_70B, H100, dtype=DType.FP8, **kw).gemm_s < \
        layers.layer_forward_time(LLAMA3_70B, H100, **kw).gemm_s


def test_embedding_and_logits() -> None:
    kw = dict(micro_batch=1, seq_len=8192, dtype=DType.BF16)
    l1 = layers.logits_forward_time(LLAMA3_70B, H100, tp=1, **kw)
    l8 = layers.logits_forward_time(LLAMA3_70B, H100, tp=8, **kw)
    assert l1.flops == 2.0 * 8192 * LLAMA3_70B.vocab_size * LLAMA3_70B.hidden_size
    assert 6 < l1.gemm_s / l8.gemm_s < 9
    lb = layers.logits_backward_time(LLAMA3_70B, H100, tp=8, **kw)
    assert lb.flops == 2 * l8.flops and 0 < lb.weight_grad_s < lb.gemm_s
    emb = layers.embedding_forward_time(LLAMA3_70B, H100, tp=8, **kw)
    assert 0 < emb.total_s < l8.total_s
    assert layers.embedding_backward_time(LLAMA3_70B, H100, tp=8, **kw).total_s > emb.total_s


def test_bad_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="tp"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=1, seq_len=128, tp=3)
    with pytest.raises(ConfigError, match="micro_batch"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=0, seq_len=128, tp=1)
    with pytest.raises(ConfigError, match="dtype"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=1, seq_len=128, tp=1,
                                  dtype="fp9")
    with pytest.raises(ConfigError, match="moe"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=1, seq_len=128, tp=1, moe=True)
    with pytest.raises(ConfigError, match="cp"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=1, seq_len=127, tp=1, cp=2)
    with pytest.raises(ConfigError, match="ep"):
        layers.layer_forward_time(MIXTRAL, H100, micro_batch=1, seq_len=128, tp=1, moe=True,
                                  ep=3)
    with pytest.raises(ConfigError, match="moe_imbalance"):
        layers.layer_forward_time(MIXTRAL, H100, micro_batch=1, seq_len=128, tp=1, moe=True,
                                  moe_imbalance=0.5)
    with pytest.raises(ConfigError, match="cp_mode"):
        layers.layer_forward_time(LLAMA3_70B, H100, micro_batch=1, seq_len=128, tp=1, cp=2,
                                  cp_mode="spiral")


def test_eager_fp32_loss_moves_more_bytes_than_the_fused_one() -> None:
    """PyTorch's F.cross_entropy(logits.float()) (LossImpl.EAGER_FP32) streams 14 + 22 bytes per
    logit in 2 + 3 kernels; the fused vocab-parallel CE 10 + 6 in one each. GEMMs unchanged."""
    from hwmodels.parallel import LossImpl

    kw = dict(micro_batch=2, seq_len=8192, tp=1, dtype=DType.BF16, profile=CATALOG_DEFAULTS)
    model = load_model("llama3.1-8b")
    for fn, extra in ((layers.logits_forward_time, 1), (layers.logits_backward_time, 2)):
        fused = fn(model, H100, **kw)
        eager = fn(model, H100, loss_impl=LossImpl.EAGER_FP32, **kw)
        assert eager.gemm_s == fused.gemm_s and eager.flops == fused.flops
        assert eager.elementwise_s > 1.3 * fused.elementwise_s
        assert eager.elementwise_kernels == fused.elementwise_kernels + extra
    with pytest.raises(ValueError):
        layers.logits_forward_time(model, H100, loss_impl="bogus", **kw)
