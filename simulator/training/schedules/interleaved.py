"""Interleaved 1F1B (Megatron virtual pipeline): vpp model chunks per stage."""

from __future__ import annotations

from hwmodels.errors import ConfigError
from hwmodels.parallel import PipelineSchedule
from simulator.training.schedules.base import SCHEDULES, Op, OpKind, StageOps
from simulator.training.schedules.one_f_one_b import one_f_one_b


@SCHEDULES.register(PipelineSchedule.INTERLEAVED)
def interleaved_1f1b(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """Interleaved 1F1B (Narayanan et al. SC'21): vpp chunks per stage, bubble / vpp.

    Follows megatron/core/pipeline_parallel/schedules.py
    (forward_backward_pipelining_with_interleaving): warmup = 2*(p-s-1) + (v-1)*p, chunk of
    virtual microbatch k is (k // p) % v (reversed for backward); needs m % p == 0.
    """
    m, p, v = num_microbatches, pp, vpp
    if v == 1:
        return one_f_one_b(pp, num_microbatches)
    if m % p:
        raise ConfigError(f"interleaved schedule needs microbatches {m} divisible by pp {p}",
                          key="parallelism.vpp")
    total = m * v

    def chunk(k: int, forward: bool) -> int:
        c = (k % (p * v)) // p
        return c if forward else v - 1 - c

    def micro(k: int) -> int:
        return (k // (p * v)) * p + k % p

    out = []
    for s in range(p):
        warmup = min((p - s - 1) * 2 + (v - 1) * p, total)
        ops = [Op(OpKind.F, micro(k), chunk(k, True)) for k in range(warmup)]
        for i in range(total - warmup):
            k = warmup + i
            ops.append(Op(OpKind.F, micro(k), chunk(k, True)))
            ops.append(Op(OpKind.B, micro(i), chunk(i, False)))
        ops.extend(Op(OpKind.B, micro(k), chunk(k, False)) for k in range(total - warmup, total))
        out.append(tuple(ops))
    return tuple(out)
