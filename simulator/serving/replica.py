"""A serving replica (TP x PP devices) as SimPy processes: one Lane per pipeline virtual engine.

Lane is the lean process over lane_state.LaneState (queues, KV pool, prefix cache, decode set,
accounting, scheduler verbs): each turn it runs pending operations, admits transferred-in
requests, asks the scheduler for a plan and sleeps for it. Decode-only steps between two batch
changes run as ONE SimPy timeout (fast_forward.DecodeSet gives the run length in closed form);
an event that could change the batch cuts the run at the first step boundary after it - exactly
where a step-by-step simulation would act. Every event reaches the process through one path,
`_poke`.

Hooks for the cluster layer: `submit` / `submit_decode` (a request whose KV arrives from a
prefill replica or a migration: admitted straight into decoding), `outstanding`, `kv_usage`,
`on_finish` / `on_first_token` / `on_drop` / `on_handoff` / `on_step` callbacks, `request_op`
(run a function at the next step boundary: live migration), `crash` / `restart` (failures),
`release_held` (KV kept until its transfer ends) and `power` (per-step power and the power
cap's clock slowdown, simulator/serving/power.py).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from simulator.serving.cluster_config import Role
from simulator.serving.kinds import ReplicaState
from simulator.serving.lane_state import LaneConfig, LaneState
from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.request import Seq
from simulator.serving.steptime import StepTimer

if TYPE_CHECKING:
    from simulator.serving.schedulers.base import Plan, Scheduler

CRASH = "crash"  # interrupt cause that kills a lane's process
# safety net: plan calls in a row, at one instant, that change state yet return no plan (each
# drops or preempts one of the lane's requests, so a correct scheduler needs only a few)
_MAX_REPLANS = 1_000_000


class Lane(LaneState):
    """One virtual engine stepping in simulated time: queue + scheduler + KV pool."""

    def __init__(self, env: simpy.Environment, cfg: LaneConfig, scheduler: Scheduler,
                 timer: StepTimer, *, prefix: PrefixCache | None = None, replica: int = 0,
                 lane: int = 0, prefill_only: bool = False) -> None:
        super().__init__(env, cfg, scheduler, timer, prefix=prefix, replica=replica, lane=lane,
                         prefill_only=prefill_only)
        self.on_step: Callable[[Lane, float, float], None] | None = None
        self.epoch = 0  # bumped by crash(): stale transfers must not touch the new pool
        self.dead = False
        self._ops: list[Callable[[Lane], None]] = []
        self._idle = False  # asleep until poked (no plan)
        self._wake: simpy.Event | None = None
        self._in_run = False  # inside a multi-step fast-forward run
        self._interruptible = False  # ... that an arrival may cut
        self.proc = env.process(self._loop())

    # -- events from the cluster layer ----------------------------------------------------------

    def _poke(self, cut_run: bool) -> None:
        """The one wake-up path: wake an idle lane, or cut its fast-forward run if asked."""
        if self._idle:
            if self._wake is not None and not self._wake.triggered:
                self._wake.succeed()
        elif cut_run and self._in_run:
            self._interruptible = self._in_run = False
            self.proc.interrupt()

    def submit(self, seq: Seq) -> None:
        """Enqueue an arrived request (FIFO); wake or interrupt the lane if it can act."""
        self.waiting.append(seq)
        self.outstanding += 1
        self._poke(self._interruptible)

    def submit_decode(self, seq: Seq) -> None:
        """Enqueue a request whose KV (seq.target tokens, seq.gen sampled) was transferred in."""
        was_empty = not self.ready
        self.ready.append(seq)
        self.outstanding += 1
        self._poke(self._interruptible and was_empty)

    def request_op(self, op: Callable[[Lane], None]) -> None:
        """Run op(lane) at the next step boundary (a fast-forward run is cut there)."""
        self._ops.append(op)
        self._poke(True)

    def release_held(self, blocks: int) -> None:
        """A transfer finished: free its blocks and wake the lane if it waits for memory."""
        self.kv.release_held(blocks)
        self._poke(False)

    def crash(self) -> list[Seq]:
        """Kill the lane (GPU memory lost): returns every request it held, state cleared."""
        lost = list(self.running) + list(self.waiting) + list(self.swapped) + list(self.ready)
        if not self.dead and self.proc.is_alive:
            self.proc.interrupt(CRASH)
        self.dead = True
        self.epoch += 1
        for queue in (self.waiting, self.ready, self.swapped, self.running, self.prefilling,
                      self._ops):
            queue.clear()
        self.dec.clear()
        self.kv.clear()
        self.outstanding = 0
        self._idle = self._interruptible = self._in_run = False
        self._wake = None
        return lost

    def restart(self) -> None:
        """Bring a crashed lane back (repaired), empty."""
        if self.dead:
            self.dead = False
            self.proc = self.env.process(self._loop())

    # -- stepping -------------------------------------------------------------------------------

    def _advance_decode(self, k: int, now: float, *, keep_done: bool = False) -> None:
        """k decode steps happened: allocate their blocks, move the step counter, finish
        requests that reached their output length (keep_done: static batching pads them)."""
        dec, stats = self.dec, self.stats
        n = dec.n
        if n:
            blocks = self.new_blocks(k)
            if blocks:
                self.kv.alloc(blocks)
            stats.ctx_read += dec.context_read(k)
            stats.tokens += n * k
        dec.step += k
        if self.round_left:
            self.round_left = max(0, self.round_left - k)
        for seq in dec.due():
            if seq.gen < seq.output:
                seq.gen = seq.output
            if not keep_done:
                self._finish(seq, now)
        if keep_done:
            self.scheduler.after_decode(self, now)

    def _apply_plan(self, plan: Plan, now: float) -> None:
        pads = self.scheduler.pads
        if plan.decode:
            self._advance_decode(1, now, keep_done=pads)
        for seq, new in plan.prefill:
            seq.computed += new
            self.stats.tokens += new
            if seq.computed >= seq.target:
                del self.prefilling[seq]
                seq.gen += 1  # the step samples the first (or next, after recompute) token
                if seq.first_token_s < 0:
                    seq.first_token_s = now
                    self.on_first_token(seq, now)
                if self.prefix is not None and self.paged:
                    self.prefix.adopt(seq)
                if seq.gen >= seq.output and not pads:
                    self._finish(seq, now)
                elif self.prefill_only:
                    self._handoff(seq, now)
                else:
                    self._start_decoding(seq, seq.target)

    def _sample(self, now: float) -> None:
        stats = self.stats
        if now - stats.last_sample_s >= stats.sample_interval_s:
            stats.last_sample_s = now
            used = self.kv.used
            stats.samples.append((now, self.lane, len(self.waiting), len(self.running), used,
                                  used / self.kv.total))

    def _loop(self) -> Generator[simpy.Event, Any, None]:
        try:
            yield from self._run()
        except simpy.Interrupt as exc:
            if exc.cause != CRASH:
                raise

    def _run(self) -> Generator[simpy.Event, Any, None]:
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
                # decode-only steps as one timeout; an interrupt (a poke that may change the
                # batch) stops the run at the first step boundary after it
                n, c0, k, total = self._start_run(plan)
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
                self._end_run(done, start)
            else:
                duration = plan.time_s + plan.swap_blocks * self.cfg.swap_s_per_block
                if self.power is not None:
                    duration *= self.power.plan_factor(self, plan)
                yield env.timeout(duration)
                self.stats.steps += 1
                self.stats.busy_s += duration
                self._apply_plan(plan, env.now)
            if self.power is not None:
                self.power.record(start, env.now)
            if self.on_step is not None:
                self.on_step(self, start, env.now)
            self._sample(env.now)

    def _start_run(self, plan: Plan) -> tuple[int, int, int, float]:
        """(decoding requests, context of the first step, steps k, duration) of a decode run;
        arms the flags that let a poke cut it."""
        dec, timer = self.dec, self.timer
        n, c0 = dec.n, dec.kv_sum() + dec.n
        k = self._run_length(plan)
        if self.power is not None:
            timer.dscale = timer.slow * self.power.decode_factor(n, c0, k)
        self._interruptible = plan.interruptible and k > 1
        self._in_run = k > 1
        return n, c0, k, timer.decode_sum(n, c0, k)

    def _end_run(self, steps: int, start: float) -> None:
        """A decode run ended after `steps` steps: account for it and apply them."""
        self._interruptible = self._in_run = False
        self.stats.steps += steps
        self.stats.busy_s += self.env.now - start
        self._advance_decode(steps, self.env.now, keep_done=self.scheduler.pads)

    def _run_length(self, plan: Plan) -> int:
        """Decode steps to run as one event: up to the next finish (static batching: the
        batch's end) or the first step whose new blocks do not fit, within plan.max_steps."""
        dec = self.dec
        k_fin = plan.max_steps if self.scheduler.pads else dec.steps_to_next_finish()
        if not self.cfg.fast_forward:
            k = 1
        elif self.grows:
            k = dec.steps_that_fit(self.kv.available(), max(1, k_fin))
        else:
            k = max(1, k_fin)
        return max(1, min(k, plan.max_steps))


class Replica:
    """TP x PP devices serving one model copy: pp lanes (vLLM's virtual engines) that split the
    KV pool and max_num_seqs; a request goes to the lane with the fewest outstanding."""

    def __init__(self, index: int, lanes: list[Lane], *, devices: int, capacity: float = 1.0,
                 group: str = "", role: Role = Role.BOTH) -> None:
        self.index = index
        self.lanes = lanes
        self.devices = devices
        self.capacity = capacity  # relative throughput (capacity-aware routing)
        self.group, self.role = group, Role(role)
        self.alive = True  # not crashed
        self.state = ReplicaState.ACTIVE
        self.start_s = 0.0  # billed from here (provisioning start)
        self.end_s: float | None = None
        self.cap_fraction = 1.0

    @property
    def outstanding(self) -> int:
        return sum(lane.outstanding for lane in self.lanes)

    def kv_usage(self) -> float:
        return sum(ln.kv.used for ln in self.lanes) / sum(ln.kv.total for ln in self.lanes)

    def _least_loaded_lane(self) -> Lane:
        lanes = self.lanes
        return lanes[0] if len(lanes) == 1 else min(lanes, key=lambda x: x.outstanding)

    def submit(self, seq: Seq) -> None:
        self._least_loaded_lane().submit(seq)

    def submit_decode(self, seq: Seq) -> None:
        self._least_loaded_lane().submit_decode(seq)


__all__ = ["CRASH", "Lane", "LaneConfig", "Replica"]
