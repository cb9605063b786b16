"""Orca: iteration-level scheduling with selective batching, without paging.

Each admitted request reserves KV for max_model_len tokens up front (Orca's allocation of the
maximum sequence length), so there is no preemption; whole prompts join the running decodes in
the same iteration within max_batch_tokens (Yu et al., OSDI'22).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.serving.request import DropReason
from simulator.serving.schedulers.base import Plan, Scheduler

if TYPE_CHECKING:
    from simulator.serving.replica import Lane


class OrcaScheduler(Scheduler):
    paged = False

    def plan(self, lane: Lane) -> Plan | None:
        cfg = lane.cfg
        chunks = []
        budget = cfg.max_batch_tokens
        while lane.waiting and len(lane.running) < cfg.max_num_seqs:
            head = lane.waiting[0]
            if head.target > cfg.max_batch_tokens:
                lane.waiting.popleft()
                lane.drop(head, DropReason.EXCEEDS_BATCH_TOKENS)
                continue
            if head.target > budget:
                break
            got = self.admit_head(lane, 0)
            if got is None:
                break
            chunks.append(got)
            budget -= got[1]
        if chunks:
            return Plan(prefill=chunks, decode=lane.n_dec > 0,
                        time_s=self.step_time(lane, chunks, True))
        if not lane.n_dec:
            return None
        return self.decode_plan(lane, interruptible=not lane.waiting
                                and len(lane.running) < cfg.max_num_seqs)
