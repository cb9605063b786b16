"""Kernel timing: warm-up, repeated runs, median and spread.

Accelerators with timing events (CUDA/ROCm, XPU, Ascend NPU, MPS) are timed with a start and an
end event around each run on the device's stream (no host gaps in the number, as nvbench and
triton.testing.do_bench do); elsewhere with time.perf_counter around the run followed by a
device synchronize (the CPU: this thread's CPU time when torch runs one thread, see
cpu_clock). torch + standard library only.
"""

from __future__ import annotations

import functools
import os
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
# CPU: before each timed run a buffer of twice the core's L2 is written, so the op finds its
# inputs in L3 as it does inside a model step (the ops before it evicted them), not in the L2 it
# warmed itself: measured on the validation decoder's shapes, hot-L2 timings of a 320-token
# GEMM ran 12-18% and of an RMSNorm 2.5x faster than flushed ones (triton.testing.do_bench
# flushes the GPU L2 the same way). Fallback when the OS does not report L2: 2 MiB.
L2_FALLBACK_BYTES = 2 * 1024 * 1024
FLUSH_L2_MULTIPLE = 2


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


def l2_bytes() -> int:
    """Bytes of one core's L2 cache as the OS reports it (sysconf), else L2_FALLBACK_BYTES."""
    try:
        size = int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))
    except (ValueError, OSError, AttributeError):
        size = 0
    return size if size > 0 else L2_FALLBACK_BYTES


@functools.lru_cache(maxsize=1)
def _cpu_flush_buffer() -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor: writable inside and outside
        return torch.empty(FLUSH_L2_MULTIPLE * l2_bytes() // 4, dtype=torch.float32)


def cache_flusher(device: torch.device) -> Callable[[], Any] | None:
    """What to run (untimed) before each timed run: the CPU L2 flush; None elsewhere."""
    if device.type != "cpu":
        return None
    buf = _cpu_flush_buffer()
    return lambda: buf.fill_(1.0)


def cpu_clock(device: torch.device) -> Callable[[], float]:
    """The clock host-timed runs use. Single-threaded CPU runs use this thread's CPU time
    (time.thread_time): on a shared machine a 15 ms decoder step measured 46-50 ms of wall time
    under a load of 5 on 2 cores but 18-19 ms of CPU time, while 10-100 us kernels fit inside
    one scheduler slice and were barely affected - wall time made long steps look slow relative
    to the microbenchmarks that predict them. Multi-threaded CPU runs and other devices use
    wall time (time.perf_counter)."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.thread_time
    return time.perf_counter


def _run_once(fn: Callable[[], Any], device: torch.device,
              make_event: Callable[[], Any] | None,
              flush: Callable[[], Any] | None = None) -> float:
    if flush is not None:
        flush()
    if make_event is not None:
        start, end = make_event(), make_event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3  # events report milliseconds
    clock = cpu_clock(device)
    synchronize(device)
    t0 = clock()
    fn()
    synchronize(device)
    return clock() - t0


def time_fn(fn: Callable[[], Any], device: torch.device, *, warmup: int = DEFAULT_WARMUP,
            min_repeats: int = MIN_REPEATS, max_repeats: int = MAX_REPEATS,
            target_time_s: float = TARGET_TIME_S, flush: bool = True) -> Timing:
    """Median/spread of fn's run time: warm-up runs, then as many runs as fit target_time_s
    (between min_repeats and max_repeats); with flush, each run starts with the device's
    cache flush (cache_flusher), outside the timed interval."""
    make_event = _event_factory(device)
    flusher = cache_flusher(device) if flush else None
    for _ in range(max(1, warmup)):
        first = _run_once(fn, device, make_event, flusher)
    repeats = int(min(max_repeats, max(min_repeats, target_time_s / max(first, 1e-9))))
    return summarize([_run_once(fn, device, make_event, flusher) for _ in range(repeats)])
