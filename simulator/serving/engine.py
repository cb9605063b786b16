"""The serving engine: arrivals -> router(s) -> replicas, in one SimPy environment.

The engine is independent of hwmodels: each replica is described by a ReplicaSetup holding its
step-cost callable (production: hwmodels.step.StepCostModel via steptime.step_cost_from_model;
tests may inject any callable) and its lane limits. Every request ends exactly once:
completed, dropped (with a reason) or running at the horizon; outcomes land in a typed
records.RequestLog and cluster events as records.EngineEvent.

Cluster layer (ClusterOptions, all optional): replicas of several groups (devices, prices,
speeds), disaggregated prefill/decode pools with KV transfers (transfer.py), several front-end
router instances and per-step power (power.py). Periodic behaviours are extensions
(hooks.EngineExtension) that see the engine only as a hooks.Cluster: crashes with retries
(failures.py), autoscaling (autoscale.py), live migration (migration.py) and power capping
(power_control.py); `extensions=` adds more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from hwmodels.errors import ConfigError
from simulator.serving.autoscale import Autoscaler
from simulator.serving.closed_loop import ClosedLoopSource
from simulator.serving.cluster_config import (
    AutoscaleConfig,
    FailureConfig,
    MigrationConfig,
    PowerConfig,
    Role,
)
from simulator.serving.failures import FailureInjector
from simulator.serving.hooks import EngineExtension
from simulator.serving.kinds import ReplicaState
from simulator.serving.lane_stats import lanes_frame, timeseries_frame
from simulator.serving.migration import Rebalancer
from simulator.serving.power import CapController, LanePower, PowerMeter
from simulator.serving.power_control import PowerCapping
from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.records import EngineEvent, EventKind, RequestLog, events_frame
from simulator.serving.replica import Lane, Replica
from simulator.serving.replica_setup import ReplicaSetup
from simulator.serving.request import DropReason, Seq
from simulator.serving.routers import RouterKind, make_router
from simulator.serving.schedulers import make_scheduler
from simulator.serving.steptime import StepTimer
from simulator.serving.transfer import ReplicaPlacement, TransferModel
from traces.closed_loop import ClientsSpec


@dataclass(slots=True, kw_only=True)
class ClusterOptions:
    """Optional cluster behaviour of one run (parsed from the scenario's sections)."""

    routers: int = 1
    decode_router: RouterKind = RouterKind.LEAST_LOADED
    transfer: Any = None  # (intra LinkCost, inter LinkCost, devices_per_node, same_node)
    power: PowerConfig | None = None
    cap_w: dict[str, float] = field(default_factory=dict)  # static cap per group (W/device)
    cap_controller: Callable[[], CapController] | None = None
    failures: FailureConfig | None = None
    autoscale: AutoscaleConfig | None = None
    migration: MigrationConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOutput:
    """Raw results: per-request records, time series and per-lane accounting."""

    records: pd.DataFrame
    timeseries: pd.DataFrame
    lanes: pd.DataFrame
    duration_s: float
    prefix_hit_rate: float | None
    replicas: pd.DataFrame | None = None
    power: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    energy_j: float | None = None  # per-step power + idle, integrated (None: no step power)


# bin width of the per-step energy meter of runs without a power: section (whose power time
# series is not reported); energy is the same per-step model either way (issue 13)
_ENERGY_BIN_S = 10.0
_ENERGY_POWER = PowerConfig(bin_s=_ENERGY_BIN_S, devices_per_server=8)


def extensions_for(opts: ClusterOptions) -> list[EngineExtension]:
    """The extensions a run's options ask for, in start order (failures, autoscaling,
    migration, power capping)."""
    exts: list[EngineExtension] = []
    if opts.failures is not None:
        exts.append(FailureInjector(opts.failures))
    if opts.autoscale is not None:
        exts.append(Autoscaler(opts.autoscale))
    if opts.migration is not None:
        exts.append(Rebalancer(opts.migration))
    if opts.power is not None and opts.cap_controller is not None:
        exts.append(PowerCapping(opts.power, opts.cap_controller))
    return exts


class ServingEngine:
    """Build replicas, replay `requests` (DataFrame sorted by arrival_time_s) or run closed-loop
    `clients` (requests then unused), collect records."""

    def __init__(self, requests: pd.DataFrame, setups: Sequence[ReplicaSetup], *,
                 router: RouterKind | str = RouterKind.ROUND_ROBIN, seed: int = 0,
                 horizon_s: float | None = None, prefix_block_tokens: int | None = None,
                 progress: Callable[[float], None] | None = None,
                 cluster: ClusterOptions | None = None,
                 extensions: Sequence[EngineExtension] = (),
                 on_step: Callable[[Lane, float, float], None] | None = None,
                 clients: ClientsSpec | None = None) -> None:
        self.env = simpy.Environment()
        self.horizon_s = horizon_s
        self.progress = progress
        self.on_step = on_step  # per-step observer of every lane: (lane, start_s, end_s)
        self.opts = opts = cluster or ClusterOptions()
        ss = np.random.SeedSequence(seed)
        router_ss, self.fail_ss = ss.spawn(2)
        self.source: ClosedLoopSource | None = None
        if clients is None:
            self._load_requests(requests, prefix_block_tokens)
            self.requests = RequestLog(self.arrival, self.prompt, self.output)
            self.remaining = self.n  # requests not yet ended (completed or dropped)
        else:  # closed loop: requests are issued as earlier ones end (closed_loop.py)
            self.n, self.hashes = 0, None
            self.source = ClosedLoopSource(self, clients,
                                           np.random.default_rng(ss.spawn(1)[0]))
            self.block_tokens = prefix_block_tokens or self.source.sampler.block_tokens
            self.remaining = 1  # the source itself, until its last client retires
        self.events: list[EngineEvent] = []
        self.migrations = 0
        self.routers = [make_router(router, np.random.default_rng(s))
                        for s in router_ss.spawn(max(1, opts.routers))]
        self.decode_router = make_router(opts.decode_router,
                                         np.random.default_rng(router_ss.spawn(1)[0]))
        # always metered: energy comes from the per-step power model with or without a
        # power: section (the section adds the time series, bins and caps)
        self.power_cfg = opts.power if opts.power is not None else _ENERGY_POWER
        self.meter = PowerMeter(self.power_cfg.bin_s)
        self.setups = list(setups)
        self.replicas: list[Replica] = []
        self.setup_of: list[ReplicaSetup] = []
        self.lanes: list[Lane] = []
        self.max_model_len: list[int] = []
        self.transfer: TransferModel | None = None
        self._next_device = 0
        if any(s.role is not Role.BOTH for s in setups) or opts.migration is not None:
            intra, inter, per_node, same_node = opts.transfer
            self._per_node, self._same_node = per_node, same_node
            self.transfer = TransferModel(self.env, intra=intra, inter=inter)
        for setup in setups:
            self._build_replica(setup)
        self.entry = [r for r in self.replicas if r.role is not Role.DECODE]
        self.decode_pool = [r for r in self.replicas if r.role is Role.DECODE]
        self.pending: deque[Seq] = deque()  # no live replica to take them yet
        self.pending_decode: deque[tuple[Seq, Lane, int, int]] = deque()
        self._pools_changed()
        self._periodic = False
        self.done = self.env.event()
        self.env.process(self._arrivals() if self.source is None else self.source.start())
        self._start_extensions([*extensions_for(opts), *extensions])

    # -- building -----------------------------------------------------------------------------

    def _load_requests(self, requests: pd.DataFrame, prefix_block_tokens: int | None) -> None:
        """The trace's columns as arrays (optional: failed, prefix_hashes, session_id)."""
        n = self.n = len(requests)
        self.arrival = requests["arrival_time_s"].to_numpy(dtype=float)
        if n > 1 and np.any(np.diff(self.arrival) < 0):
            raise ValueError("requests must be sorted by arrival_time_s (traces.read_trace does)")
        self.prompt = requests["input_tokens"].to_numpy(dtype=np.int64)
        self.output = np.maximum(requests["output_tokens"].to_numpy(dtype=np.int64), 1)
        self.failed = (requests["failed"].to_numpy(dtype=bool) if "failed" in requests.columns
                       else np.zeros(n, dtype=bool))
        self.hashes = (list(requests["prefix_hashes"]) if "prefix_hashes" in requests.columns
                       else None)
        self.session = (requests["session_id"].to_numpy(dtype=np.int64)
                        if "session_id" in requests.columns else None)
        self.block_tokens = prefix_block_tokens or requests.attrs.get("hash_block_tokens") or None

    def _build_replica(self, setup: ReplicaSetup) -> Replica:
        r = len(self.replicas)
        cfg = setup.lane_config()
        lanes = []
        for i in range(setup.pp):
            prefix = None
            if setup.prefix_caching and self.hashes is not None:
                bt = int(self.block_tokens or cfg.block_size)
                if bt % cfg.block_size:
                    # a prefix entry must cover whole KV blocks (vLLM hashes and shares KV per
                    # full block): a 16-token hash on 32-token blocks charged a whole block per
                    # hash, counted shared blocks past the prompt and drove the pool negative
                    raise ConfigError(
                        f"prefix hash blocks of {bt} tokens are not a multiple of "
                        f"serving.kv_block_size {cfg.block_size}",
                        key="workload.prefix_block_tokens",
                        allowed=f"a multiple of {cfg.block_size} (workload.prefix_block_tokens, "
                                "or the synthetic prefix.block_tokens), or a kv_block_size "
                                f"dividing {bt}")
                prefix = PrefixCache(bt, bt // cfg.block_size)
            timer = StepTimer(setup.step_cost, knot_tokens=setup.knot_tokens)
            timer.slow = timer.dscale = setup.slowdown
            lane = Lane(self.env, cfg, make_scheduler(setup.scheduler), timer, prefix=prefix,
                        replica=r, lane=i, prefill_only=setup.role is Role.PREFILL)
            lane.on_finish = self._on_finish
            lane.on_first_token = self._on_first
            lane.on_drop = self._on_drop
            lane.on_handoff = self._on_handoff
            lane.on_step = self.on_step
            if setup.step_power is not None:
                lane.power = LanePower(setup.step_power, self.meter, r, lanes=setup.pp)
                lane.power.set_cap(None)
                cap = self.opts.cap_w.get(setup.group)
                if cap is not None:
                    lane.power.cap_w = cap
            lanes.append(lane)
            self.lanes.append(lane)
        rep = Replica(r, lanes, devices=setup.devices, capacity=setup.capacity,
                      group=setup.group, role=setup.role)
        rep.start_s = float(self.env.now)
        self.replicas.append(rep)
        self.setup_of.append(setup)
        self.max_model_len.append(cfg.max_model_len)
        if self.transfer is not None:
            per_node = self._per_node
            if self._same_node:  # pools interleaved so each prefill shares a node
                node = 0
            else:
                node = self._next_device // per_node
                self._next_device += -(-setup.devices // per_node) * per_node \
                    if setup.devices >= per_node else setup.devices
            self.transfer.add(ReplicaPlacement(node=node, devices=setup.devices,
                                               kv_bytes_per_token=setup.kv_bytes_per_token))
        return rep

    def _pools_changed(self) -> None:
        for router in self.routers:
            router.reset(self.entry)
        self.decode_router.reset(self.decode_pool)

    # -- callbacks --------------------------------------------------------------------------------

    def _end(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and self._periodic and not self.done.triggered:
            self.done.succeed()

    def _on_first(self, seq: Seq, now: float) -> None:
        self.requests.first_token(seq.rid, now)

    def _on_finish(self, seq: Seq, now: float) -> None:
        self.requests.complete(seq.rid, now, generated=seq.output, preemptions=seq.preemptions,
                               cached_tokens=max(seq.first_cached, 0))
        self._ended(seq.rid)

    def _on_drop(self, seq: Seq, reason: DropReason) -> None:
        # preemptions before it proved never to fit count too
        self.requests.drop(seq.rid, reason, preemptions=seq.preemptions)
        self._ended(seq.rid)

    def _drop_rid(self, rid: int, reason: DropReason) -> None:
        self.requests.drop(rid, reason)
        self._ended(rid)

    def _ended(self, rid: int) -> None:
        """Request rid completed or was dropped: count it, and let a closed-loop client go on."""
        self._end()
        if self.source is not None:
            self.source.ended(rid)

    def event(self, kind: EventKind, replica: int, detail: str = "") -> None:
        """Log a cluster event at the current time."""
        self.events.append(EngineEvent(time_s=self.env.now, kind=kind, replica=replica,
                                       detail=detail))

    @property
    def unrouted(self) -> int:
        """Requests waiting for any live replica."""
        return len(self.pending)

    # -- dispatch ---------------------------------------------------------------------------------

    def _dispatch(self, seq: Seq, router_index: int = 0) -> None:
        """Route a new (or retried) request to a live entry replica."""
        entry = self.entry
        if not entry:
            self.pending.append(seq)
            return
        rep = entry[self.routers[router_index].choose(seq, entry)]
        r = rep.index
        self.requests.replica[seq.rid] = r
        limit = self.max_model_len[r]
        if seq.prompt >= limit:
            self._drop_rid(seq.rid, DropReason.PROMPT_TOO_LONG)
            return
        if seq.prompt + seq.output > limit:
            # vLLM refuses prompt + max_tokens > max_model_len before scheduling anything;
            # shortening the output and counting it completed was a silent wrong answer
            self._drop_rid(seq.rid, DropReason.OUTPUT_TOO_LONG)
            return
        rep.submit(seq)

    def _arrivals(self):  # type: ignore[no-untyped-def]
        env, arrival, n = self.env, self.arrival, self.n
        nr = len(self.routers)
        tick = max(1, n // 100)
        hashes, session = self.hashes, self.session
        for i in range(n):
            t = arrival[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            if self.failed[i]:
                self._drop_rid(i, DropReason.FAILED_IN_TRACE)
                continue
            seq = Seq(i, t, int(self.prompt[i]), int(self.output[i]),
                      hashes[i] if hashes is not None else (),
                      int(session[i]) if session is not None else -1)
            self._dispatch(seq, i % nr if nr > 1 else 0)
            if self.progress is not None and i % tick == 0:
                self.progress(i / n)

    def retry(self, seq: Seq) -> None:
        """A request lost with its replica: again from scratch elsewhere, or dropped when
        its retry budget is spent."""
        rid = seq.rid
        budget = self.opts.failures.retry_budget if self.opts.failures is not None else 0
        log = self.requests
        if log.retries[rid] >= budget:
            self._drop_rid(rid, DropReason.RETRIES_EXHAUSTED)
            return
        log.retries[rid] += 1
        log.preemptions[rid] += seq.preemptions
        self._dispatch(Seq(rid, seq.arrival_s, int(self.prompt[rid]), int(self.output[rid]),
                           seq.hashes, seq.session))

    # -- KV transfers (disaggregation, migration) ----------------------------------------------

    def _on_handoff(self, lane: Lane, seq: Seq, now: float, held: int) -> None:
        pool = self.decode_pool
        if not pool:
            self.pending_decode.append((seq, lane, lane.epoch, held))
            return
        dst = pool[self.decode_router.choose(seq, pool)]
        self.env.process(self._transfer(seq, lane, lane.epoch, held, dst))

    def _transfer(self, seq: Seq, src_lane: Lane, epoch: int, held: int,
                  dst: Replica) -> Generator[simpy.Event, Any, None]:
        start = self.env.now
        src = src_lane.replica
        self.requests.decode_replica[seq.rid] = dst.index
        yield from self.transfer.move(src, dst.index, seq.target)  # type: ignore[union-attr]
        self.requests.kv_transfer_s[seq.rid] += self.env.now - start
        # A source that crashed mid-transfer (new epoch) already lost its memory: nothing to free.
        if src_lane.epoch == epoch and held:
            src_lane.release_held(held)
        if not dst.alive or dst.state is ReplicaState.RETIRED:
            self.retry(seq)
            return
        dst.submit_decode(seq)

    def migrate(self, src: Replica, dst: Replica, count: int) -> None:
        """Ask src to hand `count` decoding requests to dst at its next step boundary."""
        lane = max(src.lanes, key=lambda x: x.n_dec)

        def op(ln: Lane) -> None:
            if ln.dead or not dst.alive:
                return
            for seq in ln.extract_decoding(count):
                self.migrations += 1
                self.event(EventKind.MIGRATION, src.index, str(dst.index))
                self.env.process(self._transfer(seq, ln, ln.epoch, 0, dst))
        lane.request_op(op)

    # -- cluster membership (failures, autoscaling) ------------------------------------------

    def crash(self, rep: Replica) -> None:
        """A replica fails: out of the pools, its requests retried or dropped."""
        rep.alive = False
        self.event(EventKind.CRASH, rep.index)
        if rep in self.entry:
            self.entry.remove(rep)
        if rep in self.decode_pool:
            self.decode_pool.remove(rep)
        self._pools_changed()
        lost = [seq for lane in rep.lanes for seq in lane.crash()]
        for seq in lost:
            self.retry(seq)

    def activate(self, rep: Replica, *, event: EventKind = EventKind.REPAIR) -> None:
        """A replica (repaired or newly provisioned) joins its pool."""
        rep.alive = True
        rep.state = ReplicaState.ACTIVE
        for lane in rep.lanes:
            lane.restart()
        self.event(event, rep.index)
        (self.decode_pool if rep.role is Role.DECODE else self.entry).append(rep)
        self._pools_changed()
        while self.pending and self.entry:
            self._dispatch(self.pending.popleft())
        while self.pending_decode and self.decode_pool:
            seq, lane, epoch, held = self.pending_decode.popleft()
            dst = self.decode_pool[self.decode_router.choose(seq, self.decode_pool)]
            self.env.process(self._transfer(seq, lane, epoch, held, dst))

    def provision(self, setup: ReplicaSetup) -> Replica:
        """A new replica of setup's group, booting (billed from now, not routable yet)."""
        rep = self._build_replica(setup)
        rep.state = ReplicaState.BOOTING  # lanes idle, outside every pool until activated
        self.event(EventKind.PROVISION, rep.index, setup.group)
        return rep

    def decommission(self, rep: Replica) -> None:
        """Stop routing to rep; it is released once its requests are done."""
        rep.state = ReplicaState.DRAINING
        if rep in self.entry:
            self.entry.remove(rep)
        if rep in self.decode_pool:
            self.decode_pool.remove(rep)
        self._pools_changed()
        self.event(EventKind.DRAIN, rep.index)
        self.env.process(self._drain(rep))

    def _drain(self, rep: Replica) -> Generator[simpy.Event, Any, None]:
        while rep.outstanding > 0 or any(ln.kv.held for ln in rep.lanes):
            yield self.env.timeout(1.0)
        rep.state = ReplicaState.RETIRED
        rep.end_s = float(self.env.now)
        self.event(EventKind.RETIRE, rep.index)

    def _start_extensions(self, extensions: Sequence[EngineExtension]) -> None:
        procs = [proc for ext in extensions for proc in ext.start(self)]
        self._periodic = bool(procs)
        if self._periodic and self.remaining == 0 and not self.done.triggered:
            self.done.succeed()

    # -- run ---------------------------------------------------------------------------------------

    def run(self) -> EngineOutput:
        """Simulate to the horizon (or until every request is done) and collect the output."""
        if self.horizon_s is not None:
            self.env.run(until=self.horizon_s)
        elif self._periodic:
            self.env.run(until=self.done)
        else:
            self.env.run()
        if self.progress is not None:
            self.progress(1.0)
        duration = float(self.env.now)
        if self.source is not None:
            self.source.trim()
        records = self.requests.frame(
            arrived_by_s=duration if self.horizon_s is not None else None)
        timeseries = timeseries_frame(self.lanes)
        lanes = lanes_frame(self.lanes, self.replicas)
        replicas = pd.DataFrame([{
            "replica": rep.index, "group": rep.group, "role": str(rep.role),
            "devices": rep.devices, "start_s": rep.start_s,
            "end_s": duration if rep.end_s is None else min(rep.end_s, duration),
            "price_usd_per_hour": self.setup_of[rep.index].price_usd_per_hour,
            "idle_w": self.setup_of[rep.index].idle_w, "capacity": rep.capacity,
        } for rep in self.replicas])
        caches = [lane.prefix for lane in self.lanes if lane.prefix is not None]
        hit = None
        if caches:
            looked = sum(c.lookups_tokens for c in caches)
            hit = sum(c.hit_tokens for c in caches) / looked if looked else 0.0
        events = events_frame(self.events)
        power = self._power_frame(replicas, duration)
        energy = None
        if power is not None:
            width = np.clip(duration - power["time_s"].to_numpy(), 0.0, self.power_cfg.bin_s)
            energy = float((power["power_w"].to_numpy() * width).sum())
        return EngineOutput(records=records, timeseries=timeseries, lanes=lanes,
                            duration_s=duration, prefix_hit_rate=hit, replicas=replicas,
                            power=power if self.opts.power is not None else None,
                            events=events, energy_j=energy)

    def _power_frame(self, replicas: pd.DataFrame, duration: float) -> pd.DataFrame | None:
        """Per replica and bin: mean power of its devices (busy steps + idle the rest)."""
        if not any(s.step_power is not None for s in self.setups):
            return None  # injected step costs without a power model
        cfg, w = self.power_cfg, self.meter.bin_s
        nbins = max(1, int(np.ceil(duration / w)))
        frames = []
        dev_offset = 0
        for row in replicas.itertuples():
            j = np.zeros(nbins)
            b = np.zeros(nbins)
            got_j = self.meter.joules.get(row.replica, [])[:nbins]
            got_b = self.meter.busy.get(row.replica, [])[:nbins]
            j[:len(got_j)] = got_j
            b[:len(got_b)] = got_b
            t0 = np.arange(nbins) * w
            span = np.clip(np.minimum(t0 + w, row.end_s) - np.maximum(t0, row.start_s), 0, w)
            span = np.minimum(span, np.clip(duration - t0, 0, w))
            idle_s = np.clip(span - b, 0.0, None)
            watts = (j + idle_s * row.idle_w * row.devices) / np.maximum(
                np.minimum(w, np.clip(duration - t0, 1e-12, None)), 1e-12)
            server = dev_offset // cfg.devices_per_server
            dev_offset += row.devices
            frames.append(pd.DataFrame({
                "time_s": t0, "replica": row.replica, "group": row.group,
                "server": server, "row": server // cfg.servers_per_row,
                "devices": row.devices, "power_w": watts, "busy_s": b,
            }))
        return pd.concat(frames, ignore_index=True)
