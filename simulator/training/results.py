"""Typed results of one simulated training iteration (flat records -> pandas in one call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simulator.training.engine import TraceEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class Breakdown:
    """Where the iteration time of the critical stage goes; the four parts sum to it.

    compute_terms splits compute_s (they sum to it): gemm_s, attention_s, elementwise_s (the
    kernels net of their fixed per-kernel overhead) and launch_s (that overhead over every
    kernel launched); hwmodels.training.costs.COMPUTE_TERMS."""

    compute_s: float
    exposed_comm_s: float
    bubble_s: float
    optimizer_s: float
    compute_terms: dict[str, float] = field(default_factory=dict)
    # ZeRO-Offload / -Infinity traffic of the critical stage (None: nothing offloaded)
    offload: Any = None  # hwmodels.training.offload.OffloadTraffic

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"compute_s": self.compute_s,
                               "exposed_comm_s": self.exposed_comm_s,
                               "bubble_s": self.bubble_s, "optimizer_s": self.optimizer_s}
        if self.compute_terms:
            out["compute_terms"] = dict(self.compute_terms)
        if self.offload is not None:
            out["offload"] = self.offload.to_dict()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StageRecord:
    """One pipeline stage's share of the iteration (one row of `TrainingResult.stages_df`)."""

    stage: int
    compute_s: float
    exposed_comm_s: float
    bubble_s: float
    optimizer_s: float
    end_s: float
    memory_gib: float
    max_inflight_microbatches: int
    layers: int = 0  # transformer layers the stage holds (all its virtual stages)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingResult:
    """One training iteration: the `fleetsim simulate train` contract plus per-stage detail."""

    iteration_time_s: float
    tokens_per_s: float
    tflops_per_gpu: float  # model FLOPs (Megatron's 3x forward, no recompute) per GPU
    hardware_tflops_per_gpu: float  # including recomputed forward work (SC'21's metric)
    mfu: float
    hfu: float
    peak_memory_gib: float
    memory_per_stage: tuple[float, ...]  # GiB
    fits_memory: bool
    memory_needed_gib: float
    memory_capacity_gib: float
    breakdown: Breakdown
    num_microbatches: int
    critical_stage: int
    message: str  # "" or "does not fit: needs X GiB of Y"
    stages: tuple[StageRecord, ...]
    timeline: tuple[TraceEvent, ...] | None = None
    # how the layers were split over the pipeline: 'even 12x8', 'balanced 7+8x14+7', ...
    pipeline_split: str = ""
    # MoE models: busiest-EP-rank load (after the capacity cap), before the cap, the expected
    # share of token-expert assignments dropped over capacity, and where the load came from
    # (hwmodels.training.moe.MoELoad); empty for dense models
    moe: dict[str, Any] | None = None
    # the attention kernel run (hwmodels.attention_impl.resolve) and the kernel stack
    attention_kernel: str = ""
    kernel_stack: str = ""
    # offloaded plans: the fullest node's host DRAM / NVMe need and capacity
    host_memory: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `fleetsim simulate train --json` prints."""
        out: dict[str, Any] = {
            "iteration_time_s": self.iteration_time_s,
            "tokens_per_s": self.tokens_per_s,
            "tflops_per_gpu": self.tflops_per_gpu,
            "hardware_tflops_per_gpu": self.hardware_tflops_per_gpu,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "peak_memory_gib": self.peak_memory_gib,
            "fits_memory": self.fits_memory,
            "memory_needed_gib": self.memory_needed_gib,
            "memory_capacity_gib": self.memory_capacity_gib,
            "memory_per_stage_gib": list(self.memory_per_stage),
            "breakdown": self.breakdown.to_dict(),
            "num_microbatches": self.num_microbatches,
            "pipeline_split": self.pipeline_split,
            "layers_per_stage": [r.layers for r in self.stages],
        }
        if self.moe is not None:
            out["moe"] = dict(self.moe)
        if self.attention_kernel:
            out["attention_kernel"] = self.attention_kernel
            out["kernel_stack"] = self.kernel_stack
        if self.host_memory is not None:
            out["host_memory"] = dict(self.host_memory)
        if self.message:
            out["message"] = self.message
        return out

    def stages_df(self) -> pd.DataFrame:
        """Per-stage records as a DataFrame."""
        return pd.DataFrame([{f: getattr(r, f) for f in r.__dataclass_fields__}
                             for r in self.stages])

    def timeline_df(self) -> pd.DataFrame:
        """Timeline events (empty unless simulated with timeline=True) as a DataFrame."""
        cols = ["track", "name", "start_s", "duration_s", "category"]
        rows = [{c: getattr(e, c) for c in cols} for e in (self.timeline or ())]
        return pd.DataFrame(rows, columns=cols)
