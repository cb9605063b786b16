"""Pipeline schedules: per-stage ordered op lists (forward, backward, weight-gradient).

Each generator returns one tuple of Ops per physical stage. An Op names a microbatch and a
model chunk (the virtual stage is chunk * pp + stage). Schedules that split the backward pass
(zero bubble) emit B (input gradient) and W (weight gradient) ops; the others emit B only, and
B then means the whole backward. Registry keyed by PipelineSchedule (an unknown key lists the
valid ones).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.parallel import PipelineSchedule


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
ScheduleFn = Callable[[int, int, int], StageOps]


def gpipe(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """GPipe (Huang et al. 2019): all forwards, then all backwards; holds m activations."""
    _no_vpp(vpp, PipelineSchedule.GPIPE)
    m = num_microbatches
    ops = tuple([Op(OpKind.F, i) for i in range(m)] + [Op(OpKind.B, i) for i in range(m)])
    return tuple(ops for _ in range(pp))


def one_f_one_b(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """1F1B (PipeDream-Flush, Narayanan et al. 2021): p-s-1 warmup forwards, then F/B pairs."""
    _no_vpp(vpp, PipelineSchedule.ONE_F_ONE_B)
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


def zb_h1(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """ZB-H1 (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24): 1F1B with B/W split.

    The F/B order is 1F1B's; each stage may defer up to p-1 weight-gradient (W) ops and runs
    them when its next F/B would wait (the bubble), placed by a list schedule over unit costs
    (T_F = T_B = T_W, the paper's handcrafted setting). With unit costs the makespan is the
    paper's m(F+B+W) + (p-1)(F+B-W). B frees the activations as in 1F1B; a deferred W keeps
    only its layer inputs and output grads (small), so max_inflight counts F..B.
    """
    _no_vpp(vpp, PipelineSchedule.ZB_H1)
    base = one_f_one_b(pp, num_microbatches)
    out: list[list[Op]] = [[] for _ in range(pp)]
    finish: dict[tuple[OpKind, int, int], int] = {}  # (kind, mb, stage) -> unit finish time
    idx = [0] * pp
    pending: list[deque[int]] = [deque() for _ in range(pp)]
    clock = [0] * pp
    heap = [(0, s) for s in range(pp)]
    while heap:
        t, s = heapq.heappop(heap)
        if t != clock[s]:
            continue
        ops = base[s]
        nxt = ops[idx[s]] if idx[s] < len(ops) else None
        if nxt is None and not pending[s]:
            continue
        ready = None if nxt is None else _unit_ready(nxt, s, pp, finish)
        cap = pp - 1
        if nxt is not None and ready is not None and ready <= t:
            out[s].append(nxt)
            idx[s] += 1
            clock[s] = t + 1
            finish[(nxt.kind, nxt.mb, s)] = t + 1
            if nxt.kind is OpKind.B:
                pending[s].append(nxt.mb)
                if len(pending[s]) > cap:
                    clock[s] += 1
                    out[s].append(Op(OpKind.W, pending[s].popleft()))
        elif pending[s]:
            out[s].append(Op(OpKind.W, pending[s].popleft()))
            clock[s] = t + 1
        elif ready is not None:
            clock[s] = ready
        else:  # producer has not run yet: wait until another stage advances
            others = [clock[o] for o in range(pp) if o != s and _busy(o, base, idx, pending)]
            clock[s] = max(t + 1, min(others)) if others else t + 1
        heapq.heappush(heap, (clock[s], s))
    return tuple(tuple(ops) for ops in out)


def _busy(s: int, base: StageOps, idx: list[int], pending: list[deque[int]]) -> bool:
    return idx[s] < len(base[s]) or bool(pending[s])


def _unit_ready(op: Op, s: int, pp: int, finish: dict[tuple[OpKind, int, int], int]) -> int | None:
    """Unit time the op's input is available on stage s, or None if not yet produced."""
    if op.kind is OpKind.F:
        return 0 if s == 0 else finish.get((OpKind.F, op.mb, s - 1))
    if s == pp - 1:
        return finish.get((OpKind.F, op.mb, s))
    return finish.get((OpKind.B, op.mb, s + 1))


def _no_vpp(vpp: int, schedule: PipelineSchedule) -> None:
    if vpp != 1:
        raise ConfigError(f"schedule {schedule} does not take vpp > 1", key="parallelism.vpp",
                          allowed="vpp: 1, or schedule: interleaved")


SCHEDULES: dict[PipelineSchedule, ScheduleFn] = {
    PipelineSchedule.GPIPE: gpipe,
    PipelineSchedule.ONE_F_ONE_B: one_f_one_b,
    PipelineSchedule.INTERLEAVED: interleaved_1f1b,
    PipelineSchedule.ZB_H1: zb_h1,
}


def build_schedule(schedule: PipelineSchedule | str, pp: int, num_microbatches: int,
                   vpp: int = 1) -> StageOps:
    """Per-stage op lists for a schedule name (unknown names list the valid ones)."""
    try:
        key = PipelineSchedule(str(schedule))
    except ValueError:
        raise ConfigError(f"unknown pipeline schedule '{schedule}'", key="parallelism.schedule",
                          allowed=[s.value for s in PipelineSchedule]) from None
    return SCHEDULES[key](pp, num_microbatches, vpp)


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
