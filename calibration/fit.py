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


def fit_curve(xs: Iterable[float], effs: Iterable[float], *, monotone: bool = True,
              bins_per_decade: int = BINS_PER_DECADE) -> dict[str, list[float]]:
    """{x, eff} breakpoints from scattered (size, efficiency) points."""
    x = np.asarray(list(xs), dtype=float)
    e = np.asarray(list(effs), dtype=float)
    keep = (x > 0) & np.isfinite(e) & (e > 0)
    x, e = x[keep], e[keep]
    if not len(x):
        raise CalibrationError("no valid points to fit", key="fit")
    bins = np.floor(np.log10(x) * bins_per_decade).astype(int)
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
            memory: tuple[Mapping[str, list[float]], float] | None = None, *,
            shape: Mapping[str, Any] | None = None
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
    curve = fit_curve([p[0] for p in use], [p[0] / (rate * p[2]) for p in use],
                      **(shape or {}))
    stats = _errors(pts, curve, rate, overhead_s, floors)
    stats["median_spread"] = float(np.median([r["spread"] for r in records]))
    return curve, stats


# The generic `memory` curve of a profile imported from layer tables comes from the residual-add
# kernels: two reads and one write with no reduction or gather, i.e. plain streaming.
STREAMING_KIND = "residual"
# Kernels moving at most this many bytes take ~no time for the bytes (64 KiB at >1 TB/s is
# < 0.1 us): their measured time is launch/latency overhead.
TINY_KERNEL_BYTES = 64 * 1024
# A GEMM whose arithmetic intensity (FLOPs per byte) is below this fraction of the device's
# ridge point (peak FLOP/s / memory bandwidth) is memory-bound: it shapes gemm_memory.
MEMORY_BOUND_INTENSITY = 0.5
COLLECTIVE_BINS_PER_DECADE = 8


def smallest_kernel_s(raw: Mapping[str, Any]) -> float | None:
    """The shortest median of the run's memory, elementwise and GEMM kernels (None: none)."""
    times = [r["median_s"] for family in ("memory", "elementwise", "gemm")
             for r in raw.get(family, [])]
    return min(times) if times else None


def kernel_overhead_from_smallest(raw: Mapping[str, Any]) -> float:
    """Per-kernel overhead (s) for tables without a null-kernel timing: per elementwise kind,
    the median time of its tiny kernels (TINY_KERNEL_BYTES); the smallest of those medians."""
    per_kind: dict[str, list[float]] = {}
    for r in raw.get("elementwise", []):
        if r["bytes"] <= TINY_KERNEL_BYTES:
            per_kind.setdefault(r["kind"], []).append(r["median_s"])
    if not per_kind:
        raise CalibrationError(f"no kernel moving <= {TINY_KERNEL_BYTES} bytes to take the "
                               "per-kernel overhead from", key="kernel_overhead")
    return float(min(np.median(v) for v in per_kind.values()))


def fit_gemm_memory(records: list[dict[str, Any]], flops_peak: Mapping[str, float], bw: float,
                    overhead_s: float, shape: Mapping[str, Any] | None = None) -> tuple[dict[str, list[float]], dict[str, float]] | None:
    """Memory-bound GEMM curve (eff vs bytes, fraction of memory_bw) from the GEMMs below
    MEMORY_BOUND_INTENSITY of the ridge point; None when fewer than 8 such points."""
    sel = [r for r in records if r["dtype"] in flops_peak
           and r["flops"] / r["bytes"] < MEMORY_BOUND_INTENSITY * flops_peak[r["dtype"]] / bw]
    if len(sel) < 8:
        return None
    return _family(sel, "bytes", bw, overhead_s, shape=shape)


def _log_bins(xs: np.ndarray, per_decade: int) -> np.ndarray:
    return np.floor(np.log10(xs) * per_decade).astype(int)


def fit_collectives(records: list[dict[str, Any]], *, summarize: bool = False
                    ) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{op: {world: {x, busbw_Bps}}}: the measured points (bus bandwidth vs message bytes;
    small messages are latency-bound, which the low bus bandwidth there carries). With
    summarize, points are reduced to the median per 1/8 decade of size (published sweeps
    have ~1000 sizes per group)."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for op in sorted({r["op"] for r in records}):
        recs = sorted((r for r in records if r["op"] == op), key=lambda r: r["bytes"])
        for world in sorted({int(r["world"]) for r in recs}):
            sel = [r for r in recs if int(r["world"]) == world]
            xs = np.array([r["bytes"] for r in sel], dtype=float)
            ys = np.array([max(r["busbw_Bps"], 1.0) for r in sel], dtype=float)
            if summarize:
                bins = _log_bins(xs, COLLECTIVE_BINS_PER_DECADE)
                keys = np.unique(bins)
                xs = np.array([float(np.exp(np.mean(np.log(xs[bins == b])))) for b in keys])
                ys = np.array([float(np.median(ys[bins == b])) for b in keys])
            else:  # one point per size (repeated sizes: their median)
                ux = np.unique(xs)
                ys = np.array([float(np.median(ys[xs == x])) for x in ux])
                xs = ux
            ys = time_monotone_busbw(xs, ys)
            out.setdefault(op, {})[str(world)] = {"x": [float(v) for v in xs],
                                                  "busbw_Bps": [float(v) for v in ys]}
    return out


def time_monotone_busbw(xs: np.ndarray, busbw: np.ndarray) -> np.ndarray:
    """Bus bandwidths whose implied times (x / busbw, up to the op's bus factor) never fall as
    the message grows: a smaller message's time is capped by every larger one's, walking down
    from the largest size. Small-message timings jitter upwards (Vidur's 8-GPU all-reduce at
    2 KB: median 37 us, at 10 KB 23 us), and the hwmodels latency floor is the smallest
    size's time, so one slow point would otherwise set the floor of every small message."""
    t = xs / busbw
    for i in range(len(t) - 2, -1, -1):
        t[i] = min(t[i], t[i + 1])
    return xs / t


def fit_engine_overheads(records: list[dict[str, Any]]) -> tuple[dict[str, float],
                                                                  dict[str, Any]]:
    """Engine step overhead coefficients: least squares of the CPU time per iteration
    (cpu_s) against sequences in the batch -> fixed_s, per_seq_s; the tensor-parallel
    communication time (ray_s, rows with tp > 1) -> tp_fixed_s (its intercept) and
    tp_per_seq_s (its slope). Statistics: leave-one-batch-out error of the total."""
    def lsq(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
        b = np.array([r["batch"] for r in rows], dtype=float)
        y = np.array([r[key] for r in rows], dtype=float)
        if len(set(b.tolist())) < 2:
            return float(np.mean(y)), 0.0
        slope, icpt = np.polyfit(b, y, 1)
        return max(float(icpt), 0.0), max(float(slope), 0.0)

    def coeffs(rows: list[dict[str, Any]]) -> dict[str, float]:
        fixed, per_seq = lsq(rows, "cpu_s")
        tp_rows = [r for r in rows if r["tp"] > 1]
        tp_fixed, tp_per_seq = lsq(tp_rows, "ray_s") if tp_rows else (0.0, 0.0)
        return {"fixed_s": fixed, "per_seq_s": per_seq, "tp_fixed_s": tp_fixed,
                "tp_per_seq_s": tp_per_seq}

    def predict(c: Mapping[str, float], r: Mapping[str, Any]) -> float:
        tp = (c["tp_fixed_s"] + c["tp_per_seq_s"] * r["batch"]) if r["tp"] > 1 else 0.0
        return c["fixed_s"] + c["per_seq_s"] * r["batch"] + tp

    fitted = coeffs(records)
    errs = []
    for i, r in enumerate(records):
        c = coeffs(records[:i] + records[i + 1:])
        errs.append(abs(predict(c, r) - r["median_s"]) / r["median_s"])
    stats = {"points": len(records), "median_abs_err": float(np.median(errs)),
             "max_abs_err": float(np.max(errs)), "median_spread": 0.0,
             "heldout": "leave-one-batch-out",
             "models": sorted({r["model"] for r in records}),
             "tp": sorted({int(r["tp"]) for r in records})}
    return fitted, stats


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


def _method(shape: Mapping[str, Any] | None) -> str:
    shape = shape or {}
    bins = shape.get("bins_per_decade", BINS_PER_DECADE)
    iso = "isotonic (PAV); " if shape.get("monotone", True) else ""
    return (f"eff = work / (peak * (median - kernel_overhead)); 1/{bins}-decade bin medians; "
            f"{iso}small sizes raised so time is monotone in size")


def fit_profile(raw: Mapping[str, Any], peaks: Mapping[str, Any], *, device: str,
                device_reported: str, env: Mapping[str, Any],
                skipped: Iterable[str] = (), source: Mapping[str, Any] | None = None,
                name: str | None = None, memory_bound_gemms: bool = False,
                keep_raw: bool = True, curve_shape: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """The profile JSON object (format of hwmodels/profile.py) from raw benchmark records.

    Families beyond a local run's (elementwise kinds, collectives per group size, engine
    overheads) are fitted when `raw` has them; attention is optional (the defaults fill it).
    memory_bound_gemms: fit the memory-bound GEMM curve (gemm_memory) from GEMMs whose
    arithmetic intensity is below the device's ridge point. source/name: for imported tables.
    curve_shape: fit_curve options (monotone, bins_per_decade) for every family."""
    notes = list(skipped)
    if "kernel_overhead" in raw:
        overhead_s = float(raw["kernel_overhead"]["median_s"])
        smallest = smallest_kernel_s(raw)
        if smallest is not None and overhead_s > smallest:
            # the model prices every kernel at >= its fixed overhead, so a null-kernel probe
            # reading above a real kernel of the same run is timing noise (a ~2-3 us CPU probe
            # varies by ~20%): take the smallest kernel as the floor instead
            notes.append(f"kernel_overhead probe {overhead_s:.3g} s read above the smallest "
                         f"kernel ({smallest:.3g} s); capped to it")
            overhead_s = smallest
    else:
        overhead_s = kernel_overhead_from_smallest(raw)
    bw = float(peaks["memory_bw_Bps"])
    flops_peak: Mapping[str, float] = peaks["flops"]
    fit_stats: dict[str, Any] = {}

    mem_recs = raw.get("memory") or [r for r in raw.get("elementwise", [])
                                     if r["kind"] == STREAMING_KIND]
    if not mem_recs:
        raise CalibrationError("no streaming-kernel records (memory, or residual adds)",
                               key="memory")
    memory, fit_stats["memory"] = _family(mem_recs, "bytes", bw, overhead_s,
                                            shape=curve_shape)
    elementwise: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in raw.get("elementwise", [])}):
        recs = [r for r in raw["elementwise"] if r["kind"] == kind]
        elementwise[kind], fit_stats[f"elementwise.{kind}"] = _family(
            recs, "bytes", bw, overhead_s, shape=curve_shape)
    gemm_memory = None
    mem_for_gemm = memory
    if memory_bound_gemms:
        fitted = fit_gemm_memory(raw["gemm"], flops_peak, bw, overhead_s, curve_shape)
        if fitted is not None:
            gemm_memory, fit_stats["gemm_memory"] = fitted
            mem_for_gemm = gemm_memory
    gemm: dict[str, Any] = {}
    for dt in sorted({r["dtype"] for r in raw["gemm"]}):
        if dt not in flops_peak:
            notes.append(f"gemm {dt}: no peak known for this dtype; curve not fitted")
            continue
        recs = [r for r in raw["gemm"] if r["dtype"] == dt]
        gemm[dt], fit_stats[f"gemm.{dt}"] = _family(recs, "flops", flops_peak[dt], overhead_s,
                                                    memory=(mem_for_gemm, bw), shape=curve_shape)
    if not gemm:
        raise CalibrationError("no GEMM dtype has both measurements and a peak", key="gemm")

    prefill = decode = None
    attn = raw.get("attention_prefill") or []
    attn_dt = attn[0]["dtype"] if attn else None
    if attn:
        attn_peak = flops_peak.get(attn_dt) or flops_peak.get("bf16") or max(flops_peak.values())
        prefill, fit_stats["attention_prefill"] = _family(attn, "flops", attn_peak, overhead_s,
                                                          shape=curve_shape)
    if raw.get("attention_decode"):
        decode, fit_stats["attention_decode"] = _family(raw["attention_decode"], "bytes", bw,
                                                        overhead_s, shape=curve_shape)

    host_Bps = None
    h2d = [r for r in raw.get("host_device", []) if r["direction"] == "h2d"]
    if h2d:
        top = max(h2d, key=lambda r: r["bytes"])
        host_Bps = top["bytes"] / top["median_s"]
    elif raw.get("memory"):  # the CPU is the host: a "host to device" copy is a memory copy
        copies = [r for r in raw["memory"] if r["kind"] == "copy"]
        if copies:
            top = max(copies, key=lambda r: r["bytes"])
            host_Bps = top["bytes"] / 2.0 / top["median_s"]  # bytes copied, not bytes moved

    collectives = fit_collectives(raw.get("collectives", []),
                                  summarize=bool(raw.get("elementwise")))
    engines: dict[str, Any] = {}
    for engine in sorted({r["engine"] for r in raw.get("engine_overheads", [])}):
        recs = [r for r in raw["engine_overheads"] if r["engine"] == engine]
        engines[engine], fit_stats[f"engine_overheads.{engine}"] = fit_engine_overheads(recs)

    src = dict(source) if source else {
        "kind": "local", "description": f"fleetsim calibrate on {device_reported} "
                                        f"(torch {env.get('torch', '?')})",
        "date": str(env.get("date", ""))}
    out: dict[str, Any] = {
        "format": "fleetsim-profile",
        "version": 2,
        "device": device,
        "name": name or f"{device}-local",
        "device_reported": device_reported,
        "created": env.get("date"),
        "source": src,
        "env": dict(env),
        "gemm": gemm,
        "gemm_memory": gemm_memory,
        "memory": memory,
        "elementwise": elementwise or None,
        "attention_prefill": prefill,
        "attention_decode": decode,
        "kernel_overhead_s": overhead_s,
        "host_to_device_Bps": host_Bps,
        "collectives": collectives,
        "collectives_link": raw.get("collectives_link"),
        "engine_overheads": engines or None,
        "peak": {"flops": dict(flops_peak), "memory_bw_Bps": bw,
                 "attention_dtype": attn_dt, "source": peaks.get("source", "")},
        "fit": {"method": _method(curve_shape),
                "families": fit_stats, "notes": notes},
    }
    if keep_raw:
        out["raw"] = dict(raw)
    return {k: v for k, v in out.items() if v is not None}
