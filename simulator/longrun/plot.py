"""Progress of long runs against wall-clock time (matplotlib, written atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

from hwmodels.atomic import atomic_write

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from simulator.longrun.results import RunResult  # noqa: E402

DAY_S = 86400.0


def plot_progress(runs: RunResult | Sequence[RunResult], path: str | Path, *,
                  labels: Sequence[str] | None = None, title: str = "") -> Path:
    """Tokens kept vs days of wall-clock time, one line per run, the ideal line dashed."""
    runs = [runs] if isinstance(runs, RunResult) else list(runs)
    labels = list(labels) if labels else [f"seed {r.seed}: ETTR {r.ettr:.1%}" for r in runs]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for run, label in zip(runs, labels, strict=False):
        t = [x / DAY_S for x in run.progress_t_s]
        ax.plot(t, [y / 1e12 for y in run.progress_tokens], lw=1.0, label=label)
    if runs:
        r = runs[0]
        end_days = r.wall_s / DAY_S
        ax.plot([0, end_days], [0, r.ideal_tokens_per_s * r.wall_s / 1e12], "k--", lw=0.8,
                label="no failures")
    ax.set_xlabel("wall-clock time (days)")
    ax.set_ylabel("tokens trained (T)")
    ax.set_title(title or "training progress with failures and restarts")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110))
    finally:
        plt.close(fig)
