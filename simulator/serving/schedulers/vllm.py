"""vLLM (v0 default): iteration-level continuous batching, prefill-prioritized.

A step is either whole prompts (FIFO, within max_batch_tokens and max_num_seqs, KV for the whole
prompt allocated on admission, 1% watermark) or one decode token for every running request;
when a decode step's new blocks do not fit, the newest running requests are preempted (recompute
or swap). Swapped requests come back before new prompts are admitted (Kwon et al., SOSP'23).
With multi-step scheduling (serving.num_scheduler_steps = N > 1, vLLM v0.6) decode runs in
rounds of N steps; prompts are admitted only between rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.serving.schedulers.base import NO_LIMIT, SCHEDULERS, Plan, Scheduler, SchedulerKind

if TYPE_CHECKING:
    from simulator.serving.lane_state import LaneState


@SCHEDULERS.register(SchedulerKind.VLLM)
class VLLMScheduler(Scheduler):
    def plan(self, lane: LaneState) -> Plan | None:
        cfg = lane.cfg
        if lane.round_left and lane.n_dec and not self.ensure_decode_blocks(lane):
            # inside a multi-step round: keep decoding, new prompts wait for its end
            return self.decode_plan(lane, interruptible=False, max_steps=lane.round_left)
        lane.round_left = 0
        for _ in range(2):  # a second pass re-admits if preemption emptied the batch
            if lane.waiting and not lane.swapped:
                chunks = self.admit_whole_prompts(lane, prefix_aware=True)
                if chunks:
                    return Plan(prefill=chunks, time_s=self.step_time(lane, chunks, False))
            if not lane.running and not lane.swapped:
                return None
            preempted = self.ensure_decode_blocks(lane)
            swapped = 0 if preempted else lane.swap_in_fitting(0)
            if lane.n_dec and cfg.multi_step > 1 and not preempted and not swapped:
                lane.round_left = cfg.multi_step  # a new multi-step round
                return self.decode_plan(lane, interruptible=False, max_steps=cfg.multi_step)
            if lane.n_dec:
                # prompts were tried before this preemption freed blocks: after one step they
                # may fit, so a preempting step is never fast-forwarded past its first step
                return self.decode_plan(
                    lane, swap_blocks=swapped, max_steps=1 if preempted else NO_LIMIT,
                    interruptible=not lane.waiting and not lane.swapped
                    and len(lane.running) < cfg.max_num_seqs)
        return None
