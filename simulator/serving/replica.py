"""A serving replica (TP x PP devices) as SimPy processes: one Lane per pipeline virtual engine.

A Lane owns a waiting queue, the running requests, a paged KV pool with an optional prefix
cache, and a scheduler that picks each step's batch. Decode-only steps between two batch changes
run as ONE SimPy timeout: the lane computes how many steps remain until the next completion or
the step whose new KV block no longer fits, sums their durations in closed form (StepTimer) and,
if an admissible request arrives meanwhile, is interrupted and stops at the first step boundary
after the arrival - exactly where a step-by-step simulation would admit it.

Hooks for the cluster layer: `submit` / `submit_decode` (a request whose KV arrives from a
prefill replica or a migration: admitted straight into decoding), `outstanding`, `kv_usage`,
`on_finish` / `on_first_token` / `on_drop` / `on_handoff` / `on_step` callbacks, `request_op`
(run a function at the next step boundary: live migration), `crash` / `restart` (failures),
`hold` / `release_held` (KV kept until its transfer ends) and `power` (per-step power and the
power cap's clock slowdown, simulator/serving/power.py).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.request import DropReason, Phase, Seq
from simulator.serving.steptime import StepTimer

if TYPE_CHECKING:
    from simulator.serving.power import LanePower
    from simulator.serving.schedulers.base import Plan, Scheduler

CRASH = "crash"  # interrupt cause that kills a lane's process
# safety net: plan calls in a row, at one instant, that change state yet return no plan (each
# drops or preempts one of the lane's requests, so a correct scheduler needs only a few)
_MAX_REPLANS = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneConfig:
    """Limits of one lane (a replica's share when PP splits it into virtual engines)."""

    total_blocks: int
    block_size: int = 16
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    chunk_size: int = 512
    max_model_len: int = 4096
    preemption: str = "recompute"  # or "swap"
    swap_s_per_block: float = 0.0  # host-link seconds to move one block (per device, parallel)
    watermark_blocks: int = 0
    fast_forward: bool = True
    sample_interval_s: float = 1.0
    client_timeout_s: float | None = None  # queued longer than this: dropped (client gave up)

    def __post_init__(self) -> None:
        for name in ("total_blocks", "block_size", "max_num_seqs", "max_batch_tokens",
                     "chunk_size", "max_model_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class Lane:
    """One virtual engine: queue + scheduler + KV pool, stepping in simulated time."""

    def __init__(self, env: simpy.Environment, cfg: LaneConfig, scheduler: Scheduler,
                 timer: StepTimer, *, prefix: PrefixCache | None = None, replica: int = 0,
                 lane: int = 0, prefill_only: bool = False) -> None:
        self.env, self.cfg, self.scheduler, self.timer = env, cfg, scheduler, timer
        self.prefix = prefix
        self.replica, self.lane = replica, lane
        self.B = cfg.block_size
        self.total = cfg.total_blocks
        self.paged = scheduler.paged
        self.prefill_only = prefill_only  # disaggregated prefill: hand off after the prompt
        self.waiting: deque[Seq] = deque()
        self.ready: deque[Seq] = deque()  # KV transferred in, waiting for decode admission
        self.swapped: deque[Seq] = deque()
        self.running: dict[Seq, None] = {}  # admission order (preemption victims from the end)
        self.prefilling: dict[Seq, None] = {}
        self.decoding: dict[Seq, None] = {}
        self.used = 0  # pool blocks allocated (request-private + prefix-cache entries)
        self.peak_used = 0
        self.step = 0  # decode steps executed
        self.phase_cnt = [0] * self.B  # decoding requests by (kv - step) mod B
        self.n_dec = 0
        self._kv_sum0, self._kv_step0 = 0, 0  # sum of decoding KV lengths at step _kv_step0
        self._heap: list[tuple[int, int, Seq]] = []
        self._order = 0
        self.outstanding = 0
        # accounting
        self.busy_s = 0.0
        self.steps = 0
        self.tokens = 0  # prefill + decode tokens processed
        self.ctx_read = 0.0  # sum of decode context tokens read
        self.preemptions = 0
        self.swap_blocks = 0
        self.samples: list[tuple[float, int, int, int, int, float]] = []
        self._last_sample = -1e300
        # callbacks set by the engine
        self.on_finish: Callable[[Seq, float], None] = lambda seq, t: None
        self.on_first_token: Callable[[Seq, float], None] = lambda seq, t: None
        self.on_drop: Callable[[Seq, DropReason], None] = lambda seq, reason: None
        self.on_step: Callable[[Lane, float, float], None] | None = None
        self.on_handoff: Callable[[Lane, Seq, float, int], None] | None = None
        self.power: LanePower | None = None
        self.held = 0  # blocks kept for KV transfers still in flight
        self.epoch = 0  # bumped by crash(): stale transfers must not touch the new pool
        self.dead = False
        self._ops: list[Callable[[Lane], None]] = []
        self.changes = 0  # bumped by every admission, preemption, swap-in, finish and drop
        # run state
        self._idle = False
        self._wake: simpy.Event | None = None
        self._interruptible = False
        self._in_run = False
        self.proc = env.process(self._loop())

    # -- queue interface ---------------------------------------------------------------------

    def submit(self, seq: Seq) -> None:
        """Enqueue an arrived request (FIFO) and wake or interrupt the lane if it can act."""
        self.waiting.append(seq)
        self.outstanding += 1
        if self._idle:
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
        elif self._interruptible:
            self._interruptible = False
            self.proc.interrupt()

    def submit_decode(self, seq: Seq) -> None:
        """Enqueue a request whose KV (seq.target tokens, seq.gen sampled) was transferred in."""
        was_empty = not self.ready
        self.ready.append(seq)
        self.outstanding += 1
        if self._idle:
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
        elif self._interruptible and was_empty:
            self._interruptible = self._in_run = False
            self.proc.interrupt()

    def request_op(self, op: Callable[[Lane], None]) -> None:
        """Run op(lane) at the next step boundary (a fast-forward run is cut there)."""
        self._ops.append(op)
        if self._idle:
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
        elif self._in_run:
            self._interruptible = self._in_run = False
            self.proc.interrupt()

    def hold(self, blocks: int) -> None:
        """Keep blocks allocated for an outgoing KV transfer."""
        self.used += blocks
        self.held += blocks

    def release_held(self, blocks: int) -> None:
        """A transfer finished: free its blocks and wake the lane if it waits for memory."""
        self.used -= blocks
        self.held -= blocks
        if self._idle and self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def crash(self) -> list[Seq]:
        """Kill the lane (GPU memory lost): returns every request it held, state cleared."""
        lost = list(self.running) + list(self.waiting) + list(self.swapped) + list(self.ready)
        if not self.dead and self.proc.is_alive:
            self.proc.interrupt(CRASH)
        self.dead = True
        self.epoch += 1
        self.waiting.clear()
        self.ready.clear()
        self.swapped.clear()
        self.running.clear()
        self.prefilling.clear()
        self.decoding.clear()
        self._heap.clear()
        self._ops.clear()
        self.used = self.held = self.n_dec = self.outstanding = 0
        self.phase_cnt = [0] * self.B
        self._kv_sum0 = self._kv_step0 = 0
        if self.prefix is not None:
            self.prefix.pinned.clear()
            self.prefix.lru.clear()
        self._idle = self._interruptible = self._in_run = False
        self._wake = None
        return lost

    def restart(self) -> None:
        """Bring a crashed lane back (repaired), empty."""
        if self.dead:
            self.dead = False
            self.proc = self.env.process(self._loop())

    def kv_usage(self) -> float:
        """Fraction of the pool allocated (prefix-cache entries included)."""
        return self.used / self.total

    # -- KV pool -------------------------------------------------------------------------------

    def available(self) -> int:
        """Blocks an allocation could get now (free + evictable prefix-cache entries)."""
        return self.total - self.used + (self.prefix.evictable_blocks if self.prefix else 0)

    def alloc(self, blocks: int) -> None:
        free = self.total - self.used
        while free < blocks:
            if self.prefix is None or not self.prefix.lru:
                raise RuntimeError("KV pool over-allocated: scheduler invariant broken")
            self.prefix.evict_one()
            self.used -= self.prefix.kv_blocks
            free += self.prefix.kv_blocks
        self.used += blocks
        if self.used > self.peak_used:
            self.peak_used = self.used

    def kv_tokens(self, seq: Seq) -> int:
        return seq.kv_base + self.step - seq.step_base

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.B)

    def new_blocks(self, k: int) -> int:
        """Blocks the decoding requests need over the next k steps (paged mode)."""
        if not self.paged or k <= 0 or not self.n_dec:
            return 0
        B, cnt, s = self.B, self.phase_cnt, self.step
        full, rest = divmod(k, B)
        total = full * self.n_dec
        for j in range(rest):
            total += cnt[(-(s + j)) % B]
        return total

    def steps_that_fit(self, limit: int) -> int:
        """Largest k <= limit whose new blocks fit in available() (paged mode)."""
        if not self.paged or not self.n_dec:
            return limit
        avail = self.available()
        cycles = avail // self.n_dec
        if cycles * self.B >= limit:
            return limit
        rest = avail - cycles * self.n_dec
        k = cycles * self.B
        B, cnt, s = self.B, self.phase_cnt, self.step
        for j in range(B):
            need = cnt[(-(s + j)) % B]
            if need > rest:
                break
            rest -= need
            k += 1
        return min(k, limit)

    def kv_sum(self) -> int:
        return self._kv_sum0 + self.n_dec * (self.step - self._kv_step0)

    # -- admission / state changes (used by schedulers) -----------------------------------------

    def prefix_match(self, seq: Seq) -> tuple[int, int]:
        """(cached tokens, shared blocks) the prefix cache would give seq now."""
        if self.prefix is None or not seq.hashes:
            return 0, 0
        n = self.prefix.match(seq.hashes, seq.target)
        return n * self.prefix.block_tokens, n * self.prefix.kv_blocks

    def admit(self, seq: Seq, private_blocks: int, matched_hashes: int) -> None:
        """Move the head of the waiting queue into prefill, holding private_blocks."""
        if self.prefix is not None and matched_hashes:
            pc = self.prefix
            for h in seq.hashes[:matched_hashes]:
                pc.pin(h)
            seq.pinned = list(seq.hashes[:matched_hashes])
            seq.shared = matched_hashes * pc.kv_blocks
            seq.cached = matched_hashes * pc.block_tokens
        else:
            seq.shared = 0
            seq.cached = 0
        if self.prefix is not None and seq.hashes and seq.gen == 0:
            self.prefix.lookups_tokens += seq.prompt
            self.prefix.hit_tokens += seq.cached
        if seq.first_cached < 0:
            seq.first_cached = seq.cached
        self.alloc(private_blocks)
        seq.private = private_blocks
        seq.computed = seq.cached
        seq.phase = Phase.PREFILL
        self._order += 1
        seq.order = self._order
        self.running[seq] = None
        self.prefilling[seq] = None
        self.changes += 1

    def _release(self, seq: Seq) -> int:
        """Free seq's private blocks and unpin its prefix entries; returns blocks it held."""
        if seq.phase is Phase.DECODE and self.paged:
            held = self.blocks_for(self.kv_tokens(seq))
            private = held - seq.shared
        else:
            private = seq.private
            held = private + seq.shared
        self.used -= private
        if self.prefix is not None:
            for h in seq.pinned:
                self.prefix.unpin(h)
        seq.pinned = []
        seq.shared = seq.private = 0
        return held

    def _remove_decoding(self, seq: Seq) -> None:
        kv = self.kv_tokens(seq)
        self._kv_sum0 = self.kv_sum() - kv
        self._kv_step0 = self.step
        self.n_dec -= 1
        self.phase_cnt[(seq.kv_base - seq.step_base) % self.B] -= 1
        del self.decoding[seq]

    def preempt(self, seq: Seq) -> None:
        """Evict a running request: recompute (back to the queue's front) or swap to host."""
        self.preemptions += 1
        self.changes += 1
        seq.preemptions += 1
        kv = self.kv_tokens(seq) if seq.phase is Phase.DECODE else seq.computed
        was_decoding = seq.phase is Phase.DECODE
        if was_decoding:
            seq.gen += self.step - seq.step_base  # tokens sampled while decoding here
            self._remove_decoding(seq)
        else:
            del self.prefilling[seq]
        del self.running[seq]
        swap = self.cfg.preemption == "swap" and was_decoding
        if swap:
            held = self.blocks_for(kv)
            self._release(seq)
            seq.swapped_blocks = held
            seq.kv_base = kv
            seq.phase = Phase.SWAPPED
            self.swapped.append(seq)
            self.swap_blocks += held
        else:
            self._release(seq)
            # recompute: prefill prompt + generated tokens again (vLLM's RECOMPUTE mode)
            seq.target = seq.prompt + seq.gen
            seq.computed = 0
            seq.phase = Phase.WAITING
            self.waiting.appendleft(seq)

    def swap_in(self, seq: Seq) -> None:
        """Bring a swapped request back (its blocks re-allocated privately)."""
        self.alloc(seq.swapped_blocks)
        self.swap_blocks += seq.swapped_blocks
        self.changes += 1
        self._order += 1
        seq.order = self._order
        self.running[seq] = None
        self._start_decoding(seq, seq.kv_base)
        seq.swapped_blocks = 0

    def _start_decoding(self, seq: Seq, kv: int) -> None:
        seq.phase = Phase.DECODE
        seq.kv_base = kv
        seq.step_base = self.step
        seq.done_at = self.step + (seq.output - seq.gen)
        if self.paged:
            seq.private = 0  # derived from kv while decoding
        self._kv_sum0 = self.kv_sum() + kv
        self._kv_step0 = self.step
        self.n_dec += 1
        self.phase_cnt[(kv - self.step) % self.B] += 1
        self.decoding[seq] = None
        seq.home = self
        heapq.heappush(self._heap, (seq.done_at, seq.order, seq))

    def drop(self, seq: Seq, reason: DropReason) -> None:
        """Refuse a waiting request (removed by the caller from the queue)."""
        seq.phase = Phase.DONE
        self.outstanding -= 1
        self.changes += 1
        self.on_drop(seq, reason)

    def _finish(self, seq: Seq, now: float) -> None:
        if seq.phase is Phase.DECODE:
            self._release(seq)
            self._remove_decoding(seq)
        else:
            self._release(seq)
            self.prefilling.pop(seq, None)
        del self.running[seq]
        seq.phase = Phase.DONE
        self.outstanding -= 1
        self.changes += 1
        self.on_finish(seq, now)

    # -- stepping -------------------------------------------------------------------------------

    def _advance_decode(self, k: int, now: float, *, keep_done: bool = False) -> None:
        """k decode steps happened: allocate their blocks, move the step counter, finish
        requests that reached their output length (keep_done: static batching pads them)."""
        n = self.n_dec
        if n:
            blocks = self.new_blocks(k)
            if blocks:
                self.alloc(blocks)
            self.ctx_read += k * (self.kv_sum() + n) + n * k * (k - 1) / 2
            self.tokens += n * k
        self.step += k
        heap = self._heap
        while heap and heap[0][0] <= self.step:
            done_at, _, seq = heapq.heappop(heap)
            if seq.phase is not Phase.DECODE or seq.done_at != done_at or seq.home is not self:
                continue  # stale entry (preempted, swapped or migrated since)
            if seq.gen < seq.output:
                seq.gen = seq.output
            if not keep_done:
                self._finish(seq, now)
        if keep_done:
            self.scheduler.after_decode(self, now)

    def _apply_plan(self, plan: Plan, now: float) -> None:
        if plan.decode:
            self._advance_decode(1, now, keep_done=self.scheduler.pads)
        for seq, new in plan.prefill:
            seq.computed += new
            self.tokens += new
            if seq.computed >= seq.target:
                del self.prefilling[seq]
                seq.gen += 1  # the step samples the first (or next, after recompute) token
                if seq.first_token_s < 0:
                    seq.first_token_s = now
                    self.on_first_token(seq, now)
                self._cache_prefix(seq)
                if seq.gen >= seq.output and not self.scheduler.pads:
                    self._finish(seq, now)
                elif self.prefill_only:
                    self._handoff(seq, now)
                else:
                    self._start_decoding(seq, seq.target)

    def _cache_prefix(self, seq: Seq) -> None:
        """After prefill, seq's full prefix blocks become cache entries (shared blocks)."""
        pc = self.prefix
        if pc is None or not seq.hashes or not self.paged:
            return
        usable = pc.usable(seq.hashes, seq.target)
        for h in seq.hashes[len(seq.pinned):usable]:
            if seq.private < pc.kv_blocks:
                break
            if not pc.pin(h):  # created: ownership of its blocks moves from seq to the cache
                seq.private -= pc.kv_blocks
                seq.shared += pc.kv_blocks
            seq.pinned.append(h)

    def _handoff(self, seq: Seq, now: float) -> None:
        """Disaggregated prefill done: keep the request's private KV until the transfer ends,
        leave its prefix-cache entries cached, and pass it to the cluster layer."""
        held = seq.private
        self._release(seq)
        self.hold(held)
        del self.running[seq]
        seq.phase = Phase.WAITING
        self.outstanding -= 1
        if self.on_handoff is None:
            raise RuntimeError("prefill-only lane without an on_handoff callback")
        self.on_handoff(self, seq, now, held)

    def extract_decoding(self, count: int) -> list[Seq]:
        """Take up to `count` most recently admitted decoding requests out (live migration),
        freeing their KV here; each keeps its generated tokens (target = KV length)."""
        out: list[Seq] = []
        if self.scheduler.pads:
            return out
        for seq in reversed(list(self.decoding)):
            if len(out) >= count:
                break
            kv = self.kv_tokens(seq)
            seq.gen += self.step - seq.step_base
            self._release(seq)
            self._remove_decoding(seq)
            del self.running[seq]
            seq.target = seq.kv_base = kv
            seq.phase = Phase.WAITING
            self.outstanding -= 1
            out.append(seq)
        return out

    def _admit_ready(self) -> None:
        """Transferred-in requests start decoding FIFO while their KV and a slot fit."""
        cfg = self.cfg
        while self.ready and len(self.running) < cfg.max_num_seqs:
            seq = self.ready[0]
            need = self.blocks_for(seq.target if self.paged
                                   else max(cfg.max_model_len, seq.target))
            if need + cfg.watermark_blocks > self.total:
                self.ready.popleft()
                self.drop(seq, DropReason.EXCEEDS_KV)
                continue
            if self.available() < need + self.new_blocks(1) + cfg.watermark_blocks:
                break
            self.ready.popleft()
            self.alloc(need)
            seq.private, seq.shared, seq.pinned = need, 0, []
            self._order += 1
            seq.order = self._order
            self.running[seq] = None
            self._start_decoding(seq, seq.target)

    def finish_all(self, now: float) -> None:
        """Complete every running request (the end of a static batch)."""
        for seq in list(self.running):
            self._finish(seq, now)

    def _sample(self, now: float) -> None:
        if now - self._last_sample >= self.cfg.sample_interval_s:
            self._last_sample = now
            self.samples.append((now, self.lane, len(self.waiting), len(self.running), self.used,
                                 self.used / self.total))

    def _loop(self):  # type: ignore[no-untyped-def]
        try:
            yield from self._run()
        except simpy.Interrupt as exc:
            if exc.cause != CRASH:
                raise

    def _run(self):  # type: ignore[no-untyped-def]
        env, timer = self.env, self.timer
        replans = 0
        while True:
            if self._ops:
                ops, self._ops = self._ops, []
                for op in ops:
                    op(self)
            if self.ready:
                self._admit_ready()
            before = self.changes
            plan = self.scheduler.plan(self)
            if plan is None:
                if self.changes != before:
                    # planning itself preempted, dropped or swapped: what it refused may be
                    # runnable now (e.g. a swap-in dropped as never fitting unblocks the queue),
                    # so sleep only once a plan call changes nothing (no event would wake us)
                    replans += 1
                    if replans > _MAX_REPLANS:
                        raise RuntimeError("scheduler keeps changing state without a plan")
                    continue
                replans = 0
                self._sample(env.now)
                self._idle = True
                self._wake = env.event()
                yield self._wake
                self._idle = False
                continue
            replans = 0
            start = env.now
            if plan.fast and not plan.prefill and plan.swap_blocks == 0:
                n, c0 = self.n_dec, self.kv_sum() + self.n_dec
                if self.scheduler.pads:
                    k_fin = plan.max_steps
                else:
                    k_fin = (self._heap[0][0] - self.step) if self._heap else 1
                k = 1 if not self.cfg.fast_forward else self.steps_that_fit(max(1, k_fin))
                k = max(1, min(k, plan.max_steps))
                if self.power is not None:
                    timer.dscale = timer.slow * self.power.decode_factor(n, c0, k)
                total = timer.decode_sum(n, c0, k)
                self._interruptible = plan.interruptible and k > 1
                self._in_run = k > 1
                done = k
                try:
                    yield env.timeout(total)
                except simpy.Interrupt as exc:
                    if exc.cause == CRASH:
                        raise
                    j = timer.decode_steps_until(n, c0, k, env.now - start)
                    end = start + (total if j == k else timer.decode_sum(n, c0, j))
                    yield env.timeout(max(0.0, end - env.now))
                    done = j
                self._interruptible = self._in_run = False
                self.steps += done
                self.busy_s += env.now - start
                self._advance_decode(done, env.now, keep_done=self.scheduler.pads)
            else:
                duration = plan.time_s + plan.swap_blocks * self.cfg.swap_s_per_block
                if self.power is not None:
                    duration *= self.power.plan_factor(self, plan)
                yield env.timeout(duration)
                self.steps += 1
                self.busy_s += duration
                self._apply_plan(plan, env.now)
            if self.power is not None:
                self.power.record(start, env.now)
            if self.on_step is not None:
                self.on_step(self, start, env.now)
            self._sample(env.now)


class Replica:
    """TP x PP devices serving one model copy: pp lanes (vLLM's virtual engines) that split the
    KV pool and max_num_seqs; a request goes to the lane with the fewest outstanding."""

    def __init__(self, index: int, lanes: list[Lane], *, devices: int, capacity: float = 1.0,
                 group: str = "", role: str = "both") -> None:
        self.index = index
        self.lanes = lanes
        self.devices = devices
        self.capacity = capacity  # relative throughput (capacity-aware routing)
        self.group, self.role = group, role
        self.alive = True  # not crashed
        self.state = "active"  # booting | active | draining | retired
        self.start_s = 0.0  # billed from here (provisioning start)
        self.end_s: float | None = None
        self.cap_fraction = 1.0

    @property
    def outstanding(self) -> int:
        return sum(lane.outstanding for lane in self.lanes)

    def kv_usage(self) -> float:
        return sum(lane.used for lane in self.lanes) / sum(lane.total for lane in self.lanes)

    def submit(self, seq: Seq) -> None:
        lanes = self.lanes
        lane = lanes[0] if len(lanes) == 1 else min(lanes, key=lambda x: x.outstanding)
        lane.submit(seq)

    def submit_decode(self, seq: Seq) -> None:
        lanes = self.lanes
        lane = lanes[0] if len(lanes) == 1 else min(lanes, key=lambda x: x.outstanding)
        lane.submit_decode(seq)
