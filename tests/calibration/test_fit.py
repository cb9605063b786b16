"""The fit: monotone smoothing, and exact recovery of a known efficiency model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.fit import (
    MEMORY_BOUND_MARGIN,
    curve_at,
    fit_collectives,
    fit_curve,
    fit_engine_overheads,
    fit_gemm_memory,
    fit_profile,
    isotonic_increasing,
    kernel_overhead_from_smallest,
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


def _elementwise(kind: str, bw: float, ov: float, eff: float) -> list[dict]:
    return [{"kind": kind, "bytes": b, "median_s": b / (bw * eff) + ov, "spread": 0.0,
             "model": "m"} for b in np.logspace(4, 9, 21)]


def test_elementwise_kinds_get_their_own_curves_and_residual_is_the_memory_curve() -> None:
    peak, bw, ov = 312e12, 2.039e12, 2e-6
    raw = _synthetic_raw(peak, bw, ov)
    del raw["memory"], raw["kernel_overhead"]
    raw["elementwise"] = (_elementwise("residual", bw, ov, 0.9) + _elementwise("norm", bw, ov, 0.5)
                          + [{"kind": "residual", "bytes": 1e3, "median_s": ov, "spread": 0.0}])
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw},
                       device="a100-80gb", device_reported="synthetic", env={},
                       curve_shape={"monotone": False, "bins_per_decade": 8})
    assert prof["kernel_overhead_s"] == pytest.approx(ov, rel=0.01)  # tiny residual adds
    parsed = profile_from_json(prof)
    assert parsed.elementwise_curve("norm")(1e8) == pytest.approx(0.5, rel=0.01)
    assert parsed.elementwise_curve("residual")(1e8) == pytest.approx(0.9, rel=0.01)
    assert parsed.memory(1e8) == pytest.approx(0.9, rel=0.01)  # from the residual adds
    assert "1/8-decade" in prof["fit"]["method"] and "isotonic" not in prof["fit"]["method"]


def test_kernel_overhead_needs_tiny_kernels() -> None:
    with pytest.raises(CalibrationError, match="kernel_overhead"):
        kernel_overhead_from_smallest({"elementwise": [{"kind": "norm", "bytes": 1e9,
                                                        "median_s": 1e-3}]})


def test_gemm_memory_curve_from_memory_bound_gemms_only() -> None:
    bw, ov, peak = 2.039e12, 2e-6, 312e12
    recs = []
    for m in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 4096, 8192):
        n = k = 8192
        flops, nbytes = 2.0 * m * n * k, 2.0 * (m * k + k * n + m * n)
        t = max(nbytes / (bw * 0.8), flops / (peak * 0.7)) + ov
        recs.append({"dtype": "fp16", "m": m, "n": n, "k": k, "flops": flops, "bytes": nbytes,
                     "median_s": t, "spread": 0.0})
    curve, stats = fit_gemm_memory(recs, {"fp16": peak}, bw, ov)
    assert stats["points"] == 10  # m = 4096, 8192 are above half the ridge point (76 FLOP/B)
    assert all(e == pytest.approx(0.8, rel=0.01) for e in curve["eff"])
    assert fit_gemm_memory(recs[-3:], {"fp16": peak}, bw, ov) is None  # < 8 points


def test_collectives_keep_points_or_summarize_per_eighth_decade() -> None:
    recs = [{"op": "all_reduce", "world": 8, "bytes": float(b), "busbw_Bps": float(b) / 1e-5}
            for b in np.logspace(3, 8, 200)]
    recs.append({**recs[0], "busbw_Bps": 3 * recs[0]["busbw_Bps"]})  # repeated size
    full = fit_collectives(recs)["all_reduce"]["8"]
    assert len(full["x"]) == 200 and full["busbw_Bps"][0] == pytest.approx(2 * recs[0]["busbw_Bps"])
    short = fit_collectives(recs, summarize=True)["all_reduce"]["8"]
    assert 38 <= len(short["x"]) <= 42  # 5 decades x 8
    parsed = profile_from_json({"format": "fleetsim-profile", "version": 2, "device": "x",
                                "source": {"description": "t"},
                                "collectives": {"all_reduce": {"8": short}}})
    assert parsed.collectives["all_reduce"][8](1e6) == pytest.approx(1e11, rel=0.1)


def test_engine_overheads_least_squares_and_leave_one_out() -> None:
    recs = [{"engine": "e", "model": "m", "batch": b, "tp": 2, "cpu_s": 1e-3 + 2e-5 * b,
             "ray_s": 3e-3 + 1e-5 * b, "median_s": 4e-3 + 3e-5 * b} for b in (8, 16, 32, 64)]
    coeffs, stats = fit_engine_overheads(recs)
    assert coeffs == pytest.approx({"fixed_s": 1e-3, "per_seq_s": 2e-5, "tp_fixed_s": 3e-3,
                                    "tp_per_seq_s": 1e-5})
    assert stats["median_abs_err"] < 1e-9 and stats["tp"] == [2]
    recs[0]["cpu_s"] *= 2  # an outlier shows up in the held-out error
    recs[0]["median_s"] = recs[0]["cpu_s"] + recs[0]["ray_s"]
    assert fit_engine_overheads(recs)[1]["max_abs_err"] > 0.1


def test_profile_without_attention_leaves_it_to_the_defaults() -> None:
    peak, bw, ov = 989e12, 3.35e12, 4e-6
    raw = _synthetic_raw(peak, bw, ov)
    del raw["attention_prefill"], raw["attention_decode"]
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw},
                       device="h100-sxm", device_reported="synthetic", env={}, keep_raw=False,
                       source={"kind": "measurements", "description": "synthetic tables"})
    assert "attention_prefill" not in prof and "raw" not in prof
    parsed = profile_from_json(prof)
    assert parsed.attention_prefill is None and "attention_prefill" not in parsed.measured
    assert parsed.provenance["description"] == "synthetic tables"


def test_an_overhead_probe_above_a_real_kernel_is_capped_to_it() -> None:
    """Every kernel costs at least the per-kernel overhead in the model, so a null-kernel
    probe that reads above a real kernel of the same run (timing noise: on a 2-core VM a
    2.9 us probe beside a 2.4 us kernel) is capped to that kernel, and the fit says so."""
    peak, bw, ov = 989e12, 3.35e12, 4e-6
    raw = _synthetic_raw(peak, bw, ov)
    smallest = min(r["median_s"] for fam in ("memory", "gemm") for r in raw[fam])
    raw["kernel_overhead"] = {"median_s": 1.5 * smallest}
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw},
                       device="h100-sxm", device_reported="synthetic", env={})
    assert prof["kernel_overhead_s"] == smallest
    assert any("capped" in n for n in prof["fit"]["notes"])
    raw["kernel_overhead"] = {"median_s": ov}  # below every kernel: kept as measured
    prof = fit_profile(raw, {"flops": {"bf16": peak}, "memory_bw_Bps": bw},
                       device="h100-sxm", device_reported="synthetic", env={})
    assert prof["kernel_overhead_s"] == ov
    assert not any("capped" in n for n in prof["fit"]["notes"])
