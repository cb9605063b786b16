"""Orca: iteration-level scheduling with selective batching, without paging.

Each admitted request reserves KV for max_model_len tokens up front (Orca's allocation of the
maximum sequence length), so there is no preemption; whole prompts join the running decodes in
the same iteration within max_batch_tokens (Yu et al., OSDI'22).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.serving.schedulers.base import SCHEDULERS, Plan, Scheduler, SchedulerKind

if TYPE_CHECKING:
    from simulator.serving.lane_state import LaneState


@SCHEDULERS.register(SchedulerKind.ORCA)
class OrcaScheduler(Scheduler):
    paged = False

    def plan(self, lane: LaneState) -> Plan | None:
        cfg = lane.cfg
        chunks = self.admit_whole_prompts(lane, prefix_aware=False)
        if chunks:
            return Plan(prefill=chunks, decode=lane.n_dec > 0,
                        time_s=self.step_time(lane, chunks, True))
        if not lane.n_dec:
            return None
        return self.decode_plan(lane, interruptible=not lane.waiting
                                and len(lane.running) < cfg.max_num_seqs)
