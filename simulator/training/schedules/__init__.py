"""Pipeline schedules, one module per PipelineSchedule, registered in SCHEDULES on import."""

from simulator.training.schedules.base import (
    SCHEDULES,
    Op,
    OpKind,
    ScheduleFn,
    StageOps,
    build_schedule,
    max_inflight,
    splits_backward,
)
from simulator.training.schedules.gpipe import gpipe
from simulator.training.schedules.interleaved import interleaved_1f1b
from simulator.training.schedules.one_f_one_b import one_f_one_b
from simulator.training.schedules.zb_h1 import zb_h1

__all__ = ["SCHEDULES", "Op", "OpKind", "ScheduleFn", "StageOps", "build_schedule", "gpipe",
           "interleaved_1f1b", "max_inflight", "one_f_one_b", "splits_backward", "zb_h1"]
