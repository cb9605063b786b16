"""Fit efficiency curves (fraction of peak vs problem size) from raw measurements; numpy only.

Model (the one hwmodels.ops evaluates): time = work / (peak * eff(size)) + kernel_overhead_s.
So each measurement gives eff = work / (peak * (median_s - kernel_overhead_s)), the overhead being
the measured time of the smallest kernel. Per op family the points are binned by size (quarter
decades, median per bin: different shapes of similar size pool together), made monotone by
isotonic regression (pool-adjacent-violators: bigger kernels never fill the device worse), then
adjusted so that predicted time never falls as size grows (hwmodels.ops.curve_is_monotone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from calibration.errors import CalibrationError

BINS_PER_DECADE = 4
# A point whose time is mostly launch overhead says little about throughput: its work time is
# floored at this fraction of the measured median, and only points whose overhead is below half
# their time define a measured (CPU) peak.
MIN_WORK_FRACTION = 0.2
PEAK_MAX_OVERHEAD_FRACTION = 0.5
# A GEMM whose work time is within this factor of its memory-roofline time is memory-bound
# (decode GEMVs): it bounds the compute efficiency only from below, so it is left out of the
# compute curve and predicted by the memory term instead.
MEMORY_BOUND_MARGIN = 1.1
EFF_FLOOR = 1e-5  # curves must stay > 0 (hwmodels.profile.Curve)


def work_time_s(median_s: float, overhead_s: float) -> float:
    """Seconds of useful work in a measured kernel time (overhead removed, floored)."""
    return max(median_s - overhead_s, MIN_WORK_FRACTION * median_s)


def isotonic_increasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of y (pool-adjacent-violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


def time_monotone(xs: np.ndarray, effs: np.ndarray) -> np.ndarray:
    """Make size / eff(size) non-decreasing under log-linear interpolation
    (eff[i+1] <= eff[i] * (1 + ln(x[i+1] / x[i]))) by raising the smaller sizes' efficiency,
    walking down from the largest size: the plateau, best measured and carrying most of the
    time of a real step, stays as measured."""
    out = effs.copy()
    for i in range(len(out) - 2, -1, -1):
        out[i] = max(out[i], out[i + 1] / (1.0 + math.log(xs[i + 1] / xs[i])))
    return out


def fit_curve(xs: Iterable[float], effs: Iterable[float], *, monotone: bool = True
              ) -> dict[str, list[float]]:
    """{x, eff} breakpoints from scattered (size, efficiency) points."""
    x = np.asarray(list(xs), dtype=float)
    e = np.asarray(list(effs), dtype=float)
    keep = (x > 0) & np.isfinite(e) & (e > 0)
    x, e = x[keep], e[keep]
    if not len(x):
        raise CalibrationError("no valid points to fit", key="fit")
    bins = np.floor(np.log10(x) * BINS_PER_DECADE).astype(int)
    bx, be, bw = [], [], []
    for b in np.unique(bins):
        sel = bins == b
        bx.append(float(np.exp(np.mean(np.log(x[sel])))))
        be.append(float(np.median(e[sel])))
        bw.append(float(sel.sum()))
    ex = np.asarray(bx)
    ey = np.asarray(be)
    if monotone:
        ey = isotonic_increasing(ey, np.asarray(bw))
    ey = np.clip(time_monotone(ex, np.clip(ey, EFF_FLOOR, 1.0)), EFF_FLOOR, 1.0)
    return {"x": [float(v) for v in ex], "eff": [float(v) for v in ey]}


def curve_at(curve: Mapping[str, list[float]], x: float) -> float:
    """The curve's value at x: linear in log(x), clamped at the ends (as hwmodels.profile)."""
    return float(np.interp(math.log(x), np.log(curve["x"]), curve["eff"]))


def _errors(points: list[tuple[float, float, float]], curve: Mapping[str, list[float]],
            rate: float, overhead_s: float, floor_s: list[float] | None = None
            ) -> dict[str, float]:
    """Median/max relative error of the fitted curve's predicted times vs the measured ones
    (floor_s: a memory-roofline time per point that the prediction cannot go below)."""
    floors = floor_s or [0.0] * len(points)
    errs = [abs(max(x / (rate * curve_at(curve, x)), f) + overhead_s - t) / t
            for (x, t, _), f in zip(points, floors, strict=True)]
    return {"points": len(errs), "median_abs_err": float(np.median(errs)),
            "max_abs_err": float(np.max(errs))}


def _family(records: list[dict[str, Any]], work_key: str, rate: float, overhead_s: float,
            memory: tuple[Mapping[str, list[float]], float] | None = None
            ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Curve and fit statistics of one op family. With `memory` (memory curve, bandwidth) the
    family is a roofline (GEMM): points whose time the memory term already explains
    (MEMORY_BOUND_MARGIN) do not shape the compute curve, as hwmodels takes the max of both."""
    pts = [(r[work_key], r["median_s"], work_time_s(r["median_s"], overhead_s)) for r in records]
    floors = None
    use = pts
    if memory is not None:
        mem_curve, bw = memory
        floors = [r["bytes"] / (bw * curve_at(mem_curve, r["bytes"])) for r in records]
        compute_bound = [p for p, f in zip(pts, floors, strict=True)
                         if p[2] > MEMORY_BOUND_MARGIN * f]
        if len(compute_bound) >= 2:
            use = compute_bound
    curve = fit_curve([p[0] for p in use], [p[0] / (rate * p[2]) for p in use])
    stats = _errors(pts, curve, rate, overhead_s, floors)
    stats["median_spread"] = float(np.median([r["spread"] for r in records]))
    return curve, stats


def measured_peaks(raw: Mapping[str, Any], overhead_s: float) -> dict[str, Any]:
    """Peaks from the measurements themselves (the CPU pseudo-device): per dtype the best GEMM
    FLOP/s and the best streaming bandwidth over points not dominated by launch overhead."""

    def best(records: list[dict[str, Any]], key: str) -> float:
        rates = [r[key] / work_time_s(r["median_s"], overhead_s) for r in records
                 if overhead_s <= PEAK_MAX_OVERHEAD_FRACTION * r["median_s"]]
        return max(rates or [r[key] / r["median_s"] for r in records])

    flops: dict[str, float] = {}
    for dt in sorted({r["dtype"] for r in raw["gemm"]}):
        flops[dt] = best([r for r in raw["gemm"] if r["dtype"] == dt], "flops")
    attn = raw.get("attention_prefill") or []
    if attn and attn[0]["dtype"] not in flops:  # attention dtype without a GEMM sweep
        flops[attn[0]["dtype"]] = best(attn, "flops")
    return {"flops": flops, "memory_bw_Bps": best(raw["memory"], "bytes"),
            "source": "measured: best rate of this run (CPU pseudo-device)"}


def fit_profile(raw: Mapping[str, Any], peaks: Mapping[str, Any], *, device: str,
                device_reported: str, env: Mapping[str, Any],
                skipped: Iterable[str] = ()) -> dict[str, Any]:
    """The profile JSON object (format of hwmodels/profile.py) from raw benchmark records."""
    overhead_s = float(raw["kernel_overhead"]["median_s"])
    bw = float(peaks["memory_bw_Bps"])
    flops_peak: Mapping[str, float] = peaks["flops"]
    fit_stats: dict[str, Any] = {}
    notes = list(skipped)

    memory, fit_stats["memory"] = _family(raw["memory"], "bytes", bw, overhead_s)
    gemm: dict[str, Any] = {}
    for dt in sorted({r["dtype"] for r in raw["gemm"]}):
        if dt not in flops_peak:
            notes.append(f"gemm {dt}: no peak known for this dtype; curve not fitted")
            continue
        recs = [r for r in raw["gemm"] if r["dtype"] == dt]
        gemm[dt], fit_stats[f"gemm.{dt}"] = _family(recs, "flops", flops_peak[dt], overhead_s,
                                                    memory=(memory, bw))
    if not gemm:
        raise CalibrationError("no GEMM dtype has both measurements and a peak", key="gemm")

    attn = raw["attention_prefill"]
    attn_dt = attn[0]["dtype"]
    attn_peak = flops_peak.get(attn_dt) or flops_peak.get("bf16") or max(flops_peak.values())
    prefill, fit_stats["attention_prefill"] = _family(attn, "flops", attn_peak, overhead_s)
    decode, fit_stats["attention_decode"] = _family(raw["attention_decode"], "bytes", bw,
                                                    overhead_s)

    h2d = [r for r in raw.get("host_device", []) if r["direction"] == "h2d"]
    if h2d:
        top = max(h2d, key=lambda r: r["bytes"])
        host_Bps = top["bytes"] / top["median_s"]
    else:  # the CPU is the host: a "host to device" copy is a memory copy
        copies = [r for r in raw["memory"] if r["kind"] == "copy"]
        top = max(copies, key=lambda r: r["bytes"])
        host_Bps = top["bytes"] / 2.0 / top["median_s"]  # bytes copied, not bytes moved

    collectives: dict[str, Any] = {}
    for op in sorted({r["op"] for r in raw.get("collectives", [])}):
        recs = sorted((r for r in raw["collectives"] if r["op"] == op), key=lambda r: r["bytes"])
        for world in sorted({int(r["world"]) for r in recs}):
            sel = [r for r in recs if int(r["world"]) == world]
            collectives.setdefault(op, {})[str(world)] = {
                "x": [r["bytes"] for r in sel],
                "busbw_Bps": [max(r["busbw_Bps"], 1.0) for r in sel]}

    return {
        "format": "fleetsim-profile",
        "version": 2,
        "device": device,
        "name": f"{device}-local",
        "device_reported": device_reported,
        "created": env.get("date"),
        "source": {"kind": "local",
                   "description": f"fleetsim calibrate on {device_reported} "
                                  f"(torch {env.get('torch', '?')})",
                   "date": str(env.get("date", ""))},
        "env": dict(env),
        "gemm": gemm,
        "memory": memory,
        "attention_prefill": prefill,
        "attention_decode": decode,
        "kernel_overhead_s": overhead_s,
        "host_to_device_Bps": host_Bps,
        "collectives": collectives,
        "peak": {"flops": dict(flops_peak), "memory_bw_Bps": bw,
                 "attention_dtype": attn_dt, "source": peaks.get("source", "")},
        "fit": {"method": "eff = work / (peak * (median - kernel_overhead)); quarter-decade "
                          "bin medians; isotonic (PAV); small sizes raised so time is monotone in size",
                "families": fit_stats, "notes": notes},
        "raw": dict(raw),
    }
