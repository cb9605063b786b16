"""The one default-KV-dtype rule (vLLM kv_cache_dtype="auto") agrees across step, memory, power."""

from __future__ import annotations

import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import DType, kv_cache_dtype
from hwmodels.memory import kv_cache_capacity
from hwmodels.step import StepCostModel


@pytest.mark.parametrize(("dtype", "kv"), [("bf16", DType.BF16), ("fp16", DType.FP16),
                                           ("fp32", DType.FP32), ("fp8", DType.BF16),
                                           ("int8", DType.BF16), ("int4", DType.BF16)])
def test_auto_kv_dtype_is_the_activation_dtype(dtype: str, kv: DType) -> None:
    assert kv_cache_dtype(dtype) is kv
    assert kv_cache_dtype(dtype, "fp8") is DType.FP8


def test_step_and_memory_use_the_same_kv_dtype() -> None:
    model, device = load_model("llama3-8b"), load_device("h100-sxm")
    step = StepCostModel(model, device, tp=1, dtype="fp8")
    cap = kv_cache_capacity(model, device, tp=1, dtype="fp8")
    assert step.kv_dtype is DType.BF16
    assert cap.bytes / cap.blocks == pytest.approx(
        kv_cache_capacity(model, device, tp=1, dtype="fp8", kv_dtype="bf16").bytes
        / kv_cache_capacity(model, device, tp=1, dtype="fp8", kv_dtype="bf16").blocks)
