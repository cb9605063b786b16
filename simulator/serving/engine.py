"""The serving engine: arrivals -> router -> replicas, in one SimPy environment.

The engine is independent of hwmodels: each replica is described by a ReplicaSetup holding its
step-cost callable (production: hwmodels.step.StepCostModel via steptime.step_cost_from_model;
tests may inject any callable) and its lane limits. Every request ends exactly once:
completed, dropped (with a reason) or running at the horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy

from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.replica import Lane, LaneConfig, Replica
from simulator.serving.request import DropReason, Seq, Status
from simulator.serving.router import make_router
from simulator.serving.schedulers import make_scheduler
from simulator.serving.steptime import DEFAULT_KNOT_TOKENS, StepCost, StepTimer

STATUS_CODES = {0: Status.RUNNING, 1: Status.COMPLETED, 2: Status.DROPPED}
DROP_CODES = {0: "", **{i + 1: r.value for i, r in enumerate(DropReason)}}
_DROP_INDEX = {r: i + 1 for i, r in enumerate(DropReason)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaSetup:
    """How to build one replica: step cost, limits (for the whole replica), policy, PP lanes."""

    step_cost: StepCost
    lane: LaneConfig  # total_blocks / max_num_seqs for the whole replica; split over pp lanes
    scheduler: str = "vllm"
    pp: int = 1
    devices: int = 1
    prefix_caching: bool = False
    knot_tokens: int = DEFAULT_KNOT_TOKENS
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOutput:
    """Raw results: per-request records, time series and per-lane accounting."""

    records: pd.DataFrame
    timeseries: pd.DataFrame
    lanes: pd.DataFrame
    duration_s: float
    prefix_hit_rate: float | None


def _lane_config(cfg: LaneConfig, pp: int) -> LaneConfig:
    if pp == 1:
        return cfg
    fields = {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}
    fields["total_blocks"] = max(1, cfg.total_blocks // pp)
    fields["max_num_seqs"] = max(1, cfg.max_num_seqs // pp)
    fields["watermark_blocks"] = cfg.watermark_blocks // pp
    return LaneConfig(**fields)


class ServingEngine:
    """Build replicas, replay `requests` (DataFrame sorted by arrival_time_s), collect records."""

    def __init__(self, requests: pd.DataFrame, setups: Sequence[ReplicaSetup], *,
                 router: str = "round_robin", seed: int = 0, horizon_s: float | None = None,
                 prefix_block_tokens: int | None = None,
                 progress: Callable[[float], None] | None = None) -> None:
        self.env = simpy.Environment()
        self.horizon_s = horizon_s
        self.progress = progress
        n = len(requests)
        self.n = n
        self.arrival = requests["arrival_time_s"].to_numpy(dtype=float)
        if n > 1 and np.any(np.diff(self.arrival) < 0):
            raise ValueError("requests must be sorted by arrival_time_s (traces.read_trace does)")
        self.prompt = requests["input_tokens"].to_numpy(dtype=np.int64)
        self.output = np.maximum(requests["output_tokens"].to_numpy(dtype=np.int64), 1)
        self.failed = (requests["failed"].to_numpy(dtype=bool) if "failed" in requests.columns
                       else np.zeros(n, dtype=bool))
        self.hashes = (list(requests["prefix_hashes"]) if "prefix_hashes" in requests.columns
                       else None)
        block_tokens = prefix_block_tokens or requests.attrs.get("hash_block_tokens") or None
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.status = np.zeros(n, dtype=np.int8)
        self.reason = np.zeros(n, dtype=np.int8)
        self.replica_of = np.full(n, -1, dtype=np.int32)
        self.preempt = np.zeros(n, dtype=np.int32)
        self.cached = np.zeros(n, dtype=np.int64)
        self.generated = np.zeros(n, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.router = make_router(router, rng)
        self.replicas: list[Replica] = []
        self.lanes: list[Lane] = []
        self.max_model_len: list[int] = []
        for r, setup in enumerate(setups):
            cfg = _lane_config(setup.lane, setup.pp)
            lanes = []
            for i in range(setup.pp):
                prefix = None
                if setup.prefix_caching and self.hashes is not None:
                    bt = int(block_tokens or cfg.block_size)
                    prefix = PrefixCache(bt, -(-bt // cfg.block_size))
                lane = Lane(self.env, cfg, make_scheduler(setup.scheduler),
                            StepTimer(setup.step_cost, knot_tokens=setup.knot_tokens),
                            prefix=prefix, replica=r, lane=i)
                lane.on_finish = self._on_finish
                lane.on_first_token = self._on_first
                lane.on_drop = self._on_drop
                lanes.append(lane)
                self.lanes.append(lane)
            self.replicas.append(Replica(r, lanes, devices=setup.devices))
            self.max_model_len.append(cfg.max_model_len)
        self.env.process(self._arrivals())

    # -- callbacks --------------------------------------------------------------------------------

    def _on_first(self, seq: Seq, now: float) -> None:
        self.first[seq.rid] = now

    def _on_finish(self, seq: Seq, now: float) -> None:
        rid = seq.rid
        self.finish[rid] = now
        self.status[rid] = 1
        self.generated[rid] = seq.output
        self.preempt[rid] = seq.preemptions
        self.cached[rid] = max(seq.first_cached, 0)

    def _on_drop(self, seq: Seq, reason: DropReason) -> None:
        self.status[seq.rid] = 2
        self.reason[seq.rid] = _DROP_INDEX[reason]

    # -- arrivals ---------------------------------------------------------------------------------

    def _arrivals(self):  # type: ignore[no-untyped-def]
        env, arrival, n = self.env, self.arrival, self.n
        replicas, router = self.replicas, self.router
        tick = max(1, n // 100)
        for i in range(n):
            t = arrival[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            if self.failed[i]:
                self.status[i] = 2
                self.reason[i] = _DROP_INDEX[DropReason.FAILED_IN_TRACE]
                continue
            seq = Seq(i, t, int(self.prompt[i]), int(self.output[i]),
                      self.hashes[i] if self.hashes is not None else ())
            r = router.choose(seq, replicas)
            self.replica_of[i] = r
            limit = self.max_model_len[r]
            if seq.prompt >= limit:
                self.status[i] = 2
                self.reason[i] = _DROP_INDEX[DropReason.PROMPT_TOO_LONG]
                continue
            if seq.prompt + seq.output > limit:  # vLLM stops at max_model_len ("length")
                seq.output = limit - seq.prompt
            replicas[r].submit(seq)
            if self.progress is not None and i % tick == 0:
                self.progress(i / n)

    # -- run ---------------------------------------------------------------------------------------

    def run(self) -> EngineOutput:
        """Simulate to the horizon (or until every request is done) and collect the output."""
        if self.horizon_s is not None:
            self.env.run(until=self.horizon_s)
        else:
            self.env.run()
        if self.progress is not None:
            self.progress(1.0)
        duration = float(self.env.now)
        records = pd.DataFrame({
            "request_id": np.arange(self.n),
            "arrival_s": self.arrival,
            "first_token_s": self.first,
            "finish_s": self.finish,
            "input_tokens": self.prompt,
            "output_tokens": np.where(self.status == 1, self.generated, self.output),
            "cached_tokens": self.cached,
            "preemptions": self.preempt,
            "status": pd.Categorical([STATUS_CODES[c].value for c in self.status],
                                     categories=[s.value for s in Status]),
            "drop_reason": [DROP_CODES[c] for c in self.reason],
            "replica": self.replica_of,
        })
        if self.horizon_s is not None:  # requests after the horizon never arrived
            records = records[records["arrival_s"] <= duration].reset_index(drop=True)
        rows: list[tuple[Any, ...]] = []
        for lane in self.lanes:
            rows.extend((t, lane.replica, ln, w, r, b, u) for t, ln, w, r, b, u in lane.samples)
        timeseries = pd.DataFrame(rows, columns=["time_s", "replica", "lane", "queue_len",
                                                 "batch_size", "kv_blocks", "kv_usage"])
        timeseries = timeseries.sort_values("time_s", kind="stable").reset_index(drop=True)
        lanes = pd.DataFrame([{
            "replica": lane.replica, "lane": lane.lane, "busy_s": lane.busy_s,
            "steps": lane.steps, "tokens": lane.tokens, "ctx_read_tokens": lane.ctx_read,
            "preemptions": lane.preemptions, "swapped_blocks": lane.swap_blocks,
            "peak_kv_blocks": lane.peak_used, "kv_blocks": lane.total,
            "devices": self.replicas[lane.replica].devices,
            "lanes_in_replica": len(self.replicas[lane.replica].lanes),
        } for lane in self.lanes])
        caches = [lane.prefix for lane in self.lanes if lane.prefix is not None]
        hit = None
        if caches:
            looked = sum(c.lookups_tokens for c in caches)
            hit = sum(c.hit_tokens for c in caches) / looked if looked else 0.0
        return EngineOutput(records=records, timeseries=timeseries, lanes=lanes,
                            duration_s=duration, prefix_hit_rate=hit)
