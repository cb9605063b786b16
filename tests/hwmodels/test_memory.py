"""Memory model checks against Korthikanti et al. (MLSys'23), ZeRO, and hand-computed vLLM sizing."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import flops
from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.memory import (
    FRAMEWORK_OVERHEAD_BYTES,
    KVCapacity,
    activation_bytes_per_layer,
    fits,
    kv_bytes_per_token,
    kv_cache_capacity,
    serving_weight_bytes,
    training_memory,
)
from hwmodels.parallel import ParallelConfig, PipelineSchedule, Recompute, TrainingConfig
from hwmodels.specs import ModelSpec
from hwmodels.units import GB, GiB, KiB

# Catalog shapes (HF config.json / paper tables); MT-NLG 530B per Korthikanti Table 3.
GPT3_175B = load_model("gpt3-175b")
MT_NLG_530B = load_model("mt-nlg-530b")
LLAMA2_70B = load_model("llama2-70b")
LLAMA3_70B = load_model("llama3-70b")
MIXTRAL_8X7B = load_model("mixtral-8x7b")
DEEPSEEK_V3 = load_model("deepseek-v3")
H100 = load_device("h100-sxm")  # 79.6 GiB visible of "80 GB"
A100 = load_device("a100-80gb")  # Korthikanti et al. trained on A100-80GB

S, B, H, A, T = 2048, 1, 12288, 96, 8  # Korthikanti's GPT-3 175B shape, t = 8


def _act(model: ModelSpec = GPT3_175B, **kw: object) -> float:
    args = dict(seq_len=S, micro_batch=B, tp=T, sequence_parallel=False,
                recompute=Recompute.NONE, flash_attention=False)
    args.update(kw)
    return activation_bytes_per_layer(model, **args)  # type: ignore[arg-type]


# --- Korthikanti et al. Table 2, exactly ------------------------------------------------------

@pytest.mark.parametrize(("tp", "sp", "recompute", "expected"), [
    (1, False, Recompute.NONE, S * B * H * (34 + 5 * A * S / H)),
    (T, False, Recompute.NONE, S * B * H * (10 + 24 / T + 5 * A * S / (H * T))),
    (T, True, Recompute.NONE, S * B * H * (34 / T + 5 * A * S / (H * T))),
    (T, False, Recompute.SELECTIVE, S * B * H * (10 + 24 / T)),
    (T, True, Recompute.SELECTIVE, S * B * H * 34 / T),
    (T, False, Recompute.FULL, S * B * H * 2),
    (T, True, Recompute.FULL, S * B * H * 2 / T),
])
def test_table2_formulas_exact(tp: int, sp: bool, recompute: Recompute, expected: float) -> None:
    got = _act(tp=tp, sequence_parallel=sp, recompute=recompute)
    assert got == pytest.approx(expected, rel=1e-12)


def test_selective_recompute_savings_match_paper_text() -> None:
    """Sec. 4.2: selective recompute cuts activations by 70% for GPT-3, 65% for MT-NLG."""
    for model, published in ((GPT3_175B, 0.70), (MT_NLG_530B, 0.65)):
        full = _act(model, sequence_parallel=True)
        selective = _act(model, sequence_parallel=True, recompute=Recompute.SELECTIVE)
        assert 1 - selective / full == pytest.approx(published, abs=0.01)


def test_sp_plus_selective_is_5x_for_530b() -> None:
    """Abstract/Fig. 7: SP + selective recompute reduce activation memory ~5x vs TP alone."""
    ratio = _act(MT_NLG_530B) / _act(MT_NLG_530B, sequence_parallel=True,
                                     recompute=Recompute.SELECTIVE)
    assert ratio == pytest.approx(5.0, rel=0.05)


# --- generalizations ---------------------------------------------------------------------------

def test_llama_flash_layer_by_hand() -> None:
    """Llama-2-70B, flash attention, no dropout: per token 8h norms/inputs + 2(q+k+v+o) + 6f
    + fp32 LSE 4a, the head/ffn parts over t, norms over t only with SP."""
    h, f, a, kv, t, s = 8192, 28672, 64, 1024, 8, 4096
    per_token = 8 * h + (2 * (h + kv + kv + h) + 6 * f + 4 * a) / t
    got = activation_bytes_per_layer(LLAMA2_70B, seq_len=s, micro_batch=1, tp=t,
                                     sequence_parallel=False, recompute=Recompute.NONE)
    assert got == pytest.approx(per_token * s, rel=1e-12)
    sp = activation_bytes_per_layer(LLAMA2_70B, seq_len=s, micro_batch=1, tp=t,
                                    sequence_parallel=True, recompute=Recompute.NONE, cp=2)
    assert sp == pytest.approx((8 * h / t + (per_token - 8 * h)) * s / 2, rel=1e-12)


def test_flash_gqa_and_moe_directions() -> None:
    no_flash = _act(LLAMA2_70B, seq_len=4096)
    flash = _act(LLAMA2_70B, seq_len=4096, flash_attention=True)
    # no dropout (Llama): only the 2as^2 softmax output goes; flash keeps a 4a-byte fp32 LSE
    assert no_flash - flash == pytest.approx(4096 * (2 * 64 * 4096 - 4 * 64) / T, rel=1e-12)
    mha = dataclasses.replace(LLAMA2_70B, num_kv_heads=64)
    assert _act(mha, flash_attention=True) > _act(LLAMA2_70B, flash_attention=True)
    top1 = dataclasses.replace(MIXTRAL_8X7B, experts_per_token=1)
    top2 = _act(MIXTRAL_8X7B, flash_attention=True)
    one = _act(top1, flash_attention=True)
    # the second expert copy adds 4h unsplit + 6f/t per token
    assert top2 - one == pytest.approx(S * (4 * 4096 + 6 * 14336 / T), rel=1e-12)


# --- whole-GPU training memory ------------------------------------------------------------------

def test_175b_on_64_gpus_fits() -> None:
    """Korthikanti Table 3: GPT-3 175B trains on 64 A100-80GB (t=8, p=8, interleaved), SP +
    selective recompute, no distributed optimizer."""
    training = TrainingConfig(seq_len=2048, global_batch=256, micro_batch=1)
    for vpp in (2, 3):
        plan = ParallelConfig(tp=8, pp=8, dp=1, vpp=vpp, schedule=PipelineSchedule.INTERLEAVED,
                              sequence_parallel=True, recompute=Recompute.SELECTIVE)
        mem = training_memory(GPT3_175B, training, plan, flash_attention=False)
        assert mem.stage == 0  # the first stage holds the most in-flight microbatches
        assert fits(mem, A100), fits(mem, A100).describe()
        # 16 B/param states + bf16 weights for 1/64 of 175B params (+ embedding) ~ 49 GB
        states = mem.weights_bytes + mem.grads_bytes + mem.optimizer_bytes
        assert states == pytest.approx(18 * (175e9 / 64 + 51200 * 12288 / 8), rel=0.02)


def test_530b_without_sp_or_recompute_does_not_fit() -> None:
    """Korthikanti Fig. 1/Sec. 6: MT-NLG 530B on t=8, p=35 only fits 80 GB with SP + selective
    recompute; TP alone needs ~92 GB of activations on the first stage."""
    training = TrainingConfig(seq_len=2048, global_batch=280, micro_batch=1)
    plain = ParallelConfig(tp=8, pp=35, dp=1)
    mem = training_memory(MT_NLG_530B, training, plain, flash_attention=False)
    # L layers x Table 2's TP row + the embedding dropout mask of p microbatches (Sec. 4.3)
    expected_act = (105 * S * B * 20480 * (10 + 24 / 8 + 5 * 128 * S / (20480 * 8))
                    + S * B * 20480 * 35)
    assert mem.activations_bytes == pytest.approx(expected_act, rel=1e-9)
    assert not fits(mem, A100)
    better = ParallelConfig(tp=8, pp=35, dp=1, sequence_parallel=True,
                            recompute=Recompute.SELECTIVE)
    assert fits(training_memory(MT_NLG_530B, training, better, flash_attention=False), A100)


def test_70b_on_one_gpu_reports_shortfall() -> None:
    training = TrainingConfig(seq_len=4096, global_batch=8, micro_batch=1)
    mem = training_memory(LLAMA2_70B, training, ParallelConfig())
    result = fits(mem, H100)
    assert not result
    # 18 B/param x 69.0e9 params = 1241 GB of states alone
    assert mem.weights_bytes + mem.grads_bytes + mem.optimizer_bytes == pytest.approx(
        18 * flops.param_count(LLAMA2_70B), rel=1e-9)
    assert result.shortfall_bytes > 1000 * GB
    assert "short by" in result.describe()


def test_zero_stages_monotone() -> None:
    training = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)
    totals = []
    for zero in range(4):
        plan = ParallelConfig(tp=8, pp=2, dp=8, zero=zero, sequence_parallel=True)
        totals.append(training_memory(LLAMA2_70B, training, plan).total_bytes)
    assert totals[3] < totals[2] < totals[1] < totals[0]
    # ZeRO-1 with dp=8 keeps 1/8 of the 12 B/param optimizer state
    p0 = training_memory(LLAMA2_70B, training, ParallelConfig(tp=8, pp=2, dp=8))
    p1 = training_memory(LLAMA2_70B, training, ParallelConfig(tp=8, pp=2, dp=8, zero=1))
    assert p1.optimizer_bytes == pytest.approx(p0.optimizer_bytes / 8, rel=1e-12)


def test_expert_states_shard_over_expert_data_parallel_group() -> None:
    training = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)
    no_ep = training_memory(MIXTRAL_8X7B, training, ParallelConfig(tp=2, dp=8))
    ep = training_memory(MIXTRAL_8X7B, training, ParallelConfig(tp=2, dp=8, ep=8))
    assert ep.weights_bytes < no_ep.weights_bytes / 4  # experts are ~96% of Mixtral
    z_ep = training_memory(MIXTRAL_8X7B, training, ParallelConfig(tp=2, dp=8, ep=8, zero=1))
    # with ep = dp the expert-DP group has size 1: expert optimizer states are not sharded
    assert z_ep.optimizer_bytes > ep.optimizer_bytes / 8


def test_pipeline_schedules_inflight_microbatches() -> None:
    """1F1B: stage i holds pp - i microbatches; GPipe all m; interleaved stage 0 holds
    pp (1 + (pp - 1)/(pp vpp)) (Narayanan SC'21 / Korthikanti Sec. 4.2.3)."""
    training = TrainingConfig(seq_len=2048, global_batch=64, micro_batch=1)
    layer = _act(LLAMA2_70B, seq_len=2048, tp=8, flash_attention=True)
    pp, layers_per_stage = 4, 20
    one_f = ParallelConfig(tp=8, pp=pp)
    for stage in (0, 1, 2):  # the last stage also holds logits
        mem = training_memory(LLAMA2_70B, training, one_f, stage=stage)
        assert mem.activations_bytes == pytest.approx(layer * layers_per_stage * (pp - stage))
    gpipe = ParallelConfig(tp=8, pp=pp, schedule=PipelineSchedule.GPIPE)
    mem = training_memory(LLAMA2_70B, training, gpipe, stage=1)
    assert mem.activations_bytes == pytest.approx(layer * layers_per_stage * 64)
    inter = ParallelConfig(tp=8, pp=pp, vpp=5, schedule=PipelineSchedule.INTERLEAVED)
    mem = training_memory(LLAMA2_70B, training, inter, stage=0)
    factor = 1 + (pp - 1) / (pp * 5)
    assert mem.activations_bytes == pytest.approx(layer * 80 * factor)


def test_other_bytes_and_bad_input() -> None:
    training = TrainingConfig(seq_len=2048, global_batch=8, micro_batch=1)
    mem = training_memory(LLAMA2_70B, training, ParallelConfig(tp=8, pp=8))
    assert FRAMEWORK_OVERHEAD_BYTES <= mem.other_bytes <= 3 * GiB
    assert mem.total_bytes == pytest.approx(mem.weights_bytes + mem.grads_bytes
                                            + mem.optimizer_bytes + mem.activations_bytes
                                            + mem.other_bytes)
    with pytest.raises(ConfigError, match="stage"):
        training_memory(LLAMA2_70B, training, ParallelConfig(tp=8, pp=8), stage=8)
    with pytest.raises(ConfigError, match="recompute"):
        _act(recompute="sometimes")
    with pytest.raises(ConfigError, match="tp"):
        _act(tp=0)


# --- hypothesis: monotonicity -----------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(mb=st.integers(1, 8), seq_exp=st.integers(9, 14), tp_exp=st.integers(0, 3),
       sp=st.booleans(), rc=st.sampled_from(list(Recompute)), flash=st.booleans())
def test_memory_monotone(mb: int, seq_exp: int, tp_exp: int, sp: bool, rc: Recompute,
                         flash: bool) -> None:
    seq, tp = 2**seq_exp, 2**tp_exp

    def total(mb_: int, seq_: int, tp_: int) -> float:
        plan = ParallelConfig(tp=tp_, pp=4, dp=2, sequence_parallel=sp, recompute=rc, zero=1)
        training = TrainingConfig(seq_len=seq_, global_batch=64 * mb_, micro_batch=mb_)
        return training_memory(LLAMA2_70B, training, plan, flash_attention=flash).total_bytes

    base = total(mb, seq, tp)
    assert total(mb + 1, seq, tp) > base
    assert total(mb, seq * 2, tp) > base
    assert total(mb, seq, tp * 2) <= base


# --- serving -------------------------------------------------------------------------------------

def test_kv_bytes_per_token_published_shapes() -> None:
    assert kv_bytes_per_token(LLAMA3_70B, DType.BF16) == 320 * KiB  # 80 x 8 x 128 x 2 x 2 B
    assert kv_bytes_per_token(LLAMA3_70B, DType.FP8) == 160 * KiB
    # DeepSeek-V3 MLA: (kv_lora_rank 512 + rope 64) x 61 layers x 2 B = 70,272 B (~68.6 KiB)
    assert kv_bytes_per_token(DEEPSEEK_V3, "bf16") == (512 + 64) * 61 * 2


def test_serving_weight_bytes() -> None:
    total = flops.param_count(LLAMA2_70B)
    bf16 = serving_weight_bytes(LLAMA2_70B, DType.BF16, tp=8)
    # nearly everything is split 8 ways; norms (2 x 8192 x 80) are replicated
    assert bf16 == pytest.approx(2 * total / 8, rel=1e-3)
    assert bf16 / GiB == pytest.approx(16.06, abs=0.02)  # vLLM logs ~16.1 "GB" (GiB) per rank
    int4 = serving_weight_bytes(LLAMA2_70B, "int4", tp=8)
    embed = 2 * 32000 * 8192 * 2 / 8  # embeddings + lm_head stay bf16
    assert int4 == pytest.approx((bf16 - embed) * (0.5 + 4 / 128) / 2 + embed, rel=1e-3)
    fp8 = serving_weight_bytes(LLAMA2_70B, "fp8", tp=8)
    assert int4 < fp8 < bf16
    # pipeline: the worst stage holds 40 layers + one vocabulary matrix
    assert serving_weight_bytes(LLAMA2_70B, tp=4, pp=2) == pytest.approx(bf16, rel=0.01)


def test_llama2_70b_tp8_h100_kv_capacity_by_hand() -> None:
    """vLLM's sizing by hand (no published block count found to cite): 0.9 x 79.6 GiB - 16.06 GiB
    weights - ~1 GiB profiling peak - 1.5 GiB non-torch = ~53.1 GiB, at 80 layers x 1 KV head
    per rank x 128 x 2 x 2 B = 40 KiB per token per rank -> ~87k blocks of 16 (~1.39M tokens).
    The model must land within 3% of the hand value."""
    cap = kv_cache_capacity(LLAMA2_70B, H100, tp=8)
    assert isinstance(cap, KVCapacity)
    weights = serving_weight_bytes(LLAMA2_70B, tp=8)
    free_hand = 0.9 * H100.memory_bytes - weights - 1.5 * GiB - 1.0 * GiB  # ~1 GiB profile activations
    blocks_hand = free_hand / (16 * 40 * KiB)
    assert cap.blocks == pytest.approx(blocks_hand, rel=0.03)
    assert cap.tokens == cap.blocks * 16
    assert cap.bytes == pytest.approx(cap.blocks * 16 * 40 * KiB)
    assert 1.3e6 < cap.tokens < 1.45e6
    # fp8 KV doubles the blocks
    cap8 = kv_cache_capacity(LLAMA2_70B, H100, tp=8, kv_dtype="fp8")
    assert cap8.blocks == pytest.approx(2 * cap.blocks, rel=0.01)


def test_kv_capacity_does_not_fit_message() -> None:
    with pytest.raises(ConfigError, match=r"does not fit: needs 12\d\.\d GiB .* of 71\.6 GiB"):
        kv_cache_capacity(LLAMA2_70B, H100, tp=1)
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        kv_cache_capacity(LLAMA2_70B, H100, tp=8, gpu_memory_utilization=1.5)


def test_eager_fp32_loss_holds_three_fp32_copies_of_the_logits_on_the_last_stage() -> None:
    """LossImpl.EAGER_FP32 keeps 12 bytes per logit at its peak against the fused CE's 4
    (LOSS_PEAK_BYTES_PER_LOGIT), only on the stage that computes the loss."""
    from hwmodels.memory import FRAGMENTATION_FRACTION, LOSS_PEAK_BYTES_PER_LOGIT
    from hwmodels.parallel import LossImpl

    assert LOSS_PEAK_BYTES_PER_LOGIT[LossImpl.EAGER_FP32] == 3 * 4.0
    fused = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)
    eager = dataclasses.replace(fused, loss_impl=LossImpl.EAGER_FP32)
    plan = ParallelConfig(tp=2, pp=2, dp=2)
    logits = 4096 * LLAMA3_70B.vocab_size / plan.tp
    first = [training_memory(LLAMA3_70B, t, plan, stage=0).total_bytes for t in (fused, eager)]
    last = [training_memory(LLAMA3_70B, t, plan, stage=1).total_bytes for t in (fused, eager)]
    assert first[0] == first[1]
    # activations carry the allocator's fragmentation allowance on top
    extra = 8.0 * logits * (1 + FRAGMENTATION_FRACTION)
    assert last[1] - last[0] == pytest.approx(extra, rel=1e-9)
