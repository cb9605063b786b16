"""Pipeline Gantt chart of a simulated iteration (matplotlib, written atomically).

Readable at any microbatch count: one bar collection per (stage, phase) with touching
same-phase bars merged (so 96 microbatches x PP16 is ~100 artists, not 3,000 patches),
microbatch numbers only where a bar is wide enough to hold them, and - when a stage runs
many ops - a second panel that zooms on the pipeline fill and the first steady-state ops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from hwmodels.atomic import atomic_write

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from hwmodels.parallel import ParallelConfig, PipelineSchedule  # noqa: E402
from simulator.training.engine import TraceEvent  # noqa: E402

# phase -> (legend label, colour); the order is the legend's
PHASES: dict[str, tuple[str, str]] = {
    "F": ("forward", "#4C72B0"),
    "B": ("backward", "#DD8452"),
    "W": ("weight grad", "#55A868"),
    "grad sync": ("grad sync (DP comm)", "#C44E52"),
    "optimizer": ("optimizer", "#8172B3"),
    "other": ("other", "#999999"),
}
ZOOM_MIN_OPS_PER_STAGE = 24  # more compute ops than this on a stage: add the zoom panel
LABEL_FONT_PT = 6.0
LABEL_PAD_PX = 4.0  # a label is drawn only on a bar wider than the text plus this
MAX_LABELS = 300  # and never more than this many per figure
_FIG_W_IN, _DPI = 13.0, 110

_SCHEDULE_NAMES = {PipelineSchedule.GPIPE: "GPipe", PipelineSchedule.ONE_F_ONE_B: "1F1B",
                   PipelineSchedule.INTERLEAVED: "1F1B interleaved",
                   PipelineSchedule.ZB_H1: "ZB-H1"}


@dataclass(frozen=True, slots=True)
class _Op:
    stage: int
    phase: str
    start_s: float
    end_s: float
    mb: int | None
    name: str


def _phase(e: TraceEvent) -> str:
    if e.category == "compute" and e.name[:1] in ("F", "B", "W"):
        return e.name[:1]
    if e.category == "dp" or e.name == "grad sync":
        return "grad sync"
    if e.category == "optimizer":
        return "optimizer"
    return "other"


def _ops(events: Iterable[TraceEvent]) -> list[_Op]:
    """Stage-track events as ops; labels "F12" (or "F12.1" = microbatch 12, chunk 1, when
    the schedule runs several model chunks per stage)."""
    raw = []
    for e in events:
        if not e.track.startswith("stage "):
            continue
        args = dict(e.args)
        mb, chunk = args.get("mb"), args.get("chunk", 0)
        raw.append((e, int(mb) if isinstance(mb, (int, float)) else None, chunk))
    chunked = any(chunk != 0 for _, _, chunk in raw)
    return [_Op(int(e.track.split()[1]), _phase(e), e.start_s, e.start_s + e.duration_s, mb,
                e.name if chunked else e.name.split(".")[0])
            for e, mb, _ in raw]


def _merged(ops: Sequence[_Op], tol_s: float) -> list[tuple[float, float]]:
    """(start, width) bars of one (stage, phase), merging bars that touch (gap <= tol_s)."""
    bars: list[list[float]] = []
    for op in sorted(ops, key=lambda o: o.start_s):
        if bars and op.start_s - bars[-1][1] <= tol_s:
            bars[-1][1] = max(bars[-1][1], op.end_s)
        else:
            bars.append([op.start_s, op.end_s])
    return [(s, e - s) for s, e in bars]


def plan_label(parallel: ParallelConfig, num_microbatches: int | None = None) -> str:
    """e.g. "TP8 PP8 DP16, 1F1B interleaved v=3, 96 microbatches"."""
    dims = [f"TP{parallel.tp}", f"PP{parallel.pp}", f"DP{parallel.dp}"]
    dims += [f"{k.upper()}{v}" for k, v in (("cp", parallel.cp), ("ep", parallel.ep)) if v > 1]
    sched = _SCHEDULE_NAMES.get(parallel.schedule, str(parallel.schedule))
    if parallel.schedule is PipelineSchedule.INTERLEAVED:
        sched += f" v={parallel.vpp}"
    parts = [" ".join(dims), sched]
    if num_microbatches is not None:
        parts.append(f"{num_microbatches} microbatches")
    return ", ".join(parts)


def _zoom_end_s(ops: Sequence[_Op], stages: Sequence[int]) -> float | None:
    """End of a window showing the pipeline fill and the first steady-state ops: up to the
    end of the 4th backward op on the first stage (None: few ops, no zoom needed)."""
    counts = {s: 0 for s in stages}
    for o in ops:
        if o.phase in ("F", "B", "W"):
            counts[o.stage] += 1
    if max(counts.values(), default=0) <= ZOOM_MIN_OPS_PER_STAGE:
        return None
    first = sorted((o for o in ops if o.stage == stages[0] and o.phase == "B"),
                   key=lambda o: o.start_s)
    if not first:
        return None
    return first[min(len(first), 4) - 1].end_s


def _label_px(text: str) -> float:
    """Approximate rendered width of a label (DejaVu Sans digits are ~0.6 em wide)."""
    return 0.6 * LABEL_FONT_PT / 72.0 * _DPI * len(text) + LABEL_PAD_PX


def _draw(ax: plt.Axes, ops: Sequence[_Op], stages: Sequence[int], x0: float, x1: float,
          labels_left: int, *, merge: bool) -> int:
    """Bars of ops that overlap [x0, x1]; returns how many microbatch labels were drawn.

    merge: join same-phase bars closer than half a pixel (they look the same joined; this
    bounds the vertices at many microbatches); else every op is its own bar, edged in white.
    """
    width_px = ax.get_position().width * _FIG_W_IN * _DPI
    s_per_px = (x1 - x0) / max(width_px, 1.0)
    row = {s: i for i, s in enumerate(stages)}
    groups: dict[tuple[int, str], list[_Op]] = {}
    for op in ops:
        if op.end_s >= x0 and op.start_s <= x1:
            groups.setdefault((op.stage, op.phase), []).append(op)
    for (stage, phase), group in groups.items():
        bars = (_merged(group, 0.5 * s_per_px) if merge
                else [(o.start_s, o.end_s - o.start_s) for o in group])
        ax.broken_barh(bars, (row[stage] - 0.4, 0.8), facecolors=PHASES[phase][1],
                       edgecolor="none" if merge else "white", linewidth=0.5)
    drawn = 0
    for op in sorted(ops, key=lambda o: (o.start_s, o.stage)):
        if drawn >= labels_left:
            break
        if op.mb is None or op.end_s < x0 or op.start_s > x1:
            continue
        if (min(op.end_s, x1) - max(op.start_s, x0)) / s_per_px < _label_px(op.name):
            continue
        mid = 0.5 * (max(op.start_s, x0) + min(op.end_s, x1))
        ax.text(mid, row[op.stage], op.name, ha="center", va="center", fontsize=LABEL_FONT_PT,
                color="white", clip_on=True)
        drawn += 1
    ax.set_xlim(x0, x1)
    ax.set_ylim(len(stages) - 0.5, -0.5)
    step = max(1, len(stages) // 24)
    ax.set_yticks(range(0, len(stages), step))
    ax.set_yticklabels([f"stage {stages[i]}" for i in range(0, len(stages), step)], fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return drawn


def pipeline_figure(events: Iterable[TraceEvent], *, title: str = "",
                    parallel: ParallelConfig | None = None, mfu: float | None = None,
                    num_microbatches: int | None = None) -> Figure:
    """The Gantt chart as a Figure (the caller closes it): one row per pipeline stage."""
    ops = _ops(events)
    stages = sorted({o.stage for o in ops})
    if num_microbatches is None:
        mbs = {o.mb for o in ops if o.mb is not None}
        num_microbatches = len(mbs) if mbs else None
    zoom_end = _zoom_end_s(ops, stages) if ops else None
    rows = max(4, len(stages))
    panel_h = 0.2 * rows + 0.3  # inches of data area per panel
    n_panels = 2 if zoom_end is not None else 1
    head_in, foot_in, gap_in = 0.85, 0.55, 0.8  # title; x label; x label + panel title
    fig_h = head_in + foot_in + n_panels * panel_h + (n_panels - 1) * gap_in
    fig, axes = plt.subplots(n_panels, 1, figsize=(_FIG_W_IN, fig_h), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.80, top=1 - head_in / fig_h, bottom=foot_in / fig_h,
                        hspace=gap_in / panel_h)
    axes = axes[:, 0]
    if not ops:
        axes[0].text(0.5, 0.5, "no pipeline-stage events in the timeline", ha="center",
                     va="center", transform=axes[0].transAxes)
        axes[0].set_yticks([])
    else:
        t0 = min(o.start_s for o in ops)
        t1 = max(o.end_s for o in ops)
        left = _draw(axes[0], ops, stages, t0, t1, MAX_LABELS, merge=True)
        axes[0].set_title("whole iteration", fontsize=9, loc="left")
        if zoom_end is not None:
            axes[0].axvspan(t0, zoom_end, color="black", alpha=0.08, lw=0)
            _draw(axes[1], ops, stages, t0, zoom_end, MAX_LABELS - left, merge=False)
            key = "Fn/Bn = forward/backward of microbatch n"
            if any("." in o.name for o in ops):
                key += ", .c = model chunk c"
            axes[1].set_title(f"zoom: first {zoom_end - t0:.3g} s (pipeline fill and steady "
                              f"state; {key})", fontsize=9, loc="left")
    for ax in axes:
        ax.set_xlabel("time (s)")
    head = title or "pipeline schedule"
    facts = []
    if parallel is not None:
        facts.append(plan_label(parallel, num_microbatches))
    elif num_microbatches is not None:
        facts.append(f"{num_microbatches} microbatches")
    if mfu is not None:
        facts.append(f"MFU {mfu:.1%}")
    fig.suptitle(head + ("\n" + ", ".join(facts) if facts else ""), fontsize=11)
    present = [p for p in PHASES if any(o.phase == p for o in ops)]
    handles = [Patch(color=PHASES[p][1], label=PHASES[p][0]) for p in present]
    if zoom_end is not None:
        handles.append(Patch(color="black", alpha=0.08, label="zoomed window"))
    if handles:  # outside the data area, right of the top panel
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       fontsize=8, frameon=False, borderaxespad=0.0)
    return fig


def plot_pipeline(events: Iterable[TraceEvent], path: str | Path, *, title: str = "",
                  parallel: ParallelConfig | None = None, mfu: float | None = None,
                  num_microbatches: int | None = None) -> Path:
    """Write the Gantt chart (see pipeline_figure) to path; returns the path."""
    fig = pipeline_figure(events, title=title, parallel=parallel, mfu=mfu,
                          num_microbatches=num_microbatches)
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=_DPI))
    finally:
        plt.close(fig)
