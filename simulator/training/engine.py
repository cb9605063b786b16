"""The SimPy pipeline engine: one process per stage runs its op list; p2p sends are link events.

Costs come in through two callbacks (pure functions of the op), so the engine knows nothing about
layers or collectives: `op_time(stage, op) -> (compute_s, exposed_comm_s)` and
`p2p_time(src_stage, dst_stage, kind) -> seconds`. Sends are asynchronous for the sender; a link
(one per ordered stage pair) carries one transfer at a time, FIFO; the receiver waits for the
arrival event. Events are per microbatch per chunk, never per layer, so a 512-microbatch,
64-stage pipeline is ~10^5 events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from simulator.training.schedules import Op, OpKind, StageOps, splits_backward

OpTimeFn = Callable[[int, Op], tuple[float, float]]
P2PTimeFn = Callable[[int, int, OpKind], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One interval on a track (a stage or a link): what ran there and when."""

    track: str
    name: str
    start_s: float
    duration_s: float
    category: str  # compute | comm | p2p | dp | optimizer
    args: tuple[tuple[str, float | int | str], ...] = ()


@dataclass(slots=True, kw_only=True)
class StageRun:
    """What one stage did during the pipeline phase (mutable while the engine runs)."""

    stage: int
    compute_s: float = 0.0
    exposed_comm_s: float = 0.0
    end_s: float = 0.0
    finished: bool = False
    # chunk -> (start, end) of the op that produces the chunk's last weight gradients
    last_grad_window: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineResult:
    stages: tuple[StageRun, ...]
    events: tuple[TraceEvent, ...]
    makespan_s: float


def run_pipeline(ops: StageOps, *, pp: int, vpp: int, op_time: OpTimeFn, p2p_time: P2PTimeFn,
                 record: bool = False) -> EngineResult:
    """Simulate the pipeline phase of one iteration (forward/backward of all microbatches)."""
    env = simpy.Environment()
    num_virtual = pp * vpp
    split = splits_backward(ops)
    grad_kind = OpKind.W if split else OpKind.B
    last_grad_mb: dict[tuple[int, int], int] = {}
    for s, stage_ops in enumerate(ops):
        for op in stage_ops:
            if op.kind is grad_kind:
                last_grad_mb[(s, op.chunk)] = op.mb  # the last one in program order wins
    arrivals: dict[tuple[OpKind, int, int], simpy.Event] = {}
    link_free: dict[tuple[int, int], float] = {}
    events: list[TraceEvent] = []
    runs = tuple(StageRun(stage=s) for s in range(pp))

    def arrival(key: tuple[OpKind, int, int]) -> simpy.Event:
        ev = arrivals.get(key)
        if ev is None:
            ev = arrivals[key] = env.event()
        return ev

    def deliver(key: tuple[OpKind, int, int], src: int, dst: int) -> None:
        """Send the output of an op to the stage holding the next virtual stage."""
        ev = arrival(key)
        if src == dst:
            ev.succeed()
            return
        now = env.now
        start = max(now, link_free.get((src, dst), 0.0))
        end = start + p2p_time(src, dst, key[0])
        link_free[(src, dst)] = end
        if record:
            events.append(TraceEvent(track=f"link {src}->{dst}", name=f"{key[0]}{key[1]}",
                                     start_s=start, duration_s=end - start, category="p2p"))
        env.timeout(end - now).callbacks.append(lambda _e: ev.succeed())

    def stage_process(s: int, stage_ops: tuple[Op, ...], run: StageRun):  # type: ignore[no-untyped-def]
        for op in stage_ops:
            v = op.chunk * pp + s
            if op.kind is OpKind.F:
                need = arrival((OpKind.F, op.mb, v)) if v > 0 else None
            elif op.kind is OpKind.B:
                need = arrival((OpKind.B, op.mb, v))
            else:
                need = None  # W follows its B on the same stage in program order
            if need is not None and not need.processed:
                yield need
            compute_s, comm_s = op_time(s, op)
            start = env.now
            yield env.timeout(compute_s + comm_s)
            run.compute_s += compute_s
            run.exposed_comm_s += comm_s
            if record:
                name = f"{op.kind}{op.mb}" + (f".{op.chunk}" if vpp > 1 else "")
                events.append(TraceEvent(track=f"stage {s}", name=name, start_s=start,
                                         duration_s=compute_s + comm_s, category="compute",
                                         args=(("mb", op.mb), ("chunk", op.chunk),
                                               ("exposed_comm_s", comm_s))))
            if op.kind is grad_kind and last_grad_mb[(s, op.chunk)] == op.mb:
                run.last_grad_window[op.chunk] = (start, env.now)
            if op.kind is OpKind.F:
                if v + 1 < num_virtual:
                    deliver((OpKind.F, op.mb, v + 1), s, (v + 1) % pp)
                else:  # loss computed: this microbatch's backward may start here
                    arrival((OpKind.B, op.mb, v)).succeed()
            elif op.kind is OpKind.B and v > 0:
                deliver((OpKind.B, op.mb, v - 1), s, (v - 1) % pp)
        run.end_s = env.now
        run.finished = True

    for s, stage_ops in enumerate(ops):
        env.process(stage_process(s, stage_ops, runs[s]))
    env.run()
    unfinished = [r.stage for r in runs if not r.finished]
    if unfinished:
        raise RuntimeError(f"pipeline schedule deadlocked on stages {unfinished}")
    return EngineResult(stages=runs, events=tuple(events),
                        makespan_s=max(r.end_s for r in runs))
