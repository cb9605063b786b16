"""What every scheduler shares: its kind and registry, the step plan, and helpers built on the
lane's verbs (whole-prompt admission, decode preemption, step time, decode plans).

A scheduler reads the lane (simulator/serving/lane_state.py: queues, n_dec, step, kv_sum,
available, new_blocks, prefix_match) and changes it only through the lane's verbs
(admit_waiting_head, drop_waiting_head, preempt_newest, swap_in_fitting, finish_all)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hwmodels._compat import StrEnum
from hwmodels.registry import Registry
from simulator.serving.request import DropReason, Seq

if TYPE_CHECKING:
    from simulator.serving.lane_state import LaneState

NO_LIMIT = 1 << 62


class SchedulerKind(StrEnum):
    """The `serving.scheduler` names (one module per policy under serving/schedulers/)."""

    VLLM = "vllm"
    SARATHI = "sarathi"
    ORCA = "orca"
    STATIC = "static"


@dataclass(slots=True, kw_only=True)
class Plan:
    """One step's batch: prefill chunks (request, new tokens) and whether decodes advance.
    fast: decode-only and homogeneous, so the lane may advance many steps as one event;
    interruptible: an arrival during such a run could change the batch."""

    prefill: list[tuple[Seq, int]] = field(default_factory=list)
    decode: bool = False
    time_s: float = 0.0
    fast: bool = False
    interruptible: bool = False
    max_steps: int = NO_LIMIT
    swap_blocks: int = 0


class Scheduler(ABC):
    """Base: subclasses implement plan(lane) -> Plan | None (None: nothing to run now; the
    lane sleeps until an arrival, a transfer or an operation pokes it)."""

    paged = True  # KV grows block by block (False: reserve max_model_len at admission)
    pads = False  # request-level batching keeps finished requests in the batch

    @abstractmethod
    def plan(self, lane: LaneState) -> Plan | None:
        """Subclasses decide; see the class docstring."""

    def after_decode(self, lane: LaneState, now: float) -> None:
        """Hook after decode steps when pads is set."""
        return None  # optional hook: stateless by default

    # -- helpers built on the lane's verbs ----------------------------------------------------

    @staticmethod
    def admit_whole_prompts(lane: LaneState, *, prefix_aware: bool) -> list[tuple[Seq, int]]:
        """Admit waiting prompts whole, FIFO, within max_batch_tokens and max_num_seqs.

        A prompt longer than the whole token budget can never run and is dropped; with
        prefix_aware the budget is charged only for the uncached part of the prompt.
        """
        cfg = lane.cfg
        chunks: list[tuple[Seq, int]] = []
        budget = cfg.max_batch_tokens
        while lane.waiting and len(lane.running) < cfg.max_num_seqs:
            head = lane.waiting[0]
            if head.target > cfg.max_batch_tokens:
                lane.drop_waiting_head(DropReason.EXCEEDS_BATCH_TOKENS)
                continue
            cached = lane.prefix_match(head)[0] if prefix_aware else 0
            if head.target - cached > budget:
                break
            got = lane.admit_waiting_head(0)
            if got is None:
                break
            chunks.append(got)
            budget -= got[1]
        return chunks

    @staticmethod
    def ensure_decode_blocks(lane: LaneState) -> int:
        """Preempt the most recently admitted running requests until the next decode step's new
        blocks fit (vLLM's policy); returns how many were preempted."""
        preempted = 0
        while lane.n_dec and lane.new_blocks(1) > lane.available():
            lane.preempt_newest()
            preempted += 1
        return preempted

    @staticmethod
    def step_time(lane: LaneState, chunks: list[tuple[Seq, int]], decode: bool) -> float:
        """Duration of a step with these prefill chunks (+ all decoding requests if decode)."""
        tokens = units = cached = 0.0
        finishing = 0
        for seq, new in chunks:
            before = seq.computed
            tokens += new
            units += new * (before + new / 2.0)
            cached += before
            if before + new >= seq.target:
                finishing += 1
        n = lane.n_dec if decode else 0
        ctx = lane.kv_sum() + n if n else 0
        return lane.timer.step_s(tokens, units, n, ctx, finishing, cached)

    @staticmethod
    def decode_plan(lane: LaneState, *, interruptible: bool, swap_blocks: int = 0,
                    max_steps: int = NO_LIMIT) -> Plan:
        """A decode-only step the lane may fast-forward (time_s priced here only when it also
        swaps blocks in, since such a step runs alone)."""
        time_s = 0.0
        if swap_blocks:
            n = lane.n_dec
            time_s = lane.timer.decode_sum(n, lane.kv_sum() + n, 1)
        return Plan(decode=True, fast=True, interruptible=interruptible, time_s=time_s,
                    swap_blocks=swap_blocks, max_steps=max_steps)


SCHEDULERS: Registry[SchedulerKind, type[Scheduler]] = Registry(
    "scheduler", SchedulerKind, key="serving.scheduler")
