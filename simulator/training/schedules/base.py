"""What every pipeline schedule shares: the op vocabulary and the PipelineSchedule registry.

A schedule returns one tuple of Ops per physical stage. An Op names a microbatch and a model
chunk (the virtual stage is chunk * pp + stage). Schedules that split the backward pass (zero
bubble) emit B (input gradient) and W (weight gradient) ops; the others emit B only, and B then
means the whole backward. Each schedule is one module that registers itself in SCHEDULES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.parallel import PipelineSchedule
from hwmodels.registry import Registry


class OpKind(StrEnum):
    F = "F"  # forward
    B = "B"  # backward (input gradient; the whole backward unless the schedule splits it)
    W = "W"  # weight gradient (zero-bubble schedules only)


@dataclass(frozen=True, slots=True)
class Op:
    """One unit of pipeline work on a stage."""

    kind: OpKind
    mb: int
    chunk: int = 0


StageOps = tuple[tuple[Op, ...], ...]
# (pp, num_microbatches, vpp) -> per-stage op lists
ScheduleFn = Callable[[int, int, int], StageOps]

SCHEDULES: Registry[PipelineSchedule, ScheduleFn] = Registry(
    "pipeline schedule", PipelineSchedule, key="parallelism.schedule")


def build_schedule(schedule: PipelineSchedule | str, pp: int, num_microbatches: int,
                   vpp: int = 1) -> StageOps:
    """Per-stage op lists for a schedule name (unknown names list the valid ones)."""
    return SCHEDULES.get(schedule)(pp, num_microbatches, vpp)


def no_vpp(vpp: int, schedule: PipelineSchedule) -> None:
    """Reject virtual stages for schedules that run one model chunk per stage."""
    if vpp != 1:
        raise ConfigError(f"schedule {schedule} does not take vpp > 1", key="parallelism.vpp",
                          allowed="vpp: 1, or schedule: interleaved")


def splits_backward(ops: StageOps) -> bool:
    """True when the schedule has separate weight-gradient (W) ops."""
    return any(op.kind is OpKind.W for stage in ops for op in stage)


def max_inflight(stage_ops: tuple[Op, ...]) -> int:
    """Most microbatch-chunks whose activations are held at once (F done, B not done)."""
    live = peak = 0
    for op in stage_ops:
        if op.kind is OpKind.F:
            live += 1
            peak = max(peak, live)
        elif op.kind is OpKind.B:
            live -= 1
    return peak
