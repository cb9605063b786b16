"""Request-size buckets: an input x output token-length histogram of a workload, and the
per-bucket request rates and length samples the GPU-mix planner profiles and provisions for
(Mélange, Griggs et al. 2024, Sec. 4: "request size" = (input, output) length bucket)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hwmodels.errors import ConfigError

# Default edges: log-spaced like Mélange's Fig. 5 grid (input 1..32k, output 1..2k).
DEFAULT_INPUT_EDGES = (1, 256, 1024, 4096, 32768)
DEFAULT_OUTPUT_EDGES = (1, 128, 512, 4096)
# Length samples kept per bucket for resampled profiling workloads (enough to carry the
# within-bucket length spread; more only slows hashing of the profile-cache key).
SAMPLES_PER_BUCKET = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketGrid:
    """Histogram edges: bucket (i, j) holds input in [in[i], in[i+1]), output in [out[j], ...)."""

    input_edges: tuple[int, ...] = DEFAULT_INPUT_EDGES
    output_edges: tuple[int, ...] = DEFAULT_OUTPUT_EDGES

    def __post_init__(self) -> None:
        for key, edges in (("buckets.input_edges", self.input_edges),
                           ("buckets.output_edges", self.output_edges)):
            arr = np.asarray(edges)
            if len(arr) < 2 or np.any(np.diff(arr) <= 0) or arr[0] < 0:
                raise ConfigError(f"need >= 2 strictly increasing non-negative edges, got "
                                  f"{list(edges)}", key=key)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.input_edges) - 1, len(self.output_edges) - 1

    def index(self, input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
        """Flat bucket index per request (lengths past the last edge go to the last bucket)."""
        n_in, n_out = self.shape
        i = np.clip(np.searchsorted(self.input_edges, input_tokens, side="right") - 1, 0, n_in - 1)
        j = np.clip(np.searchsorted(self.output_edges, output_tokens, side="right") - 1, 0,
                    n_out - 1)
        return i * n_out + j

    def label(self, flat: int) -> str:
        """'in[lo,hi)xout[lo,hi)' for a flat bucket index."""
        n_out = self.shape[1]
        i, j = divmod(flat, n_out)
        ie, oe = self.input_edges, self.output_edges
        return f"in[{ie[i]},{ie[i + 1]})xout[{oe[j]},{oe[j + 1]})"


def parse_grid(buckets: BucketGrid | Sequence[Sequence[int]] | None) -> BucketGrid:
    """A BucketGrid from None (defaults), a grid, or (input_edges, output_edges)."""
    if buckets is None:
        return BucketGrid()
    if isinstance(buckets, BucketGrid):
        return buckets
    if len(buckets) != 2:
        raise ConfigError(f"expected (input_edges, output_edges), got {buckets!r}",
                          key="buckets")
    return BucketGrid(input_edges=tuple(int(x) for x in buckets[0]),
                      output_edges=tuple(int(x) for x in buckets[1]))


def workload_span_s(df: pd.DataFrame) -> float:
    """Seconds the workload's arrivals span (>= 1 s so tiny frames give finite rates)."""
    t = df["arrival_time_s"].to_numpy(dtype=float)
    return max(1.0, float(t.max() - t.min())) if len(t) else 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """One non-empty bucket: its rate and a sample of its (input, output) lengths."""

    index: int
    label: str
    count: int
    rate_rps: float
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def mean_input(self) -> float:
        return float(np.mean(self.inputs))

    @property
    def mean_output(self) -> float:
        return float(np.mean(self.outputs))


def bucketize(df: pd.DataFrame, grid: BucketGrid, *, span_s: float | None = None,
              seed: int = 0) -> list[Bucket]:
    """Non-empty buckets of `df` with rates over `span_s` (default: the arrivals' span)."""
    if df.empty:
        raise ConfigError("the workload has no requests", key="workload")
    span = span_s or workload_span_s(df)
    inp = df["input_tokens"].to_numpy(dtype=np.int64)
    out = np.maximum(df["output_tokens"].to_numpy(dtype=np.int64), 1)
    idx = grid.index(inp, out)
    rng = np.random.default_rng(seed)
    buckets = []
    for b in np.unique(idx):
        rows = np.flatnonzero(idx == b)
        pick = rows if len(rows) <= SAMPLES_PER_BUCKET else np.sort(
            rng.choice(rows, SAMPLES_PER_BUCKET, replace=False))
        buckets.append(Bucket(index=int(b), label=grid.label(int(b)), count=len(rows),
                              rate_rps=len(rows) / span, inputs=tuple(int(x) for x in inp[pick]),
                              outputs=tuple(int(x) for x in out[pick])))
    return buckets


def bucket_rates(df: pd.DataFrame, grid: BucketGrid, indices: Sequence[int], *,
                 span_s: float) -> np.ndarray:
    """Request rate (1/s) of each listed flat bucket in `df` over `span_s` seconds."""
    idx = grid.index(df["input_tokens"].to_numpy(dtype=np.int64),
                     np.maximum(df["output_tokens"].to_numpy(dtype=np.int64), 1))
    counts = np.bincount(idx, minlength=int(np.prod(grid.shape)))
    return counts[np.asarray(indices, dtype=np.int64)] / span_s


def buckets_frame(buckets: Sequence[Bucket]) -> pd.DataFrame:
    """The buckets as a table (label, count, rate, mean lengths)."""
    return pd.DataFrame({"bucket": [b.label for b in buckets],
                         "requests": [b.count for b in buckets],
                         "rate_rps": [b.rate_rps for b in buckets],
                         "mean_input": [b.mean_input for b in buckets],
                         "mean_output": [b.mean_output for b in buckets]})
