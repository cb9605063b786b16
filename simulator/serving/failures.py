"""Replica crashes and stragglers: each replica fails after a time drawn from an exponential or
Weibull distribution with the given MTBF (per replica), is repaired after repair_s, and its
in-flight requests are retried elsewhere from scratch (prefill recomputed) until the retry
budget is spent (engine.retry). Stragglers: a seeded fraction of replicas runs every step
`slowdown` x slower (a throttled or degraded GPU)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.serving.cluster_config import FailureConfig

if TYPE_CHECKING:
    from simulator.serving.engine import ServingEngine
    from simulator.serving.replica import Replica


def time_to_failure_s(cfg: FailureConfig, rng: np.random.Generator) -> float:
    """One draw with mean cfg.mtbf_s (Weibull scale = mtbf / Gamma(1 + 1/shape))."""
    if cfg.mtbf_s is None:
        return math.inf
    if cfg.distribution == "weibull":
        k = cfg.weibull_shape
        scale = cfg.mtbf_s / math.gamma(1.0 + 1.0 / k)
        return float(scale * rng.weibull(k))
    return float(rng.exponential(cfg.mtbf_s))


def _crash_loop(engine: ServingEngine, rep: Replica, cfg: FailureConfig,
                rng: np.random.Generator):  # type: ignore[no-untyped-def]
    env = engine.env
    while True:
        yield env.timeout(time_to_failure_s(cfg, rng))
        if rep.state in ("retired", "booting") or not rep.alive:
            if rep.state == "retired":
                return
            continue
        engine.crash(rep)
        yield env.timeout(cfg.repair_s)
        if rep.state != "retired":
            engine.activate(rep)


def start(engine: ServingEngine, cfg: FailureConfig) -> list[Any]:
    """Mark stragglers and start one crash process per initial replica."""
    rng = np.random.default_rng(engine.fail_ss)
    if cfg.straggler_fraction > 0 and cfg.straggler_slowdown > 1:
        count = int(round(cfg.straggler_fraction * len(engine.replicas)))
        for r in rng.choice(len(engine.replicas), size=count, replace=False):
            for lane in engine.replicas[int(r)].lanes:
                lane.timer.slow *= cfg.straggler_slowdown
                lane.timer.dscale *= cfg.straggler_slowdown
            engine.events.append((0.0, "straggler", int(r), str(cfg.straggler_slowdown)))
    if cfg.mtbf_s is None:
        return []
    streams = rng.spawn(len(engine.replicas))
    return [engine.env.process(_crash_loop(engine, rep, cfg, s))
            for rep, s in zip(engine.replicas, streams, strict=True)]
