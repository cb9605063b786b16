"""1F1B (PipeDream-Flush): warmup forwards, then alternating forward/backward pairs."""

from __future__ import annotations

from hwmodels.parallel import PipelineSchedule
from simulator.training.schedules.base import SCHEDULES, Op, OpKind, StageOps, no_vpp


@SCHEDULES.register(PipelineSchedule.ONE_F_ONE_B)
def one_f_one_b(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """1F1B (PipeDream-Flush, Narayanan et al. 2021): p-s-1 warmup forwards, then F/B pairs."""
    no_vpp(vpp, PipelineSchedule.ONE_F_ONE_B)
    m = num_microbatches
    out = []
    for s in range(pp):
        warmup = min(pp - s - 1, m)
        ops = [Op(OpKind.F, i) for i in range(warmup)]
        for i in range(m - warmup):
            ops.append(Op(OpKind.F, warmup + i))
            ops.append(Op(OpKind.B, i))
        ops.extend(Op(OpKind.B, i) for i in range(m - warmup, m))
        out.append(tuple(ops))
    return tuple(out)
