"""Operator time models: GEMM, flash attention (prefill/backward), decode attention, memory kernels.

Every op is a roofline: max(FLOPs / (peak * eff_compute), bytes / (memory_bw * eff_mem)) plus a
fixed per-kernel overhead. Efficiencies come from a DeviceProfile: a calibration profile when one
is bundled or given, else `default_profile(device)`, which shapes the catalog's scalar
efficiencies (large-GEMM efficiency, streaming efficiency, attention efficiency) into curves over
problem size. Small kernels underfill the GPU (too few tiles/waves, launch and DRAM latency), so
efficiency rises with size until it saturates at the catalog value.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from hwmodels import attention_impl as ai
from hwmodels.dtypes import BYTES_PER_ELEMENT, DType, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.parallel import AttentionImpl
from hwmodels.profile import (
    CATALOG_DEFAULTS,
    Curve,
    DeviceProfile,
    ElementwiseKind,
    find_profile,
    load_profile,
)
from hwmodels.specs import DeviceSpec

# ---------------------------------------------------------------------------------------------
# Default efficiency curves. Breakpoints are written for a reference device (A100-SXM: 312 TFLOP/s
# dense bf16, 2039 GB/s HBM2e) and scaled by the device's peak (compute curves) or bandwidth
# (memory curves): a kernel of a given duration on a 3x faster GPU needs 3x the work to fill it.
# ---------------------------------------------------------------------------------------------
REF_PEAK_FLOPS = 312e12  # A100 SXM dense bf16 (NVIDIA A100 datasheet)
REF_MEMORY_BW_Bps = 2039e9  # A100 80GB SXM HBM2e (NVIDIA A100 datasheet)

# GEMM efficiency vs GEMM FLOPs (2mnk), as a fraction of the device's large-GEMM efficiency.
# Shape (approximate reading, not a digitization) of public cuBLAS size sweeps: NVIDIA's "Matrix
# Multiplication Background User's Guide" (docs.nvidia.com/deeplearning/performance, A100
# throughput vs GEMM size) and the `mamf-finder` sweeps in S. Bekman's "ML Engineering" (A100 bf16
# plateau ~0.85 of peak from ~4k-8k square shapes, i.e. 1e11-1e12 FLOP). A 1024^3 GEMM (2e9 FLOP)
# lands at ~0.5 of the plateau, i.e. ~110-130 TFLOP/s on A100 with launch overhead. Below ~1e8
# FLOPs there are fewer output tiles than SMs (one partial wave), so efficiency falls steeply.
# Bundled calibration profiles (fleetsim calibrate) replace these curves with measured ones.
GEMM_CURVE_FLOPS = (1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12)
GEMM_CURVE_FRACTION = (0.0125, 0.04, 0.128, 0.41, 0.8, 0.95, 1.0)

# Streaming-kernel (copy/elementwise/norm) efficiency vs bytes moved, as a fraction of the
# device's memory_efficiency. Shape of public copy-bandwidth size sweeps (NVIDIA nvbandwidth,
# BabelStream) on A100-class GPUs: the plateau is reached from ~100 MB, ~1 MB copies get roughly
# a third of it, sub-100 KB kernels are latency-bound (approximate reading).
MEMORY_CURVE_BYTES = (1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
MEMORY_CURVE_FRACTION = (0.03, 0.095, 0.3, 0.8, 0.97, 1.0)

# Flash-attention forward efficiency vs attention FLOPs, as a fraction of attention_efficiency.
# Shape of the FlashAttention-2 paper's forward benchmarks (Dao 2023; A100, head_dim 128, 16k
# tokens per batch): causal seqlen 512 (~3e10 FLOP) runs at roughly 55-65% of the seqlen-16k
# speed (~1e12 FLOP); FlashAttention-3 (Shah et al. 2024) shows the same rise on H100. Below
# ~1e9 FLOPs there are fewer (head, query-block) tiles than SMs and efficiency collapses.
ATTN_CURVE_FLOPS = (1e7, 1e8, 1e9, 1e10, 1e11, 1e12)
ATTN_CURVE_FRACTION = (0.025, 0.08, 0.25, 0.5, 0.8, 1.0)

# Flash-attention backward reaches a lower fraction of peak than forward (FlashAttention-2 paper,
# A100 hdim 128: backward ~0.75-0.85x the forward TFLOP/s) -> 0.8x the forward efficiency.
ATTN_BACKWARD_EFF_RATIO = 0.8
# Backward FLOPs of flash attention: 5 matmuls (recompute S, dV, dP, dQ, dK) vs 2 forward
# (FlashAttention-2 paper, Sec. 3.1 / its FLOP formula: bwd = 2.5 x fwd).
ATTN_BACKWARD_FLOPS_RATIO = 2.5

# Decode attention (paged KV reads) vs bytes read, as a fraction of memory bandwidth; the top is
# DECODE_PLATEAU x memory_efficiency. FlashInfer (Ye et al. 2025) reports batch decode kernels
# near 80-90% of HBM bandwidth for large batches/long contexts; vLLM's PagedAttention paper
# (Kwon et al. 2023, Sec. 7) measured its paged kernel 20-26% slower than a contiguous one at
# small sizes - hence a plateau slightly below plain streaming and a slow ramp.
DECODE_CURVE_BYTES = (1e5, 1e6, 1e7, 1e8, 1e9)
DECODE_CURVE_FRACTION = (0.08, 0.25, 0.6, 0.9, 1.0)
DECODE_PLATEAU = 0.95

# Host link -> host-to-device copy rate: PCIe Gen4 x16 ~25 GB/s, Gen5 x16 ~50 GB/s achievable
# (nvbandwidth host_to_device_memcpy_ce on A100/H100 systems).
HOST_TO_DEVICE_Bps = {"pcie4": 25e9, "pcie5": 50e9, "pcie3": 12e9}

# Monotonicity: time = size / (rate * eff(size)) with eff linear in log(size) between
# breakpoints never decreases with size iff each step satisfies eff[i+1] <= eff[i] * (1 +
# ln(x[i+1] / x[i])), i.e. at most 3.3x per decade; the curves above respect it (so more tokens
# are never faster), which curve_is_monotone checks for calibrated profiles too.
MONOTONE_GROWTH_PER_LOG = 1.0

_ACT_DTYPES = (DType.FP32, DType.TF32, DType.BF16, DType.FP16)


def curve_is_monotone(curve: Curve) -> bool:
    """True if size / eff(size) never decreases (see MONOTONE_GROWTH_PER_LOG)."""
    pts = list(zip(curve.xs, curve.ys, strict=True))
    return all(y1 <= y0 * (1.0 + MONOTONE_GROWTH_PER_LOG * math.log(x1 / x0)) + 1e-12
               for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))


def _scaled_curve(xs: tuple[float, ...], fractions: tuple[float, ...], scale_x: float,
                  top: float) -> Curve:
    return Curve(tuple(x * scale_x for x in xs), tuple(min(1.0, f * top) for f in fractions))


@functools.lru_cache(maxsize=128)
def default_profile(device: DeviceSpec) -> DeviceProfile:
    """Efficiency curves from the catalog's scalar efficiencies (cached per device)."""
    gemm: dict[DType, Curve] = {}
    dtypes = set(device.peak_flops)
    if DType.BF16 in dtypes or DType.FP16 in dtypes:
        dtypes.add(DType.INT4)
    for dt in sorted(dtypes, key=lambda d: d.value):
        compute = DType.BF16 if dt is DType.INT4 else dt
        scale = device.peak(compute) / REF_PEAK_FLOPS
        gemm[dt] = _scaled_curve(GEMM_CURVE_FLOPS, GEMM_CURVE_FRACTION, scale,
                                 device.gemm_eff(compute))
    attn_scale = _attention_peak(device, DType.BF16) / REF_PEAK_FLOPS
    bw_scale = device.memory_bw_Bps / REF_MEMORY_BW_Bps
    return DeviceProfile(
        device=device.name,
        gemm=FrozenMap(gemm),
        memory=_scaled_curve(MEMORY_CURVE_BYTES, MEMORY_CURVE_FRACTION, bw_scale,
                             device.memory_efficiency),
        attention_prefill=_scaled_curve(ATTN_CURVE_FLOPS, ATTN_CURVE_FRACTION, attn_scale,
                                        device.attention_efficiency),
        attention_decode=_scaled_curve(DECODE_CURVE_BYTES, DECODE_CURVE_FRACTION, bw_scale,
                                       DECODE_PLATEAU * device.memory_efficiency),
        kernel_overhead_s=device.kernel_overhead_s,
        host_to_device_Bps=HOST_TO_DEVICE_Bps.get(device.host_link, 25e9),
        source="defaults",
    )


@functools.lru_cache(maxsize=128)
def _bundled_profile(device: DeviceSpec) -> DeviceProfile:
    path = find_profile(device.name)
    if path is None:
        return default_profile(device)
    return load_profile(path, device=device.name).complete_with(default_profile(device))


@functools.lru_cache(maxsize=64)
def _file_profile(device: DeviceSpec, path: str, mtime_ns: int) -> DeviceProfile:
    return load_profile(path, device=device.name).complete_with(default_profile(device))


def resolve_profile(device: DeviceSpec,
                    profile: DeviceProfile | str | Path | None = None) -> DeviceProfile:
    """The complete profile to use: as given, loaded from a path, the catalog defaults
    (CATALOG_DEFAULTS), or (None) the bundled one for the device, else the defaults. Parts a
    profile leaves out come from the defaults."""
    if isinstance(profile, DeviceProfile):
        if profile.device.lower() != device.name.lower():
            raise ConfigError(f"profile '{profile.name}' is for device '{profile.device}', not "
                              f"'{device.name}'", file=profile.source, key="device",
                              allowed=[profile.device])
        defaults = default_profile(device)
        if profile is defaults or (profile.is_defaults and profile.memory is not None):
            return profile
        if _is_complete(profile, defaults):
            return profile  # already resolved: skip rebuilding it (hot paths pass it around)
        return profile.complete_with(defaults)
    if profile is None:
        return _bundled_profile(device)
    if isinstance(profile, str) and profile == CATALOG_DEFAULTS:
        return default_profile(device)
    if isinstance(profile, (str, Path)):
        path = Path(profile)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as err:
            raise ConfigError(f"cannot read profile: {err.strerror}", file=str(path),
                              key="profile") from None
        return _file_profile(device, str(path), mtime)
    raise ConfigError(f"expected a DeviceProfile or a path, got {type(profile).__name__}",
                      key="profile", allowed="DeviceProfile, path to a profile JSON, "
                      f"'{CATALOG_DEFAULTS}' or None")


def _is_complete(profile: DeviceProfile, defaults: DeviceProfile) -> bool:
    """True if complete_with(defaults) would change nothing (every part present)."""
    return (profile.memory is not None and profile.attention_prefill is not None
            and profile.attention_decode is not None and profile.kernel_overhead_s is not None
            and profile.host_to_device_Bps is not None
            and all(dt in profile.gemm for dt in defaults.gemm))


def _dims(**dims: float) -> None:
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                or math.isinf(value):
            raise ConfigError(f"must be a finite number >= 0, got {value!r}", key=name)


def _attention_peak(device: DeviceSpec, dtype: DType) -> float:
    """Peak FLOP/s attention math runs at: fp8 where supported (FA3 fp8), else 16-bit."""
    if dtype is DType.FP8 and device.supports(DType.FP8):
        return device.peak(DType.FP8)
    if dtype in (DType.FP32, DType.TF32) and device.supports(dtype):
        return device.peak(dtype)
    return device.peak(DType.BF16)


def _attention_compute_peak(device: DeviceSpec, dtype: DType) -> float:
    """_attention_peak at the SM clock a power cap leaves (DeviceSpec.compute_peak's rule)."""
    return _attention_peak(device, dtype) * device.sm_clock_scale


def _operand_bytes(dtype: DType) -> tuple[float, float, float]:
    """(activation in, weight, output) bytes per element for a GEMM whose weights are `dtype`."""
    if dtype in (DType.FP32, DType.TF32):
        return 4.0, 4.0, 4.0
    if dtype in (DType.FP8, DType.INT8):  # W8A8: 8-bit inputs, 16-bit output
        return 1.0, 1.0, 2.0
    if dtype is DType.INT4:  # weight-only: bf16 activations, half-byte weights
        return 2.0, 0.5, 2.0
    return 2.0, 2.0, 2.0


def _gemm(device: DeviceSpec, prof: DeviceProfile, m: float, n: float, k: float, dt: DType,
          groups: float = 1.0) -> float:
    """Unchecked roofline of `groups` same-shaped GEMMs in one kernel (groups=1: a plain GEMM).

    A grouped kernel schedules all groups' tiles together, so its efficiencies are looked up at
    the kernel's total FLOPs and bytes.
    """
    compute = DType.BF16 if dt is DType.INT4 else dt
    flops = 2.0 * m * n * k * groups
    a_b, w_b, o_b = _operand_bytes(dt)
    nbytes = (m * k * a_b + k * n * w_b + m * n * o_b) * groups
    t_compute = flops / (device.compute_peak(compute) * prof.gemm_curve(dt)(flops))
    t_memory = nbytes / (device.memory_bw_Bps * prof.gemm_memory_curve()(nbytes))
    return max(t_compute, t_memory) + prof.kernel_overhead_s


def gemm_time(device: DeviceSpec, m: float, n: float, k: float, dtype: DType | str,
              profile: DeviceProfile | str | Path | None = None) -> float:
    """Seconds for C[m,n] = A[m,k] @ W[k,n] with W stored as `dtype` (roofline + overhead)."""
    _dims(m=m, n=n, k=k)
    dt = parse_dtype(dtype)
    if m == 0 or n == 0 or k == 0:
        return 0.0
    return _gemm(device, resolve_profile(device, profile), m, n, k, dt)


def grouped_gemm_time(device: DeviceSpec, groups: float, m: float, n: float, k: float,
                      dtype: DType | str,
                      profile: DeviceProfile | str | Path | None = None) -> float:
    """Seconds for `groups` same-shaped GEMMs in one grouped kernel (MoE experts): one launch,
    efficiency of the whole kernel's work."""
    _dims(groups=groups, m=m, n=n, k=k)
    dt = parse_dtype(dtype)
    if groups == 0 or m == 0 or n == 0 or k == 0:
        return 0.0
    return _gemm(device, resolve_profile(device, profile), m, n, k, dt, groups)


def _memory(device: DeviceSpec, prof: DeviceProfile, nbytes: float,
            kind: ElementwiseKind | str | None = None) -> float:
    if nbytes <= 0:
        return 0.0
    # (no per-kind curves: the generic one, without converting the kind on this hot path)
    curve = prof.elementwise_curve(kind) if kind is not None and prof.elementwise \
        else prof.memory
    return nbytes / (device.memory_bw_Bps * curve(nbytes)) + prof.kernel_overhead_s


def memory_time(device: DeviceSpec, nbytes: float,
                profile: DeviceProfile | str | Path | None = None,
                kind: ElementwiseKind | str | None = None) -> float:
    """Seconds for one streaming kernel (elementwise/norm/copy) moving `nbytes` (read + write);
    `kind` picks the profile's curve for that kernel family (else the generic memory curve)."""
    _dims(nbytes=nbytes)
    if kind is not None and not isinstance(kind, ElementwiseKind):
        try:
            kind = ElementwiseKind(kind)
        except ValueError:
            raise ConfigError(f"unknown elementwise kind '{kind}'", key="kind",
                              allowed=[k.value for k in ElementwiseKind]) from None
    return _memory(device, resolve_profile(device, profile), nbytes, kind)


def _flash_time(device: DeviceSpec, prof: DeviceProfile, flops: float, nbytes: float,
                dtype: DType, eff_scale: float = 1.0, peak: float | None = None) -> float:
    if flops == 0:
        return 0.0
    eff = prof.attention_prefill(flops) * eff_scale
    t_compute = flops / ((peak or _attention_compute_peak(device, dtype)) * eff)
    t_memory = nbytes / (device.memory_bw_Bps * prof.memory(nbytes))
    return max(t_compute, t_memory) + prof.kernel_overhead_s


def _varlen(device: DeviceSpec, prof: DeviceProfile, pairs: float, q_tokens: float,
            kv_tokens: float, heads: float, kv_heads: float, dqk: float, dv: float, dt: DType,
            backward: bool = False, peak: float | None = None) -> float:
    """Unchecked body of attention_varlen_time (peak: precomputed _attention_compute_peak)."""
    flops = 2.0 * pairs * heads * (dqk + dv)
    elt = BYTES_PER_ELEMENT[dt if dt in _ACT_DTYPES or dt is DType.FP8 else DType.BF16]
    q_o = q_tokens * heads * (dqk + dv) * elt
    k_v = kv_tokens * kv_heads * (dqk + dv) * elt
    if backward:
        return _flash_time(device, prof, flops * ATTN_BACKWARD_FLOPS_RATIO,
                           2.0 * (q_o + k_v) + q_o, dt, ATTN_BACKWARD_EFF_RATIO, peak)
    return _flash_time(device, prof, flops, q_o + k_v, dt, 1.0, peak)


def attention_varlen_time(device: DeviceSpec, *, query_key_pairs: float, q_tokens: float,
                          kv_tokens: float, num_heads: int, num_kv_heads: int, head_dim: int,
                          dtype: DType | str, v_head_dim: int | None = None,
                          backward: bool = False,
                          profile: DeviceProfile | str | Path | None = None) -> float:
    """One flash-attention kernel over many sequences, given its total (query, key) pairs.

    FLOPs = 2 * pairs * heads * (d_qk + d_v) (QK^T and PV; x2.5 for backward); IO = read Q, K, V
    and write O once (backward: read Q, K, V, O, dO, write dQ, dK, dV).
    """
    _dims(query_key_pairs=query_key_pairs, q_tokens=q_tokens, kv_tokens=kv_tokens,
          num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim)
    dt = parse_dtype(dtype)
    dv = head_dim if v_head_dim is None else v_head_dim
    return _varlen(device, resolve_profile(device, profile), query_key_pairs, q_tokens,
                   kv_tokens, num_heads, num_kv_heads, head_dim, dv, dt, backward)


def attention_kernel_time(device: DeviceSpec, prof: DeviceProfile, *, impl: AttentionImpl,
                          batch: float, q_len: float, num_heads: float, num_kv_heads: float,
                          head_dim: float, v_head_dim: float, dtype: DType,
                          backward: bool = False) -> float:
    """One causal self-attention training kernel (q_len queries and keys per sequence) of a named
    implementation, at its published efficiency (hwmodels.attention_impl.table_efficiency) times
    the underfill of this problem against the benchmark's at the same sequence length (ratio of
    the profile's attention curve at the two FLOP counts, at most 1). Tables are 16-bit
    kernels: the math runs at the bf16 peak whatever the training dtype."""
    pairs = batch * causal_pairs(q_len, q_len)
    fwd_flops = 2.0 * pairs * num_heads * (head_dim + v_head_dim)
    if fwd_flops == 0:
        return 0.0
    d = (head_dim + v_head_dim) / 2.0
    eff = ai.table_efficiency(impl, device.name, head_dim=d, seq_len=q_len, causal=True,
                              backward=backward)
    curve = prof.attention_prefill
    top = curve.ys[-1]
    fill = min(1.0, (curve(fwd_flops) / top) / (curve(ai.bench_flops(q_len, d)) / top))
    elt = BYTES_PER_ELEMENT[DType.BF16]
    q_o = batch * q_len * num_heads * (head_dim + v_head_dim) * elt
    k_v = batch * q_len * num_kv_heads * (head_dim + v_head_dim) * elt
    flops = fwd_flops * (ATTN_BACKWARD_FLOPS_RATIO if backward else 1.0)
    nbytes = 2.0 * (q_o + k_v) + q_o if backward else q_o + k_v
    t_compute = flops / (device.compute_peak(DType.BF16) * eff * fill)
    t_memory = nbytes / (device.memory_bw_Bps * prof.memory(nbytes))
    return max(t_compute, t_memory) + prof.kernel_overhead_s


def causal_pairs(q_len: float, kv_len: float) -> float:
    """(query, key) pairs for q_len new tokens attending causally to kv_len keys (the last q_len
    of which are the new tokens): q * (kv - q/2), i.e. q^2/2 when q == kv."""
    return q_len * (kv_len - q_len / 2.0)


def attention_prefill_time(device: DeviceSpec, *, batch: int, q_len: int, kv_len: int,
                           num_heads: int, head_dim: int, dtype: DType | str, causal: bool = True,
                           num_kv_heads: int | None = None, v_head_dim: int | None = None,
                           backward: bool = False,
                           profile: DeviceProfile | str | Path | None = None) -> float:
    """Flash attention over `batch` sequences of q_len queries against kv_len keys (forward)."""
    _dims(batch=batch, q_len=q_len, kv_len=kv_len)
    if causal and kv_len < q_len:
        raise ConfigError(f"causal attention needs kv_len >= q_len, got {kv_len} < {q_len}",
                          key="kv_len")
    pairs = causal_pairs(q_len, kv_len) if causal else float(q_len) * kv_len
    return attention_varlen_time(
        device, query_key_pairs=batch * pairs, q_tokens=batch * q_len, kv_tokens=batch * kv_len,
        num_heads=num_heads, num_kv_heads=num_heads if num_kv_heads is None else num_kv_heads,
        head_dim=head_dim, dtype=dtype, v_head_dim=v_head_dim, backward=backward,
        profile=profile)


def _decode(device: DeviceSpec, prof: DeviceProfile, seqs: float, context: float,
            heads: float, kv_heads: float, head_dim: float, kv_dt: DType,
            latent_dim: float = 0, compute_rate: float | None = None) -> float:
    """Unchecked body of attention_decode_time (compute_rate: precomputed decode_compute_rate)."""
    if seqs == 0:
        return 0.0
    if latent_dim:
        kv_bytes = context * latent_dim * BYTES_PER_ELEMENT[kv_dt]
        flops = 4.0 * context * heads * latent_dim
    else:
        kv_bytes = context * 2.0 * kv_heads * head_dim * BYTES_PER_ELEMENT[kv_dt]
        flops = 4.0 * context * heads * head_dim
    nbytes = kv_bytes + seqs * heads * head_dim * 2.0 * 2.0  # + read q, write o (16-bit)
    t_memory = nbytes / (device.memory_bw_Bps * prof.attention_decode(nbytes))
    t_compute = flops / (compute_rate or decode_compute_rate(device, prof))
    return max(t_memory, t_compute) + prof.kernel_overhead_s


def decode_compute_rate(device: DeviceSpec, prof: DeviceProfile) -> float:
    """FLOP/s of decode attention math: bf16 peak at the profile's large-attention efficiency."""
    return device.compute_peak(DType.BF16) * prof.attention_prefill.ys[-1]


def attention_decode_time(device: DeviceSpec, *, num_seqs: int, total_context: float,
                          num_heads: int, num_kv_heads: int, head_dim: int,
                          kv_dtype: DType | str, latent_dim: int = 0,
                          profile: DeviceProfile | str | Path | None = None) -> float:
    """Decode attention: each of num_seqs queries reads its KV cache (sum of lengths
    total_context). KV bytes = total_context * 2 * kv_heads * head_dim * bytes; with
    latent_dim > 0 (MLA) one shared latent row of latent_dim elements per token instead.
    Compute (4 * context * heads * head_dim FLOPs) is in the roofline but rarely binds."""
    _dims(num_seqs=num_seqs, total_context=total_context, num_heads=num_heads,
          num_kv_heads=num_kv_heads, head_dim=head_dim, latent_dim=latent_dim)
    if num_seqs and total_context < num_seqs:
        raise ConfigError(f"total_context {total_context} < num_seqs {num_seqs}: each decoding "
                          "sequence reads at least its own KV entry", key="total_context")
    kv_dt = parse_dtype(kv_dtype, key="kv_dtype")
    return _decode(device, resolve_profile(device, profile), num_seqs, total_context, num_heads,
                   num_kv_heads, head_dim, kv_dt, latent_dim)
