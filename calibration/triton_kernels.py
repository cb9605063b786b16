"""Our own Triton kernels, timed beside torch so custom-kernel efficiency is known too.

- `swiglu(gate, up, out)`: out = silu(gate) * up in one pass (bandwidth-bound: 2 reads, 1 write),
  the fused activation of Llama MLPs.
- `matmul(a, b)`: a tiled matmul with grouped tile ordering for L2 reuse (the structure of the
  Triton matmul tutorial), fp32 accumulation.

Triton is optional: without it (or without a GPU) `unavailable_reason` says why and the benchmark
is skipped with that message.
"""

from __future__ import annotations

from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton ships with CUDA/ROCm torch wheels, not with CPU ones
    triton = None
    tl = None


def unavailable_reason(device: torch.device) -> str:
    """'' when the Triton kernels can run on `device`, else the reason they cannot."""
    if triton is None:
        return "triton is not installed"
    if device.type != "cuda":
        return f"our Triton kernels target CUDA/ROCm GPUs, not '{device.type}'"
    return ""


if triton is not None:

    @triton.jit
    def _swiglu_kernel(gate_ptr, up_ptr, out_ptr, n, BLOCK: tl.constexpr):  # noqa: N803
        pid = tl.program_id(0)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        g = tl.load(gate_ptr + offs, mask=mask).to(tl.float32)
        u = tl.load(up_ptr + offs, mask=mask).to(tl.float32)
        y = g * tl.sigmoid(g) * u
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,  # noqa: N803
                       stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,  # noqa: N803
                       BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):  # noqa: N803
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BLOCK_M)
        num_n = tl.cdiv(N, BLOCK_N)
        # grouped ordering: GROUP_M row-tiles share B tiles while they are in L2
        per_group = GROUP_M * num_n
        group = pid // per_group
        first_m = group * GROUP_M
        size_m = min(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % size_m
        pid_n = (pid % per_group) // size_m
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        a_ptrs = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak
        b_ptrs = b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            a = tl.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k0 < K), other=0.0)
            b = tl.load(b_ptrs, mask=(rk[:, None] + k0 < K) & (rn[None, :] < N), other=0.0)
            acc += tl.dot(a, b)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c_ptrs = c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


# Tile sizes: 128x128x64 tiles with 8-row groups are the Triton tutorial's fast configuration on
# A100/H100 for 16-bit inputs; 1024-element blocks saturate bandwidth for the elementwise kernel.
SWIGLU_BLOCK = 1024
MATMUL_TILES: dict[str, Any] = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8,
                                "num_warps": 8, "num_stages": 3}


def swiglu(gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = silu(gate) * up for contiguous same-shaped tensors (Triton, one pass)."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    n = gate.numel()
    _swiglu_kernel[(triton.cdiv(n, SWIGLU_BLOCK),)](gate, up, out, n, BLOCK=SWIGLU_BLOCK)
    return out


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a[M,K] @ b[K,N] with the tiled Triton kernel (output in a's dtype)."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty(m, n, device=a.device, dtype=a.dtype)
    tiles = MATMUL_TILES
    grid = (triton.cdiv(m, tiles["BLOCK_M"]) * triton.cdiv(n, tiles["BLOCK_N"]),)
    _matmul_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                         c.stride(0), c.stride(1), **tiles)
    return c
