"""Chrome trace-event JSON of a simulated iteration (one track per stage and per link).

Opens in Perfetto (ui.perfetto.dev) and chrome://tracing: complete events ("ph": "X") with
microsecond timestamps, one thread per track, named by metadata events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwmodels.atomic import atomic_write_text
from simulator.training.engine import TraceEvent


def _track_key(track: str) -> tuple[int, int, str]:
    kind, _, rest = track.partition(" ")
    head = rest.split("->")[0]
    return (0 if kind == "stage" else 1, int(head) if head.isdigit() else 0, track)


def trace_events(events: Iterable[TraceEvent]) -> dict[str, Any]:
    """The trace-event object for a list of TraceEvents."""
    events = list(events)
    tracks = sorted({e.track for e in events}, key=_track_key)
    tid = {t: i + 1 for i, t in enumerate(tracks)}
    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
         "args": {"name": "training iteration"}}]
    for t in tracks:
        out.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid[t],
                    "args": {"name": t}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": tid[t],
                    "args": {"sort_index": tid[t]}})
    for e in events:
        out.append({"name": e.name, "cat": e.category, "ph": "X", "pid": 1, "tid": tid[e.track],
                    "ts": e.start_s * 1e6, "dur": e.duration_s * 1e6,
                    "args": dict(e.args)})
    return {"traceEvents": out, "displayTimeUnit": "ms"}


def write_chrome_trace(events: Iterable[TraceEvent], path: str | Path) -> Path:
    """Write the trace atomically (temp file in the same folder, then os.replace)."""
    text = json.dumps(trace_events(events))
    return atomic_write_text(path, text)
