"""The long-run engine: a SimPy simulation at iteration/checkpoint granularity.

Processes: `train` (compute segments up to the next checkpoint, checkpoint stalls, recovery),
`failures` (one process for the whole job: sleeps until the earliest unit clock of the
vectorized FailureSampler, then interrupts `train`), one short `repair` process per failure
that returns nodes to the spare pool, and `episodes` for transient stragglers. A compute
segment is one timeout covering many iterations; interrupts cut it at the exact time.

Time accounting (seconds, summing to the wall time): productive (surviving iterations at the
healthy full-DP iteration time), elastic (extra iteration time with fewer replicas),
stragglers (extra time from the slowest node), rework (compute later rolled back), restart
(detection + re-init + checkpoint load, and reconfigurations), checkpoint (stalls), and
waiting_spare. Every piece of compute is kept in a ledger keyed by iteration range until a
persistent checkpoint covers it, so a rollback moves exactly the lost pieces to rework.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from simulator.longrun.checkpoint_modes import CHECKPOINT_MODES
from simulator.longrun.config import JobShape, RunConfig, ShortagePolicy
from simulator.longrun.failures import FailureSampler, Scope
from simulator.longrun.invariants import check_run_result
from simulator.longrun.results import LOST_KEYS, RunResult
from simulator.longrun.spot import PREEMPTION, PreemptionSource, spot_outcome
from simulator.longrun.stragglers import StragglerKind

IterationTimeFn = Callable[[int], float]


class Phase(StrEnum):
    """What the job is doing between two events; the lost-time phases share the names of
    RunResult.time_lost_s keys they are booked to."""

    COMPUTE = "compute"  # iterations, up to the next checkpoint
    BATCH = "batch"  # fast-forwarded whole checkpoint cycles (compute + stall)
    CHECKPOINT = "checkpoint"  # checkpoint stall
    RESTART = "restart"  # detection + re-init + checkpoint load, reconfiguration
    WAITING_SPARE = "waiting_spare"  # short of nodes, no spare free

# Without a duration, a token-budget run stops after this many ideal run times.
BUDGET_ONLY_CAP = 50.0
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class _Failure:
    """Interrupt cause: a failure that took `lost_nodes` node slots out of the job; an
    announced one (a preemption) needs no detection, and with save_s set an emergency
    checkpoint of that many seconds is taken before the restart."""

    cause: str
    lost_nodes: tuple[int, ...]
    announced: bool = False
    save_s: float | None = None


class _RateChange:
    """Interrupt cause: the straggler slowdown changed mid-segment."""


_RATE_CHANGE = _RateChange()


class _Run:
    """One seeded simulation of a long training run."""

    def __init__(self, cfg: RunConfig, job: JobShape, iteration_time_s: IterationTimeFn,
                 seed: int, fast_forward: bool = True) -> None:
        cfg.check_job(job)
        self.fast_forward = fast_forward
        self.cfg, self.job = cfg, job
        self._iteration_time_fn = iteration_time_s
        self._base_cache: dict[int, float] = {}
        self.t_full = self._base(job.dp)
        # the 4th child is the spot stream: the first three are those of a run without spot
        ss_fail, ss_strag, ss_repair, ss_spot = np.random.SeedSequence(seed).spawn(4)
        self.seed = seed
        self.env = simpy.Environment()
        n = job.num_nodes
        self.present = np.ones(n, dtype=bool)
        self.pool = cfg.spares
        self.strag_rng = np.random.default_rng(ss_strag)
        self.slow = np.ones(n)
        self.slow_since = np.zeros(n)
        self.slot_epoch = np.zeros(n, dtype=np.int64)
        if cfg.stragglers is not None:
            self.slow = cfg.stragglers.draw_nodes(self.strag_rng, n)
        self.sampler = (FailureSampler(cfg.failures, num_gpus=job.num_gpus,
                                       gpus_per_node=job.gpus_per_node,
                                       nodes_per_leaf=job.nodes_per_leaf,
                                       rng=np.random.default_rng(ss_fail))
                        if cfg.failures is not None else None)
        del ss_repair  # reserved: repairs are deterministic today
        ck = cfg.checkpoint
        self.mode = CHECKPOINT_MODES.get(ck.mode)
        self.k = max(1, round(ck.interval_s / self.t_full))
        self.it = 0.0
        self.ledger: list[list[float]] = []  # [start_it, end_it, wall, productive, elastic, slow]
        self.kept = {"productive": 0.0, "elastic": 0.0, "stragglers": 0.0}
        self.lost = {k: 0.0 for k in LOST_KEYS if k not in self.kept}
        self.durable_it = 0.0
        self.pending: list[tuple[float, float]] = []  # async writes: (commit time, iteration)
        self.mem_it = 0.0
        self.snapshots = 0
        self.restore_from_memory = False
        self.interruptions: Counter[str] = Counter()
        self.interruption_log: list[tuple[float, str]] = []  # (time, cause), for plots
        self.downtime_log: list[tuple[float, float, str]] = []  # (start, end, Phase)
        self.min_dp_seen = job.dp
        self.series_t: list[float] = [0.0]
        self.series_it: list[float] = [0.0]
        self.phase: tuple | None = None  # (Phase, start_time, ...)
        self.phase_extra: tuple = ()
        self.phase_start = 0.0
        self.spare_event: simpy.Event | None = None
        self.in_failure_handler = False
        self.finished = self.env.event()
        self.time_to_train_s: float | None = None
        self.budget_it = (math.inf if cfg.token_budget is None
                          else cfg.token_budget / job.tokens_per_iteration)
        self.end_s = (cfg.duration_s if cfg.duration_s is not None
                      else BUDGET_ONLY_CAP * self.budget_it * self.t_full)
        self._init_spot(ss_spot)
        self.train_proc = self.env.process(self._train())
        self.fail_proc = self.env.process(self._failures()) if self.sampler else None
        self.spot_proc = (self.env.process(self._preemptions())
                          if self.spot_src is not None else None)
        st = cfg.stragglers
        if st is not None and st.kind is StragglerKind.TRANSIENT and st.fraction > 0:
            self.env.process(self._episodes())

    # ------------------------------------------------------------ iteration time

    def _base(self, dp: int) -> float:
        """Healthy iteration time with dp replicas (cached: the callable may be expensive)."""
        if dp not in self._base_cache:
            t = float(self._iteration_time_fn(dp))
            if not (t > 0 and math.isfinite(t)):
                raise ConfigError(f"iteration time must be > 0, got {t!r} for dp={dp}",
                                  key="iteration_time_s")
            if dp < self.job.dp and t < self._base_cache[self.job.dp] * (1 - 1e-9):
                # fewer replicas finishing the same global batch sooner: the plan's DP
                # communication costs more than a replica adds, and elastic time would be
                # priced as a gain (negative loss, ETTR > 1). Say so instead.
                full = self._base_cache[self.job.dp]
                raise ConfigError(
                    f"with on_shortage: elastic the job shrinks to dp={dp}, where an iteration "
                    f"takes {t:.4g} s, less than {full:.4g} s at the full dp={self.job.dp}: "
                    "this plan's data-parallel communication costs more than the replicas "
                    f"add, so plan at dp={dp} (fewer devices) or use on_shortage: wait",
                    key="run.on_shortage", allowed="wait, elastic")
            self._base_cache[dp] = t
        return self._base_cache[dp]

    def _dp_active(self) -> int:
        return self.job.dp - self.job.replicas_lost(int((~self.present).sum()))

    def _slow_factor(self) -> float:
        return float(self.slow[self.present].max()) if self.present.any() else 1.0

    # ------------------------------------------------------------ phases and ledger

    def _open(self, kind: Phase, *extra: float) -> None:
        if self.phase is not None:
            self._close()
        self.phase = (kind, self.env.now, *extra)

    def _close(self) -> None:
        """Account the phase that ends now (also when it is cut short by an interrupt)."""
        if self.phase is None:
            return
        kind, start = self.phase[0], self.phase[1]
        self.phase_extra = self.phase[2:]
        self.phase_start = start
        elapsed = self.env.now - start
        self.phase = None
        if kind is Phase.BATCH:
            self._close_batch(elapsed)
            return
        if kind is not Phase.COMPUTE:
            self.lost[kind] += elapsed
            if kind is not Phase.CHECKPOINT and elapsed > 0:
                self.downtime_log.append((start, self.env.now, str(kind)))
            return
        t_it, base, start_it, target = self.phase_extra
        iters = elapsed / t_it
        end_it = target if abs(start_it + iters - target) < 1e-6 else start_it + iters
        iters = end_it - start_it
        if iters <= 0 and elapsed <= 0:
            return
        self.ledger.append([start_it, end_it, elapsed, iters * self.t_full,
                            iters * (base - self.t_full), elapsed - iters * base])
        self.it = end_it
        self.series_t.append(self.env.now)
        self.series_it.append(end_it)

    def _add_piece(self, start_it: float, iters: float, t_it: float, base: float) -> None:
        if iters > 0:
            wall = iters * t_it
            self.ledger.append([start_it, start_it + iters, wall, iters * self.t_full,
                                iters * (base - self.t_full), wall - iters * base])

    def _batchable_cycles(self, t_it: float) -> int:
        """Whole checkpoint cycles that surely complete before anything else can happen."""
        ck, st = self.cfg.checkpoint, self.cfg.stragglers
        if not self.fast_forward:
            return 0
        # equal cycles only: every snapshot persists, and a background write ends in its cycle
        if not self.mode.persist_every_snapshot or (not self.mode.blocking_write
                                                    and ck.write_s > self.k * t_it):
            return 0
        if st is not None and (st.kind is StragglerKind.TRANSIENT or st.evict_after_s is not None):
            return 0
        if not self.present.all() or abs(self.it / self.k - round(self.it / self.k)) > 1e-9:
            return 0
        horizon = self.end_s
        if self.sampler is not None:
            horizon = min(horizon, self.sampler.next_failure()[0])
        if self.spot_src is not None:
            horizon = min(horizon, self.spot_src.next_time(self.present))
        cycle_s = self.k * t_it + ck.stall_s
        n = math.floor((horizon - self.env.now) / cycle_s) - 1
        if math.isfinite(self.budget_it):
            n = min(n, math.floor((self.budget_it - self.it) / self.k + _EPS) - 1)
        return max(0, n)

    def _close_batch(self, elapsed: float) -> None:
        """Account a (possibly cut) run of cycles: compute k iterations, then stall."""
        t_it, base, it0, cycles, cycle_s = self.phase_extra
        k, ck = self.k, self.cfg.checkpoint
        done = min(int(cycles), math.floor(elapsed / cycle_s + 1e-12))
        rest = elapsed - done * cycle_s
        partial_iters = min(rest, k * t_it) / t_it if done < cycles else 0.0
        self.lost["checkpoint"] += done * ck.stall_s + max(0.0, rest - k * t_it)
        if self.mode.blocking_write or done == 0:
            self._add_piece(it0, done * k, t_it, base)
            if done and self.mode.blocking_write:
                self.durable_it = self.mem_it = it0 + done * k
        else:  # async: the last snapshot's write may still be in flight
            self._add_piece(it0, (done - 1) * k, t_it, base)
            self._add_piece(it0 + (done - 1) * k, k, t_it, base)
            last_commit = self.phase_start + done * cycle_s + ck.write_s
            self.durable_it = max(self.durable_it, it0 + (done - 1) * k)
            self.pending = [(last_commit, it0 + done * k)]
            self.mem_it = it0 + done * k
        self._add_piece(it0 + done * k, partial_iters, t_it, base)
        self.it = it0 + done * k + partial_iters
        self._commit_pending()
        self._collapse()
        self.series_t.append(self.env.now)
        self.series_it.append(self.it)

    def _collapse(self) -> None:
        """Ledger pieces a persistent checkpoint covers can no longer be lost."""
        keep = []
        for piece in self.ledger:
            if piece[1] <= self.durable_it + _EPS:
                self.kept["productive"] += piece[3]
                self.kept["elastic"] += piece[4]
                self.kept["stragglers"] += piece[5]
            else:
                keep.append(piece)
        self.ledger = keep

    def _rollback(self, restore_it: float) -> None:
        keep = []
        for piece in self.ledger:
            if piece[0] >= restore_it - _EPS:
                self.lost["rework"] += piece[2]
            else:
                keep.append(piece)
        self.ledger = keep
        self.it = restore_it
        self.series_t.append(self.env.now)
        self.series_it.append(restore_it)

    def _commit_pending(self) -> None:
        now = self.env.now
        done = [it for t, it in self.pending if t <= now + _EPS]
        if done:
            self.durable_it = max(self.durable_it, max(done))
            self.pending = [(t, it) for t, it in self.pending if t > now + _EPS]
            self._collapse()

    # ------------------------------------------------------------ training process

    def _next_target(self) -> float:
        nxt = (math.floor(self.it / self.k + _EPS) + 1) * self.k
        return min(float(nxt), self.budget_it)

    def _train(self):  # type: ignore[no-untyped-def]
        while True:
            try:
                if self.it >= self.budget_it - _EPS:
                    self.time_to_train_s = self.env.now
                    self.finished.succeed()
                    return
                dp = self._dp_active()
                base = self._base(dp)
                t_it = base * self._slow_factor()
                cycles = self._batchable_cycles(t_it)
                if cycles >= 2:  # fast-forward whole checkpoint cycles before the next event
                    cycle_s = self.k * t_it + self.cfg.checkpoint.stall_s
                    self._open(Phase.BATCH, t_it, base, self.it, cycles, cycle_s)
                    yield self.env.timeout(cycles * cycle_s)
                    self._close()
                    continue
                target = self._next_target()
                self._open(Phase.COMPUTE, t_it, base, self.it, target)
                yield self.env.timeout((target - self.it) * t_it)
                self._close()
                if self.it >= self.budget_it - _EPS:
                    continue
                yield from self._checkpoint()
                yield from self._maintain()
            except simpy.Interrupt as intr:
                self._close()
                if isinstance(intr.cause, _Failure):
                    yield from self._recover(intr.cause)

    def _stall(self, seconds: float):  # type: ignore[no-untyped-def]
        if seconds > 0:
            self._open(Phase.CHECKPOINT)
            yield self.env.timeout(seconds)
            self._close()

    def _checkpoint(self):  # type: ignore[no-untyped-def]
        ck = self.cfg.checkpoint
        if self.mode.blocking_write:
            yield from self._stall(ck.write_s)
            self.durable_it = self.it
            self.mem_it = self.it
            self._collapse()
            return
        self._commit_pending()
        self.snapshots += 1
        persistent = (self.mode.persist_every_snapshot
                      or self.snapshots % ck.persistent_every == 0)
        if persistent and self.pending:  # one background write at a time
            yield from self._stall(self.pending[-1][0] - self.env.now)
            self._commit_pending()
        yield from self._stall(ck.snapshot_s)
        self.mem_it = self.it
        if persistent:
            self.pending.append((self.env.now + ck.write_s, self.it))
            self._commit_pending()

    def _maintain(self):  # type: ignore[no-untyped-def]
        """At a checkpoint: rejoin repaired nodes (elastic) and evict detected stragglers."""
        evict = self._stragglers_to_evict()
        missing = int((~self.present).sum())
        take = evict[: max(0, self.pool - missing)]
        if not take.size and not (missing and self.pool):
            return
        if take.size:
            self.interruptions["straggler_eviction"] += 1
            self.interruption_log.append((self.env.now, "straggler_eviction"))
            self._spot_spend()
            self.present[take] = False
            self._spot_replan()
            self.env.process(self._repair(int(take.size), self._evict_repair_s()))
        self._fill_slots()
        self._open(Phase.RESTART)
        yield self.env.timeout(self.cfg.restart_s + self.cfg.checkpoint.read_s)
        self._close()

    def _evict_repair_s(self) -> float:
        return 3 * 86400.0  # an evicted slow node is serviced like a hardware repair

    def _stragglers_to_evict(self) -> np.ndarray:
        st = self.cfg.stragglers
        if st is None or st.evict_after_s is None or self.pool == 0:
            return np.empty(0, dtype=np.int64)
        due = self.present & (self.slow > 1.0) & (self.slow_since + st.evict_after_s
                                                   <= self.env.now)
        return np.flatnonzero(due)

    # ------------------------------------------------------------ recovery

    def _restore_point(self, failure: _Failure) -> tuple[float, bool]:
        """(iteration to restart from, whether it comes from the in-memory/peer copy)."""
        self._commit_pending()
        self.pending = []  # a write in flight dies with the job
        if self.mode.restore_from_peer and self.mem_it > self.durable_it:
            lost = set(failure.lost_nodes)
            n = self.job.num_nodes
            peer_lost = any((node ^ 1) in lost for node in lost if (node ^ 1) < n)
            if not peer_lost:
                return self.mem_it, True
        return self.durable_it, False

    def _recover(self, failure: _Failure):  # type: ignore[no-untyped-def]
        rework0 = self.lost["rework"]
        if failure.save_s is not None:
            failure = (yield from self._emergency_save(failure)) or failure
        restore_it, from_memory = self._restore_point(failure)
        self._rollback(restore_it)
        self.mem_it = restore_it
        if failure.cause == PREEMPTION:
            self.spot_lost_work_s += self.lost["rework"] - rework0
        detect_s = 0.0 if failure.announced else self.cfg.detection_s
        deadline: float | None = None
        while True:
            try:
                if deadline is None:
                    yield from self._acquire_nodes()
                    ck = self.cfg.checkpoint
                    load_s = ck.memory_load_s if from_memory else ck.read_s
                    deadline = self.env.now + detect_s + self.cfg.restart_s + load_s
                    self._open(Phase.RESTART)
                yield self.env.timeout(deadline - self.env.now)
                self._close()
                return
            except simpy.Interrupt as intr:
                if not isinstance(intr.cause, _Failure):
                    continue  # a slowdown change does not disturb a restart
                self._close()
                deadline = None
                detect_s = max(detect_s, 0.0 if intr.cause.announced else self.cfg.detection_s)
                rework0 = self.lost["rework"]
                again, mem = self._restore_point(intr.cause)
                if again < restore_it - _EPS:
                    restore_it, from_memory = again, mem
                    self._rollback(restore_it)
                    self.mem_it = restore_it
                else:
                    from_memory = from_memory and mem
                if intr.cause.cause == PREEMPTION:
                    self.spot_lost_work_s += self.lost["rework"] - rework0

    def _fill_slots(self) -> None:
        missing = np.flatnonzero(~self.present)
        take = missing[: self.pool]
        if take.size == 0:
            return
        self.pool -= int(take.size)
        self._spot_spend()
        self.present[take] = True
        self._spot_back(take)
        self.slot_epoch[take] += 1
        if self.cfg.stragglers is not None:
            self.slow[take] = self.cfg.stragglers.draw_nodes(self.strag_rng, int(take.size))
            self.slow_since[take] = self.env.now
        if self.sampler is not None:
            self.sampler.set_nodes(take, self.env.now, present=True)
            self._replan()

    def _acquire_nodes(self):  # type: ignore[no-untyped-def]
        while True:
            self._fill_slots()
            missing = int((~self.present).sum())
            if missing == 0:
                return
            if (self.cfg.shortage is ShortagePolicy.ELASTIC
                    and self._dp_active() >= self.cfg.min_dp):
                self.min_dp_seen = min(self.min_dp_seen, self._dp_active())
                return
            self.spare_event = self.env.event()
            self._open(Phase.WAITING_SPARE)
            yield self.spare_event
            self._close()

    def _repair(self, nodes: int, repair_s: float):  # type: ignore[no-untyped-def]
        yield self.env.timeout(repair_s)
        self.pool += nodes
        if self.spare_event is not None and not self.spare_event.triggered:
            self.spare_event.succeed()

    # ------------------------------------------------------------ spot preemptions

    def _init_spot(self, ss_spot: np.random.SeedSequence) -> None:
        """Spot slots are the job's last round(fraction * nodes) node slots."""
        spot, n = self.cfg.spot, self.job.num_nodes
        self.spot_src: PreemptionSource | None = None
        self.spot_lost_work_s = 0.0
        self.emergency_checkpoints = 0
        self.preempted_nodes = 0
        self.spot_gone_since = np.full(n, np.nan)  # preempted slot: billing stopped at
        self.spot_gone_s = 0.0
        self.in_spot_handler = False
        if spot is None:
            return
        slots = np.arange(n - spot.spot_nodes(n), n, dtype=np.int64)
        if slots.size and (spot.rate_per_node_s > 0 or spot.events):
            self.spot_src = PreemptionSource(spot, spot_slots=slots,
                                             rng=np.random.default_rng(ss_spot))

    def _spot_spend(self) -> None:
        if self.spot_src is not None:
            self.spot_src.spend(self.env.now, self.present)

    def _spot_replan(self) -> None:
        if (self.spot_src is not None and not self.in_spot_handler
                and self.spot_proc is not None and self.spot_proc.is_alive):
            self.spot_proc.interrupt("replan")

    def _spot_back(self, slots: np.ndarray) -> None:
        """Filled slots that were preempted are billed again from now."""
        gone = slots[~np.isnan(self.spot_gone_since[slots])]
        if gone.size:
            self.spot_gone_s += float(np.maximum(
                0.0, self.env.now - self.spot_gone_since[gone]).sum())
            self.spot_gone_since[gone] = np.nan
        self._spot_replan()

    def _preemptions(self):  # type: ignore[no-untyped-def]
        src = self.spot_src
        assert src is not None  # only started with a source
        while True:
            t = src.next_time(self.present)
            try:
                if math.isinf(t):
                    yield self.env.event()  # no spot node present: wait for a replan
                else:
                    yield self.env.timeout(max(0.0, t - self.env.now))
            except simpy.Interrupt:
                continue
            self.in_spot_handler = True
            try:
                self._on_preemption(src.take(self.env.now, self.present))
            finally:
                self.in_spot_handler = False

    def _on_preemption(self, hit: np.ndarray) -> None:
        """Notice for `hit`: the slots leave now, billing stops when the warning ends."""
        spot, now = self.cfg.spot, self.env.now
        assert spot is not None
        if hit.size == 0:
            return
        self.present[hit] = False
        self.spot_gone_since[hit] = now + spot.warning_s
        if self.sampler is not None:
            self.sampler.set_nodes(hit, now, present=False)
            self._replan()
        if math.isfinite(spot.replacement_s):
            self.env.process(self._repair(int(hit.size), spot.warning_s + spot.replacement_s))
        self.preempted_nodes += int(hit.size)
        self.interruptions[PREEMPTION] += 1
        self.interruption_log.append((now, PREEMPTION))
        save_s = self.cfg.checkpoint.write_s
        if self.train_proc.is_alive:
            self.train_proc.interrupt(_Failure(
                PREEMPTION, tuple(int(n) for n in hit), announced=True,
                save_s=save_s if spot.warning_s >= save_s else None))

    def _emergency_save(self, failure: _Failure):  # type: ignore[no-untyped-def]
        """Persist the state inside the warning window; returns the failure that aborted
        the save (None: saved, nothing since the notice is lost)."""
        assert failure.save_s is not None
        end = self.env.now + failure.save_s
        self._open(Phase.CHECKPOINT)
        while True:
            try:
                yield self.env.timeout(max(0.0, end - self.env.now))
                break
            except simpy.Interrupt as intr:
                if isinstance(intr.cause, _Failure):
                    self._close()
                    return intr.cause
        self._close()
        self.pending = []
        self.durable_it = self.mem_it = self.it
        self._collapse()
        self.emergency_checkpoints += 1
        return None

    # ------------------------------------------------------------ failures and stragglers

    def _replan(self) -> None:
        if self.fail_proc is not None and not self.in_failure_handler and self.fail_proc.is_alive:
            self.fail_proc.interrupt("replan")

    def _failures(self):  # type: ignore[no-untyped-def]
        assert self.sampler is not None  # only started with a sampler
        while True:
            t, comp_i, unit = self.sampler.next_failure()
            try:
                if math.isinf(t):
                    yield self.env.event()  # nothing can fail until a replan
                else:
                    yield self.env.timeout(max(0.0, t - self.env.now))
            except simpy.Interrupt:
                continue
            self.in_failure_handler = True
            try:
                self._on_failure(comp_i, unit)
            finally:
                self.in_failure_handler = False

    def _on_failure(self, comp_i: int, unit: int) -> None:
        sampler = self.sampler
        assert sampler is not None
        comp = sampler.component(comp_i)
        now = self.env.now
        if comp.replace:
            hit = np.array([n for n in sampler.nodes_hit(comp_i, unit) if self.present[n]],
                           dtype=np.int64)
            if comp.scope is Scope.SWITCH:
                sampler.renew_unit(comp_i, unit, now)
            if hit.size == 0:
                return
            self._spot_spend()
            self.present[hit] = False
            self._spot_replan()
            sampler.set_nodes(hit, now, present=False)
            self.env.process(self._repair(int(hit.size), comp.repair_s))
            lost = tuple(int(n) for n in hit)
        else:
            sampler.renew_unit(comp_i, unit, now)
            lost = ()
        self.interruptions[comp.cause] += 1
        self.interruption_log.append((now, comp.cause))
        if self.train_proc.is_alive:
            self.train_proc.interrupt(_Failure(comp.cause, lost))

    def _episodes(self):  # type: ignore[no-untyped-def]
        st = self.cfg.stragglers
        assert st is not None
        rate = st.episode_rate_per_s(self.job.num_nodes)
        rng = self.strag_rng
        while True:
            yield self.env.timeout(rng.exponential(1.0 / rate))
            node = int(rng.integers(self.job.num_nodes))
            if not self.present[node] or self.slow[node] > 1.0:
                continue
            self.slow[node] = st.draw_slowdowns(rng, 1)[0]
            self.slow_since[node] = self.env.now
            self.env.process(self._episode_end(node, int(self.slot_epoch[node]),
                                               rng.exponential(st.mean_duration_s)))
            self._rate_changed()

    def _episode_end(self, node: int, epoch: int, duration_s: float):  # type: ignore[no-untyped-def]
        yield self.env.timeout(duration_s)
        if self.slot_epoch[node] == epoch:
            self.slow[node] = 1.0
            self._rate_changed()

    def _rate_changed(self) -> None:
        if self.phase is not None and self.phase[0] is Phase.COMPUTE and self.train_proc.is_alive:
            self.train_proc.interrupt(_RATE_CHANGE)

    # ------------------------------------------------------------ run and result

    def run(self) -> RunResult:
        cfg = self.cfg
        self.env.run(until=self.env.any_of([self.finished, self.env.timeout(self.end_s)]))
        self._close()
        wall = self.env.now
        for piece in self.ledger:  # the job ends: surviving compute counts as progress
            self.kept["productive"] += piece[3]
            self.kept["elastic"] += piece[4]
            self.kept["stragglers"] += piece[5]
        self.ledger = []
        tokens = self.it * self.job.tokens_per_iteration
        lost = {"restart": self.lost["restart"], "rework": self.lost["rework"],
                "checkpoint": self.lost["checkpoint"], "stragglers": self.kept["stragglers"],
                "waiting_spare": self.lost["waiting_spare"], "elastic": self.kept["elastic"]}
        lost = {k: 0.0 if abs(v) < 1e-6 else v for k, v in lost.items()}  # float dust
        mttf = (1.0 / cfg.failures.job_rate_per_s(num_gpus=self.job.num_gpus,
                                                  gpus_per_node=self.job.gpus_per_node,
                                                  nodes_per_leaf=self.job.nodes_per_leaf)
                if cfg.failures is not None else math.inf)
        tokens_per_it = self.job.tokens_per_iteration
        step = max(1, len(self.series_t) // 4000)  # keep the plotted series small
        ts = self.series_t[::step] + [wall]
        its = self.series_it[::step] + [self.it]
        return RunResult(
            ettr=self.kept["productive"] / wall if wall > 0 else 0.0,
            goodput_tokens_per_s=tokens / wall if wall > 0 else 0.0,
            ideal_tokens_per_s=tokens_per_it / self.t_full,
            wall_s=wall,
            productive_s=self.kept["productive"],
            iterations=self.it,
            tokens=tokens,
            time_to_train_s=self.time_to_train_s,
            interruptions=FrozenMap(dict(self.interruptions)),
            time_lost_s=FrozenMap(lost),
            job_mttf_s=mttf,
            iteration_time_s=self.t_full,
            checkpoint_every_iterations=self.k,
            checkpoint_interval_s=self.k * self.t_full,
            checkpoint_stall_s=cfg.checkpoint.stall_s,
            restart_overhead_s=cfg.detection_s + cfg.restart_s + cfg.checkpoint.read_s,
            min_dp_seen=self.min_dp_seen,
            seed=self.seed,
            progress_t_s=tuple(ts),
            progress_tokens=tuple(i * tokens_per_it for i in its),
            interruption_events=tuple(self.interruption_log),
            downtime_spans=tuple(self.downtime_log),
            spot=self._spot_result(wall, tokens),
        )

    def _spot_result(self, wall: float, tokens: float):  # type: ignore[no-untyped-def]
        """The bill: spot slots while held (not between a preemption and the refill),
        on-demand slots and hot spares for the whole run."""
        spot = self.cfg.spot
        if spot is None:
            return None
        n = self.job.num_nodes
        n_spot = spot.spot_nodes(n)
        open_gone = self.spot_gone_since[~np.isnan(self.spot_gone_since)]
        gone_s = self.spot_gone_s + float(np.maximum(0.0, wall - open_gone).sum())
        return spot_outcome(spot, preemptions=self.preempted_nodes,
                            emergency_checkpoints=self.emergency_checkpoints,
                            lost_work_s=self.spot_lost_work_s,
                            spot_node_s=n_spot * wall - gone_s,
                            on_demand_node_s=(n - n_spot + self.cfg.spares) * wall,
                            gpus_per_node=self.job.gpus_per_node, tokens=tokens,
                            time_to_train_s=self.time_to_train_s)


def simulate_longrun(cfg: RunConfig, job: JobShape, iteration_time_s: IterationTimeFn, *,
                     seed: int = 0, fast_forward: bool = True,
                     scenario: str | None = None) -> RunResult:
    """Simulate one seeded run of `job` under `cfg`; iteration_time_s(dp) gives step time.

    fast_forward jumps over whole checkpoint cycles that end before the next failure (same
    result as stepping them one by one; off only to check exactly that). The result's
    invariants (simulator.longrun.invariants) are checked: a violation is an InvariantError
    naming `scenario`.
    """
    result = _Run(cfg, job, iteration_time_s, seed, fast_forward=fast_forward).run()
    check_run_result(result, scenario=scenario)
    return result
