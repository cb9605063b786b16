"""JetStream's fixed-shape presets (hwmodels/catalog/engines.yaml jetstream-pytorch,
jetstream-maxtext): decode attention over the whole preallocated cache, decode padded to
every slot, prompts padded up to a bucket and prefilled one at a time."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_device, load_model
from hwmodels.engine_profiles import KVAttention, load_engine
from hwmodels.errors import ConfigError
from hwmodels.step import StepCostModel

ENGINE = "jetstream-pytorch"
SLOTS, CACHE = 96, 2048


def _cost(model: str = "llama2-7b", *, engine: str | None = ENGINE, slots: int = SLOTS,
          cache: int = CACHE, dtype: str = "bf16") -> StepCostModel:
    return StepCostModel(load_model(model), load_device("tpu-v5e"), tp=8, dtype=dtype,
                         engine=engine, decode_slots=slots, cache_len=cache)


@pytest.fixture(scope="module")
def cost() -> StepCostModel:
    return _cost()


def test_presets_are_fixed_shape_with_sources() -> None:
    for name in (ENGINE, "jetstream-maxtext"):
        eng = load_engine(name)
        assert eng.kv_attention is KVAttention.PREALLOCATED and eng.max_cache_len >= 1
        assert eng.fixed_decode_batch and eng.prefill_sequential and eng.reshapes_batch
        assert eng.prefill_buckets[-1] == eng.max_batch_tokens  # cut at max_prefill_length
        assert "JetStream" in eng.source or "jetstream" in eng.source
    for name in ("vllm-0.6", "sglang", "trtllm", "kernel-only"):
        assert not load_engine(name).reshapes_batch


def test_decode_step_follows_the_cache_not_the_live_context(cost) -> None:
    short = cost.time_s(0, 0, SLOTS, SLOTS * 10)
    long = cost.time_s(0, 0, SLOTS, SLOTS * 1500)
    assert short == long  # live context does not matter ...
    bigger = _cost(cache=4096).time_s(0, 0, SLOTS, SLOTS * 10)
    smaller = _cost(cache=1024).time_s(0, 0, SLOTS, SLOTS * 10)
    assert smaller < short < bigger  # ... the preallocated cache length does
    # the attention part scales with the cache: twice the cache, twice the KV read
    a1 = _cost(cache=1024).breakdown(0, 0, SLOTS, SLOTS)["attention_decode_s"]
    a2 = cost.breakdown(0, 0, SLOTS, SLOTS)["attention_decode_s"]
    assert a2 == pytest.approx(2 * a1, rel=0.05)


def test_decode_runs_every_slot(cost) -> None:
    full = cost.time_s(0, 0, SLOTS, SLOTS * 300)
    assert cost.time_s(0, 0, 1, 300) == full
    assert cost.time_s(0, 0, 40, 40 * 700) == full
    # a paged engine pays for the live batch only
    live = _cost(engine=None)
    assert live.time_s(0, 0, 1, 300) < live.time_s(0, 0, SLOTS, SLOTS * 300)


def test_full_cache_attention_costs_mha_four_times_gqa() -> None:
    """Llama-2-7B (32 KV heads) vs Llama-3-8B (8 KV heads): same layers and head_dim, so the
    preallocated cache each decode step reads is 4x larger for the MHA model."""
    mha = _cost("llama2-7b").breakdown(0, 0, SLOTS, SLOTS)
    gqa = _cost("llama3-8b").breakdown(0, 0, SLOTS, SLOTS)
    ratio = mha["attention_decode_s"] / gqa["attention_decode_s"]
    assert 3.0 < ratio <= 4.0 + 1e-9
    # against live-context attention (kernel-only at ~400 tokens) the preset slows MHA more
    ctx = SLOTS * 400

    def slowdown(model: str) -> float:
        return _cost(model).time_s(0, 0, SLOTS, ctx) / _cost(model, engine=None).time_s(
            0, 0, SLOTS, ctx)
    assert slowdown("llama2-7b") > slowdown("llama3-8b") > 1.0


def test_prefill_is_padded_to_its_bucket(cost) -> None:
    def one(n: int) -> float:
        return cost.time_s(n, n * n / 2.0, 0, 0, prefill_seqs=1)
    assert one(130) == one(200) == one(256)
    assert one(256) < one(257) == one(512)
    assert one(16) == one(1)
    eng = load_engine(ENGINE)
    assert eng.padded_prompt_len(231) == 256 and eng.padded_prompt_len(1024) == 1024
    assert eng.padded_prompt_len(3000) == 3000  # past the last bucket: unpadded


def test_prompts_are_prefilled_one_at_a_time(cost) -> None:
    one = cost.breakdown(200, 200 * 100.0, 0, 0, prefill_seqs=1)
    three = cost.breakdown(600, 3 * 200 * 100.0, 0, 0, prefill_seqs=3)
    for key in ("time_s", "gemm_s", "tp_comm_s", "cpu_s"):
        assert three[key] == pytest.approx(3 * one[key], rel=1e-12), key
    # parts still sum to time_s
    parts = sum(v for k, v in three.items() if k not in ("time_s", "stage_s", "flops"))
    assert parts == pytest.approx(three["time_s"], rel=1e-12)
    # a batched-prefill engine runs the three prompts as one bigger step, cheaper
    batched = _cost(engine="vllm-0.6").time_s(600, 3 * 200 * 100.0, 0, 0, prefill_seqs=3)
    assert batched < three["time_s"]


def test_kernel_only_ignores_slots_and_cache() -> None:
    plain = StepCostModel(load_model("llama2-7b"), load_device("tpu-v5e"), tp=8)
    with_args = _cost(engine=None)
    for args in ((0, 0, 10, 4000), (300, 300 * 150.0, 0, 0)):
        assert plain.time_s(*args) == with_args.time_s(*args)


def test_bad_shapes_exit_with_config_errors() -> None:
    eng = load_engine(ENGINE)
    with pytest.raises(ConfigError, match="max_cache_len"):
        dataclasses.replace(eng, max_cache_len=0)
    with pytest.raises(ConfigError, match="prefill_buckets"):
        dataclasses.replace(eng, prefill_buckets=(64, 32))
    with pytest.raises(ConfigError, match="kv_attention"):
        dataclasses.replace(eng, kv_attention="whole")
    with pytest.raises(ConfigError, match="decode_slots"):
        _cost(slots=0)


@settings(max_examples=40, deadline=None)
@given(live=st.integers(1, SLOTS), ctx_per_seq=st.integers(1, CACHE),
       cache=st.integers(64, 4096))
def test_decode_step_depends_only_on_slots_and_cache(live: int, ctx_per_seq: int,
                                                     cache: int) -> None:
    cost = _cost(cache=cache)
    assert cost.time_s(0, 0, live, live * ctx_per_seq) == cost.time_s(0, 0, SLOTS, SLOTS)
    assert _cost(cache=cache + 64).time_s(0, 0, live, live) >= cost.time_s(0, 0, live, live)


def test_greedy_sharded_sampler_skips_the_logits_gather() -> None:
    """JetStream argmaxes each TP rank's vocab shard: no all-gather of rows x vocab logits, so
    its logits part is cheaper than the full sampler's, more so for a 128k vocabulary."""
    eng = load_engine(ENGINE)
    full = dataclasses.replace(eng, sampler="full")
    model, device = load_model("llama3-8b"), load_device("tpu-v5e")
    greedy_s = StepCostModel(model, device, tp=8, engine=eng).breakdown(0, 0, SLOTS, SLOTS)
    full_s = StepCostModel(model, device, tp=8, engine=full).breakdown(0, 0, SLOTS, SLOTS)
    assert greedy_s["logits_s"] < 0.6 * full_s["logits_s"]
    for key in ("gemm_s", "attention_decode_s", "tp_comm_s"):
        assert greedy_s[key] == full_s[key], key
    with pytest.raises(ConfigError, match="sampler"):
        dataclasses.replace(eng, sampler="beam")
