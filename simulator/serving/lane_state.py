"""What a scheduler sees of a lane and the verbs it may call - everything a scheduler author reads.

A lane's state lives in small rooms: the queues here (waiting, ready, swapped, running,
prefilling), the KV-block pool (kv_pool.KVPool), the prefix cache (prefix_cache.PrefixCache),
the decoding requests in closed form (fast_forward.DecodeSet) and the accounting
(lane_stats.LaneStats). Schedulers read the queues and the queries below and change state only
through the verbs (admit_waiting_head, drop_waiting_head, preempt_newest, swap_in_fitting,
finish_all); the SimPy process that steps the lane is replica.Lane.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

from hwmodels.errors import ConfigError
from simulator.serving.fast_forward import DecodeSet
from simulator.serving.kinds import PreemptionMode, enum_value
from simulator.serving.kv_pool import KVPool
from simulator.serving.lane_stats import LaneStats
from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.request import DropReason, Phase, Seq
from simulator.serving.steptime import StepTimer

if TYPE_CHECKING:
    from simulator.serving.power import LanePower
    from simulator.serving.schedulers.base import Scheduler


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneConfig:
    """Limits of one lane (a replica's share when PP splits it into virtual engines)."""

    total_blocks: int
    block_size: int = 16
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    chunk_size: int = 512
    max_model_len: int = 4096
    preemption: PreemptionMode = PreemptionMode.RECOMPUTE
    swap_s_per_block: float = 0.0  # host-link seconds to move one block (per device, parallel)
    watermark_blocks: int = 0
    fast_forward: bool = True
    sample_interval_s: float = 1.0
    client_timeout_s: float | None = None  # queued longer than this: dropped (client gave up)
    # no-evict admission (TensorRT-LLM GUARANTEED_NO_EVICT, hwmodels.engine_profiles.Admission):
    # a paged lane reserves the blocks of prompt + remaining output at admission, so decode
    # never allocates and nothing is ever preempted
    reserve_output: bool = False
    multi_step: int = 1  # vLLM --num-scheduler-steps: decode rounds no prompt can cut

    def __post_init__(self) -> None:
        for name in ("total_blocks", "block_size", "max_num_seqs", "max_batch_tokens",
                     "chunk_size", "max_model_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1", key=name)
        object.__setattr__(self, "preemption",
                           enum_value(PreemptionMode, self.preemption, "preemption"))


def _no_blocks(k: int) -> int:
    """Non-paged lanes reserved every block at admission: decode steps need none."""
    return 0


class LaneState:
    """One virtual engine's queues and rooms, with the scheduler-facing queries and verbs."""

    def __init__(self, env: simpy.Environment, cfg: LaneConfig, scheduler: Scheduler,
                 timer: StepTimer, *, prefix: PrefixCache | None = None, replica: int = 0,
                 lane: int = 0, prefill_only: bool = False) -> None:
        self.env, self.cfg, self.scheduler, self.timer = env, cfg, scheduler, timer
        self.prefix = prefix
        self.replica, self.lane = replica, lane
        # False: KV for max_model_len reserved at admission (Orca). No-evict admission pages the
        # pool whatever the scheduler, reserving prompt + output (TensorRT-LLM's in-flight
        # batching over a paged KV cache)
        self.paged = scheduler.paged or cfg.reserve_output
        # KV grows block by block while decoding (paged, unless no-evict reserved it up front)
        self.grows = self.paged and not cfg.reserve_output
        self.round_left = 0  # decode steps left in the current multi-step round
        self.prefill_only = prefill_only  # disaggregated prefill: hand off after the prompt
        self.kv = KVPool(cfg.total_blocks, cfg.block_size, prefix)
        self.dec = DecodeSet(cfg.block_size)
        # hot queries bound straight to their rooms (one call, not two, per scheduler query):
        # available() - blocks an allocation could get now (free + evictable prefix entries);
        # kv_sum() - the decoding requests' KV tokens; new_blocks(k) - blocks the next k
        # decode steps need (0 unless paged)
        self.available: Callable[[], int] = self.kv.available
        self.kv_sum: Callable[[], int] = self.dec.kv_sum
        self.new_blocks: Callable[[int], int] = self.dec.new_blocks if self.grows else _no_blocks
        self.stats = LaneStats(sample_interval_s=cfg.sample_interval_s)
        self.waiting: deque[Seq] = deque()
        self.ready: deque[Seq] = deque()  # KV transferred in, waiting for decode admission
        self.swapped: deque[Seq] = deque()
        self.running: dict[Seq, None] = {}  # admission order (preemption victims from the end)
        self.prefilling: dict[Seq, None] = {}
        self.outstanding = 0
        self.changes = 0  # bumped by every admission, preemption, swap-in, finish and drop
        self._order = 0
        # set by the engine
        self.on_finish: Callable[[Seq, float], None] = lambda seq, t: None
        self.on_first_token: Callable[[Seq, float], None] = lambda seq, t: None
        self.on_drop: Callable[[Seq, DropReason], None] = lambda seq, reason: None
        self.on_handoff: Callable[[LaneState, Seq, float, int], None] | None = None
        self.power: LanePower | None = None

    # -- queries ----------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.env.now

    @property
    def n_dec(self) -> int:
        """Requests decoding now."""
        return self.dec.n

    @property
    def step(self) -> int:
        """Decode steps executed so far."""
        return self.dec.step

    def kv_usage(self) -> float:
        return self.kv.usage()

    def prefix_match(self, seq: Seq) -> tuple[int, int]:
        """(cached tokens, shared blocks) the prefix cache would give seq now."""
        return self.prefix.lookup(seq) if self.prefix is not None else (0, 0)

    def blocks_to_admit(self, seq: Seq, shared_blocks: int) -> int:
        """Private blocks seq needs on admission (non-paged: the whole max_model_len)."""
        if not self.paged:
            return self.kv.blocks_for(max(self.cfg.max_model_len, seq.target))
        return self.kv.blocks_for(self._final_tokens(seq)) - shared_blocks

    def _final_tokens(self, seq: Seq) -> int:
        """KV tokens seq's blocks are sized for: the prompt (growing later) or, with
        no-evict admission, the prompt plus every output token still to come."""
        if self.grows:
            return seq.target
        return seq.target + max(0, seq.output - seq.gen)

    # -- verbs ----------------------------------------------------------------------------------

    def admit_waiting_head(self, reserve_blocks: int) -> tuple[Seq, int] | None:
        """Admit the waiting queue's head into prefill if its KV fits, keeping reserve_blocks +
        the watermark free; returns (seq, tokens to prefill) or None. Heads whose client gave
        up, or that could never fit, are dropped on the way."""
        cfg, kv, prefix = self.cfg, self.kv, self.prefix
        timeout = cfg.client_timeout_s
        while self.waiting:
            seq = self.waiting[0]
            if timeout is not None and seq.first_token_s < 0 \
                    and self.env.now - seq.arrival_s > timeout:
                self.drop_waiting_head(DropReason.CLIENT_TIMEOUT)
                continue
            shared = self.prefix_match(seq)[1]
            private = self.blocks_to_admit(seq, shared)
            # the prefix entries it reuses sit in the same pool: the whole footprint must fit
            # (checking `private` alone let a head that never fits wait forever, issue 13)
            footprint = private + shared if self.paged else private
            if footprint + cfg.watermark_blocks > kv.total:
                self.drop_waiting_head(DropReason.EXCEEDS_KV)
                continue
            matched = shared // prefix.kv_blocks if shared else 0  # type: ignore[union-attr]
            pin_cost = prefix.pin_cost_blocks(seq, matched) if matched else 0  # type: ignore
            if kv.available() - pin_cost - private < reserve_blocks + cfg.watermark_blocks:
                return None
            self.waiting.popleft()
            self._admit(seq, private, matched)
            return seq, seq.target - seq.computed
        return None

    def drop_waiting_head(self, reason: DropReason) -> None:
        """Refuse the waiting queue's head."""
        self._drop(self.waiting.popleft(), reason)

    def preempt_newest(self) -> None:
        """Evict the most recently admitted running request (recompute or swap, per config)."""
        self._preempt(next(reversed(self.running)))

    def swap_in_fitting(self, reserve_blocks: int) -> int:
        """Bring swapped requests back FIFO while they fit; returns blocks moved. One that could
        never fit, even alone, is dropped."""
        moved = 0
        while self.swapped and len(self.running) < self.cfg.max_num_seqs:
            seq = self.swapped[0]
            need = seq.swapped_blocks + reserve_blocks + 1  # + its next token's block
            if self.available() < need + self.new_blocks(1):
                if not self.running and need > self.kv.total:
                    self._drop(self.swapped.popleft(), DropReason.EXCEEDS_KV)
                    continue
                break
            self.swapped.popleft()
            moved += seq.swapped_blocks
            self._swap_in(seq)
        return moved

    def finish_all(self, now: float) -> None:
        """Complete every running request (the end of a static batch)."""
        for seq in list(self.running):
            self._finish(seq, now)

    # -- transitions ------------------------------------------------------------------------------

    def _admit(self, seq: Seq, private_blocks: int, matched_hashes: int) -> None:
        if self.prefix is not None:
            self.prefix.attach(seq, matched_hashes)
        else:
            seq.shared = seq.cached = 0
        if seq.first_cached < 0:
            seq.first_cached = seq.cached
        self.kv.alloc(private_blocks)
        seq.private = private_blocks
        seq.computed = seq.cached
        seq.phase = Phase.PREFILL
        self._enter_running(seq)
        self.prefilling[seq] = None

    def _enter_running(self, seq: Seq) -> None:
        self._order += 1
        seq.order = self._order
        self.running[seq] = None
        self.changes += 1

    def _release(self, seq: Seq) -> int:
        """Free seq's private blocks and unpin its prefix entries; returns blocks it held."""
        if seq.phase is Phase.DECODE and self.grows:
            held = self.kv.blocks_for(self.dec.kv_tokens(seq))
            private = held - seq.shared
        else:
            private = seq.private
            held = private + seq.shared
        self.kv.free(private)
        if self.prefix is not None:
            self.prefix.detach(seq)
        seq.pinned = []
        seq.shared = seq.private = 0
        return held

    def _start_decoding(self, seq: Seq, kv_tokens: int) -> None:
        if self.grows:
            seq.private = 0  # derived from the KV length while decoding
        self.dec.add(seq, kv_tokens)

    def _stop_decoding(self, seq: Seq) -> int:
        """seq leaves the decode set keeping its sampled tokens; returns its KV length."""
        kv = self.dec.kv_tokens(seq)
        seq.gen += self.dec.step - seq.step_base
        self.dec.remove(seq)
        return kv

    def _preempt(self, seq: Seq) -> None:
        self.stats.preemptions += 1
        self.changes += 1
        seq.preemptions += 1
        was_decoding = seq.phase is Phase.DECODE
        if was_decoding:
            kv = self._stop_decoding(seq)
        else:
            kv = seq.computed
            del self.prefilling[seq]
        del self.running[seq]
        if self.cfg.preemption is PreemptionMode.SWAP and was_decoding:
            held = self.kv.blocks_for(kv)
            self._release(seq)
            seq.swapped_blocks = held
            seq.kv_base = kv
            seq.phase = Phase.SWAPPED
            self.swapped.append(seq)
            self.stats.swap_blocks += held
        else:
            self._release(seq)
            # recompute: prefill prompt + generated tokens again (vLLM's RECOMPUTE mode)
            seq.target = seq.prompt + seq.gen
            seq.computed = 0
            seq.phase = Phase.WAITING
            self.waiting.appendleft(seq)

    def _swap_in(self, seq: Seq) -> None:
        self.kv.alloc(seq.swapped_blocks)
        self.stats.swap_blocks += seq.swapped_blocks
        self._enter_running(seq)
        self._start_decoding(seq, seq.kv_base)
        seq.swapped_blocks = 0

    def _drop(self, seq: Seq, reason: DropReason) -> None:
        seq.phase = Phase.DONE
        self.outstanding -= 1
        self.changes += 1
        self.on_drop(seq, reason)

    def _finish(self, seq: Seq, now: float) -> None:
        self._release(seq)
        if seq.phase is Phase.DECODE:
            self.dec.remove(seq)
        else:
            self.prefilling.pop(seq, None)
        del self.running[seq]
        seq.phase = Phase.DONE
        self.outstanding -= 1
        self.changes += 1
        self.on_finish(seq, now)

    def _handoff(self, seq: Seq, now: float) -> None:
        """Disaggregated prefill done: keep the request's private KV until the transfer ends,
        leave its prefix-cache entries cached, and pass it to the cluster layer."""
        held = seq.private
        self._release(seq)
        self.kv.hold(held)
        del self.running[seq]
        seq.phase = Phase.WAITING
        self.outstanding -= 1
        if self.on_handoff is None:
            raise RuntimeError("prefill-only lane without an on_handoff callback")
        self.on_handoff(self, seq, now, held)

    def _admit_ready(self) -> None:
        """Transferred-in requests start decoding FIFO while their KV and a slot fit."""
        cfg, kv = self.cfg, self.kv
        while self.ready and len(self.running) < cfg.max_num_seqs:
            seq = self.ready[0]
            need = kv.blocks_for(self._final_tokens(seq) if self.paged
                                 else max(cfg.max_model_len, seq.target))
            if need + cfg.watermark_blocks > kv.total:
                self._drop(self.ready.popleft(), DropReason.EXCEEDS_KV)
                continue
            if kv.available() < need + self.new_blocks(1) + cfg.watermark_blocks:
                break
            self.ready.popleft()
            kv.alloc(need)
            seq.private, seq.shared, seq.pinned = need, 0, []
            self._order += 1
            seq.order = self._order
            self.running[seq] = None
            self._start_decoding(seq, seq.target)

    def extract_decoding(self, count: int) -> list[Seq]:
        """Take up to `count` most recently admitted decoding requests out (live migration),
        freeing their KV here; each keeps its generated tokens (target = KV length)."""
        out: list[Seq] = []
        if self.scheduler.pads:
            return out
        for seq in reversed(list(self.dec.members)):
            if len(out) >= count:
                break
            self._release(seq)
            kv = self._stop_decoding(seq)
            del self.running[seq]
            seq.target = seq.kv_base = kv
            seq.phase = Phase.WAITING
            self.outstanding -= 1
            out.append(seq)
        return out
