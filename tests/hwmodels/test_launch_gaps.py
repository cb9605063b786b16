"""Kernel stacks and launch gaps: eager decomposes fused ops, terms sum to the layer time."""

from __future__ import annotations

import pytest

from hwmodels import layers
from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import DType
from hwmodels.kernel_stack import EAGER_RMSNORM_KERNELS, EAGER_ROPE_KERNELS, HOST_DISPATCH_S
from hwmodels.ops import resolve_profile
from hwmodels.parallel import KernelStack
from hwmodels.profile import CATALOG_DEFAULTS, ElementwiseKind
from hwmodels.training.gradsync import ADAM_ELEMENTS_PER_LAUNCH, adam_launches, adam_step_time

H100 = load_device("h100-sxm")
LLAMA8B = load_model("llama3-8b")
KW = dict(micro_batch=1, seq_len=2048, tp=1, profile=CATALOG_DEFAULTS)


@pytest.mark.parametrize("fn", [layers.layer_forward_time, layers.layer_backward_time])
@pytest.mark.parametrize("stack", list(KernelStack))
def test_terms_sum_to_total(fn, stack) -> None:
    c = fn(LLAMA8B, H100, attention_impl="auto", kernels=stack, **KW)
    assert sum(c.terms().values()) == pytest.approx(c.total_s, rel=1e-12)
    assert all(v >= 0 for v in c.terms().values())
    assert c.terms()["launch_s"] == pytest.approx(c.kernels * 4e-6)


def test_fused_layer_kernel_count() -> None:
    # Llama layer, fused stack: 4 GEMMs (QKV, proj, gate+up, down), 1 attention, 2 norms,
    # 2 residual adds, rope, swiglu = 11 kernels forward.
    c = layers.layer_forward_time(LLAMA8B, H100, attention_impl="auto", **KW)
    assert (c.gemm_kernels, c.attention_kernels, c.elementwise_kernels) == (4, 1, 6)


def test_eager_runs_more_kernels_and_is_slower() -> None:
    fused = layers.layer_forward_time(LLAMA8B, H100, attention_impl="auto", kernels="fused", **KW)
    eager = layers.layer_forward_time(LLAMA8B, H100, attention_impl="auto", kernels="eager", **KW)
    extra = 2 * (EAGER_RMSNORM_KERNELS - 1) + (EAGER_ROPE_KERNELS - 1) + 1  # norms, rope, silu*up
    assert eager.elementwise_kernels - fused.elementwise_kernels == extra
    assert eager.elementwise_s > 2 * fused.elementwise_s
    assert eager.gemm_s == fused.gemm_s
    compiled = layers.layer_forward_time(LLAMA8B, H100, attention_impl="auto",
                                         kernels="compiled", **KW)
    # Inductor fuses pointwise chains like the fused stack; its attention is torch SDPA's
    # FA2 where TE would run cuDNN on Hopper
    assert compiled.elementwise_s == fused.elementwise_s
    assert compiled.elementwise_kernels == fused.elementwise_kernels
    assert compiled.attention_s > fused.attention_s


def test_eager_expansion_keeps_kinds() -> None:
    out = layers.layer_elementwise(LLAMA8B, 2048.0, 1, moe=False, sequence_parallel=False,
                                   dropout=False, dtype=DType.BF16, kernels="eager")
    norms = [k for k, _ in out if k is ElementwiseKind.NORM]
    assert len(norms) == 2 * EAGER_RMSNORM_KERNELS


def test_adam_launches_follow_multi_tensor_apply_chunks() -> None:
    assert adam_launches(0) == 0
    assert adam_launches(1) == 2
    assert adam_launches(ADAM_ELEMENTS_PER_LAUNCH + 1) == 4
    prof = resolve_profile(H100, CATALOG_DEFAULTS)
    n = 10 * ADAM_ELEMENTS_PER_LAUNCH
    one_pass = adam_step_time(H100, n, prof) - (adam_launches(n) - 1) * prof.kernel_overhead_s
    assert adam_step_time(H100, n, prof) > one_pass > 0


def test_tiny_pass_waits_on_the_host() -> None:
    # a 256-wide Llama on 64 tokens with the bundled H100 profile (1 us per kernel): kernels run
    # faster than PyTorch can issue them (the catalog's 4 us per kernel never lets the host bind)
    small = load_model({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 256,
                        "num_attention_heads": 4, "num_key_value_heads": 4,
                        "intermediate_size": 688, "vocab_size": 1000})
    tiny = dict(micro_batch=1, seq_len=64, tp=1, profile=None)
    c = layers.layer_forward_time(small, H100, attention_impl="auto", kernels="eager", **tiny)
    assert c.host_wait_s == pytest.approx(c.kernels * HOST_DISPATCH_S
                                          - (c.gemm_s + c.attention_s + c.elementwise_s))
    assert c.host_wait_s > 0
    assert sum(c.terms().values()) == pytest.approx(c.total_s)
    big = layers.layer_forward_time(LLAMA8B, H100, attention_impl="auto", kernels="eager", **KW)
    assert big.host_wait_s == 0.0
    legacy = layers.layer_forward_time(small, H100, **tiny)
    assert legacy.host_wait_s == 0.0  # no kernel stack given: no host model (serving callers)
