"""What every scheduler shares: the step plan, admission with KV checks, decode preemption."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.serving.request import DropReason, Seq

if TYPE_CHECKING:
    from simulator.serving.replica import Lane

NO_LIMIT = 1 << 62


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
    """Base: subclasses implement plan(lane) -> Plan | None (None: nothing to run)."""

    paged = True  # KV grows block by block (False: reserve max_model_len at admission)
    pads = False  # request-level batching keeps finished requests in the batch
    fifo = True  # admission strictly in arrival order (head-of-line blocking)

    @abstractmethod
    def plan(self, lane: Lane) -> Plan | None:
        """Subclasses decide; see the class docstring."""

    def after_decode(self, lane: Lane, now: float) -> None:
        """Hook after decode steps when pads is set."""
        return None  # optional hook: stateless by default

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def private_blocks(lane: Lane, seq: Seq, shared_blocks: int) -> int:
        if not lane.paged:
            return lane.blocks_for(max(lane.cfg.max_model_len, seq.target))
        return lane.blocks_for(seq.target) - shared_blocks

    def admit_whole_prompts(self, lane: Lane, *, prefix_aware: bool) -> list[tuple[Seq, int]]:
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
                lane.waiting.popleft()
                lane.drop(head, DropReason.EXCEEDS_BATCH_TOKENS)
                continue
            cached = lane.prefix_match(head)[0] if prefix_aware else 0
            if head.target - cached > budget:
                break
            got = self.admit_head(lane, 0)
            if got is None:
                break
            chunks.append(got)
            budget -= got[1]
        return chunks

    def admit_head(self, lane: Lane, reserve_blocks: int) -> tuple[Seq, int] | None:
        """Admit the waiting queue's head if its KV fits (keeping reserve_blocks + the
        watermark free); returns (seq, tokens to prefill) or None. Drops a head that could
        never fit."""
        timeout = lane.cfg.client_timeout_s
        while lane.waiting:
            seq = lane.waiting[0]
            if timeout is not None and seq.first_token_s < 0 \
                    and lane.env.now - seq.arrival_s > timeout:
                lane.waiting.popleft()  # the client gave up while queued
                lane.drop(seq, DropReason.CLIENT_TIMEOUT)
                continue
            cached, shared = lane.prefix_match(seq)
            private = self.private_blocks(lane, seq, shared)
            if private + lane.cfg.watermark_blocks > lane.total:
                lane.waiting.popleft()
                lane.drop(seq, DropReason.EXCEEDS_KV)
                continue
            pin_cost = 0
            if shared:
                pc = lane.prefix
                matched = shared // pc.kv_blocks  # type: ignore[union-attr]
                pin_cost = sum(pc.kv_blocks for h in seq.hashes[:matched]  # type: ignore
                               if h in pc.lru)  # type: ignore[union-attr]
            if lane.available() - pin_cost - private < reserve_blocks + lane.cfg.watermark_blocks:
                return None
            lane.waiting.popleft()
            matched = shared // lane.prefix.kv_blocks if shared else 0  # type: ignore
            lane.admit(seq, private, matched)
            return seq, seq.target - seq.computed
        return None

    @staticmethod
    def ensure_decode_blocks(lane: Lane) -> int:
        """Preempt the most recently admitted running requests until the next decode step's new
        blocks fit (vLLM's policy); returns how many were preempted."""
        preempted = 0
        while lane.n_dec and lane.new_blocks(1) > lane.available():
            victim = next(reversed(lane.running))
            lane.preempt(victim)
            preempted += 1
        return preempted

    @staticmethod
    def swap_in(lane: Lane, reserve_blocks: int) -> int:
        """Bring swapped requests back in FIFO order while they fit; returns blocks moved."""
        moved = 0
        while lane.swapped and len(lane.running) < lane.cfg.max_num_seqs:
            seq = lane.swapped[0]
            need = seq.swapped_blocks + reserve_blocks + 1  # + its next token's block
            if lane.available() < need + lane.new_blocks(1):
                if not lane.running and need > lane.total:  # can never fit, even alone
                    lane.swapped.popleft()
                    lane.drop(seq, DropReason.EXCEEDS_KV)
                    continue
                break
            lane.swapped.popleft()
            moved += seq.swapped_blocks
            lane.swap_in(seq)
        return moved

    @staticmethod
    def step_time(lane: Lane, chunks: list[tuple[Seq, int]], decode: bool) -> float:
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
    def decode_plan(lane: Lane, *, interruptible: bool, swap_blocks: int = 0,
                    max_steps: int = NO_LIMIT) -> Plan:
        time_s = 0.0
        if swap_blocks:
            n = lane.n_dec
            time_s = lane.timer.decode_sum(n, lane.kv_sum() + n, 1)
        return Plan(decode=True, fast=True, interruptible=interruptible, time_s=time_s,
                    swap_blocks=swap_blocks, max_steps=max_steps)
