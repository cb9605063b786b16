"""Problem sizes of the microbenchmark sweeps: full (GPU/NPU), quick, and tiny (CPU).

Shapes are those transformer layers run: the four linear layers of a Llama-3-8B block
(hidden 4096, 32 query / 8 KV heads of 128, SwiGLU width 14336; Meta's Llama-3 model card) over
token counts from single-sequence decode to large prefill/training batches, and a Llama-3-70B
block (hidden 8192, width 28672) for the largest GEMMs. The CPU plan keeps the same structure at
1/16 of the width so the whole CPU calibration runs in well under a minute on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepPlan:
    """Every size the benchmarks visit; one plan per mode."""

    name: str
    gemm_nk: tuple[tuple[int, int], ...]  # (n, k) of C[m,n] = A[m,k] @ W[k,n]
    gemm_m: tuple[int, ...]  # token counts
    attn_heads: int
    attn_kv_heads: int
    attn_head_dim: int
    prefill_seq: tuple[int, ...]
    prefill_tokens: int  # batch = max(1, prefill_tokens // seq) (FlashAttention-2 paper style)
    decode_batch: tuple[int, ...]
    decode_context: tuple[int, ...]
    decode_max_bytes: float
    memory_elems: tuple[int, ...]
    norm_width: int
    embedding_vocab: int  # rows of the embedding table the gather benchmark reads from
    host_bytes: tuple[int, ...]
    collective_bytes: tuple[int, ...]
    target_time_s: float


def _llama_nk(hidden: int, kv_dim: int, ffn: int) -> tuple[tuple[int, int], ...]:
    """(n, k) of a Llama block's fused QKV, output, fused gate+up and down projections."""
    return ((hidden + 2 * kv_dim, hidden), (hidden, hidden), (2 * ffn, hidden), (hidden, ffn))


FULL = SweepPlan(
    name="full",
    gemm_nk=_llama_nk(4096, 1024, 14336) + ((8192, 8192), (57344, 8192), (8192, 28672)),
    gemm_m=(1, 8, 32, 128, 512, 2048, 4096, 8192),
    attn_heads=32, attn_kv_heads=8, attn_head_dim=128,
    prefill_seq=(128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    prefill_tokens=16384,
    decode_batch=(1, 8, 32, 128, 256),
    decode_context=(256, 1024, 4096, 16384, 32768),
    decode_max_bytes=8e9,
    memory_elems=tuple(1 << p for p in range(14, 31, 2)),  # 16 Ki .. 1 Gi elements
    norm_width=4096,
    embedding_vocab=128256,  # Llama 3 vocabulary (Meta model card)
    host_bytes=tuple(1 << p for p in range(20, 31, 2)),  # 1 MiB .. 1 GiB
    collective_bytes=tuple(1 << p for p in range(16, 31, 2)),  # 64 KiB .. 1 GiB
    target_time_s=0.05,
)

QUICK = SweepPlan(
    name="quick",
    gemm_nk=_llama_nk(4096, 1024, 14336),
    gemm_m=(1, 32, 256, 1024, 4096),
    attn_heads=32, attn_kv_heads=8, attn_head_dim=128,
    prefill_seq=(256, 1024, 4096),
    prefill_tokens=8192,
    decode_batch=(1, 16, 64),
    decode_context=(1024, 8192),
    decode_max_bytes=2e9,
    memory_elems=tuple(1 << p for p in range(16, 29, 4)),
    norm_width=4096,
    embedding_vocab=128256,  # Llama 3 vocabulary (Meta model card)
    host_bytes=(1 << 22, 1 << 28),
    collective_bytes=(1 << 20, 1 << 26),
    target_time_s=0.02,
)

CPU = SweepPlan(
    name="cpu",
    gemm_nk=_llama_nk(256, 64, 688),
    gemm_m=(1, 4, 16, 64, 256, 512),
    attn_heads=8, attn_kv_heads=2, attn_head_dim=32,
    prefill_seq=(32, 64, 128, 256, 512),
    prefill_tokens=512,
    decode_batch=(1, 4, 16),
    decode_context=(64, 256, 1024),
    decode_max_bytes=1e9,
    memory_elems=tuple(1 << p for p in range(12, 25, 2)),  # 4 Ki .. 16 Mi elements
    norm_width=256,
    embedding_vocab=4096,  # the CPU validation decoder's vocabulary
    host_bytes=(),
    collective_bytes=(1 << 12, 1 << 16, 1 << 20),
    target_time_s=0.02,
)

CPU_QUICK = SweepPlan(
    name="cpu-quick",
    gemm_nk=_llama_nk(256, 64, 688),
    gemm_m=(1, 16, 128, 512),
    attn_heads=8, attn_kv_heads=2, attn_head_dim=32,
    prefill_seq=(64, 256),
    prefill_tokens=256,
    decode_batch=(1, 8),
    decode_context=(128, 512),
    decode_max_bytes=1e9,
    memory_elems=tuple(1 << p for p in range(12, 23, 2)),  # 4 Ki .. 4 Mi: 6 sizes, so the
    # held-out gate (every third size) leaves 4 per kind to fit
    norm_width=256,
    embedding_vocab=4096,  # the CPU validation decoder's vocabulary
    host_bytes=(),
    collective_bytes=(1 << 12, 1 << 18),
    target_time_s=0.01,
)


def plan_for(device_type: str, quick: bool) -> SweepPlan:
    """The sweep for a device kind: tiny on the CPU, quick or full elsewhere."""
    if device_type == "cpu":
        return CPU_QUICK if quick else CPU
    return QUICK if quick else FULL
