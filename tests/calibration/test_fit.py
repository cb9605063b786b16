"""The fit: monotone smoothing, and exact recovery of a known efficiency model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.fit import (
    MEMORY_BOUND_MARGIN,
    curve_at,
    fit_curve,
    fit_profile,
    isotonic_increasing,
    measured_peaks,
    time_monotone,
)
from hwmodels.ops import curve_is_monotone
from hwmodels.profile import Curve, profile_from_json


def test_isotonic_pools_violators() -> None:
    y = np.array([1.0, 3.0, 2.0, 4.0, 0.0])
    fit = isotonic_increasing(y, np.ones(5))
    # 3,2 pool to 2.5; then 4,0 pool to 2 < 2.5, so all four pool to 9/4
    assert fit.tolist() == pytest.approx([1.0, 2.25, 2.25, 2.25, 2.25])
    assert all(b >= a for a, b in zip(fit, fit[1:], strict=False))
    assert isotonic_increasing(np.array([1.0, 2.0]), np.ones(2)).tolist() == [1.0, 2.0]


def test_time_monotone_raises_small_sizes_below_steep_rises() -> None:
    xs = np.array([1e6, 1e7])
    capped = time_monotone(xs, np.array([0.01, 0.9]))
    assert capped[1] == 0.9  # the plateau stays as measured
    assert capped[0] == pytest.approx(0.9 / (1 + math.log(10)))
    assert curve_is_monotone(Curve((1e6, 1e7), (0.01, 0.9))) is False
    curve = Curve(tuple(xs), tuple(capped))
    assert curve_is_monotone(curve)


def _true_eff(x: float) -> float:
    """A saturating efficiency curve like a GPU GEMM sweep (0.8 plateau)."""
    return 0.8 * x / (x + 3e9)


def test_fit_curve_recovers_smooth_curve_and_is_monotone() -> None:
    rng = np.random.default_rng(0)
    xs = np.logspace(8, 12, 48)
    noisy = [_true_eff(x) * (1 + 0.05 * rng.standard_normal()) for x in xs]
    curve = fit_curve(xs, noisy)
    assert curve_is_monotone(Curve(tuple(curve["x"]), tuple(curve["eff"])))
    for x in (1e9, 1e10, 5e11):
        assert curve_at(curve, x) == pytest.approx(_true_eff(x), rel=0.15)


def _synthetic_raw(peak: float, bw: float, overhead_s: float) -> dict:
    """Benchmark records generated from the hwmodels time model with known curves."""
    def mem_eff(b: float) -> float:
        return min(0.9, 0.3 + 0.1 * math.log10(b / 1e5))

    def rec(family: str, work_key: str, work: float, rate: float, eff: float,
            floor_s: float = 0.0, **kw) -> dict:
        t = max(work / (rate * eff), floor_s) + overhead_s
        return {"family": family, work_key: work, "median_s": t, "p10_s": t, "p90_s": t,
                "spread": 0.0, "repeats": 5, **kw}

    gemm = []
    for m in (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192):
        flops, nbytes = 2.0 * m * 4096 * 4096, 2.0 * (2 * m * 4096 + 4096 * 4096)
        gemm.append(rec("gemm", "flops", flops, peak, _true_eff(flops),
                        nbytes / (bw * mem_eff(nbytes)), dtype="bf16", m=m, n=4096, k=4096,
                        bytes=nbytes))
    memory = [rec("memory", "bytes", b, bw, mem_eff(b), kind="copy")
              for b in np.logspace(5, 9, 9)]
    prefill = [rec("attention_prefill", "flops", f, peak, 0.5, dtype="bf16")
               for f in np.logspace(9, 12, 4)]
    decode = [rec("attention_decode", "bytes", b, bw, 0.7, dtype="bf16")
              for b in np.logspace(6, 9, 4)]
    return {"kernel_overhead": {"median_s": overhead_s}, "gemm": gemm, "memory": memory,
            "attention_prefill": prefill, "attention_decode": decode, "host_device": [],
            "collectives": []}


def test_fit_profile_reproduces_generating_model() -> None:
    peak, bw, ov = 989e12, 3.35e12, 4e-6
    raw = _synthetic_raw(peak, bw, ov)
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw, "source": "test"},
                       device="h100-sxm", device_reported="synthetic", env={"date": "now"})
    parsed = profile_from_json(prof)
    assert parsed.device == "h100-sxm" and parsed.kernel_overhead_s == ov
    stats = prof["fit"]["families"]
    # exact data, one point per bin: the fitted curves reproduce every time closely
    for family in ("gemm.bf16", "memory", "attention_prefill", "attention_decode"):
        assert stats[family]["median_abs_err"] < 0.02, (family, stats[family])
    assert parsed.attention_prefill(1e10) == pytest.approx(0.5)
    assert parsed.attention_decode(1e7) == pytest.approx(0.7)


def test_memory_bound_gemms_do_not_drag_the_compute_curve() -> None:
    peak, bw, ov = 989e12, 3.35e12, 4e-6
    raw = _synthetic_raw(peak, bw, ov)
    # a GEMV (m=1) that takes exactly its memory time: compute eff would read ~0.3%
    nbytes = 2.0 * (4096 + 4096 * 4096 + 4096)
    t = nbytes / (bw * 0.9) + ov
    raw["gemm"].append({"family": "gemm", "dtype": "bf16", "m": 1, "n": 4096, "k": 4096,
                        "flops": 2.0 * 4096 * 4096, "bytes": nbytes, "median_s": t,
                        "p10_s": t, "p90_s": t, "spread": 0.0, "repeats": 5})
    assert MEMORY_BOUND_MARGIN > 1.0
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw},
                       device="h100-sxm", device_reported="synthetic", env={})
    curve = prof["gemm"]["bf16"]
    # the GEMV and the small-m shapes are memory-bound: the curve starts at a compute-bound
    # shape and has its true efficiency there (the GEMV's ~0.3% does not pull it down)
    assert curve["x"][0] > 2.0 * 64 * 4096 * 4096
    assert curve["eff"][0] == pytest.approx(_true_eff(curve["x"][0]), rel=0.02)
    assert prof["fit"]["families"]["gemm.bf16"]["median_abs_err"] < 0.02


def test_measured_peaks_ignore_overhead_dominated_points() -> None:
    raw = _synthetic_raw(1e11, 5e10, 5e-6)
    raw["gemm"].append({"dtype": "bf16", "flops": 1e3, "median_s": 5.1e-6, "spread": 0.0})
    peaks = measured_peaks(raw, 5e-6)
    assert peaks["flops"]["bf16"] == pytest.approx(1e11 * _true_eff(2.0 * 8192 * 4096 * 4096))
    assert peaks["memory_bw_Bps"] == pytest.approx(5e10 * 0.7)
