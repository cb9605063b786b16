"""Kernel timing: warm-up, repeated runs, median and spread.

Accelerators with timing events (CUDA/ROCm, XPU, Ascend NPU, MPS) are timed with a start and an
end event around each run on the device's stream (no host gaps in the number, as nvbench and
triton.testing.do_bench do); elsewhere with time.perf_counter around the run followed by a
device synchronize. torch + standard library only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from calibration.devices import backend_module, synchronize

# Budget per measurement: enough runs for a stable median without making the sweep slow.
DEFAULT_WARMUP = 3
MIN_REPEATS = 5
MAX_REPEATS = 100
TARGET_TIME_S = 0.05  # aim for ~50 ms of timed runs per point (25 ms in quick mode)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Run times of one benchmark point: median, 10th/90th percentiles and their spread."""

    median_s: float
    p10_s: float
    p90_s: float
    repeats: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: the relative run-to-run spread."""
        return (self.p90_s - self.p10_s) / self.median_s if self.median_s > 0 else 0.0

    def to_json(self) -> dict[str, float]:
        return {"median_s": self.median_s, "p10_s": self.p10_s, "p90_s": self.p90_s,
                "spread": self.spread, "repeats": self.repeats}


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile q in [0, 1] of a sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def summarize(samples_s: list[float]) -> Timing:
    """Timing from raw per-run seconds."""
    values = sorted(samples_s)
    return Timing(median_s=statistics.median(values), p10_s=_percentile(values, 0.1),
                  p90_s=_percentile(values, 0.9), repeats=len(values))


def _event_factory(device: torch.device) -> Callable[[], Any] | None:
    """A constructor of timing events for the device, or None where there is none."""
    module = backend_module(device)
    if module is None:
        return None
    if device.type == "mps":
        event_cls = getattr(getattr(module, "event", None), "Event", None)
    else:
        event_cls = getattr(module, "Event", None)
    if event_cls is None:
        return None
    return lambda: event_cls(enable_timing=True)


def _run_once(fn: Callable[[], Any], device: torch.device,
              make_event: Callable[[], Any] | None) -> float:
    if make_event is not None:
        start, end = make_event(), make_event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3  # events report milliseconds
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def time_fn(fn: Callable[[], Any], device: torch.device, *, warmup: int = DEFAULT_WARMUP,
            min_repeats: int = MIN_REPEATS, max_repeats: int = MAX_REPEATS,
            target_time_s: float = TARGET_TIME_S) -> Timing:
    """Median/spread of fn's run time: warm-up runs, then as many runs as fit target_time_s
    (between min_repeats and max_repeats)."""
    make_event = _event_factory(device)
    for _ in range(max(1, warmup)):
        first = _run_once(fn, device, make_event)
    repeats = int(min(max_repeats, max(min_repeats, target_time_s / max(first, 1e-9))))
    return summarize([_run_once(fn, device, make_event) for _ in range(repeats)])
