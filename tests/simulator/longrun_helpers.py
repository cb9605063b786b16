"""Shared builders for the long-run tests (not a test module)."""

from __future__ import annotations

from typing import Any

from simulator.longrun import JobShape, RunConfig, parse_run


def job(nodes: int, *, gpus_per_replica: int = 8, state_bytes: float = 1e12) -> JobShape:
    """A job of `nodes` 8-GPU nodes, one DP replica per node unless told otherwise."""
    return JobShape(num_gpus=nodes * 8, gpus_per_node=8, dp=nodes * 8 // gpus_per_replica,
                    gpus_per_replica=gpus_per_replica, tokens_per_iteration=1e6,
                    state_bytes=state_bytes)


def kokolis_run(j: JobShape, *, interval_s: float, restart_s: float = 600.0,
                stall_s: float = 60.0, days: float = 90.0, **failures: Any) -> RunConfig:
    """Kokolis et al.'s assumptions: exponential node failures, fixed restart, spares always."""
    return parse_run({
        "duration": f"{days}d", "spares": j.num_nodes, "detection_s": 0, "restart_s": restart_s,
        "failures": {"model": "exponential", "node_failures_per_1000_node_days": 3.79,
                     "repair_s": "1h", **failures},
        "checkpoint": {"interval_s": interval_s, "mode": "sync", "write_s": stall_s,
                       "read_s": 0},
    }, job=j)
