"""Llumnix-style live migration (Sun et al., OSDI'24) as a periodic rebalancing policy: every
interval_s the most and least loaded live replicas of a pool are compared; when their
outstanding requests differ by >= threshold, up to max_per_round of the source's most recently
admitted decoding requests move to the destination. The move happens at the source's next step
boundary; the request's KV is copied over the actual link (transfer.py, NIC contention
included) and it resumes decoding on the destination (stop-and-copy: it does not decode during
the copy - conservative next to Llumnix's pipelined copy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.serving.cluster_config import MigrationConfig

if TYPE_CHECKING:
    from simulator.serving.engine import ServingEngine


def _rebalance(engine: ServingEngine, cfg: MigrationConfig):  # type: ignore[no-untyped-def]
    env = engine.env
    while True:
        yield env.timeout(cfg.interval_s)
        pool = engine.decode_pool if engine.decode_pool else engine.entry
        pool = [r for r in pool if r.alive and r.state == "active"]
        if len(pool) < 2:
            continue
        src = max(pool, key=lambda r: r.outstanding)
        dst = min(pool, key=lambda r: r.outstanding)
        gap = src.outstanding - dst.outstanding
        if gap >= cfg.threshold:
            engine.migrate(src, dst, min(cfg.max_per_round, gap // 2))


def start(engine: ServingEngine, cfg: MigrationConfig) -> list[Any]:
    return [engine.env.process(_rebalance(engine, cfg))]
