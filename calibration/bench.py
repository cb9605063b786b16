"""Microbenchmarks on one torch device: GEMM per dtype, SDPA prefill, decode attention, streaming
memory kernels, kernel overhead, host<->device copies, Triton kernels.

Each benchmark returns JSON-ready records (shape, work in FLOPs or bytes, timing). Efficiency is
computed later by calibration.fit against the device's peak. torch + standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from calibration import triton_kernels
from calibration.errors import CalibrationError
from calibration.sizes import SweepPlan
from calibration.timing import time_fn

Log = Callable[[str], None]
Record = dict[str, Any]

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
ALL_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")
# Bytes per element of the GEMM operands as hwmodels.ops counts them (fp8: 8-bit in, bf16 out).
_OPERAND_BYTES = {"fp32": (4, 4, 4), "tf32": (4, 4, 4), "bf16": (2, 2, 2), "fp16": (2, 2, 2),
                  "fp8": (1, 1, 2)}


def _matmul_precision(dtype: str) -> str:
    """torch float32 matmul precision: 'high' lets fp32 matmuls use TF32 tensor cores."""
    return "high" if dtype == "tf32" else "highest"


def _fp8_gemm(device: torch.device, m: int, n: int, k: int) -> Callable[[], Any]:
    """A C[m,n] = A[m,k] @ W[k,n] call with e4m3 inputs via torch._scaled_mm (bf16 output)."""
    a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
    w = torch.randn(n, k, device=device).to(torch.float8_e4m3fn)
    one = torch.ones((), device=device, dtype=torch.float32)
    return lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def _gemm_call(device: torch.device, dtype: str, m: int, n: int, k: int) -> Callable[[], Any]:
    if dtype == "fp8":
        return _fp8_gemm(device, m, n, k)
    tdt = TORCH_DTYPES[dtype]
    a = torch.randn(m, k, device=device, dtype=tdt)
    # nn.Linear layout (weight [out, in], y = x W^T), as every framework stores weights: on the
    # CPU a GEMV against W^T runs ~1.6x slower than against a [k, n] matrix (measured, m=6,
    # 4096x256 fp32), so the sweep must use the layout models run.
    w = torch.randn(n, k, device=device, dtype=tdt)
    out = torch.empty(m, n, device=device, dtype=tdt)
    return lambda: torch.matmul(a, w.t(), out=out)


def dtype_supported(device: torch.device, dtype: str) -> tuple[bool, str]:
    """(supported, reason) for a GEMM dtype on the device, probed with a tiny matmul."""
    if dtype not in ALL_DTYPES:
        return False, f"unknown dtype (allowed: {', '.join(ALL_DTYPES)})"
    if dtype == "tf32" and device.type != "cuda":
        return False, "TF32 tensor-core math exists on NVIDIA GPUs (Ampere and newer) only"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        hip = getattr(torch.version, "hip", None)
        if dtype == "tf32" and (major < 8 or hip):
            return False, f"TF32 needs compute capability >= 8.0 (device has {major}.{minor})"
        if dtype == "bf16" and not torch.cuda.is_bf16_supported():
            return False, "torch.cuda.is_bf16_supported() is False on this device"
        if dtype == "fp8" and (major, minor) < (8, 9) and not hip:
            return False, f"FP8 GEMMs need compute capability >= 8.9 (device has {major}.{minor})"
    elif dtype == "fp8":
        return False, "FP8 GEMMs (torch._scaled_mm) need a CUDA/ROCm GPU"
    try:
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(_matmul_precision(dtype))
        try:
            _gemm_call(device, dtype, 32, 32, 32)()
        finally:
            torch.set_float32_matmul_precision(precision)
    except (RuntimeError, TypeError, NotImplementedError) as err:
        return False, f"probe matmul failed: {str(err).splitlines()[0]}"
    return True, ""


def default_dtypes(device: torch.device) -> list[str]:
    """Every GEMM dtype the device supports, checked by probing (fp16 skipped on the CPU, where
    it has no fast path and models do not run in it)."""
    wanted = [d for d in ALL_DTYPES if not (device.type == "cpu" and d == "fp16")]
    return [d for d in wanted if dtype_supported(device, d)[0]]


def check_dtypes(device: torch.device, dtypes: list[str]) -> list[str]:
    """The requested dtypes, or a CalibrationError naming the first unsupported one."""
    for dt in dtypes:
        ok, why = dtype_supported(device, dt)
        if not ok:
            why = why.split(" (allowed:")[0]  # the allowed list follows once, for this device
            raise CalibrationError(f"dtype '{dt}' is not supported on {device}: {why}",
                                   key="--dtypes",
                                   allowed=[d for d in ALL_DTYPES if dtype_supported(device, d)[0]])
    return dtypes


def _record(family: str, timing: Any, **fields: Any) -> Record:
    return {"family": family, **fields, **timing.to_json()}


def bench_gemm(device: torch.device, plan: SweepPlan, dtypes: list[str], log: Log) -> list[Record]:
    """GEMM sweep: every (m, n, k) of the plan for every dtype."""
    out: list[Record] = []
    precision = torch.get_float32_matmul_precision()
    try:
        for dt in dtypes:
            torch.set_float32_matmul_precision(_matmul_precision(dt))
            for n, k in plan.gemm_nk:
                for m in plan.gemm_m:
                    call = _gemm_call(device, dt, m, n, k)
                    timing = time_fn(call, device, target_time_s=plan.target_time_s)
                    a_b, w_b, o_b = _operand_bytes(dt)
                    out.append(_record("gemm", timing, dtype=dt, m=m, n=n, k=k,
                                       flops=2.0 * m * n * k,
                                       bytes=float(m * k * a_b + k * n * w_b + m * n * o_b)))
                    del call
            best = max(r["flops"] / r["median_s"] for r in out if r["dtype"] == dt)
            log(f"gemm {dt}: {len(plan.gemm_nk) * len(plan.gemm_m)} shapes, "
                f"best {best / 1e12:.3g} TFLOP/s")
    finally:
        torch.set_float32_matmul_precision(precision)
    return out


def _operand_bytes(dtype: str) -> tuple[int, int, int]:
    return _OPERAND_BYTES[dtype]


def attention_dtype(device: torch.device) -> str:
    """The dtype attention runs in: bf16 (fp16 where bf16 is missing) on accelerators, fp32 on
    the CPU (where models run in fp32 and half-precision SDPA has no fast kernel)."""
    if device.type == "cpu":
        return "fp32"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return "bf16"


def bench_attention_prefill(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """Causal SDPA forward over sequence lengths (batch = prefill_tokens // seq), two head
    configs: the plan's (heads, head_dim) and half the heads at the same width."""
    dt = attention_dtype(device)
    tdt = TORCH_DTYPES[dt]
    out: list[Record] = []
    d = plan.attn_head_dim
    for heads in (plan.attn_heads, max(1, plan.attn_heads // 2)):
        for seq in plan.prefill_seq:
            batch = max(1, plan.prefill_tokens // seq)
            # K/V carry all query heads: torch's flash backends take MHA layouts; GQA does the
            # same FLOPs, and prefill is compute-bound.
            q, k, v = (torch.randn(batch, heads, seq, d, device=device, dtype=tdt)
                       for _ in range(3))

            def call(q: torch.Tensor = q, k: torch.Tensor = k, v: torch.Tensor = v) -> Any:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            pairs = batch * seq * (seq - seq / 2.0)  # causal (query, key) pairs
            elt = tdt.itemsize
            out.append(_record("attention_prefill", timing, dtype=dt, batch=batch, heads=heads,
                               seq=seq, head_dim=d, flops=2.0 * pairs * heads * 2 * d,
                               bytes=4.0 * batch * seq * heads * d * elt))
            del q, k, v
    best = max(r["flops"] / r["median_s"] for r in out)
    log(f"attention prefill ({dt}): {len(out)} points, best {best / 1e12:.3g} TFLOP/s")
    return out


def bench_attention_decode(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """Decode attention: one query per sequence against a KV cache of `context` tokens, batch x
    context. GQA is run as the grouped-query form (the heads/kv_heads queries that share a KV head
    become that head's query rows), so each KV byte is read once, as FlashInfer/FA decode do."""
    dt = attention_dtype(device)
    tdt = TORCH_DTYPES[dt]
    h, hkv, d = plan.attn_heads, plan.attn_kv_heads, plan.attn_head_dim
    group = h // hkv
    out: list[Record] = []
    for batch in plan.decode_batch:
        for ctx in plan.decode_context:
            kv_bytes = 2.0 * batch * ctx * hkv * d * tdt.itemsize
            if kv_bytes > plan.decode_max_bytes:
                continue
            q = torch.randn(batch, hkv, group, d, device=device, dtype=tdt)
            k = torch.randn(batch, hkv, ctx, d, device=device, dtype=tdt)
            v = torch.randn(batch, hkv, ctx, d, device=device, dtype=tdt)

            def call(q: torch.Tensor = q, k: torch.Tensor = k, v: torch.Tensor = v) -> Any:
                return F.scaled_dot_product_attention(q, k, v)

            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            # hwmodels.ops counts q and o as 16-bit: keep the same byte count for the fit
            out.append(_record("attention_decode", timing, dtype=dt, batch=batch, context=ctx,
                               heads=h, kv_heads=hkv, head_dim=d,
                               bytes=kv_bytes + batch * h * d * 2.0 * 2.0,
                               flops=4.0 * batch * ctx * h * d))
            del q, k, v
    best = max(r["bytes"] / r["median_s"] for r in out)
    log(f"attention decode ({dt}): {len(out)} points, best {best / 1e9:.3g} GB/s")
    return out


def memory_dtype(device: torch.device) -> torch.dtype:
    """Activation dtype of streaming kernels: fp32 on the CPU, bf16/fp16 on accelerators."""
    return TORCH_DTYPES[attention_dtype(device)]


def bench_memory(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """Plain streaming kernels over sizes: copy (2N elements moved) and add (3N). Norms and other
    elementwise kernels are timed per kind by bench_elementwise: on the CPU they are compute-
    bound (a single-thread layer norm streams ~6 GB/s where a copy streams ~25-110 GB/s), so
    pooling them with copies gave the generic memory curve neither's efficiency."""
    tdt = memory_dtype(device)
    elt = tdt.itemsize
    out: list[Record] = []
    for n in plan.memory_elems:
        rows = max(1, n // plan.norm_width)
        a = torch.randn(rows, plan.norm_width, device=device, dtype=tdt)
        b = torch.randn_like(a)
        c = torch.empty_like(a)
        n_real = a.numel()
        kernels = {
            "copy": (lambda a=a, c=c: c.copy_(a), 2),
            "add": (lambda a=a, b=b, c=c: torch.add(a, b, out=c), 3),
        }
        for kind, (call, passes) in kernels.items():
            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            out.append(_record("memory", timing, kind=kind, elements=n_real,
                               dtype=str(tdt).removeprefix("torch."),
                               bytes=float(passes * n_real * elt)))
        del a, b, c
    best = max(r["bytes"] / r["median_s"] for r in out)
    log(f"memory: {len(out)} points, best {best / 1e9:.3g} GB/s")
    return out


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm as torch runs it (F.rms_norm where torch has it, else the Llama reference)."""
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding of x[..., seq, head_dim] (Llama/NeoX layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def elementwise_calls(device: torch.device, plan: SweepPlan, n: int
                      ) -> dict[str, tuple[Callable[[], Any], float, int]]:
    """{kind: (call, bytes as hwmodels.layers counts them, elements)} for `n` activation
    elements laid out as [tokens, width] (width: plan.norm_width). Bytes follow
    hwmodels.layers.layer_elementwise_bytes: norm 2x (read, write), residual 3x, rotary 2x,
    gated activation 3x (read gate and up, write), embedding 2x (gather rows, write)."""
    tdt = memory_dtype(device)
    elt = tdt.itemsize
    width = plan.norm_width
    tokens = max(1, n // width)
    x = torch.randn(tokens, width, device=device, dtype=tdt)
    y, out = torch.randn_like(x), torch.empty_like(x)
    weight = torch.ones(width, device=device, dtype=tdt)
    d = plan.attn_head_dim
    heads = max(1, width // d)
    q = torch.randn(1, heads, tokens, d, device=device, dtype=tdt)
    cos, sin = (torch.randn(tokens, d, device=device, dtype=tdt) for _ in range(2))
    gate, up = torch.randn_like(x), torch.randn_like(x)
    vocab = max(plan.embedding_vocab, 1)
    table = torch.randn(vocab, width, device=device, dtype=tdt)
    ids = torch.randint(0, vocab, (tokens,), device=device)
    size = float(tokens * width * elt)
    return {
        "norm": (lambda: rms_norm(x, weight), 2.0 * size, tokens * width),
        "rope": (lambda: rotary(q, cos, sin), 2.0 * size, tokens * width),
        "activation": (lambda: F.silu(gate) * up, 3.0 * size, tokens * width),
        "residual": (lambda: torch.add(x, y, out=out), 3.0 * size, tokens * width),
        "embedding": (lambda: F.embedding(ids, table), 2.0 * size, tokens * width),
    }


def bench_elementwise(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """The memory-bound kernels a transformer layer runs, per hwmodels.profile.ElementwiseKind,
    as torch runs them (impl 'torch'; RoPE and SiLU*up are several torch kernels, which is
    what an eager model pays)."""
    tdt = memory_dtype(device)
    out: list[Record] = []
    for n in plan.memory_elems:
        for kind, (call, nbytes, elems) in elementwise_calls(device, plan, n).items():
            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            out.append(_record("elementwise", timing, kind=kind, impl="torch", elements=elems,
                               dtype=str(tdt).removeprefix("torch."), bytes=nbytes))
    kinds = sorted({r["kind"] for r in out})
    log(f"elementwise: {len(out)} points ({', '.join(kinds)})")
    return out


def bench_kernel_overhead(device: torch.device, log: Log) -> Record:
    """Time of the smallest kernel (a one-element tensor add into an existing output): launch +
    tail per op. A tensor-tensor op, not x.add_(1.0): wrapping the Python scalar costs the CPU
    ~1.5 us more per call (3.3 vs 1.8 us measured), which no model kernel pays."""
    a, b, c = (torch.zeros(1, device=device) for _ in range(3))
    # Not cache-flushed: inside a step kernels dispatch back to back with the dispatcher hot; a
    # flush before each one-element add measured 9-18 us instead of ~2 us on the CPU.
    timing = time_fn(lambda: torch.add(a, b, out=c), device, min_repeats=50, max_repeats=500,
                     target_time_s=0.02, flush=False)
    log(f"kernel overhead: {timing.median_s * 1e6:.3g} us")
    return _record("kernel_overhead", timing)


def bench_host_device(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """Pinned host -> device and device -> host copies over sizes."""
    if device.type == "cpu" or not plan.host_bytes:
        log("host<->device copies: skipped (the CPU is the host)")
        return []
    out: list[Record] = []
    for nbytes in plan.host_bytes:
        pin = device.type == "cuda"
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pin)
        dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
        for direction, call in (("h2d", lambda h=host, d=dev: d.copy_(h, non_blocking=True)),
                                ("d2h", lambda h=host, d=dev: h.copy_(d, non_blocking=True))):
            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            out.append(_record("host_device", timing, direction=direction, bytes=float(nbytes)))
        del host, dev
    best = max(r["bytes"] / r["median_s"] for r in out if r["direction"] == "h2d")
    log(f"host->device: best {best / 1e9:.3g} GB/s")
    return out


def bench_triton(device: torch.device, plan: SweepPlan, log: Log) -> list[Record]:
    """Our Triton kernels (fused SwiGLU elementwise, tiled matmul) beside the torch ops."""
    why = triton_kernels.unavailable_reason(device)
    if why:
        log(f"triton kernels: skipped ({why})")
        return []
    tdt = memory_dtype(device)
    out: list[Record] = []
    for n in plan.memory_elems[-3:]:
        gate = torch.randn(n, device=device, dtype=tdt)
        up = torch.randn_like(gate)
        res = torch.empty_like(gate)
        for impl, call in (
                ("triton", lambda g=gate, u=up, r=res: triton_kernels.swiglu(g, u, r)),
                ("torch", lambda g=gate, u=up: F.silu(g) * u)):
            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            out.append(_record("triton_elementwise", timing, impl=impl, elements=n,
                               bytes=3.0 * n * tdt.itemsize))
    n, k = plan.gemm_nk[0]
    for m in plan.gemm_m[-3:]:
        a = torch.randn(m, k, device=device, dtype=tdt)
        w = torch.randn(k, n, device=device, dtype=tdt)
        for impl, call in (("triton", lambda a=a, w=w: triton_kernels.matmul(a, w)),
                           ("torch", lambda a=a, w=w: torch.matmul(a, w))):
            timing = time_fn(call, device, target_time_s=plan.target_time_s)
            out.append(_record("triton_matmul", timing, impl=impl, m=m, n=n, k=k,
                               dtype=str(tdt).removeprefix("torch."), flops=2.0 * m * n * k))
    ratio = [t["median_s"] / r["median_s"] for t, r in zip(out[::2], out[1::2], strict=True)]
    log(f"triton kernels: {len(out)} points, triton/torch time ratio "
        f"{min(ratio):.2f}..{max(ratio):.2f}")
    return out



_TORCH_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def triton_records(records: list[Record]) -> tuple[list[Record], list[Record], list[str]]:
    """(elementwise records, gemm records, fit notes) from bench_triton's output.

    The fused Triton SwiGLU becomes an elementwise 'activation' record with impl 'triton'
    (frameworks run SwiGLU fused). Triton matmuls become gemm-schema records with impl 'triton'
    (their torch twins impl 'torch'), kept out of the cuBLAS curve: the notes give the
    triton/torch time ratio per shape."""
    elementwise: list[Record] = []
    gemm: list[Record] = []
    timing_keys = ("median_s", "p10_s", "p90_s", "spread", "repeats")
    for r in records:
        timing = {k: r[k] for k in timing_keys if k in r}
        if r.get("family") == "triton_elementwise" and r.get("impl") == "triton":
            elementwise.append({"family": "elementwise", "kind": "activation", "impl": "triton",
                                "elements": r["elements"], "bytes": float(r["bytes"]),
                                **timing})
        elif r.get("family") == "triton_matmul":
            dt = _TORCH_DTYPE_NAMES.get(str(r["dtype"]), str(r["dtype"]))
            m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
            a_b, w_b, o_b = _OPERAND_BYTES.get(dt, (4, 4, 4))
            gemm.append({"family": "gemm", "dtype": dt, "m": m, "n": n, "k": k,
                         "impl": str(r["impl"]), "flops": 2.0 * m * n * k,
                         "bytes": float(m * k * a_b + k * n * w_b + m * n * o_b), **timing})
    notes = []
    by_shape: dict[tuple[Any, ...], dict[str, float]] = {}
    for g in gemm:
        by_shape.setdefault((g["dtype"], g["m"], g["n"], g["k"]), {})[g["impl"]] = g["median_s"]
    for (dt, m, n, k), t in sorted(by_shape.items()):
        if "triton" in t and "torch" in t:
            notes.append(f"triton matmul {dt} {m}x{n}x{k}: {t['triton'] * 1e6:.1f} us vs torch "
                         f"{t['torch'] * 1e6:.1f} us (triton/torch {t['triton'] / t['torch']:.2f})"
                         "; not in the gemm curve")
    return elementwise, gemm, notes
