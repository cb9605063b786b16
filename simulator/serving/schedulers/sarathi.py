"""Sarathi-Serve / vLLM chunked prefill: stall-free batching under a token budget.

Every step first carries one token for each decoding request (never stalled behind a prompt),
then continues partially prefilled prompts, then admits new ones, chunking prompts so the step
holds at most chunk_size tokens (Agrawal et al., OSDI'24). Preemption as in vLLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.serving.schedulers.base import NO_LIMIT, SCHEDULERS, Plan, Scheduler, SchedulerKind

if TYPE_CHECKING:
    from simulator.serving.lane_state import LaneState


@SCHEDULERS.register(SchedulerKind.SARATHI)
class SarathiScheduler(Scheduler):
    def plan(self, lane: LaneState) -> Plan | None:
        cfg = lane.cfg
        preempted = self.ensure_decode_blocks(lane)
        swapped = 0 if preempted or not lane.swapped else lane.swap_in_fitting(0)
        budget = cfg.chunk_size - lane.n_dec
        chunks = []
        for seq in lane.prefilling:
            if budget <= 0:
                break
            new = min(seq.target - seq.computed, budget)
            chunks.append((seq, new))
            budget -= new
        while budget > 0 and lane.waiting and not lane.swapped \
                and len(lane.running) < cfg.max_num_seqs:
            got = lane.admit_waiting_head(lane.new_blocks(1))
            if got is None:
                break
            new = min(got[1], budget)
            chunks.append((got[0], new))
            budget -= new
        if chunks:
            time_s = self.step_time(lane, chunks, True)
            return Plan(prefill=chunks, decode=lane.n_dec > 0, time_s=time_s,
                        swap_blocks=swapped)
        if not lane.n_dec and lane.swapped:  # it preempted itself: bring back or drop
            swapped = lane.swap_in_fitting(0)
        if not lane.n_dec:
            return None if not lane.swapped else self.plan(lane)
        # swap-ins were skipped because of this step's preemption: re-plan after one step
        return self.decode_plan(lane, swap_blocks=swapped,
                                max_steps=1 if preempted else NO_LIMIT,
                                interruptible=not lane.waiting and not lane.swapped
                                and len(lane.running) < cfg.max_num_seqs)
