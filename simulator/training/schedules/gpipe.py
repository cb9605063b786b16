"""GPipe (Huang et al. 2019): all forwards, then all backwards."""

from __future__ import annotations

from hwmodels.parallel import PipelineSchedule
from simulator.training.schedules.base import SCHEDULES, Op, OpKind, StageOps, no_vpp


@SCHEDULES.register(PipelineSchedule.GPIPE)
def gpipe(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """GPipe (Huang et al. 2019): all forwards, then all backwards; holds m activations."""
    no_vpp(vpp, PipelineSchedule.GPIPE)
    m = num_microbatches
    ops = tuple([Op(OpKind.F, i) for i in range(m)] + [Op(OpKind.B, i) for i in range(m)])
    return tuple(ops for _ in range(pp))
