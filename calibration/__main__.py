"""`python -m calibration`: measure this machine's device and write a fleetsim profile.

Needs only torch and numpy (plus hwmodels for catalog peaks and --validate, when installed).
Bad input prints one line to stderr and exits 2; a fitted profile that does not beat the
defaults on its held-out shapes is not written: one line, exit 3 (--allow-worse writes it).
"""

from __future__ import annotations

import argparse
import json
import sys

from calibration.errors import CalibrationError, ProfileRejectedError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m calibration",
        description="Microbenchmark the local accelerator (GEMM, attention, memory, copies, "
                    "collectives, Triton) and write a fitted fleetsim device profile.")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N, npu[:N], xpu[:N] or mps (default: cpu)")
    p.add_argument("--out", required=True, help="profile JSON to write")
    p.add_argument("--quick", action="store_true", help="fewer, smaller sizes")
    p.add_argument("--catalog-name", default=None,
                   help="fleetsim catalog device name (default: mapped from the name torch "
                        "reports, e.g. 'NVIDIA H100 80GB HBM3' -> h100-sxm; 'cpu' on the CPU)")
    p.add_argument("--dtypes", default=None,
                   help="comma-separated GEMM dtypes (fp32,tf32,bf16,fp16,fp8); default: all "
                        "the device supports")
    p.add_argument("--peak-tflops", default=None,
                   help="dense peak per dtype, e.g. bf16=989,fp32=67 (default: the fleetsim "
                        "catalog when hwmodels is installed; measured on the CPU)")
    p.add_argument("--mem-bw-gbps", type=float, default=None,
                   help="peak memory bandwidth in GB/s (default: catalog; measured on the CPU)")
    p.add_argument("--cpu-ranks", type=int, default=0,
                   help="CPU only: run the collective benchmarks on N Gloo processes (tests)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="CPU only: torch intra-op threads while measuring (default 1: stable "
                        "timings on shared machines)")
    p.add_argument("--validate", action="store_true",
                   help="time a Llama-shaped decoder (prefill, decode, training layer) and "
                        "print predicted vs measured (needs hwmodels)")
    p.add_argument("--allow-worse", action="store_true",
                   help="write the profile even if it does not beat the catalog defaults on "
                        "its held-out shapes (marked so in its 'heldout' block)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary (path, device, validation rows) on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from calibration.runner import calibrate

    try:
        profile = calibrate(
            args.device, quick=args.quick, out=args.out, catalog_name=args.catalog_name,
            validate=args.validate,
            dtypes=[d for d in args.dtypes.split(",") if d] if args.dtypes else None,
            peak_tflops=args.peak_tflops, mem_bw_gbps=args.mem_bw_gbps,
            cpu_ranks=args.cpu_ranks, cpu_threads=args.cpu_threads,
            allow_worse=args.allow_worse)
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ProfileRejectedError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps({"profile": args.out, "device": profile["device"],
                          "device_reported": profile["device_reported"],
                          "fit": profile["fit"]["families"],
                          "heldout": profile.get("heldout"),
                          "validation": profile.get("validation")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
