"""Progress of long runs against wall-clock time (matplotlib, written atomically).

Below the progress lines, one row per run carries a marker at every interruption (one
legend entry per cause, the rarest causes pooled) and shades its restart /
waiting-for-spare downtime. Runs from
simulate_many are labelled "seed i" = child i of the SeedSequence (RunResult.seed_index);
a single run by the seed it used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from hwmodels.atomic import atomic_write

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from simulator.longrun.results import RunResult  # noqa: E402

DAY_S = 86400.0
MAX_CAUSES = 7  # causes with their own marker; the rest share "other causes"
_MARKERS = ("o", "v", "s", "D", "^", "P", "X")
_CAUSE_COLORS = ("#C44E52", "#DD8452", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974")
_OTHER_COLOR = "#444444"
_DOWNTIME = {"restart": ("restart (detect, re-init, load)", "#C44E52"),
             "waiting_spare": ("waiting for a spare node", "#8172B3")}


def seed_label(run: RunResult) -> str:
    """ "seed i" for the i-th child seed of a multi-seed run, else "seed <seed used>"."""
    return f"seed {run.seed_index if run.seed_index is not None else run.seed}"


def progress_figure(runs: RunResult | Sequence[RunResult], *,
                    labels: Sequence[str] | None = None, title: str = "") -> Figure:
    """Tokens kept vs days of wall-clock time as a Figure (the caller closes it): the
    progress lines on top, below one row per run with a marker per interruption (by cause)
    and its downtime spans shaded."""
    runs = [runs] if isinstance(runs, RunResult) else list(runs)
    labels = list(labels) if labels else [
        f"{seed_label(r)}: ETTR {r.ettr:.1%}, {r.num_interruptions} interruptions"
        for r in runs]
    rows = max(1, len(runs))
    fig, (ax, ev) = plt.subplots(2, 1, figsize=(11, 4.5 + 0.3 * rows), sharex=True,
                                 gridspec_kw={"height_ratios": [3.0, 0.6 + 0.25 * rows]})
    causes = Counter(c for r in runs for _, c in r.interruption_events)
    own = [c for c, _ in causes.most_common(MAX_CAUSES)]
    if len(causes) > len(own):
        own = own[: MAX_CAUSES - 1]  # keep a slot for the pooled rest
    points: dict[str, list[tuple[float, int]]] = {c: [] for c in [*own, "other"]}
    spans: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for row, (run, label) in enumerate(zip(runs, labels, strict=False)):
        t_days = np.asarray(run.progress_t_s, dtype=float) / DAY_S
        ax.plot(t_days, np.asarray(run.progress_tokens, dtype=float) / 1e12, lw=1.0,
                label=label)
        for t_s, cause in run.interruption_events:
            points[cause if cause in own else "other"].append((t_s / DAY_S, row))
        for start_s, end_s, kind in run.downtime_spans:
            spans.setdefault(kind, {}).setdefault(row, []).append(
                (start_s / DAY_S, (end_s - start_s) / DAY_S))
    if runs:
        r = runs[0]
        ax.plot([0, r.wall_s / DAY_S], [0, r.ideal_tokens_per_s * r.wall_s / 1e12], "k--",
                lw=0.8, label="no failures (ideal)")
    handles = []
    for kind, per_row in spans.items():
        text, color = _DOWNTIME.get(kind, (kind.replace("_", " "), "#999999"))
        for row, bars in per_row.items():  # an edge keeps minute-long spans visible
            ev.broken_barh(bars, (row - 0.4, 0.8), facecolors=color, edgecolors=color,
                           linewidth=0.3, alpha=0.35, zorder=1)
        n = sum(len(b) for b in per_row.values())
        handles.append(Patch(color=color, alpha=0.35, label=f"{text} (n={n})"))
    for i, cause in enumerate([*own, "other"]):
        pts = points[cause]
        if not pts:
            continue
        other = cause == "other"
        name = (f"other causes ({len(causes) - len(own)} kinds)" if other
                else cause.replace("_", " "))
        xs, ys = zip(*pts, strict=True)
        handles.append(ev.scatter(xs, ys, s=12, marker="x" if other else _MARKERS[i],
                                  color=_OTHER_COLOR if other else _CAUSE_COLORS[i],
                                  linewidths=0.8, zorder=3, label=f"{name} (n={len(pts)})"))
    ax.set_ylabel("tokens trained (T)")
    ax.set_title(title or "training progress with failures and restarts")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              borderaxespad=0.0)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ev.set_yticks(range(len(runs)))
    ev.set_yticklabels([seed_label(r) for r in runs], fontsize=8)
    ev.set_ylim(rows - 0.5, -0.5)
    ev.set_xlabel("wall-clock time (days)")
    ev.set_title("interruptions (markers, by cause) and downtime (shaded)", fontsize=9,
                 loc="left")
    ev.grid(axis="x", alpha=0.3)
    if handles:
        ev.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False, borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_progress(runs: RunResult | Sequence[RunResult], path: str | Path, *,
                  labels: Sequence[str] | None = None, title: str = "") -> Path:
    """Write the progress plot (see progress_figure) to path; returns the path."""
    fig = progress_figure(runs, labels=labels, title=title)
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)
