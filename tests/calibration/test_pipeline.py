"""Measure -> fit -> save -> load (hwmodels) -> predict a held-out GEMM on the CPU."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from calibration.timing import time_fn  # noqa: E402
from calibration.validate import cpu_device_spec  # noqa: E402
from hwmodels import ops  # noqa: E402
from hwmodels.profile import load_profile  # noqa: E402

# CPU timings on a shared 2-core CI box are noisy (other jobs steal time slices): the held-out
# prediction must land within 50% of the measured median.
HELD_OUT_TOLERANCE = 0.5


def test_profile_loads_in_hwmodels(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    path, data = cpu_profile
    prof = load_profile(path, device="cpu")
    assert prof.device == "cpu" and prof.source == str(path)
    assert set(data["gemm"]) == {"fp32"}
    assert 0 < prof.kernel_overhead_s < 1e-3
    for curve in (prof.gemm_curve("fp32"), prof.memory, prof.attention_prefill,
                  prof.attention_decode):
        assert ops.curve_is_monotone(curve)
        assert all(0 < y <= 1.0 for y in curve.ys)
    on_disk = json.loads(path.read_text())
    assert on_disk["format"] == "fleetsim-profile" and on_disk["version"] == 2
    assert on_disk["env"]["torch"] == torch.__version__
    assert on_disk["env"]["date"] and on_disk["created"] == on_disk["env"]["date"]
    assert on_disk["peak"]["flops"]["fp32"] > 1e8  # any CPU core does > 0.1 GFLOP/s fp32
    raw = on_disk["raw"]
    for family in ("gemm", "attention_prefill", "attention_decode", "memory"):
        assert raw[family], family
        assert all(r["median_s"] > 0 and r["spread"] >= 0 and r["repeats"] >= 5
                   for r in raw[family])
    stats = on_disk["fit"]["families"]
    assert set(stats) >= {"gemm.fp32", "memory", "attention_prefill", "attention_decode"}


def _measure_gemm(m: int, n: int, k: int) -> float:
    torch.set_num_threads(1)  # as the calibration run (calibration.runner.CPU_THREADS)
    # nn.Linear layout (weight [n, k], y = x W^T), as the calibration sweep times it
    # (calibration.bench): the [k, n] layout runs a different kernel (214 vs 354 us at m=6)
    a, w = torch.randn(m, k), torch.randn(n, k)
    out = torch.empty(m, n)
    medians = [time_fn(lambda: torch.matmul(a, w.t(), out=out), torch.device("cpu"),
                       target_time_s=0.02).median_s for _ in range(3)]
    return statistics.median(medians)


def test_held_out_gemm_prediction(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    path, data = cpu_profile
    device = cpu_device_spec(data["peak"], data["kernel_overhead_s"])
    swept = {(r["m"], r["n"], r["k"]) for r in data["raw"]["gemm"]}
    threads = torch.get_num_threads()
    try:
        for m, n, k in ((64, 512, 384), (200, 320, 256)):
            assert (m, n, k) not in swept
            measured = _measure_gemm(m, n, k)
            predicted = ops.gemm_time(device, m, n, k, "fp32", profile=path)
            err = abs(predicted - measured) / measured
            assert err < HELD_OUT_TOLERANCE, (m, n, k, predicted, measured)
    finally:
        torch.set_num_threads(threads)


def test_calibrated_differs_from_defaults(
        cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    path, data = cpu_profile
    device = cpu_device_spec(data["peak"], data["kernel_overhead_s"])
    calibrated = ops.gemm_time(device, 256, 256, 256, "fp32", profile=path)
    default = ops.gemm_time(device, 256, 256, 256, "fp32", profile=ops.default_profile(device))
    assert calibrated > 0 and default > 0 and calibrated != default


def test_validation_table(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    from calibration import validate_profile
    from calibration.validate import format_table

    path, _ = cpu_profile
    lines: list[str] = []
    rows = validate_profile(path, quick=True, log=lines.append)
    assert [r["step"] for r in rows] == ["prefill", "decode", "train_layer"]
    for r in rows:
        assert r["measured_s"] > 0 and r["predicted_s"] > 0 and r["default_predicted_s"] > 0
        assert r["error"] == pytest.approx((r["predicted_s"] - r["measured_s"]) / r["measured_s"])
    # CPU eager mode: GEMM/attention-heavy steps land within a factor of 3 with the CPU profile
    # (seen: -20..-50%); decode is dominated by ~45 torch op dispatches per layer that the
    # fused-kernel step model does not count, so it is only reported.
    for r in rows:
        if r["step"] != "decode":
            assert 1 / 3 < r["predicted_s"] / r["measured_s"] < 3, r
    assert len(format_table(rows)) == len(rows) + 3
    summary = lines.index(format_table(rows)[-1])
    assert lines[summary].startswith("median |error|")
    assert lines[summary + 1].startswith("validate, per operator")  # then the per-op table
    assert lines[-1].split()[:2] == ["decode", "unaccounted"]
