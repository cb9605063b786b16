"""Trace statistics (rate, burstiness, token percentiles, prefix reuse) and replay transforms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwmodels.errors import ConfigError

PERCENTILES = (50, 90, 99)


def index_of_dispersion(arrival_time_s: np.ndarray, window_s: float) -> float:
    """Variance / mean of arrival counts in consecutive windows (1 for Poisson, > 1 bursty)."""
    if len(arrival_time_s) == 0:
        return float("nan")
    t0 = float(arrival_time_s[0])
    span = float(arrival_time_s[-1]) - t0
    bins = max(1, int(span // window_s) + 1)
    counts = np.bincount(((arrival_time_s - t0) // window_s).astype(np.int64), minlength=bins)
    mean = counts.mean()
    return float(counts.var() / mean) if mean > 0 else float("nan")


def prefix_reuse(prefix_hashes: list[list[int]] | pd.Series) -> float:
    """Fraction of prefix blocks already seen earlier in the trace (an unlimited cache's hit
    rate in blocks; Mooncake's published 36.6% for its conversation trace)."""
    seen: set[int] = set()
    total = reused = 0
    for hashes in prefix_hashes:
        for h in hashes:
            total += 1
            if h in seen:
                reused += 1
            else:
                seen.add(h)
    return reused / total if total else 0.0


def _dist(values: np.ndarray) -> dict[str, float]:
    out = {"mean": float(values.mean())}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(values, p))
    out["max"] = float(values.max())
    return out


def trace_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Summary of a trace frame: requests, duration, rate, inter-arrival CV, index of dispersion
    at 1 s and 60 s, input/output token distributions, prefix reuse where hashes exist."""
    if len(df) == 0:
        raise ConfigError("trace has no rows")
    t = rebase_arrivals(df)["arrival_time_s"].to_numpy(dtype=float)
    gaps = np.diff(t)
    duration = float(t[-1] - t[0])
    out: dict[str, Any] = {
        "requests": len(df),
        "duration_s": duration,
        "rate_rps": (len(df) - 1) / duration if duration > 0 else float("nan"),
        "interarrival_cv": float(gaps.std() / gaps.mean()) if len(gaps) and gaps.mean() > 0
        else float("nan"),
        "index_of_dispersion": {"1s": index_of_dispersion(t, 1.0),
                                "60s": index_of_dispersion(t, 60.0)},
        "input_tokens": _dist(df["input_tokens"].to_numpy()),
        "output_tokens": _dist(df["output_tokens"].to_numpy()),
    }
    if "failed" in df.columns:
        out["failed"] = int(df["failed"].sum())
    if "prefix_hashes" in df.columns:
        out["prefix_reuse"] = prefix_reuse(df["prefix_hashes"])
    return out


def rebase_arrivals(df: pd.DataFrame) -> pd.DataFrame:
    """Arrivals shifted so the first one is at 0 (a Unix-epoch trace would otherwise bill ~54
    years of idle cluster before its first request); the subtracted time accumulates in
    attrs['trace_start_offset_s']. The one time-base rule: readers, stats and simulate_serving."""
    t = df["arrival_time_s"].to_numpy(dtype=float)
    offset = float(t.min()) if len(t) else 0.0
    out = df if offset == 0.0 else df.assign(arrival_time_s=t - offset)
    out.attrs = {**df.attrs, "trace_start_offset_s":
                 float(df.attrs.get("trace_start_offset_s", 0.0) or 0.0) + offset}
    return out


def scale_trace(df: pd.DataFrame, rate_scale: float) -> pd.DataFrame:
    """Replay at `rate_scale` x the original rate (inter-arrival gaps divided by rate_scale)."""
    if not (isinstance(rate_scale, (int, float)) and rate_scale > 0 and np.isfinite(rate_scale)):
        raise ConfigError(f"must be a number > 0, got {rate_scale!r}", key="workload.rate_scale")
    out = df.copy()
    t = out["arrival_time_s"].to_numpy(dtype=float)
    t0 = t[0] if len(t) else 0.0
    out["arrival_time_s"] = t0 + (t - t0) / float(rate_scale)
    out.attrs = dict(df.attrs)
    return out


def tile_trace(df: pd.DataFrame, span_s: float) -> pd.DataFrame:
    """The trace repeated back to back (period: its span plus one mean gap) until it covers
    [0, span_s), cut there: long probes of a short trace (sessions and prefix hashes repeat)."""
    if len(df) == 0:
        raise ConfigError("trace has no rows")
    base = rebase_arrivals(df)
    t = base["arrival_time_s"].to_numpy(dtype=float)
    period = float(t[-1]) + (float(t[-1]) / (len(t) - 1) if len(t) > 1 and t[-1] > 0 else 1.0)
    copies = max(1, int(np.ceil(span_s / period)))
    parts = []
    for k in range(copies):
        part = base.copy()
        part["arrival_time_s"] = t + k * period
        parts.append(part)
    out = pd.concat(parts, ignore_index=True) if copies > 1 else base.copy()
    out = out.loc[out["arrival_time_s"].to_numpy() < span_s].reset_index(drop=True)
    out.attrs = dict(base.attrs)
    return out


def window_trace(df: pd.DataFrame, start_s: float = 0.0, end_s: float | None = None, *,
                 rebase: bool = True) -> pd.DataFrame:
    """Requests arriving in [start_s, end_s) of the trace (times relative to its first arrival),
    rebased to start at 0 unless rebase=False."""
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ConfigError(f"need 0 <= start < end, got [{start_s}, {end_s})",
                          key="workload.window")
    t = df["arrival_time_s"].to_numpy(dtype=float)
    t0 = t[0] if len(t) else 0.0
    rel = t - t0
    keep = rel >= start_s
    if end_s is not None:
        keep &= rel < end_s
    out = df.loc[keep].reset_index(drop=True)
    if rebase:
        out["arrival_time_s"] = rel[keep] - start_s
    out.attrs = dict(df.attrs)
    return out
