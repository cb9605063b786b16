"""Numeric formats and their storage sizes."""

from __future__ import annotations

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError


class DType(StrEnum):
    """Numeric formats a device computes in or stores weights/KV in."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"


BYTES_PER_ELEMENT: dict[DType, float] = {
    DType.FP32: 4.0,
    DType.TF32: 4.0,  # stored as fp32, multiplied on tensor cores at tf32 precision
    DType.BF16: 2.0,
    DType.FP16: 2.0,
    DType.FP8: 1.0,
    DType.INT8: 1.0,
    DType.INT4: 0.5,
}


def parse_dtype(value: object, *, key: str = "dtype", file: str | None = None) -> DType:
    """DType from its name; unknown names raise ConfigError listing the valid ones."""
    if isinstance(value, DType):
        return value
    try:
        return DType(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown dtype '{value}'", file=file, key=key,
                          allowed=[d.value for d in DType]) from None


def bytes_per_element(dtype: DType | str) -> float:
    """Storage bytes of one element of `dtype`."""
    return BYTES_PER_ELEMENT[parse_dtype(dtype)]


def compute_dtype_for(dtype: DType) -> DType:
    """The dtype the matmuls run in for weights stored as `dtype` (weight-only int4 -> bf16)."""
    return DType.BF16 if dtype is DType.INT4 else dtype


def kv_cache_dtype(dtype: DType | str, kv_dtype: DType | str | None = None) -> DType:
    """The KV cache's dtype: `kv_dtype` if given, else vLLM's kv_cache_dtype="auto" (the
    activation dtype: the 16/32-bit weight dtype itself, bf16 for quantized or tf32 weights)."""
    if kv_dtype is not None:
        return parse_dtype(kv_dtype, key="kv_dtype")
    dt = parse_dtype(dtype)
    return dt if dt in (DType.BF16, DType.FP16, DType.FP32) else DType.BF16
