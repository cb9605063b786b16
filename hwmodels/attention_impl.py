"""Training attention kernels by implementation: which kernel a stack runs on a device, and its
efficiency by head dim, sequence length and direction, from the kernels' own published benchmarks.

Tables are TFLOP/s read off the FlashAttention-3 paper (Shah et al. 2024, arXiv 2407.08608,
Sec. 4.1, Fig. 5 forward and Fig. 6 backward, H100 80GB SXM5, BF16/FP16; batch x seqlen = 16k
tokens, hidden 2048, i.e. 2048/head_dim heads; causal FLOPs counted as half), as fractions of the
989 TFLOP/s dense peak they ran against. The tables give the kernel's efficiency at the paper's
problem size; a smaller problem (fewer heads per TP rank, a short micro-batch) fills fewer SMs, so
`efficiency` multiplies by the attention-curve underfill at the actual FLOPs relative to the
paper's FLOPs at that sequence length (the profile's attention curve shape; never above 1).

Choice of kernel (`resolve`): `flash_attention=False` or `unfused` -> the materialized-softmax
path in hwmodels.layers; `auto` -> the device generation's usual kernel for the stack:
Megatron/Transformer Engine (kernels=fused) runs cuDNN fused attention on Hopper (TE prefers its
FusedAttention backend on sm90) and FlashAttention-2 on Ampere; PyTorch stacks (eager, compiled)
run F.scaled_dot_product_attention, whose flash backend is FlashAttention-2 on both. FA3 exists on
Hopper only. Devices without a table (Volta, Ada, Blackwell, AMD, TPU, ...) keep the catalog's
attention curve (`attention_efficiency`).

Profile precedence: a profile whose attention_prefill curve was measured (`measured` names it)
measured FlashAttention-2 (the local calibration times torch SDPA's flash backend; Vidur times the
flash-attn package), so for FA2 the profile's curve wins; for the other kernels the tables apply.
"""

from __future__ import annotations

import bisect
import math

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.parallel import AttentionImpl, KernelStack


class Generation(StrEnum):
    """GPU generations with published training-attention kernel benchmarks."""

    AMPERE = "ampere"  # A100 (sm80)
    HOPPER = "hopper"  # H100 / H200 / H20 (sm90)
    OTHER = "other"  # no kernel table: the catalog attention curve


# Catalog device names per generation (data-centre parts the kernels were benchmarked on; the
# PCIe / H20 / H200 parts share the sm90 kernels and are priced as fractions of their own peak).
GENERATION_OF: dict[str, Generation] = {
    "a100-40gb": Generation.AMPERE, "a100-80gb": Generation.AMPERE,
    "h100-sxm": Generation.HOPPER, "h100-pcie": Generation.HOPPER, "h200": Generation.HOPPER,
    "h20": Generation.HOPPER,
}

# The FA3 paper's benchmark: 16k tokens x 2048 hidden per kernel call (Sec. 4.1) and its peak.
BENCH_TOKENS = 16384
BENCH_HIDDEN = 2048
H100_PEAK_TFLOPS = 989.0
SEQ_LENS = (512, 1024, 2048, 4096, 8192, 16384)

# TFLOP/s on H100 SXM5 (FA3 paper Fig. 5: forward non-causal and causal, hdim 64/128/256;
# Fig. 6: backward, hdim 64/128, non-causal), at SEQ_LENS.
_FWD = {
    (AttentionImpl.FA2, False): {64: (282, 306, 318, 321, 322, 324),
                                 128: (309, 350, 362, 368, 370, 370),
                                 256: (275, 313, 321, 323, 324, 326)},
    (AttentionImpl.FA2, True): {64: (180, 229, 262, 284, 295, 299),
                                128: (191, 260, 298, 319, 333, 335),
                                256: (208, 251, 278, 293, 297, 298)},
    (AttentionImpl.CUDNN, False): {64: (335, 373, 395, 408, 412, 413),
                                   128: (497, 574, 617, 609, 600, 595),
                                   256: (470, 546, 580, 581, 580, 581)},
    (AttentionImpl.CUDNN, True): {64: (225, 288, 334, 363, 379, 388),
                                  128: (315, 410, 484, 518, 529, 539),
                                  256: (308, 391, 450, 483, 497, 509)},
    (AttentionImpl.FA3, False): {64: (333, 392, 460, 476, 496, 497),
                                 128: (467, 565, 625, 638, 646, 648),
                                 256: (482, 639, 707, 736, 746, 756)},
    (AttentionImpl.FA3, True): {64: (197, 265, 371, 420, 460, 473),
                                128: (292, 423, 521, 579, 602, 616),
                                256: (286, 427, 537, 612, 628, 642)},
}
# Backward is published non-causal only and for hdim 64/128: causal backward takes the forward's
# causal/non-causal ratio at the same (hdim, seqlen); hdim 256 takes hdim 128's backward
# (assumptions, not measurements).
_BWD = {
    AttentionImpl.FA2: {64: (198, 238, 264, 279, 287, 291), 128: (214, 260, 291, 310, 318, 322)},
    AttentionImpl.CUDNN: {64: (266, 348, 395, 417, 432, 433),
                          128: (305, 408, 465, 499, 518, 516)},
    AttentionImpl.FA3: {64: (272, 363, 422, 453, 472, 474), 128: (316, 424, 501, 542, 559, 561)},
}
# FlashAttention-2 on A100 (Dao 2023, arXiv 2307.08691, Sec. 4.1 / abstract): forward up to 73%
# and backward up to 63% of the 312 TFLOP/s peak (hdim 128, long sequences). The paper's per-
# sequence-length bars are not tabulated here; the shape over (hdim, seqlen, causal) is the same
# FA2 code's on H100 (the FA2 rows above) scaled so its best point is A100's published maximum.
A100_FA2_FWD_MAX = 0.73
A100_FA2_BWD_MAX = 0.63


def generation(device_name: str) -> Generation:
    """The kernel generation of a catalog device (OTHER where no kernel table exists)."""
    return GENERATION_OF.get(device_name.lower(), Generation.OTHER)


def flash_memory(impl: AttentionImpl | str, flash_attention: bool = True) -> bool:
    """Whether training memory is counted without the s x s scores: any flash-style kernel;
    flash_attention=False or attention_impl unfused materializes them."""
    return flash_attention and AttentionImpl(str(impl)) is not AttentionImpl.UNFUSED


def resolve(impl: AttentionImpl | str, device_name: str, kernels: KernelStack | str,
            flash_attention: bool = True) -> AttentionImpl:
    """The kernel a run uses: flash_attention=False forces unfused; auto picks the stack's
    usual kernel on the device's generation; FA3 outside Hopper is a ConfigError."""
    impl = AttentionImpl(str(impl))
    if not flash_attention or impl is AttentionImpl.UNFUSED:
        return AttentionImpl.UNFUSED
    gen = generation(device_name)
    if impl is AttentionImpl.AUTO:
        if gen is Generation.HOPPER and KernelStack(str(kernels)) is KernelStack.FUSED:
            return AttentionImpl.CUDNN
        return AttentionImpl.FA2
    if impl is AttentionImpl.FA3 and gen is not Generation.HOPPER:
        raise ConfigError(f"FlashAttention-3 runs on Hopper GPUs only, not '{device_name}'",
                          key="training.attention_impl",
                          allowed=[AttentionImpl.AUTO.value, AttentionImpl.FA2.value,
                                   AttentionImpl.CUDNN.value, AttentionImpl.UNFUSED.value])
    return impl


def has_table(impl: AttentionImpl, device_name: str) -> bool:
    """True if `efficiency` has published numbers for this kernel on this device."""
    gen = generation(device_name)
    if impl is AttentionImpl.UNFUSED or gen is Generation.OTHER:
        return False
    # cuDNN on A100: no kernel-level benchmark in the sources; priced as FA2 (see efficiency).
    return True


def _interp_seq(row: tuple[float, ...], seq: float) -> float:
    """Linear in log(seqlen) between the published points, clamped at the ends."""
    if seq <= SEQ_LENS[0]:
        return float(row[0])
    if seq >= SEQ_LENS[-1]:
        return float(row[-1])
    i = bisect.bisect_right(SEQ_LENS, seq)
    t = (math.log(seq) - math.log(SEQ_LENS[i - 1])) / (math.log(SEQ_LENS[i])
                                                        - math.log(SEQ_LENS[i - 1]))
    return row[i - 1] + t * (row[i] - row[i - 1])


def _interp(table: dict[int, tuple[float, ...]], head_dim: float, seq: float) -> float:
    """Linear in head_dim between the published head dims (clamped), then in log(seqlen)."""
    dims = sorted(table)
    if head_dim <= dims[0]:
        return _interp_seq(table[dims[0]], seq)
    if head_dim >= dims[-1]:
        return _interp_seq(table[dims[-1]], seq)
    j = bisect.bisect_right(dims, head_dim)
    lo, hi = dims[j - 1], dims[j]
    t = (head_dim - lo) / (hi - lo)
    return (1 - t) * _interp_seq(table[lo], seq) + t * _interp_seq(table[hi], seq)


def _h100_tflops(impl: AttentionImpl, head_dim: float, seq: float, causal: bool,
                 backward: bool) -> float:
    fwd = _interp(_FWD[(impl, causal)], head_dim, seq)
    if not backward:
        return fwd
    bwd = _interp(_BWD[impl], head_dim, seq)
    if causal:
        bwd *= fwd / _interp(_FWD[(impl, False)], head_dim, seq)
    return bwd


def table_efficiency(impl: AttentionImpl, device_name: str, *, head_dim: float, seq_len: float,
                     causal: bool = True, backward: bool = False) -> float:
    """Fraction of the dense 16-bit peak the kernel reaches at the paper's problem size."""
    gen = generation(device_name)
    if gen is Generation.AMPERE:
        # FA2 (and cuDNN, unsourced on A100, priced as FA2) scaled to A100's published maxima
        best = _FWD[(AttentionImpl.FA2, False)][128][-1] if not backward \
            else _BWD[AttentionImpl.FA2][128][-1]
        top = A100_FA2_BWD_MAX if backward else A100_FA2_FWD_MAX
        return top * _h100_tflops(AttentionImpl.FA2, head_dim, seq_len, causal, backward) / best
    return _h100_tflops(impl, head_dim, seq_len, causal, backward) / H100_PEAK_TFLOPS


def bench_flops(seq_len: float, head_dim: float, causal: bool = True) -> float:
    """Forward FLOPs of one call of the paper's benchmark at this sequence length."""
    batch = BENCH_TOKENS / seq_len
    heads = BENCH_HIDDEN / head_dim
    pairs = seq_len * seq_len * (0.5 if causal else 1.0)
    return 4.0 * batch * pairs * heads * head_dim
