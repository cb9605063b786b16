"""`fleetsim calibrate --from-measurements`: import tables, fit (calibration.fit, the code a local
run uses), score on held-out shapes, and write the profile only if it beats the defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from calibration.fit import fit_profile
from calibration.heldout import check_or_reject, heldout_errors
from calibration.importers.vidur import DEVICES, DTYPE, import_vidur
from calibration.profile_io import write_profile
from hwmodels.catalog import load_device
from hwmodels.dtypes import DType

# fp16 and bf16 run on the same tensor cores at the same peak on A100/H100 (NVIDIA A100 / H100
# datasheets), so the fp16 GEMM curve Vidur measured is written for bf16 as well.
SHARED_PEAK_DTYPES = {"fp16": ("bf16",)}
# The tables hold thousands of points per family, so curves get 1/8-decade bins, and efficiency
# is not forced to rise with size: mid-size streaming kernels whose tensors stay in L2 (40 MB on
# A100, 50 MB on H100) run faster per byte than larger ones. Time still never falls as size
# grows (calibration.fit.time_monotone).
CURVE_SHAPE = {"monotone": False, "bins_per_decade": 8}


# Fitted and scored, but not written into the profile: Vidur's A100 prefill table times vLLM's
# paged prefill kernel (Kineto, block size 16) only up to 1.4e11 FLOPs, where it reaches
# 0.21-0.29 of the bf16 peak; FlashAttention-2's published A100 forward runs at 180-200 TFLOP/s
# (0.58-0.64; Dao 2023, Fig. 4, hdim 128, seqlen 8k), so the curve clamped at its last value
# would price training attention at a third of what the kernel reaches (and misses its
# held-out shapes by 15.7% median). The catalog defaults keep attention prefill.
NOT_SHIPPED = {"attention_prefill": "vLLM paged prefill kernel measured to 1.4e11 FLOPs at "
                                    "0.21-0.29 of peak contradicts FlashAttention-2's published "
                                    "A100 forward (0.58-0.64 of peak at 8k); catalog defaults "
                                    "used"}


def catalog_peaks(device: str) -> dict[str, Any]:
    """Peaks the efficiencies are fractions of: the catalog's, never measured ones (GPU)."""
    spec = load_device(device)
    return {"flops": {DTYPE: spec.peak(DType(DTYPE))}, "memory_bw_Bps": spec.memory_bw_Bps,
            "source": f"catalog {device}: peak_tflops[{DTYPE}], memory_bw_gbps "
                      "(hwmodels/catalog/devices.yaml)"}


def make_fitter(device: str, src: Mapping[str, Any]
                ) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The fit an imported profile comes from (raw records -> profile dict), for held-out
    folds and the written file alike: catalog peaks, the imported tables' curve shape."""
    peaks = catalog_peaks(device)
    env = {"date": src["date"], "importer": "calibration.importers.vidur"}

    def fitter(subset: Mapping[str, Any]) -> dict[str, Any]:
        prof = fit_profile(subset, peaks, device=device, device_reported=f"{device} (Vidur)",
                           env=env, source=src, name=f"{device}-vidur",
                           memory_bound_gemms=True, keep_raw=False, curve_shape=CURVE_SHAPE)
        for dt, aliases in SHARED_PEAK_DTYPES.items():
            for alias in aliases:
                if dt in prof["gemm"] and alias not in prof["gemm"]:
                    prof["gemm"][alias] = prof["gemm"][dt]
                    prof["fit"]["notes"].append(f"gemm.{alias} is the {dt} curve (same peak)")
        return prof

    return fitter


def build_profile(root: str | Path, device: str, *, allow_worse: bool = False,
                  out: str | Path | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The gated profile dict for `device` from the tables under `root` (written to `out` when
    given). Raises ConfigError for unreadable tables, ProfileRejectedError when the fit loses
    to the catalog defaults on held-out shapes (unless allow_worse)."""
    say = log or (lambda _m: None)
    raw, src = import_vidur(root, device)
    raw["collectives_link"] = DEVICES[device][1]
    say(f"imported {', '.join(f'{k}: {len(v)}' for k, v in raw.items() if isinstance(v, list))}")

    fitter = make_fitter(device, src)

    profile = fitter(raw)
    say("held-out scoring (leave one model out) ...")
    profile["heldout"] = heldout_errors(raw, fitter, device)
    for engine, coeffs in (profile.get("engine_overheads") or {}).items():
        stats = profile["fit"]["families"][f"engine_overheads.{engine}"]
        profile["heldout"].setdefault("engine_overheads", {})[engine] = {
            "n": stats["points"], "coefficients": coeffs, "method": stats["heldout"],
            "median": stats["median_abs_err"], "max": stats["max_abs_err"]}
    check_or_reject(profile["heldout"], allow_worse=allow_worse)
    for part, why in NOT_SHIPPED.items():
        if profile.pop(part, None) is not None:
            profile["fit"]["notes"].append(f"{part} not shipped: {why}")
            if part in profile["heldout"]["families"]:
                profile["heldout"]["families"][part]["shipped"] = False
    if out is not None:
        write_profile(out, profile)
    return profile
