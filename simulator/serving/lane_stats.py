"""A lane's accounting - busy time, steps, tokens, context read, preemptions, swapped blocks and
the sampled (queue, batch, KV) time series - and the lanes and timeseries frames built from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from simulator.serving.replica import Lane, Replica

# (time_s, lane, queue_len, batch_size, kv_blocks, kv_usage)
Sample = tuple[float, int, int, int, int, float]


@dataclass(slots=True, kw_only=True)
class LaneStats:
    """Running totals of one lane (mutable accumulators, never reset by a crash)."""

    sample_interval_s: float
    busy_s: float = 0.0
    steps: int = 0
    tokens: int = 0  # prefill + decode tokens processed
    ctx_read: float = 0.0  # sum of decode context tokens read
    preemptions: int = 0
    swap_blocks: int = 0  # blocks moved to or from host memory
    samples: list[Sample] = field(default_factory=list)
    last_sample_s: float = -1e300


def timeseries_frame(lanes: Sequence[Lane]) -> pd.DataFrame:
    """Every lane's samples, by time (stable: lanes in build order at equal times)."""
    rows = [(t, lane.replica, ln, w, r, b, u)
            for lane in lanes for t, ln, w, r, b, u in lane.stats.samples]
    frame = pd.DataFrame(rows, columns=["time_s", "replica", "lane", "queue_len",
                                        "batch_size", "kv_blocks", "kv_usage"])
    return frame.sort_values("time_s", kind="stable").reset_index(drop=True)


def lanes_frame(lanes: Sequence[Lane], replicas: Sequence[Replica]) -> pd.DataFrame:
    """One row of totals per lane, with its replica's devices, group and role."""
    return pd.DataFrame([{
        "replica": lane.replica, "lane": lane.lane, "busy_s": lane.stats.busy_s,
        "steps": lane.stats.steps, "tokens": lane.stats.tokens,
        "ctx_read_tokens": lane.stats.ctx_read, "preemptions": lane.stats.preemptions,
        "swapped_blocks": lane.stats.swap_blocks, "peak_kv_blocks": lane.kv.peak_used,
        "kv_blocks": lane.kv.total,
        "devices": replicas[lane.replica].devices,
        "lanes_in_replica": len(replicas[lane.replica].lanes),
        "group": replicas[lane.replica].group,
        "role": str(replicas[lane.replica].role),
    } for lane in lanes])
