"""Write hwmodels/profiles/mi300x.json from published MI300X kernel- and collective-level
measurements (no end-to-end number is used).

Source: Azure "AI-benchmarking-guide", Azure_Results/ND_MI300X_v5_results.md (Microsoft,
ND MI300X v5, ROCm 6.2 / RCCL 2.22.3, 2024; github.com/Azure/AI-benchmarking-guide, mirrored
as samuel-bohman/AI-benchmarking-guide @ 3de0c29): hipBLASLt FP8 GEMM TFLOPS for square and
three other shapes, BabelStream-style HBM copy/mul/add/triad/dot TB/s, RCCL all_reduce bus
bandwidth on 8 GPUs from 1 KB to 8 GB. Parts the file leaves out (bf16 GEMMs, streaming
kernels, attention) are the catalog defaults.

    python benchmarks/make_mi300x_profile.py           # (re)write the file
    python benchmarks/make_mi300x_profile.py --check   # exit 1 if the shipped file differs
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PEAK_FP8 = 2614.9e12  # catalog mi300x peak_tflops.fp8 (AMD MI300X data sheet, dense)
PEAK_BW = 5300e9  # catalog mi300x memory_bw_gbps
KERNEL_OVERHEAD_S = 6e-6  # catalog mi300x kernel_overhead_us (kept: the GEMM fit subtracts it)
OUT = Path(__file__).parents[1] / "hwmodels" / "profiles" / "mi300x.json"

# hipBLASLt FP8 (m, n, k, TFLOPS), "random initialization, 10,000 warmup iterations"
GEMM_FP8 = [(1024, 1024, 1024, 53.13), (1024, 2145, 1024, 110.96), (2048, 2048, 2048, 427.74),
            (4096, 4096, 4096, 955.17), (8192, 8192, 8192, 1159.23),
            (6144, 12288, 12288, 1159.54), (16384, 16384, 16384, 1015.1),
            (32768, 32768, 32768, 1029.14)]
# Left out of the size curve (reported in the profile's raw section): the skinny
# 802816 x 192 x 768 shape, 605 TFLOPS at 2.4e11 FLOP, 0.63x the square rate at that size.
GEMM_SKINNY = [(802816, 192, 768, 605.34)]
# HBM (TB/s): copy, mul, add, triad, dot; no size sweep, so the plateau goes to the catalog's
# memory_efficiency (copy 4.11 / 5.3 = 0.78) and the size ramp stays the default curve
HBM_TBPS = {"copy": 4.11, "mul": 4.26, "add": 4.14, "triad": 4.09, "dot": 3.87}
# RCCL all_reduce busbw (GB/s), 8 GPUs, in-place; sizes as the table prints them (1K = 1024 B;
# "65K", "132K", "524K", "33M", ... are rccl-tests' rounded 2^n sizes)
ALLREDUCE_8 = [(2**10, 0.04), (2**11, 0.07), (2**12, 0.15), (2**13, 0.29), (2**14, 0.59),
               (2**15, 1.13), (2**16, 2.22), (2**17, 4.18), (2**18, 7.50), (2**19, 13.01),
               (2**20, 22.41), (2**21, 43.41), (2**22, 82.53), (2**23, 131.57),
               (2**24, 171.46), (2**25, 230.35), (2**26, 266.34), (2**27, 290.81),
               (2**28, 302.80), (2**29, 308.89), (2**30, 313.92), (2**31, 315.06),
               (2**32, 314.85), (2**33, 316.82)]


def _monotone(xs: list[float], effs: list[float]) -> list[float]:
    """Raise small sizes so time = x / eff never falls as x grows (the fit's rule,
    calibration/fit.py; hwmodels.ops.curve_is_monotone)."""
    out = list(effs)
    for i in range(len(out) - 2, -1, -1):
        cap = out[i + 1] / (1.0 + math.log(xs[i + 1] / xs[i]))
        out[i] = max(out[i], cap)
    return out


def build() -> dict:
    xs, effs = [], []
    for m, n, k, tflops in sorted(GEMM_FP8, key=lambda r: r[0] * r[1] * r[2]):
        flops = 2.0 * m * n * k
        t = flops / (tflops * 1e12) - KERNEL_OVERHEAD_S  # the model adds the overhead back
        xs.append(flops)
        effs.append(min(1.0, flops / (PEAK_FP8 * t)))
    effs = _monotone(xs, effs)
    return {
        "format": "fleetsim-profile", "version": 2, "device": "mi300x",
        "name": "mi300x-azure-ndv5", "created": "2024-11-01",
        "source": {
            "kind": "measurements",
            "description": "Azure AI-benchmarking-guide ND MI300X v5 microbenchmarks (hipBLASLt "
                           "FP8 GEMM sweep, HBM stream, RCCL all_reduce 8 GPUs); ROCm 6.2, "
                           "RCCL 2.22.3. Kernel and collective level only.",
            "url": "https://github.com/Azure/AI-benchmarking-guide "
                   "(Azure_Results/ND_MI300X_v5_results.md)",
            "commit": "3de0c294fd1059a91a2c158712c4a078619d73e8 (mirror samuel-bohman/"
                      "AI-benchmarking-guide)",
            "licence": "MIT (Azure/AI-benchmarking-guide); figures quoted, not code",
            "date": "2024",
        },
        "gemm": {"fp8": {"x": xs, "eff": effs}},
        "kernel_overhead_s": KERNEL_OVERHEAD_S,
        "collectives": {"all_reduce": {"8": {
            "x": [float(b) for b, _ in ALLREDUCE_8],
            "busbw_Bps": [g * 1e9 for _, g in ALLREDUCE_8]}}},
        "collectives_link": "infinity-fabric",
        "peak": {"flops": {"fp8": PEAK_FP8}, "memory_bw_Bps": PEAK_BW,
                 "source": "catalog mi300x: peak_tflops[fp8], memory_bw_gbps"},
        "raw": {"gemm_fp8_tflops": [list(r) for r in GEMM_FP8],
                "gemm_fp8_skinny_tflops": [list(r) for r in GEMM_SKINNY],
                "hbm_tbps": HBM_TBPS},
    }


def main(argv: list[str]) -> int:
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in argv:
        return 0 if OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
