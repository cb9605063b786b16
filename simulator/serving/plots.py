"""Plots of a ServingResult: latency CDFs and queue / batch / KV usage over time (matplotlib,
written to a file; no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hwmodels.atomic import atomic_write  # noqa: E402
from simulator.serving.metrics import ServingResult, latency_columns  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_latency_cdfs(result: ServingResult, path: str | Path) -> Path:
    """CDFs of TTFT, TPOT and end-to-end latency of completed requests."""
    lat = latency_columns(result.records)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, col, slo in zip(axes, ("ttft_s", "tpot_s", "e2e_s"),
                            (result.slo_ttft_s, result.slo_tpot_s, None), strict=True):
        values = np.sort(lat[col].dropna().to_numpy())
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values))
        if slo is not None:
            ax.axvline(slo, color="red", ls="--", lw=1, label=f"SLO {slo:g} s")
            ax.legend(loc="lower right")
        ax.set_xlabel(col.replace("_s", " (s)").upper())
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_timeseries(result: ServingResult, path: str | Path) -> Path:
    """Queue length, running batch size and KV usage over time, summed/averaged over lanes."""
    ts = result.timeseries
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    if not ts.empty:
        bins = np.floor(ts["time_s"] / max(1.0, result.duration_s / 400)).astype(int)
        grouped = ts.groupby([bins, "replica", "lane"]).last().groupby(level=0)
        t = grouped["time_s"].max()
        axes[0].plot(t, grouped["queue_len"].sum())
        axes[1].plot(t, grouped["batch_size"].sum())
        axes[2].plot(t, 100 * grouped["kv_usage"].mean())
    for ax, label in zip(axes, ("queued requests", "running requests", "KV usage (%)"),
                         strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    return _save(fig, path)
