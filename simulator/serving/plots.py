"""Plots of a ServingResult: latency CDFs and queue / batch / KV usage over time (matplotlib,
written to a file; no display needed).

The CDFs are over *all* requests, so they plateau at completed/total: dropped and unfinished
requests stay visible instead of silently leaving the denominator. p50/p99 are the summary()
percentiles (over completed requests) marked on the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hwmodels.atomic import atomic_write  # noqa: E402
from simulator.serving.metrics import ServingResult, latency_columns  # noqa: E402
from simulator.serving.request import Status  # noqa: E402


@dataclass(frozen=True, slots=True)
class _Panel:
    column: str
    title: str
    xlabel: str
    scale: float  # seconds -> plotted unit
    unit: str


PANELS = (
    _Panel("ttft_s", "time to first token", "ttft (ms)", 1e3, "ms"),
    _Panel("tpot_s", "time per output token", "tpot (ms)", 1e3, "ms"),
    _Panel("e2e_s", "end-to-end latency", "end-to-end latency (s)", 1.0, "s"),
)


def _save(fig: Figure, path: str | Path) -> Path:
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def request_counts_label(result: ServingResult) -> str:
    """e.g. "n=2000 requests: 1805 completed, 195 dropped, 0 unfinished"."""
    status = result.records["status"]
    n = len(status)
    done = int((status == Status.COMPLETED).sum())
    dropped = int((status == Status.DROPPED).sum())
    return (f"n={n} requests: {done} completed, {dropped} dropped, "
            f"{n - done - dropped} unfinished")


def latency_cdf_figure(result: ServingResult) -> Figure:
    """The three CDFs as a Figure (the caller closes it)."""
    lat = latency_columns(result.records)
    total = len(result.records)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    slos = {"ttft_s": result.slo_ttft_s, "tpot_s": result.slo_tpot_s, "e2e_s": None}
    for ax, panel in zip(axes, PANELS, strict=True):
        values = np.sort(lat[panel.column].dropna().to_numpy()) * panel.scale
        if len(values) and total:
            y = np.arange(1, len(values) + 1) / total
            ax.step(values, y, where="post", lw=1.3, label="cdf over all requests")
            top = len(values) / total
            ax.axhline(top, color="grey", ls=":", lw=1,
                       label=f"plateau {len(values)}/{total} = {top:.1%}")
            for q, marker in ((50, "o"), (99, "^")):
                v = float(np.percentile(values, q))
                ax.plot([v], [q / 100 * top], marker, color="black", ms=5,
                        label=f"p{q} = {v:.3g} {panel.unit}")
        else:
            ax.text(0.5, 0.5, "no completed requests", ha="center", va="center",
                    transform=ax.transAxes)
        slo = slos[panel.column]
        if slo is not None:
            ax.axvline(slo * panel.scale, color="red", ls="--", lw=1,
                       label=f"slo {slo * panel.scale:g} {panel.unit}")
        ax.set_ylim(0.0, 1.02)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel("fraction of all requests")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # below the axes, outside the data area
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8,
                      frameon=False, ncol=2)
    fig.suptitle(f"latency cdfs, {request_counts_label(result)}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_latency_cdfs(result: ServingResult, path: str | Path) -> Path:
    """Write the CDFs of TTFT, TPOT and end-to-end latency (see latency_cdf_figure)."""
    return _save(latency_cdf_figure(result), path)


def timeseries_figure(result: ServingResult) -> Figure:
    """Queue length, running batch size and KV usage over time as a Figure."""
    ts = result.timeseries
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    lanes = 0
    if not ts.empty:
        lanes = int(ts.groupby(["replica", "lane"]).ngroups)
        bins = np.floor(ts["time_s"] / max(1.0, result.duration_s / 400)).astype(int)
        grouped = ts.groupby([bins, "replica", "lane"]).last().groupby(level=0)
        t = grouped["time_s"].max()
        axes[0].plot(t, grouped["queue_len"].sum(), label=f"sum over {lanes} lane(s)")
        axes[1].plot(t, grouped["batch_size"].sum(), label=f"sum over {lanes} lane(s)")
        axes[2].plot(t, 100 * grouped["kv_usage"].mean(), label=f"mean over {lanes} lane(s)")
    else:
        axes[0].text(0.5, 0.5, "no time series recorded", ha="center", va="center",
                     transform=axes[0].transAxes)
    for ax, label in zip(axes, ("queued requests (count)", "running requests (count)",
                                "kv cache usage (%)"), strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # right of the axes, outside the data area
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"queue, batch and kv cache over time, {request_counts_label(result)}",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_timeseries(result: ServingResult, path: str | Path) -> Path:
    """Write the time series plot (see timeseries_figure)."""
    return _save(timeseries_figure(result), path)
