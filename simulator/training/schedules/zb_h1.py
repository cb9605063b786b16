"""ZB-H1 zero-bubble schedule (Qi et al., ICLR'24): 1F1B with the backward split into B and W."""

from __future__ import annotations

import heapq
from collections import deque

from hwmodels.parallel import PipelineSchedule
from simulator.training.schedules.base import SCHEDULES, Op, OpKind, StageOps, no_vpp
from simulator.training.schedules.one_f_one_b import one_f_one_b


@SCHEDULES.register(PipelineSchedule.ZB_H1)
def zb_h1(pp: int, num_microbatches: int, vpp: int = 1) -> StageOps:
    """ZB-H1 (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24): 1F1B with B/W split.

    The F/B order is 1F1B's; each stage may defer up to p-1 weight-gradient (W) ops and runs
    them when its next F/B would wait (the bubble), placed by a list schedule over unit costs
    (T_F = T_B = T_W, the paper's handcrafted setting). With unit costs the makespan is the
    paper's m(F+B+W) + (p-1)(F+B-W). B frees the activations as in 1F1B; a deferred W keeps
    only its layer inputs and output grads (small), so max_inflight counts F..B.
    """
    no_vpp(vpp, PipelineSchedule.ZB_H1)
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
