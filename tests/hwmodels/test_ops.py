"""Operator time models: roofline sanity against public GEMM/bandwidth figures, properties."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import ops
from hwmodels.catalog import load_device
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.profile import Curve, DeviceProfile
from hwmodels.specs import DeviceSpec

A100 = load_device("a100-80gb")
H100 = load_device("h100-sxm")

# A device built by hand (independent of catalog edits): A100-80GB datasheet numbers.
A100_HAND = DeviceSpec(
    name="a100-hand", vendor="nvidia",
    peak_flops=FrozenMap({DType.BF16: 312e12, DType.FP16: 312e12, DType.INT8: 624e12}),
    memory_bytes=80 * 2**30, memory_bw_Bps=2039e9, scale_up_link="nvlink3",
    scale_up_bw_Bps=300e9, tdp_w=400, idle_w=60, price_usd_per_hour=2.0,
    gemm_efficiency=FrozenMap({DType.BF16: 0.8}), memory_efficiency=0.9,
    attention_efficiency=0.65)

dims = st.integers(min_value=1, max_value=1 << 15)


def tflops(device: DeviceSpec, m: int, n: int, k: int, dtype: DType) -> float:
    return 2.0 * m * n * k / ops.gemm_time(device, m, n, k, dtype) / 1e12


def test_large_bf16_gemm_on_a100_reaches_70_to_90_percent_of_peak() -> None:
    # cuBLAS 8192^3 bf16 on A100 SXM: ~250-280 TFLOP/s (mamf-finder, NVIDIA GEMM guide). The
    # band's floor is 0.70, not 0.75, because the catalog's A100 value (0.72) is the sustained
    # transformer-training GEMM figure that fits Megatron-LM SC'21/Korthikanti et al. (see
    # devices.yaml), a few points below an isolated cuBLAS benchmark; below 0.70 still fails.
    for dev in (A100, A100_HAND):
        frac = tflops(dev, 8192, 8192, 8192, DType.BF16) / 312.0
        assert 0.70 <= frac <= 0.9, frac


def test_large_bf16_gemm_on_h100_reaches_60_to_85_percent_of_peak() -> None:
    # H100 SXM bf16 large GEMMs: ~650-800 TFLOP/s of 989 (mamf-finder sweeps, 2024).
    frac = tflops(H100, 8192, 8192, 8192, DType.BF16) / 989.0
    assert 0.6 <= frac <= 0.85, frac


def test_tiny_gemm_is_latency_bound() -> None:
    t = ops.gemm_time(A100, 64, 64, 64, DType.BF16)
    overhead_s = ops.resolve_profile(A100).kernel_overhead_s  # bundled profile's, if any
    assert t >= overhead_s
    assert t < 3 * overhead_s
    assert tflops(A100, 64, 64, 64, DType.BF16) < 0.01 * 312


def test_gemv_is_memory_bound_at_weight_read_rate() -> None:
    # m=1 decode GEMV of an 8192x8192 bf16 weight (134 MB): bounded below by bytes / HBM peak,
    # and within 1.5x of it (streaming at the catalog's ~90% efficiency + launch).
    t = ops.gemm_time(A100, 1, 8192, 8192, DType.BF16)
    ideal = 8192 * 8192 * 2 / A100.memory_bw_Bps
    assert ideal < t < 1.5 * ideal


def test_int4_weight_only_reads_quarter_of_the_bytes() -> None:
    bf16 = ops.gemm_time(H100, 1, 8192, 8192, DType.BF16)
    int4 = ops.gemm_time(H100, 1, 8192, 8192, DType.INT4)
    assert 0.2 < int4 / bf16 < 0.4
    # Large m: compute-bound, same bf16 math.
    big = (16384, 8192, 8192)
    assert ops.gemm_time(H100, *big, DType.INT4) == pytest.approx(
        ops.gemm_time(H100, *big, DType.BF16), rel=0.05)


@settings(max_examples=60, deadline=None)
@given(m=dims, n=dims, k=dims)
def test_fp8_never_slower_than_bf16(m: int, n: int, k: int) -> None:
    assert ops.gemm_time(H100, m, n, k, DType.FP8) <= ops.gemm_time(H100, m, n, k, DType.BF16)


@settings(max_examples=60, deadline=None)
@given(m=dims, n=dims, k=dims, dm=st.integers(1, 4096))
def test_gemm_time_never_decreases_with_size(m: int, n: int, k: int, dm: int) -> None:
    for dev in (A100, H100):
        t = ops.gemm_time(dev, m, n, k, DType.BF16)
        assert ops.gemm_time(dev, m + dm, n, k, DType.BF16) >= t
        assert ops.gemm_time(dev, m, n + dm, k, DType.BF16) >= t
        assert ops.gemm_time(dev, m, n, k + dm, DType.BF16) >= t


@settings(max_examples=40, deadline=None)
@given(m=dims, n=dims, k=dims, scale=st.floats(1.0, 4.0))
def test_more_bandwidth_never_slower(m: int, n: int, k: int, scale: float) -> None:
    faster = dataclasses.replace(A100_HAND, name="a100-fast",
                                 memory_bw_Bps=A100_HAND.memory_bw_Bps * scale)
    assert ops.gemm_time(faster, m, n, k, DType.BF16) <= ops.gemm_time(A100_HAND, m, n, k,
                                                                      DType.BF16) * (1 + 1e-12)
    assert ops.memory_time(faster, m * n) <= ops.memory_time(A100_HAND, m * n) * (1 + 1e-12)


def test_default_curves_are_monotone_for_every_catalog_device() -> None:
    from hwmodels.catalog import list_devices

    for name in list_devices():
        prof = ops.default_profile(load_device(name))
        for curve in (*prof.gemm.values(), prof.memory, prof.attention_prefill,
                      prof.attention_decode):
            assert ops.curve_is_monotone(curve), name
    assert not ops.curve_is_monotone(Curve((1.0, 10.0), (0.01, 0.5)))


def test_memory_time_small_copies_are_launch_bound_large_stream() -> None:
    overhead_s = ops.resolve_profile(A100).kernel_overhead_s  # bundled profile's, if any
    assert ops.memory_time(A100, 4096) == pytest.approx(overhead_s, rel=0.05)
    big = 4e9
    rate = big / ops.memory_time(A100, big)
    # STREAM-like copies on A100 80GB: ~1.7-1.9 TB/s.
    assert 1.6e12 < rate < 1.95e12
    assert ops.memory_time(A100, 0) == 0.0


def test_flash_attention_forward_matches_flashattention2_a100_range() -> None:
    # FlashAttention-2 (Fig. 4): A100, hdim 128, causal, seqlen 8k x batch 2, 16 heads:
    # ~180-200 TFLOP/s forward.
    b, s, h, d = 2, 8192, 16, 128
    t = ops.attention_prefill_time(A100, batch=b, q_len=s, kv_len=s, num_heads=h, head_dim=d,
                                   dtype=DType.BF16)
    flops = 4 * b * h * d * s * s / 2
    assert 150e12 < flops / t < 215e12, flops / t / 1e12


def test_causal_chunk_flops_and_backward_ratio() -> None:
    assert ops.causal_pairs(100, 100) == 5000
    assert ops.causal_pairs(10, 110) == 10 * 105  # chunk of 10 after 100 cached tokens
    kw = dict(batch=4, q_len=2048, kv_len=2048, num_heads=32, head_dim=128, dtype=DType.BF16)
    fwd = ops.attention_prefill_time(A100, **kw)
    bwd = ops.attention_prefill_time(A100, **kw, backward=True)
    assert 2.5 <= bwd / fwd <= 2.5 / ops.ATTN_BACKWARD_EFF_RATIO + 0.01
    non_causal = ops.attention_prefill_time(A100, **kw, causal=False)
    assert 1.5 < non_causal / fwd < 2.2


def test_decode_attention_reads_kv_at_memory_speed() -> None:
    # 64 sequences x 4096 context of Llama-3-8B KV (8 kv heads x 128, bf16): 1.07 GB per layer,
    # read at 75-100% of HBM bandwidth (FlashInfer batch decode reaches ~80-90%).
    t = ops.attention_decode_time(H100, num_seqs=64, total_context=64 * 4096, num_heads=32,
                                  num_kv_heads=8, head_dim=128, kv_dtype=DType.BF16)
    kv = 64 * 4096 * 2 * 8 * 128 * 2
    assert 0.75 * H100.memory_bw_Bps < kv / t < H100.memory_bw_Bps
    fp8 = ops.attention_decode_time(H100, num_seqs=64, total_context=64 * 4096, num_heads=32,
                                    num_kv_heads=8, head_dim=128, kv_dtype=DType.FP8)
    assert 0.45 < fp8 / t < 0.6
    assert ops.attention_decode_time(H100, num_seqs=0, total_context=0, num_heads=32,
                                     num_kv_heads=8, head_dim=128, kv_dtype="bf16") == 0.0


def test_grouped_gemm_is_one_launch_and_at_least_one_big_gemm() -> None:
    one = ops.gemm_time(H100, 64, 4096, 4096, DType.BF16)
    grouped = ops.grouped_gemm_time(H100, 8, 64, 4096, 4096, DType.BF16)
    assert grouped < 8 * one
    assert grouped >= ops.gemm_time(H100, 64, 8 * 4096, 4096, DType.BF16) * 0.999


def test_bad_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="dtype"):
        ops.gemm_time(A100, 16, 16, 16, "bf12")
    with pytest.raises(ConfigError, match="fp8"):
        ops.gemm_time(A100, 16, 16, 16, DType.FP8)  # A100 has no fp8 tensor cores
    with pytest.raises(ConfigError, match="key 'm'"):
        ops.gemm_time(A100, -1, 16, 16, DType.BF16)
    with pytest.raises(ConfigError, match="kv_len"):
        ops.attention_prefill_time(A100, batch=1, q_len=10, kv_len=5, num_heads=1,
                                   head_dim=64, dtype=DType.BF16)
    with pytest.raises(ConfigError, match="total_context"):
        ops.attention_decode_time(A100, num_seqs=4, total_context=2, num_heads=1,
                                  num_kv_heads=1, head_dim=64, kv_dtype=DType.BF16)
    with pytest.raises(ConfigError, match="profile"):
        ops.resolve_profile(A100, 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot read profile"):
        ops.resolve_profile(A100, "/nonexistent/profile.json")


def test_resolve_profile_passes_loads_and_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    default = ops.resolve_profile(A100_HAND)
    assert default is ops.default_profile(A100_HAND)
    assert default.source == "defaults"
    assert ops.resolve_profile(A100_HAND, default) is default
    # A calibrated profile with half the GEMM efficiency doubles large-GEMM time.
    half = DeviceProfile(device="a100-hand",
                         gemm={DType.BF16: Curve((1e6, 1e12), (0.4, 0.4))},  # type: ignore
                         memory=default.memory, attention_prefill=default.attention_prefill,
                         attention_decode=default.attention_decode, kernel_overhead_s=0.0,
                         host_to_device_Bps=2.5e10)
    t_half = ops.gemm_time(A100_HAND, 8192, 8192, 8192, DType.BF16, half)
    assert t_half == pytest.approx(2 * 8192**3 / (312e12 * 0.4))
    path = tmp_path / "a100-hand.json"
    path.write_text(json.dumps({
        "format": "fleetsim-profile", "version": 2, "device": "a100-hand",
        "source": {"description": "hand-written test profile"},
        "gemm": {"bf16": {"x": [1e6, 1e12], "eff": [0.4, 0.4]}},
        "memory": {"x": [1e3, 1e9], "eff": [0.9, 0.9]},
        "attention_prefill": {"x": [1e6, 1e12], "eff": [0.5, 0.5]},
        "attention_decode": {"x": [1e3, 1e9], "eff": [0.8, 0.8]},
        "kernel_overhead_s": 0.0}))
    loaded = ops.resolve_profile(A100_HAND, str(path))
    assert loaded.source == str(path)
    assert ops.gemm_time(A100_HAND, 8192, 8192, 8192, DType.BF16, path) == pytest.approx(t_half)
    with pytest.raises(ConfigError, match="not 'h100-sxm'"):
        ops.resolve_profile(H100, path)


def test_memory_time_kind_picks_the_kind_curve_else_the_generic_one() -> None:
    default = ops.default_profile(A100)
    slow = dataclasses.replace(default, name="slow-rope", source="test",
                               measured=frozenset({"elementwise.rope"}),
                               elementwise=FrozenMap({"rope": Curve((1e3, 1e10), (0.1, 0.1))}))
    nbytes = 1e8
    assert ops.memory_time(A100, nbytes, slow, kind="rope") == pytest.approx(
        nbytes / (A100.memory_bw_Bps * 0.1) + A100.kernel_overhead_s)
    # kinds without a curve (and kind=None) use the generic memory curve
    assert ops.memory_time(A100, nbytes, slow, kind="norm") == \
        ops.memory_time(A100, nbytes, slow) == ops.memory_time(A100, nbytes, "defaults")
    with pytest.raises(ConfigError) as err:
        ops.memory_time(A100, nbytes, slow, kind="layernorm")
    assert err.value.key == "kind" and "norm" in str(err.value)
