"""Pipeline Gantt chart of a simulated iteration (matplotlib, written atomically)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib

from hwmodels.atomic import atomic_write

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from simulator.training.engine import TraceEvent  # noqa: E402

_COLORS = {"F": "#4C72B0", "B": "#DD8452", "W": "#55A868", "grad sync": "#C44E52",
           "optimizer": "#8172B3"}


def _color(name: str) -> str:
    return _COLORS.get(name, _COLORS.get(name[:1], "#999999"))


def plot_pipeline(events: Iterable[TraceEvent], path: str | Path, *, title: str = "") -> Path:
    """Draw one row per stage (F blue, B orange, W green, grad sync red, optimizer purple)."""
    stage_events = [e for e in events if e.track.startswith("stage ")]
    stages = sorted({int(e.track.split()[1]) for e in stage_events})
    fig, ax = plt.subplots(figsize=(12, 0.4 * max(4, len(stages)) + 1))
    for e in stage_events:
        s = int(e.track.split()[1])
        ax.barh(s, e.duration_s, left=e.start_s, height=0.8, color=_color(e.name),
                edgecolor="white", linewidth=0.3)
    ax.set_yticks(stages)
    ax.set_yticklabels([f"stage {s}" for s in stages])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_title(title or "pipeline schedule")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _COLORS.values()]
    ax.legend(handles, list(_COLORS), loc="upper right", fontsize=7, ncol=5)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110))
    finally:
        plt.close(fig)
