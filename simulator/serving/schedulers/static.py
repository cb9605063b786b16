"""Static (request-level) batching, the FasterTransformer baseline.

When the replica is free it takes up to max_num_seqs queued requests (FIFO, KV reserved for
max_model_len each), prefills them padded to the longest prompt, and decodes the whole batch
until its longest output is done; finished requests stay in the batch as padding and return
with it (Orca's motivation, Yu et al., OSDI'22, Sec. 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.serving.request import DropReason
from simulator.serving.schedulers.base import SCHEDULERS, Plan, Scheduler, SchedulerKind

if TYPE_CHECKING:
    from simulator.serving.lane_state import LaneState


@SCHEDULERS.register(SchedulerKind.STATIC)
class StaticScheduler(Scheduler):
    paged = False
    pads = True

    def __init__(self) -> None:
        self.batch_end: dict[int, int] = {}

    def plan(self, lane: LaneState) -> Plan | None:
        cfg = lane.cfg
        key = id(lane)
        if lane.running:
            end = self.batch_end[key]
            if lane.step >= end:
                lane.finish_all(lane.now)
            else:
                return self.decode_plan(lane, interruptible=False, max_steps=end - lane.step)
        chunks = []
        while lane.waiting and len(chunks) < cfg.max_num_seqs:
            head = lane.waiting[0]
            if head.target > cfg.max_batch_tokens:
                lane.drop_waiting_head(DropReason.EXCEEDS_BATCH_TOKENS)
                continue
            longest = max([head.target] + [s.target for s, _ in chunks])
            if longest * (len(chunks) + 1) > cfg.max_batch_tokens:
                break
            got = lane.admit_waiting_head(0)
            if got is None:
                break
            chunks.append(got)
        if not chunks:
            return None
        n = len(chunks)
        longest = max(s.target for s, _ in chunks)
        self.batch_end[key] = lane.step + max(s.output for s, _ in chunks) - 1
        # padded prompt batch: every row as long as the longest prompt
        time_s = lane.timer.step_s(n * longest, n * longest * longest / 2.0, 0, 0, n, 0)
        return Plan(prefill=chunks, time_s=time_s)

    def after_decode(self, lane: LaneState, now: float) -> None:
        if lane.step >= self.batch_end.get(id(lane), 0) and lane.running:
            lane.finish_all(now)
