"""A lane's accounting: busy time, steps, tokens, context read, preemptions, swapped blocks and
the sampled (queue, batch, KV) time series - the inputs of the lanes and timeseries frames."""

from __future__ import annotations

from dataclasses import dataclass, field

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
